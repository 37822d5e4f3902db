//! Each function binary (the `bootstrap` cargo-lambda packages) starts, takes
//! an invocation from a Lambda Runtime API, and answers it — here a fake
//! Runtime API on loopback, with a payload every handler must refuse, so the
//! answer is the error document Step Functions would see.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dr_scenarios::Function;
use serde_json::Value;

/// The binary of a function: by default the debug build next to this test;
/// with `DEPLOY_CHECKS_BOOTSTRAPS=target/lambda` (scripts/build), the packaged
/// `<dir>/<name>/bootstrap`.
fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("DEPLOY_CHECKS_BOOTSTRAPS") {
        return PathBuf::from(dir).join(name).join("bootstrap");
    }
    // tests run from target/debug/deps; the function binaries sit in target/debug.
    let exe = std::env::current_exe().expect("test binary");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    debug.join(name)
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

/// Serves one invocation of `payload`; sends back (path, body) of the answer.
fn fake_runtime_api(
    listener: TcpListener,
    payload: Vec<u8>,
    answers: mpsc::Sender<(String, Value)>,
) {
    let mut served = false;
    for stream in listener.incoming().flatten() {
        let payload = payload.clone();
        let answers = answers.clone();
        let first = !served;
        served = true;
        std::thread::spawn(move || {
            let Ok(write_half) = stream.try_clone() else {
                return;
            };
            let mut writer = write_half;
            let mut reader = BufReader::new(stream);
            let mut handed_out = !first;
            while let Some(request) = read_request(&mut reader) {
                if request.method == "GET" && request.path.ends_with("/runtime/invocation/next") {
                    if handed_out {
                        // One invocation per test: keep the runtime waiting.
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    handed_out = true;
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() + 30_000)
                        .unwrap_or(0);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-1\r\n\
                         Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\n\
                         Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                        payload.len()
                    );
                    let _ = writer.write_all(head.as_bytes());
                    let _ = writer.write_all(&payload);
                } else {
                    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                    let _ = answers.send((request.path.clone(), body));
                    let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n");
                }
            }
        });
    }
}

#[test]
fn every_function_binary_answers_an_invocation_through_the_runtime_api() {
    for function in Function::ALL {
        let path = binary(function.crate_dir());
        assert!(
            path.exists(),
            "{} is not built: run `cargo build --workspace --bins` (./scripts/test does) or scripts/build",
            path.display()
        );
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let address = listener.local_addr().expect("addr");
        let (sender, answers) = mpsc::channel();
        std::thread::spawn(move || {
            fake_runtime_api(listener, br#"{"unexpected_field": true}"#.to_vec(), sender)
        });
        // DEPLOY_CHECKS_EMULATOR runs foreign binaries, e.g. arm64 ones with
        // "qemu-aarch64-static -L /usr/aarch64-linux-gnu" (scripts/build arm64).
        let emulator: Vec<String> = std::env::var("DEPLOY_CHECKS_EMULATOR")
            .map(|e| e.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut command = match emulator.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let mut child = command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function.logical_id())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bootstrap");
        let answer = answers.recv_timeout(Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        let (path, body) =
            answer.unwrap_or_else(|_| panic!("{} never answered", function.crate_dir()));
        assert_eq!(
            path,
            "/2018-06-01/runtime/invocation/req-1/error",
            "{}: {body}",
            function.crate_dir()
        );
        assert_eq!(
            body["errorType"],
            "InvalidInput",
            "{}: {body}",
            function.crate_dir()
        );
        assert!(
            body["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("unexpected_field") || m.contains("missing field")),
            "{}: {body}",
            function.crate_dir()
        );
    }
}
