//! Intrinsic functions (`States.Format(...)` and friends), parsed when a
//! definition loads and evaluated against the input and context.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{names, StateError};
use crate::path::{JsonPath, Root};

/// Every intrinsic this runner implements, with its arity (min, max).
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
    ("States.Hash", 2, 2),
];

/// The longest string `States.Hash` takes (AWS: 10,000 characters or fewer).
const HASH_INPUT_LIMIT: usize = 10_000;

/// `States.Hash(data, algorithm)`: the lower-case hex digest of a string.
fn hash(data: &str, algorithm: &str) -> Result<Value, String> {
    use sha2::Digest as _;
    if data.chars().count() > HASH_INPUT_LIMIT {
        return Err(format!(
            "the data to hash has more than {HASH_INPUT_LIMIT} characters"
        ));
    }
    let bytes = data.as_bytes();
    let digest: Vec<u8> = match algorithm {
        "MD5" => md5::Md5::digest(bytes).to_vec(),
        "SHA-1" => sha1::Sha1::digest(bytes).to_vec(),
        "SHA-256" => sha2::Sha256::digest(bytes).to_vec(),
        "SHA-384" => sha2::Sha384::digest(bytes).to_vec(),
        "SHA-512" => sha2::Sha512::digest(bytes).to_vec(),
        other => {
            return Err(format!(
                "algorithm {other:?} is none of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
            ))
        }
    };
    Ok(Value::String(
        digest.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Literal(Value),
    Path(JsonPath),
    Call(Box<Intrinsic>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    pub name: String,
    pub args: Vec<Arg>,
}

/// The documents paths read from.
pub struct Scope<'a> {
    pub input: &'a Value,
    pub context: &'a Value,
}

impl Scope<'_> {
    pub fn read(&self, path: &JsonPath) -> Option<Value> {
        match path.root() {
            Root::Input => path.select(self.input),
            Root::Context => path.select(self.context),
        }
    }
}

pub fn looks_like_intrinsic(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Intrinsic {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser {
            chars: text.trim().chars().collect(),
            pos: 0,
        };
        let call = parser.call()?;
        parser.skip_ws();
        if parser.pos != parser.chars.len() {
            return Err(format!("unexpected text after the call in {text:?}"));
        }
        Ok(call)
    }

    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, StateError> {
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(match arg {
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => scope.read(p).ok_or_else(|| {
                    StateError::new(
                        names::INTRINSIC_FAILURE,
                        format!("{}: the path {p} was not found", self.name),
                    )
                })?,
                Arg::Call(call) => call.evaluate(scope)?,
            });
        }
        call(&self.name, args).map_err(|why| {
            StateError::new(names::INTRINSIC_FAILURE, format!("{}: {why}", self.name))
        })
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let Some((_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
            return Err(format!("intrinsic function {name:?} is not supported"));
        };
        self.skip_ws();
        if self.chars.get(self.pos) != Some(&'(') {
            return Err(format!("{name}: expected ("));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.chars.get(self.pos) == Some(&')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_ws();
                match self.chars.get(self.pos) {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(format!("{name}: expected , or )")),
                }
            }
        }
        if args.len() < *min || args.len() > *max {
            return Err(format!("{name} does not take {} arguments", args.len()));
        }
        Ok(Intrinsic { name, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_ws();
        match self.chars.get(self.pos) {
            Some('\'') => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.chars.get(self.pos) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\\') => {
                            let escaped = self
                                .chars
                                .get(self.pos + 1)
                                .ok_or("dangling backslash in string literal")?;
                            // Braces keep their backslash so Format can tell
                            // a literal brace from a placeholder.
                            if *escaped == '{' || *escaped == '}' {
                                text.push('\\');
                            }
                            text.push(*escaped);
                            self.pos += 2;
                        }
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            text.push(*c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Arg::Literal(Value::String(text)))
            }
            Some('$') => {
                let start = self.pos;
                let mut depth = 0usize;
                let mut quote = None;
                while let Some(&c) = self.chars.get(self.pos) {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(c),
                        (None, '[') => depth += 1,
                        (None, ']') => depth = depth.saturating_sub(1),
                        (None, ',' | ')') if depth == 0 => break,
                        (None, c) if c.is_whitespace() && depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                JsonPath::parse(&text).map(Arg::Path)
            }
            Some('S') => self.call().map(|c| Arg::Call(Box::new(c))),
            Some(_) => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| *c != ',' && *c != ')' && !c.is_whitespace())
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
                    .map(Arg::Literal)
                    .ok_or_else(|| format!("bad argument {text:?}"))
            }
            None => Err("missing argument".to_owned()),
        }
    }
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| format!("{what} must be an integer, got {v}"))
}

fn as_array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} must be an array, got {v}"))
}

fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a string, got {v}"))
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    match name {
        "States.Format" => {
            let template = as_str(&args[0], "the template")?;
            let mut values = args[1..].iter();
            let mut out = String::new();
            let mut chars = template.chars().peekable();
            let mut used = 0;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(next) = chars.next() {
                            out.push(next);
                        }
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let value = values.next().ok_or("more {} placeholders than arguments")?;
                        used += 1;
                        match value {
                            Value::String(s) => out.push_str(s),
                            other => out.push_str(&other.to_string()),
                        }
                    }
                    c => out.push(c),
                }
            }
            if used != args.len() - 1 {
                return Err("more arguments than {} placeholders".to_owned());
            }
            Ok(Value::String(out))
        }
        "States.StringToJson" => serde_json::from_str(as_str(&args[0], "the argument")?)
            .map_err(|e| format!("not JSON: {e}")),
        "States.JsonToString" => Ok(Value::String(args[0].to_string())),
        "States.Array" => Ok(Value::Array(args)),
        "States.ArrayPartition" => {
            let items = as_array(&args[0], "the array")?;
            let size = as_int(&args[1], "the chunk size")?;
            if size <= 0 {
                return Err("the chunk size must be positive".to_owned());
            }
            Ok(Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => Ok(Value::Bool(
            as_array(&args[0], "the array")?.contains(&args[1]),
        )),
        "States.ArrayRange" => {
            let (start, end, step) = (
                as_int(&args[0], "start")?,
                as_int(&args[1], "end")?,
                as_int(&args[2], "step")?,
            );
            if step == 0 {
                return Err("step must not be 0".to_owned());
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(json!(i));
                if out.len() > 1000 {
                    return Err("a range may hold at most 1000 items".to_owned());
                }
                i += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            let items = as_array(&args[0], "the array")?;
            let index = as_int(&args[1], "the index")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| format!("index {index} is out of range"))
        }
        "States.ArrayLength" => Ok(json!(as_array(&args[0], "the argument")?.len())),
        "States.ArrayUnique" => {
            let mut out: Vec<Value> = Vec::new();
            for item in as_array(&args[0], "the argument")? {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.Base64Encode" => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(as_str(&args[0], "the argument")?),
        )),
        "States.Base64Decode" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(as_str(&args[0], "the argument")?)
                .map_err(|e| format!("not base64: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "decoded bytes are not UTF-8".to_owned())
        }
        "States.JsonMerge" => {
            let (Value::Object(left), Value::Object(right)) = (&args[0], &args[1]) else {
                return Err("both arguments must be objects".to_owned());
            };
            if args[2] != Value::Bool(false) {
                return Err("only shallow merges (false) are supported".to_owned());
            }
            let mut merged = left.clone();
            merged.extend(right.clone());
            Ok(Value::Object(merged))
        }
        "States.MathRandom" => {
            use rand::{Rng, SeedableRng};
            let (start, end) = (as_int(&args[0], "start")?, as_int(&args[1], "end")?);
            if start >= end {
                return Err("start must be below end".to_owned());
            }
            let value = match args.get(2) {
                Some(seed) => rand::rngs::StdRng::seed_from_u64(as_int(seed, "the seed")? as u64)
                    .gen_range(start..end),
                None => rand::thread_rng().gen_range(start..end),
            };
            Ok(json!(value))
        }
        "States.MathAdd" => {
            let (a, b) = (
                as_int(&args[0], "the first value")?,
                as_int(&args[1], "the step")?,
            );
            a.checked_add(b)
                .map(|v| json!(v))
                .ok_or_else(|| "overflow".to_owned())
        }
        "States.StringSplit" => {
            let text = as_str(&args[0], "the string")?;
            let delimiters: Vec<char> = as_str(&args[1], "the delimiters")?.chars().collect();
            Ok(Value::Array(
                text.split(|c| delimiters.contains(&c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ))
        }
        "States.UUID" => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
        "States.Hash" => hash(
            as_str(&args[0], "the data")?,
            as_str(&args[1], "the algorithm")?,
        ),
        other => Err(format!("{other} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, input: Value) -> Result<Value, StateError> {
        let context = json!({"Execution": {"Name": "run-1"}});
        Intrinsic::parse(text).expect("parses").evaluate(&Scope {
            input: &input,
            context: &context,
        })
    }

    #[test]
    fn the_documented_examples_give_the_documented_results() {
        assert_eq!(
            eval(
                "States.Format('Hello, my name is {}.', $.name)",
                json!({"name": "Arnav"})
            )
            .expect("format"),
            json!("Hello, my name is Arnav.")
        );
        assert_eq!(
            eval(
                "States.Format('{} and \\{literal\\}: {}', $.n, $$.Execution.Name)",
                json!({"n": 42})
            )
            .expect("format"),
            json!("42 and {literal}: run-1")
        );
        assert_eq!(
            eval(
                "States.StringToJson($.escapedJsonString)",
                json!({"escapedJsonString": "{\"foo\": \"bar\"}"})
            )
            .expect("s2j"),
            json!({"foo": "bar"})
        );
        assert_eq!(
            eval(
                "States.JsonToString($.unescapedJson)",
                json!({"unescapedJson": {"foo": "bar"}})
            )
            .expect("j2s"),
            json!("{\"foo\":\"bar\"}")
        );
        assert_eq!(
            eval(
                "States.Array('Foo', 2020, $.someJson, null)",
                json!({"someJson": {"random": "abcdefg"}})
            )
            .expect("array"),
            json!(["Foo", 2020, {"random": "abcdefg"}, null])
        );
        assert_eq!(
            eval(
                "States.ArrayPartition($.inputArray, 4)",
                json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
            )
            .expect("partition"),
            json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
        );
        assert_eq!(
            eval(
                "States.ArrayContains($.inputArray, $.lookingFor)",
                json!({"inputArray": [1, 2, 3], "lookingFor": 5})
            )
            .expect("contains"),
            json!(false)
        );
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)", json!({})).expect("range"),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            eval(
                "States.ArrayGetItem($.inputArray, $.index)",
                json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5})
            )
            .expect("get"),
            json!(6)
        );
        assert_eq!(
            eval(
                "States.ArrayLength($.inputArray)",
                json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
            )
            .expect("len"),
            json!(9)
        );
        assert_eq!(
            eval(
                "States.ArrayUnique($.inputArray)",
                json!({"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]})
            )
            .expect("unique"),
            json!([1, 2, 3, 4])
        );
        assert_eq!(
            eval(
                "States.Base64Encode($.input)",
                json!({"input": "Data to encode"})
            )
            .expect("b64"),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            eval(
                "States.Base64Decode($.base64)",
                json!({"base64": "RGVjb2RlZCBkYXRh"})
            )
            .expect("b64d"),
            json!("Decoded data")
        );
        assert_eq!(
            eval("States.JsonMerge($.json1, $.json2, false)", json!({"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}})).expect("merge"),
            json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})
        );
        assert_eq!(
            eval(
                "States.MathAdd($.value1, $.step)",
                json!({"value1": 111, "step": -1})
            )
            .expect("add"),
            json!(110)
        );
        assert_eq!(
            eval(
                "States.StringSplit($.inputString, $.splitter)",
                json!({"inputString": "1,2,3,4,5", "splitter": ","})
            )
            .expect("split"),
            json!(["1", "2", "3", "4", "5"])
        );
        let random = eval("States.MathRandom(1, 999)", json!({})).expect("random");
        assert!(random.as_i64().is_some_and(|v| (1..999).contains(&v)));
        let uuid = eval("States.UUID()", json!({})).expect("uuid");
        assert_eq!(uuid.as_str().map(str::len), Some(36));
        assert_eq!(
            eval("States.ArrayLength(States.Array(1, 2, 3))", json!({})).expect("nested"),
            json!(3)
        );
    }

    #[test]
    fn hashes_are_the_documented_lower_case_hex_digests() {
        // AWS's example is SHA-1 of "input data"; the others are that
        // string's digests by Python's hashlib.
        let cases = [
            ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
            ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
            (
                "SHA-256",
                "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3",
            ),
        ];
        for (algorithm, digest) in cases {
            assert_eq!(
                eval(
                    "States.Hash($.Data, $.Algorithm)",
                    json!({"Data": "input data", "Algorithm": algorithm})
                )
                .expect(algorithm),
                json!(digest),
                "{algorithm}"
            );
        }
        for (algorithm, hex_len) in [("SHA-384", 96), ("SHA-512", 128)] {
            let value = eval(
                &format!("States.Hash('input data', '{algorithm}')"),
                json!({}),
            )
            .expect(algorithm);
            assert_eq!(value.as_str().map(str::len), Some(hex_len), "{algorithm}");
        }
        for (input, why) in [
            (json!({"Data": "x", "Algorithm": "SHA1"}), "none of MD5"),
            (json!({"Data": "x", "Algorithm": "sha-256"}), "none of MD5"),
            (json!({"Data": 7, "Algorithm": "MD5"}), "the data"),
            (
                json!({"Data": "x".repeat(10_001), "Algorithm": "MD5"}),
                "10000 characters",
            ),
        ] {
            let err = eval("States.Hash($.Data, $.Algorithm)", input).expect_err(why);
            assert_eq!(err.error, "States.IntrinsicFailure");
            assert!(err.cause.contains(why), "{why}: {}", err.cause);
        }
        assert!(eval(
            "States.Hash($.Data, 'MD5')",
            json!({"Data": "x".repeat(10_000)})
        )
        .is_ok());
    }

    #[test]
    fn failures_are_intrinsic_failures_and_unknown_functions_fail_to_parse() {
        let err = eval("States.ArrayGetItem($.a, 7)", json!({"a": [1]})).expect_err("range");
        assert_eq!(err.error, "States.IntrinsicFailure");
        let err = eval("States.Format('{} {}', $.a)", json!({"a": 1})).expect_err("count");
        assert_eq!(err.error, "States.IntrinsicFailure");
        assert!(Intrinsic::parse("States.Nope()").is_err());
        assert!(Intrinsic::parse("States.MathAdd(1)").is_err());
    }
}
