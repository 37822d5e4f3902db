//! Reading one field of a state: its type, its range, and the error naming
//! the state and the field when it is wrong.

use super::*;

pub(crate) fn check_fields(
    location: &str,
    map: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), LoadError> {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(LoadError::new(
                location,
                format!("field {key} is not supported by the local runner"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn positive_int(location: &str, field: &str, v: &Value) -> Result<u64, LoadError> {
    v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
        LoadError::new(
            location,
            format!("field {field} must be a positive integer"),
        )
    })
}

pub(crate) fn number(location: &str, field: &str, v: &Value) -> Result<f64, LoadError> {
    v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| {
        LoadError::new(
            location,
            format!("field {field} must be a non-negative number"),
        )
    })
}

pub(crate) fn string<'a>(location: &str, field: &str, v: &'a Value) -> Result<&'a str, LoadError> {
    v.as_str()
        .ok_or_else(|| LoadError::new(location, format!("field {field} must be a string")))
}

pub(crate) fn path(location: &str, field: &str, v: &Value) -> Result<JsonPath, LoadError> {
    JsonPath::parse(string(location, field, v)?)
        .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
}

pub(crate) fn path_spec(
    location: &str,
    map: &Map<String, Value>,
    field: &str,
    reference: bool,
) -> Result<PathSpec, LoadError> {
    match map.get(field) {
        None => Ok(PathSpec::Default),
        Some(Value::Null) => Ok(PathSpec::Null),
        Some(v) => {
            let p = path(location, field, v)?;
            if reference && !p.is_reference() {
                return Err(LoadError::new(
                    location,
                    format!("field {field} must be a reference path (names and indices only)"),
                ));
            }
            Ok(PathSpec::Path(p))
        }
    }
}

pub(crate) fn template(
    location: &str,
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<Template>, LoadError> {
    map.get(field)
        .map(|v| {
            Template::compile(v)
                .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
        })
        .transpose()
}

pub(crate) fn dynamic(location: &str, field: &str, v: &Value) -> Result<Dynamic, LoadError> {
    let text = string(location, field, v)?;
    if looks_like_intrinsic(text) {
        Intrinsic::parse(text)
            .map(Dynamic::Call)
            .map_err(|e| LoadError::new(location, format!("field {field}: {e}")))
    } else {
        path(location, field, v).map(Dynamic::Path)
    }
}
