//! A fake Lambda Runtime API on loopback, enough to start a packaged
//! `bootstrap`, hand it one invocation and read its answer: used by the
//! bootstrap test and by `scripts/bench lambda`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the runtime did, in order.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// Its first `GET /runtime/invocation/next`: initialisation is over.
    Ready(Instant),
    /// Its answer to the invocation: the path it posted to (`.../response`
    /// or `.../error`) and the body.
    Answer { path: String, body: Value },
}

/// The binary every function runs (functions/Cargo.toml's `[[bin]]`).
pub const BOOTSTRAP: &str = "muejam-dr";

/// The function binary: by default the debug build next to the running
/// test; with `DEPLOY_CHECKS_BOOTSTRAPS=target/lambda` (scripts/build) the
/// packaged `<dir>/muejam-dr/bootstrap`.
pub fn bootstrap_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEPLOY_CHECKS_BOOTSTRAPS") {
        return PathBuf::from(dir).join(BOOTSTRAP).join("bootstrap");
    }
    // tests run from target/<profile>/deps; binaries sit in target/<profile>.
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(BOOTSTRAP)))
        .unwrap_or_else(|| PathBuf::from(BOOTSTRAP))
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

/// Starts a Runtime API on a free loopback port that hands out `payload`
/// once (request id `req-1`); later `next` requests wait.
pub fn start(payload: Vec<u8>) -> std::io::Result<(SocketAddr, mpsc::Receiver<RuntimeEvent>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let address = listener.local_addr()?;
    let (events, receiver) = mpsc::channel();
    std::thread::spawn(move || serve(listener, payload, events));
    Ok((address, receiver))
}

fn serve(listener: TcpListener, payload: Vec<u8>, events: mpsc::Sender<RuntimeEvent>) {
    let handed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for stream in listener.incoming().flatten() {
        let payload = payload.clone();
        let events = events.clone();
        let handed_out = handed_out.clone();
        std::thread::spawn(move || {
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            while let Some(request) = read_request(&mut reader) {
                if request.method == "GET" && request.path.ends_with("/runtime/invocation/next") {
                    if handed_out.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        // One invocation per run: keep the runtime waiting.
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    let _ = events.send(RuntimeEvent::Ready(Instant::now()));
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
                    let _ = events.send(RuntimeEvent::Answer {
                        path: request.path.clone(),
                        body,
                    });
                    let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n");
                }
            }
        });
    }
}

/// The bootstrap as Lambda starts it, with only Lambda's variables (and
/// `DR_FUNCTION` when given). `DEPLOY_CHECKS_EMULATOR` runs foreign
/// binaries, e.g. arm64 ones with "qemu-aarch64-static -L /usr/aarch64-linux-gnu".
pub fn bootstrap_command(
    binary: &Path,
    function: Option<&str>,
    runtime_api: SocketAddr,
) -> Command {
    let emulator: Vec<String> = std::env::var("DEPLOY_CHECKS_EMULATOR")
        .map(|e| e.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match emulator.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function.unwrap_or("unnamed"))
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(name) = function {
        command.env("DR_FUNCTION", name);
    }
    command
}
