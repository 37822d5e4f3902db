//! Payload templates: `Parameters`, `ItemSelector`, `ResultSelector`.
//! Keys ending in `.$` take a path or an intrinsic function; compiled at load
//! time so a malformed one is reported before anything runs.

use serde_json::{Map, Value};

use crate::error::StateError;
use crate::intrinsics::{looks_like_intrinsic, Intrinsic, Scope};
use crate::path::JsonPath;

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path { key: String, path: JsonPath },
    Call(Intrinsic),
}

impl Template {
    pub fn compile(value: &Value) -> Result<Template, String> {
        match value {
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, v) in map {
                    if let Some(name) = key.strip_suffix(".$") {
                        let Value::String(text) = v else {
                            return Err(format!(
                                "{key} must be a string holding a path or an intrinsic function"
                            ));
                        };
                        let compiled = if looks_like_intrinsic(text) {
                            Template::Call(
                                Intrinsic::parse(text).map_err(|e| format!("{key}: {e}"))?,
                            )
                        } else {
                            Template::Path {
                                key: key.clone(),
                                path: JsonPath::parse(text).map_err(|e| format!("{key}: {e}"))?,
                            }
                        };
                        entries.push((name.to_owned(), compiled));
                    } else {
                        entries.push((key.clone(), Template::compile(v)?));
                    }
                }
                Ok(Template::Object(entries))
            }
            Value::Array(items) => items
                .iter()
                .map(Template::compile)
                .collect::<Result<_, _>>()
                .map(Template::Array),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    pub fn render(&self, scope: &Scope<'_>) -> Result<Value, StateError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, t) in entries {
                    map.insert(key.clone(), t.render(scope)?);
                }
                Ok(Value::Object(map))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.render(scope))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Template::Path { key, path } => scope.read(path).ok_or_else(|| {
                StateError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{key}' could not be found in the input '{}'",
                    scope.input
                ))
            }),
            Template::Call(call) => call.evaluate(scope),
        }
    }

    /// Every static string in the template (to check function names at load).
    pub fn static_field(&self, name: &str) -> Option<&Value> {
        match self {
            Template::Object(entries) => entries.iter().find_map(|(k, t)| match t {
                Template::Literal(v) if k == name => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_documented_parameters_example() {
        let template = Template::compile(&json!({
            "comment": "Selecting what I care about.",
            "MyDetails": {
                "size.$": "$.product.details.size",
                "exists.$": "$.product.availability",
                "StaticValue": "foo"
            },
            "greeting.$": "States.Format('hi {}', $$.Execution.Name)"
        }))
        .expect("compiles");
        let input = json!({"product": {"details": {"color": "blue", "size": "small"}, "availability": "in stock"}});
        let context = json!({"Execution": {"Name": "x"}});
        let out = template
            .render(&Scope {
                input: &input,
                context: &context,
            })
            .expect("renders");
        assert_eq!(
            out,
            json!({
                "comment": "Selecting what I care about.",
                "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"},
                "greeting": "hi x"
            })
        );
    }

    #[test]
    fn a_missing_path_is_a_runtime_error_and_bad_templates_fail_to_compile() {
        let template = Template::compile(&json!({"a.$": "$.nope"})).expect("compiles");
        let err = template
            .render(&Scope {
                input: &json!({}),
                context: &json!({}),
            })
            .expect_err("missing");
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains("'a.$'"));
        assert!(Template::compile(&json!({"a.$": 3})).is_err());
        assert!(Template::compile(&json!({"a.$": "nope"})).is_err());
        assert!(Template::compile(&json!({"a.$": "States.Hash($.x)"})).is_err());
        assert!(Template::compile(&json!({"a.$": "$.items[?(@.name =~ /x/)]"})).is_err());
    }
}
