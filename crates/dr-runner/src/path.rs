//! The JSONPath Amazon States Language uses.
//!
//! Two kinds of path: a *reference path* (`$` or `$$`, then `.name`,
//! `['name']` and `[index]` only; negative indices count from the end)
//! selects at most one node and is the only kind a ResultPath may use or a
//! value may be written at; it is read here, with the names Jayway's dot
//! notation allows (`$.db-record`). Every other path (wildcards, slices,
//! recursive descent, unions, filter expressions such as
//! `$.orders[?(@.total > 100)].id`) is an RFC 9535 query evaluated by
//! `serde_json_path`, and selects an array of its matches, as AWS does for an
//! indefinite path. What neither accepts (a Jayway-only operator such as
//! `=~` or `.length()`) is refused when a definition is loaded, never ignored.

use std::fmt;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
}

/// Which document a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's input.
    Input,
    /// `$$`: the context object.
    Context,
}

#[derive(Debug, Clone)]
enum Query {
    /// A reference path: names and indices.
    Reference(Vec<Segment>),
    /// Anything else, as an RFC 9535 query over the root document.
    Rfc9535(serde_json_path::JsonPath),
}

/// A parsed path.
#[derive(Debug, Clone)]
pub struct JsonPath {
    text: String,
    root: Root,
    query: Query,
}

impl PartialEq for JsonPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where an index points in an array of `len` items (a negative one counts
/// from the end), if it can point anywhere.
fn position(index: i64, len: usize) -> Option<usize> {
    let at = if index < 0 { len as i64 + index } else { index };
    usize::try_from(at).ok()
}

/// The segments of a reference path, or None when `rest` is anything else.
fn reference_segments(rest: &str) -> Option<Vec<Segment>> {
    let chars: Vec<char> = rest.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty()
                    || name == "*"
                    || name.contains(|c: char| "()?,'\"*@$ =<>!&|".contains(c))
                {
                    return None;
                }
                segments.push(Segment::Field(name));
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match quoted {
                    Some(name) if !name.contains(|c: char| "'\"\\".contains(c)) => {
                        segments.push(Segment::Field(name.to_owned()))
                    }
                    Some(_) => return None,
                    None => segments.push(Segment::Index(inner.parse().ok()?)),
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(segments)
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (root, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (Root::Input, rest)
        } else {
            return Err(format!("path {text:?} must start with $ or $$"));
        };
        let query = match reference_segments(rest) {
            Some(segments) => Query::Reference(segments),
            None => Query::Rfc9535(
                serde_json_path::JsonPath::parse(&format!("${rest}"))
                    .map_err(|e| format!("path {text:?} is no JSONPath this runner reads: {e}"))?,
            ),
        };
        Ok(JsonPath {
            text: text.to_owned(),
            root,
            query,
        })
    }

    pub fn root(&self) -> Root {
        self.root
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A definite path selects at most one node: a reference path.
    pub fn is_definite(&self) -> bool {
        matches!(self.query, Query::Reference(_))
    }

    /// A reference path (ResultPath, Choice Variable targets) is definite and
    /// made of names and indices only.
    pub fn is_reference(&self) -> bool {
        self.is_definite()
    }

    /// Selects from `doc`: `Some(value)` for a definite path that matches,
    /// an array of all matches otherwise, `None` when a definite path misses.
    pub fn select(&self, doc: &Value) -> Option<Value> {
        match &self.query {
            Query::Reference(segments) => {
                let mut node = doc;
                for segment in segments {
                    node = match segment {
                        Segment::Field(name) => node.as_object()?.get(name)?,
                        Segment::Index(index) => {
                            let items = node.as_array()?;
                            items.get(position(*index, items.len())?)?
                        }
                    };
                }
                Some(node.clone())
            }
            Query::Rfc9535(query) => Some(Value::Array(
                query.query(doc).all().into_iter().cloned().collect(),
            )),
        }
    }

    /// Writes `value` at this (reference) path inside `doc`, creating missing
    /// objects on the way. Fails when a step meets something that is not an
    /// object or array of the right shape.
    pub fn set(&self, doc: &mut Value, value: Value) -> Result<(), String> {
        let Query::Reference(segments) = &self.query else {
            return Err(format!("{} is not a reference path", self.text));
        };
        let mut node = doc;
        for (n, segment) in segments.iter().enumerate() {
            let last = n + 1 == segments.len();
            node = match segment {
                Segment::Field(name) => {
                    let Value::Object(map) = node else {
                        return Err(format!(
                            "cannot set {} because the value at {:?} is not an object",
                            self.text, name
                        ));
                    };
                    if last {
                        map.insert(name.clone(), value);
                        return Ok(());
                    }
                    map.entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Segment::Index(index) => {
                    let Value::Array(items) = node else {
                        return Err(format!("cannot set {}: not an array", self.text));
                    };
                    let slot = position(*index, items.len())
                        .and_then(|at| items.get_mut(at))
                        .ok_or_else(|| format!("cannot set {}: index out of range", self.text))?;
                    if last {
                        *slot = value;
                        return Ok(());
                    }
                    slot
                }
            };
        }
        *node = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, doc: &Value) -> Option<Value> {
        JsonPath::parse(path).expect("parses").select(doc)
    }

    #[test]
    fn selects_like_the_aws_documentation_examples() {
        let doc = json!({
            "foo": 123,
            "bar": ["a", "b", "c"],
            "car": {"cdr": true},
            "a": [{"b": 1}, {"b": 2}, {"c": 3}]
        });
        assert_eq!(sel("$.foo", &doc), Some(json!(123)));
        assert_eq!(sel("$.bar", &doc), Some(json!(["a", "b", "c"])));
        assert_eq!(sel("$.car.cdr", &doc), Some(json!(true)));
        assert_eq!(sel("$.bar[0]", &doc), Some(json!("a")));
        assert_eq!(sel("$.bar[-1]", &doc), Some(json!("c")));
        assert_eq!(sel("$['car']['cdr']", &doc), Some(json!(true)));
        assert_eq!(sel("$.a[*].b", &doc), Some(json!([1, 2])));
        assert_eq!(sel("$..b", &doc), Some(json!([1, 2])));
        assert_eq!(sel("$.bar[1:]", &doc), Some(json!(["b", "c"])));
        assert_eq!(sel("$", &doc), Some(doc.clone()));
        assert_eq!(sel("$.missing", &doc), None);
        assert_eq!(sel("$.a[*].zzz", &doc), Some(json!([])));
    }

    #[test]
    fn filters_unions_steps_and_descent_select_like_aws() {
        let doc = json!({
            "orders": [
                {"id": "a", "total": 50, "lines": [{"sku": "x"}]},
                {"id": "b", "total": 150, "lines": [{"sku": "y"}, {"sku": "z"}]},
                {"id": "c", "total": 101}
            ],
            "bar": ["a", "b", "c", "d"]
        });
        // the example, in Jayway's and in RFC 9535's spelling
        assert_eq!(
            sel("$.orders[?(@.total > 100)].id", &doc),
            Some(json!(["b", "c"]))
        );
        assert_eq!(
            sel("$.orders[?@.total > 100].id", &doc),
            Some(json!(["b", "c"]))
        );
        assert_eq!(
            sel("$.orders[?(@.total == 50)].id", &doc),
            Some(json!(["a"]))
        );
        assert_eq!(
            sel("$.orders[?(@.lines)].id", &doc),
            Some(json!(["a", "b"]))
        );
        assert_eq!(sel("$.orders[?(@.total > 1000)].id", &doc), Some(json!([])));
        assert_eq!(sel("$.bar[0,2]", &doc), Some(json!(["a", "c"])));
        assert_eq!(sel("$.bar[0:4:2]", &doc), Some(json!(["a", "c"])));
        assert_eq!(sel("$..sku", &doc), Some(json!(["x", "y", "z"])));
        assert_eq!(sel("$.orders[*].id", &doc), Some(json!(["a", "b", "c"])));
        // a filter is indefinite: its one match is still an array
        assert_eq!(
            sel("$.orders[?(@.id == 'a')].total", &doc),
            Some(json!([50]))
        );
        let path = JsonPath::parse("$.orders[?(@.total > 100)]").expect("filter");
        assert!(!path.is_definite() && !path.is_reference());
        assert!(path.set(&mut doc.clone(), json!(1)).is_err());
        // the context object takes them too
        let context = JsonPath::parse("$$.Map.Item.Value[?(@.ok)]").expect("context");
        assert_eq!(context.root(), Root::Context);
    }

    #[test]
    fn a_reference_path_reads_names_jayway_allows_and_stays_definite() {
        let doc = json!({"db-record": {"value": "x"}, "a b": 1, "list": [1, 2]});
        assert_eq!(sel("$.db-record.value", &doc), Some(json!("x")));
        assert_eq!(sel("$['a b']", &doc), Some(json!(1)));
        assert_eq!(sel("$[\"db-record\"]['value']", &doc), Some(json!("x")));
        assert_eq!(sel("$.list[-1]", &doc), Some(json!(2)));
        assert_eq!(sel("$.list[5]", &doc), None);
        assert!(JsonPath::parse("$.list[0]").expect("path").is_reference());
    }

    #[test]
    fn rejects_what_neither_reads() {
        for bad in [
            "a.b",
            "$.a[?(@.b =~ /x/)]",
            "$.a.length()",
            "$.a[",
            "$.a[?(@.b == )]",
            "$.a[(@.length-1)]",
        ] {
            let err = JsonPath::parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn set_creates_nested_objects_and_refuses_to_walk_through_scalars() {
        let mut doc = json!({"master": {"detail": [1, 2, 3]}});
        JsonPath::parse("$.master.result.sum")
            .expect("path")
            .set(&mut doc, json!(6))
            .expect("set");
        assert_eq!(
            doc,
            json!({"master": {"detail": [1, 2, 3], "result": {"sum": 6}}})
        );
        let err = JsonPath::parse("$.master.detail.x")
            .expect("path")
            .set(&mut doc, json!(1))
            .expect_err("through an array");
        assert!(err.contains("not an object"));
        JsonPath::parse("$")
            .expect("root")
            .set(&mut doc, json!("replaced"))
            .expect("root set");
        assert_eq!(doc, json!("replaced"));
    }
}
