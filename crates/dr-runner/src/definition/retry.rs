//! Retry and Catch: the errors they match, their intervals and backoff.

use super::*;

pub(crate) fn error_equals(loc: &str, map: &Map<String, Value>) -> Result<Vec<String>, LoadError> {
    let list = map
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| LoadError::new(loc, "field ErrorEquals must be a non-empty array"))?;
    let names: Vec<String> = list
        .iter()
        .map(|v| string(loc, "ErrorEquals", v).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    if names.iter().any(|n| n == names::ALL) && names.len() > 1 {
        return Err(LoadError::new(
            loc,
            "States.ALL must appear alone in ErrorEquals",
        ));
    }
    Ok(names)
}

pub(crate) fn retriers(loc: &str, map: &Map<String, Value>) -> Result<Vec<Retrier>, LoadError> {
    let Some(list) = map.get("Retry") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| LoadError::new(loc, "field Retry must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let rloc = format!("{loc} Retry[{i}]");
        let r = r
            .as_object()
            .ok_or_else(|| LoadError::new(&rloc, "must be an object"))?;
        check_fields(
            &rloc,
            r,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
        )?;
        let error_equals = error_equals(&rloc, r)?;
        if error_equals.iter().any(|e| e == names::ALL) && i + 1 != list.len() {
            return Err(LoadError::new(
                &rloc,
                "a retrier with States.ALL must be the last one",
            ));
        }
        let backoff_rate = r
            .get("BackoffRate")
            .map(|v| number(&rloc, "BackoffRate", v))
            .transpose()?
            .unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(LoadError::new(
                &rloc,
                "field BackoffRate must be at least 1.0",
            ));
        }
        out.push(Retrier {
            error_equals,
            interval_seconds: r
                .get("IntervalSeconds")
                .map(|v| positive_int(&rloc, "IntervalSeconds", v))
                .transpose()?
                .unwrap_or(1) as f64,
            max_attempts: r
                .get("MaxAttempts")
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            LoadError::new(
                                &rloc,
                                "field MaxAttempts must be a non-negative integer",
                            )
                        })
                })
                .transpose()?
                .unwrap_or(3),
            backoff_rate,
            max_delay_seconds: r
                .get("MaxDelaySeconds")
                .map(|v| positive_int(&rloc, "MaxDelaySeconds", v).map(|n| n as f64))
                .transpose()?,
            full_jitter: match r
                .get("JitterStrategy")
                .map(|v| string(&rloc, "JitterStrategy", v))
                .transpose()?
            {
                None | Some("NONE") => false,
                Some("FULL") => true,
                Some(other) => {
                    return Err(LoadError::new(
                        &rloc,
                        format!("field JitterStrategy: {other:?} is not FULL or NONE"),
                    ))
                }
            },
        });
    }
    Ok(out)
}

pub(crate) fn catchers(loc: &str, map: &Map<String, Value>) -> Result<Vec<Catcher>, LoadError> {
    let Some(list) = map.get("Catch") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| LoadError::new(loc, "field Catch must be an array"))?;
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let cloc = format!("{loc} Catch[{i}]");
        let c = c
            .as_object()
            .ok_or_else(|| LoadError::new(&cloc, "must be an object"))?;
        check_fields(&cloc, c, &["ErrorEquals", "ResultPath", "Next", "Comment"])?;
        let error_equals = error_equals(&cloc, c)?;
        if error_equals.iter().any(|e| e == names::ALL) && i + 1 != list.len() {
            return Err(LoadError::new(
                &cloc,
                "a catcher with States.ALL must be the last one",
            ));
        }
        out.push(Catcher {
            error_equals,
            result_path: path_spec(&cloc, c, "ResultPath", true)?,
            next: c
                .get("Next")
                .ok_or_else(|| LoadError::new(&cloc, "field Next is missing"))
                .and_then(|v| string(&cloc, "Next", v))?
                .to_owned(),
        });
    }
    Ok(out)
}
