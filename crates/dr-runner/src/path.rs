//! The JSONPath subset Amazon States Language uses.
//!
//! Supported: `$` and `$$` (context object) roots, `.name`, `['name']`,
//! `[index]` (negative counts from the end), `[*]` / `.*`, `[start:end]`
//! slices and `..name` recursive descent. Filter expressions (`[?(...)]`) and
//! unions are rejected when a definition is loaded, never ignored.

use std::fmt;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Descend(String),
}

/// Which document a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's input.
    Input,
    /// `$$`: the context object.
    Context,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
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
        let chars: Vec<char> = rest.chars().collect();
        let mut segments = Vec::new();
        let mut i = 0;
        let bad = |why: &str| format!("path {text:?}: {why}");
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let descend = chars.get(i + 1) == Some(&'.');
                    i += if descend { 2 } else { 1 };
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(bad("empty field name"));
                    }
                    if name.contains(|c: char| "()?,'\" ".contains(c)) {
                        return Err(bad(&format!("unsupported characters in field {name:?}")));
                    }
                    segments.push(match (descend, name.as_str()) {
                        (true, "*") => return Err(bad("`..*` is not supported")),
                        (true, _) => Segment::Descend(name),
                        (false, "*") => Segment::Wildcard,
                        (false, _) => Segment::Field(name),
                    });
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| bad("unclosed ["))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    segments.push(parse_bracket(inner).map_err(|e| bad(&e))?);
                    i = close + 1;
                }
                c => return Err(bad(&format!("unexpected character {c:?}"))),
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            root,
            segments,
        })
    }

    pub fn root(&self) -> Root {
        self.root
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A definite path selects at most one node (no wildcard, slice or descent).
    pub fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// A reference path (ResultPath, Choice Variable targets) is definite and
    /// made of names and indices only.
    pub fn is_reference(&self) -> bool {
        self.is_definite()
    }

    /// Selects from `doc`: `Some(value)` for a definite path that matches,
    /// an array of all matches otherwise, `None` when a definite path misses.
    pub fn select(&self, doc: &Value) -> Option<Value> {
        let mut current: Vec<&Value> = vec![doc];
        for segment in &self.segments {
            let mut next = Vec::new();
            for node in current {
                apply(segment, node, &mut next);
            }
            current = next;
        }
        if self.is_definite() {
            current.first().map(|v| (*v).clone())
        } else {
            Some(Value::Array(current.into_iter().cloned().collect()))
        }
    }

    /// Writes `value` at this (reference) path inside `doc`, creating missing
    /// objects on the way. Fails when a step meets something that is not an
    /// object or array of the right shape.
    pub fn set(&self, doc: &mut Value, value: Value) -> Result<(), String> {
        let mut node = doc;
        for (n, segment) in self.segments.iter().enumerate() {
            let last = n + 1 == self.segments.len();
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
                    let len = items.len() as i64;
                    let at = if *index < 0 { len + index } else { *index };
                    let slot = usize::try_from(at)
                        .ok()
                        .and_then(|at| items.get_mut(at))
                        .ok_or_else(|| format!("cannot set {}: index out of range", self.text))?;
                    if last {
                        *slot = value;
                        return Ok(());
                    }
                    slot
                }
                _ => return Err(format!("{} is not a reference path", self.text)),
            };
        }
        *node = value;
        Ok(())
    }
}

fn parse_bracket(inner: &str) -> Result<Segment, String> {
    if inner == "*" {
        return Ok(Segment::Wildcard);
    }
    if let Some(quoted) = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
    {
        return Ok(Segment::Field(quoted.to_owned()));
    }
    if inner.starts_with('?') || inner.starts_with('(') {
        return Err(format!(
            "filter and script expressions [{inner}] are not supported"
        ));
    }
    if inner.contains(',') {
        return Err(format!("unions [{inner}] are not supported"));
    }
    if let Some((start, end)) = inner.split_once(':') {
        if end.contains(':') {
            return Err(format!("slice steps [{inner}] are not supported"));
        }
        let bound = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("bad slice bound {s:?}"))
            }
        };
        return Ok(Segment::Slice(bound(start)?, bound(end)?));
    }
    inner
        .parse::<i64>()
        .map(Segment::Index)
        .map_err(|_| format!("unsupported bracket expression [{inner}]"))
}

fn apply<'a>(segment: &Segment, node: &'a Value, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(name) => {
            if let Some(v) = node.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Segment::Index(index) => {
            if let Some(items) = node.as_array() {
                let len = items.len() as i64;
                let at = if *index < 0 { len + index } else { *index };
                if let Some(v) = usize::try_from(at).ok().and_then(|at| items.get(at)) {
                    out.push(v);
                }
            }
        }
        Segment::Wildcard => match node {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Segment::Slice(start, end) => {
            if let Some(items) = node.as_array() {
                let len = items.len() as i64;
                let clamp = |i: i64| -> usize {
                    let i = if i < 0 { len + i } else { i };
                    i.clamp(0, len) as usize
                };
                let from = clamp(start.unwrap_or(0));
                let to = clamp(end.unwrap_or(len));
                if from < to {
                    out.extend(items[from..to].iter());
                }
            }
        }
        Segment::Descend(name) => descend(name, node, out),
    }
}

fn descend<'a>(name: &str, node: &'a Value, out: &mut Vec<&'a Value>) {
    match node {
        Value::Object(map) => {
            if let Some(v) = map.get(name) {
                out.push(v);
            }
            for v in map.values() {
                descend(name, v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                descend(name, v, out);
            }
        }
        _ => {}
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
    fn rejects_what_it_does_not_implement() {
        for bad in ["$.a[?(@.b == 1)]", "$.a[0,1]", "a.b", "$.a[0:4:2]", "$..*"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
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
