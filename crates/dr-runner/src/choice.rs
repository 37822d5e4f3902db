//! Choice rules: every comparison operator and its `...Path` form, the type
//! tests, and And / Or / Not.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{LoadError, StateError};
use crate::intrinsics::Scope;
use crate::path::JsonPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
    Matches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeTest {
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: JsonPath,
        kind: Kind,
        comparison: Comparison,
        operand: Operand,
    },
    Test {
        variable: JsonPath,
        test: TypeTest,
        expected: bool,
    },
}

fn operator(name: &str) -> Option<(Kind, Comparison)> {
    let (kind, rest) = [
        ("String", Kind::String),
        ("Numeric", Kind::Numeric),
        ("Boolean", Kind::Boolean),
        ("Timestamp", Kind::Timestamp),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| name.strip_prefix(prefix).map(|rest| (kind, rest)))?;
    let comparison = match rest {
        "Equals" => Comparison::Equals,
        "LessThan" => Comparison::LessThan,
        "GreaterThan" => Comparison::GreaterThan,
        "LessThanEquals" => Comparison::LessThanEquals,
        "GreaterThanEquals" => Comparison::GreaterThanEquals,
        "Matches" if kind == Kind::String => Comparison::Matches,
        _ => return None,
    };
    if kind == Kind::Boolean && comparison != Comparison::Equals {
        return None;
    }
    Some((kind, comparison))
}

fn type_test(name: &str) -> Option<TypeTest> {
    Some(match name {
        "IsNull" => TypeTest::IsNull,
        "IsPresent" => TypeTest::IsPresent,
        "IsNumeric" => TypeTest::IsNumeric,
        "IsString" => TypeTest::IsString,
        "IsBoolean" => TypeTest::IsBoolean,
        "IsTimestamp" => TypeTest::IsTimestamp,
        _ => return None,
    })
}

impl Condition {
    pub fn parse(
        loc: &str,
        map: &Map<String, Value>,
        top_level: bool,
    ) -> Result<Condition, LoadError> {
        let mut keys: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "Comment")
            .collect();
        if top_level {
            keys.retain(|k| *k != "Next");
        } else if map.contains_key("Next") {
            return Err(LoadError::new(
                loc,
                "a nested choice rule must not have Next",
            ));
        }
        let nested = |value: &Value| -> Result<Condition, LoadError> {
            let m = value
                .as_object()
                .ok_or_else(|| LoadError::new(loc, "a nested rule must be an object"))?;
            Condition::parse(loc, m, false)
        };
        let list = |value: &Value, name: &str| -> Result<Vec<Condition>, LoadError> {
            value
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| LoadError::new(loc, format!("{name} must be a non-empty array")))?
                .iter()
                .map(nested)
                .collect()
        };
        match keys.as_slice() {
            ["And"] => return Ok(Condition::And(list(&map["And"], "And")?)),
            ["Or"] => return Ok(Condition::Or(list(&map["Or"], "Or")?)),
            ["Not"] => return Ok(Condition::Not(Box::new(nested(&map["Not"])?))),
            _ => {}
        }
        let variable = map.get("Variable").and_then(Value::as_str).ok_or_else(|| {
            LoadError::new(
                loc,
                format!("a rule needs Variable (or And/Or/Not); it has {keys:?}"),
            )
        })?;
        let variable = JsonPath::parse(variable)
            .map_err(|e| LoadError::new(loc, format!("field Variable: {e}")))?;
        let operators: Vec<&str> = keys.into_iter().filter(|k| *k != "Variable").collect();
        let [op] = operators.as_slice() else {
            return Err(LoadError::new(
                loc,
                format!("a rule needs exactly one operator, it has {operators:?}"),
            ));
        };
        let value = &map[*op];
        if let Some(test) = type_test(op) {
            let expected = value
                .as_bool()
                .ok_or_else(|| LoadError::new(loc, format!("field {op} must be true or false")))?;
            return Ok(Condition::Test {
                variable,
                test,
                expected,
            });
        }
        let (name, is_path) = match op.strip_suffix("Path") {
            Some(base) => (base, true),
            None => (*op, false),
        };
        let (kind, comparison) = operator(name)
            .filter(|(_, c)| !(is_path && *c == Comparison::Matches))
            .ok_or_else(|| LoadError::new(loc, format!("operator {op} is not supported")))?;
        let operand = if is_path {
            let text = value
                .as_str()
                .ok_or_else(|| LoadError::new(loc, format!("field {op} must be a path")))?;
            Operand::Path(
                JsonPath::parse(text)
                    .map_err(|e| LoadError::new(loc, format!("field {op}: {e}")))?,
            )
        } else {
            let ok = match kind {
                Kind::String => value.is_string(),
                Kind::Numeric => value.is_number(),
                Kind::Boolean => value.is_boolean(),
                Kind::Timestamp => value.as_str().and_then(timestamp).is_some(),
            };
            if !ok {
                return Err(LoadError::new(
                    loc,
                    format!("field {op} has a value of the wrong type: {value}"),
                ));
            }
            Operand::Value(value.clone())
        };
        Ok(Condition::Compare {
            variable,
            kind,
            comparison,
            operand,
        })
    }

    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<bool, StateError> {
        match self {
            Condition::And(all) => {
                for c in all {
                    if !c.evaluate(scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(any) => {
                for c in any {
                    if c.evaluate(scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(c) => Ok(!c.evaluate(scope)?),
            Condition::Test {
                variable,
                test,
                expected,
            } => {
                let value = scope.read(variable);
                let result = match (test, &value) {
                    (TypeTest::IsPresent, v) => v.is_some(),
                    (_, None) => false,
                    (TypeTest::IsNull, Some(v)) => v.is_null(),
                    (TypeTest::IsNumeric, Some(v)) => v.is_number(),
                    (TypeTest::IsString, Some(v)) => v.is_string(),
                    (TypeTest::IsBoolean, Some(v)) => v.is_boolean(),
                    (TypeTest::IsTimestamp, Some(v)) => v.as_str().and_then(timestamp).is_some(),
                };
                Ok(result == *expected)
            }
            Condition::Compare {
                variable,
                kind,
                comparison,
                operand,
            } => {
                let left = scope.read(variable).ok_or_else(|| {
                    StateError::runtime(format!(
                        "Invalid path '{variable}': The choice state's condition path references an invalid value."
                    ))
                })?;
                let right = match operand {
                    Operand::Value(v) => v.clone(),
                    Operand::Path(p) => scope.read(p).ok_or_else(|| {
                        StateError::runtime(format!(
                            "Invalid path '{p}': The choice state's condition path references an invalid value."
                        ))
                    })?,
                };
                Ok(compare(*kind, *comparison, &left, &right))
            }
        }
    }
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A comparison between values of the wrong type is false, as in AWS.
fn compare(kind: Kind, comparison: Comparison, left: &Value, right: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match kind {
        Kind::String => match (left.as_str(), right.as_str()) {
            (Some(l), Some(r)) if comparison == Comparison::Matches => return wildcard_match(r, l),
            (Some(l), Some(r)) => Some(l.cmp(r)),
            _ => None,
        },
        Kind::Numeric => match (left.as_f64(), right.as_f64()) {
            (Some(l), Some(r)) if left.is_number() && right.is_number() => l.partial_cmp(&r),
            _ => None,
        },
        Kind::Boolean => match (left.as_bool(), right.as_bool()) {
            (Some(l), Some(r)) => Some(l.cmp(&r)),
            _ => None,
        },
        Kind::Timestamp => match (
            left.as_str().and_then(timestamp),
            right.as_str().and_then(timestamp),
        ) {
            (Some(l), Some(r)) => Some(l.cmp(&r)),
            _ => None,
        },
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match comparison {
        Comparison::Equals => ordering == Ordering::Equal,
        Comparison::LessThan => ordering == Ordering::Less,
        Comparison::GreaterThan => ordering == Ordering::Greater,
        Comparison::LessThanEquals => ordering != Ordering::Greater,
        Comparison::GreaterThanEquals => ordering != Ordering::Less,
        Comparison::Matches => false,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literal.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Token::Char(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(Token::Star),
            c => tokens.push(Token::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard matching with backtracking to the last star.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matches_follows_the_documented_wildcards() {
        assert!(wildcard_match("log-*.txt", "log-2026-11-26.txt"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("literal\\*star", "literal*star"));
        assert!(!wildcard_match("literal\\*star", "literalXstar"));
        assert!(wildcard_match("back\\\\slash", "back\\slash"));
    }
}
