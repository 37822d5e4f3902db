//! The function binary (the `bootstrap` cargo-lambda packages) starts as each
//! function, takes an invocation from a Lambda Runtime API and answers it as
//! that function — here a fake Runtime API on loopback, with a payload every
//! handler must refuse, so the answer is the error document Step Functions
//! would see, naming the step that answered.

use std::io::Read;
use std::time::Duration;

use deploy_checks::runtime_api::{self, RuntimeEvent};
use dr_scenarios::Function;

/// Starts the bootstrap as `function` (or with no DR_FUNCTION), hands it one
/// invocation, and returns (answer path, body), or the exit and stderr of a
/// bootstrap that stopped without answering.
fn invoke(function: Option<&str>) -> Result<(String, serde_json::Value), String> {
    let path = runtime_api::bootstrap_path();
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (./scripts/test does) or scripts/build",
        path.display()
    );
    let (address, events) =
        runtime_api::start(br#"{"unexpected_field": true}"#.to_vec()).expect("runtime api");
    let mut child = runtime_api::bootstrap_command(&path, function, address)
        .spawn()
        .expect("start the bootstrap");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(RuntimeEvent::Answer { path, body }) => break Ok((path, body)),
            Ok(RuntimeEvent::Ready(_)) => {}
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut output = String::new();
                    if let Some(mut pipe) = child.stdout.take() {
                        let _ = pipe.read_to_string(&mut output);
                    }
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut output);
                    }
                    break Err(format!("exited ({status}) without answering: {output}"));
                }
                if std::time::Instant::now() > deadline {
                    break Err("never answered".to_owned());
                }
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    answer
}

#[test]
fn the_bootstrap_answers_an_invocation_as_each_function() {
    for function in Function::ALL {
        let name = function.name();
        let (path, body) = invoke(Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            path, "/2018-06-01/runtime/invocation/req-1/error",
            "{name}: {body}"
        );
        assert_eq!(body["errorType"], "InvalidInput", "{name}: {body}");
        let message = body["errorMessage"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{name}: ")),
            "the reply names the step that answered, {name}: {body}"
        );
        assert!(
            message.contains("unexpected_field") || message.contains("missing field"),
            "{name}: {body}"
        );
    }
}

#[test]
fn a_bootstrap_told_no_function_or_an_unknown_one_takes_no_invocation() {
    for (function, expected) in [
        (None, "DR_FUNCTION is not set"),
        (Some("promote"), "is no function"),
    ] {
        let error = invoke(function).expect_err("no answer");
        assert!(error.starts_with("exited"), "{function:?}: {error}");
        assert!(error.contains(expected), "{function:?}: {error}");
    }
}
