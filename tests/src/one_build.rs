//! One build for every function: the same build properties, the DR_FUNCTION
//! of each, and functions/README.md.

use crate::*;

/// The binary every function runs, from functions/Cargo.toml's `[[bin]]`.
pub(crate) fn bootstrap_binary(root: &Path) -> Result<String, String> {
    let path = root.join("functions/Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let bins: Vec<&str> = manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|bins| {
            bins.iter()
                .filter_map(|b| b.get("name").and_then(toml::Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match bins.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(format!(
            "functions/Cargo.toml must declare exactly one [[bin]], the bootstrap of every function; it declares {bins:?}"
        )),
    }
}

/// The (DR_FUNCTION, logical id) rows of functions/README.md's table.
pub(crate) fn documented_steps(root: &Path) -> Result<Vec<(String, String)>, String> {
    let path = root.join("functions/README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = |c: &str| {
                c.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .map(str::to_owned)
            };
            match cells.as_slice() {
                ["", name, id, ..] => Some((code(name)?, code(id)?)),
                _ => None,
            }
        })
        .filter(|(name, _)| name != "DR_FUNCTION")
        .collect())
}

/// Every function is built the same way (so SAM builds the one binary once)
/// and serves the step its `DR_FUNCTION` names, which is the handler of its
/// logical id; functions/README.md lists exactly those steps.
pub(crate) fn one_build(
    root: &Path,
    sam: &SamTemplate,
    resource: &dyn Fn(&str) -> Option<Yaml>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let binary = match bootstrap_binary(root) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let expected_metadata = format!(
        "{{\"BuildMethod\":\"rust-cargolambda\",\"BuildProperties\":{{\"Binary\":\"{binary}\"}}}}"
    );
    let mut served = BTreeMap::new();
    for id in sam.functions() {
        let Some(function) = resource(&id) else {
            continue;
        };
        let metadata = function
            .get("Metadata")
            .and_then(|m| serde_json::to_string(m).ok())
            .unwrap_or_default();
        if metadata != expected_metadata {
            problems.push(format!(
                "{id} is built differently from the other functions (Metadata {metadata}, expected {expected_metadata}): SAM would build it apart"
            ));
        }
        let properties = function.get("Properties");
        let code_uri = properties.and_then(|p| p.get("CodeUri")).and_then(text);
        if code_uri.as_deref() != Some("./") {
            problems.push(format!(
                "{id} has CodeUri {code_uri:?}; every function builds from ./ (the workspace)"
            ));
        }
        for build_property in ["Runtime", "Architectures", "Handler", "PackageType"] {
            if properties.and_then(|p| p.get(build_property)).is_some() {
                problems.push(format!(
                    "{id} sets {build_property}; it comes from Globals so that every function shares one build"
                ));
            }
        }
        let name = properties
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(|v| v.get("DR_FUNCTION"))
            .and_then(text);
        match name.as_deref().map(|n| (n, Function::from_name(n))) {
            None => problems.push(format!(
                "{id} does not set Environment.Variables.DR_FUNCTION: its bootstrap would serve nothing"
            )),
            Some((n, None)) => problems.push(format!(
                "{id} sets DR_FUNCTION {n:?}, which is no function (see functions/README.md)"
            )),
            Some((n, Some(f))) if f.logical_id() != id => problems.push(format!(
                "{id} sets DR_FUNCTION {n:?}, the step of {}: it would run another function's handler with this one's role",
                f.logical_id()
            )),
            Some((_, Some(f))) => {
                served.insert(f, id);
            }
        }
    }
    for function in Function::ALL {
        if !served.contains_key(&function) {
            problems.push(format!(
                "{} (DR_FUNCTION {}) is not in template.yaml under that logical id",
                function.logical_id(),
                function.name()
            ));
        }
    }
    match documented_steps(root) {
        Err(e) => problems.push(e),
        Ok(rows) => {
            let documented: BTreeSet<(String, String)> = rows.iter().cloned().collect();
            let actual: BTreeSet<(String, String)> = Function::ALL
                .iter()
                .map(|f| (f.name().to_owned(), f.logical_id().to_owned()))
                .collect();
            if rows.len() != documented.len() {
                problems.push("functions/README.md lists a step twice".to_owned());
            }
            for (name, id) in documented.difference(&actual) {
                problems.push(format!(
                    "functions/README.md lists {name} ({id}), which is no function"
                ));
            }
            for (name, id) in actual.difference(&documented) {
                problems.push(format!("functions/README.md does not list {name} ({id})"));
            }
        }
    }
    problems
}
