//! The moto server that plays the AWS APIs other than RDS (Route 53, SNS,
//! WAFv2, Secrets Manager, S3, ...) on loopback, over the real wire protocol.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dr_core::{DrError, DrResult};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::pg::tail;
use crate::state::{process_alive, MotoRecord};

/// Python interpreter with `moto[server]` installed.
pub const PYTHON_ENV: &str = "DRCTL_PYTHON";
pub const DEFAULT_REGION: &str = "us-east-1";
const LOG_FILE: &str = "moto.log";

/// What `status` reports about the moto server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotoStatus {
    pub endpoint: String,
    pub region: String,
    pub pid: u32,
    pub version: String,
    pub running: bool,
}

fn python() -> String {
    std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_owned())
}

pub fn endpoint(record: &MotoRecord) -> String {
    format!("http://127.0.0.1:{}", record.port)
}

/// Whether the recorded process is still a live moto server (a recycled pid
/// running something else does not count).
pub fn is_running(record: &MotoRecord) -> bool {
    process_alive(record.pid)
        && fs::read(format!("/proc/{}/cmdline", record.pid))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("moto"))
}

pub fn status(record: &MotoRecord) -> MotoStatus {
    MotoStatus {
        endpoint: endpoint(record),
        region: record.region.clone(),
        pid: record.pid,
        version: record.version.clone(),
        running: is_running(record),
    }
}

fn installed_version() -> DrResult<String> {
    let output = Command::new(python())
        .args(["-c", "import moto, flask; print(moto.__version__)"])
        .output()
        .map_err(|e| DrError::Internal(format!("running {}: {e}", python())))?;
    if !output.status.success() {
        return Err(DrError::Internal(format!(
            "moto[server] is not installed for {} (pip install -r requirements.txt): {}",
            python(),
            tail(&String::from_utf8_lossy(&output.stderr), 2)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Starts a moto server on `port`, detached from this process (it outlives
/// the CLI until `down`), and waits until it answers HTTP.
pub fn start(home: &Path, port: u16) -> DrResult<MotoRecord> {
    let version = installed_version()?;
    let log_path = home.join(LOG_FILE);
    let log = fs::File::create(&log_path)
        .map_err(|e| DrError::Internal(format!("creating {}: {e}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|e| DrError::Internal(format!("opening moto log: {e}")))?;
    let mut command = Command::new(python());
    command
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| DrError::Internal(format!("starting moto server: {e}")))?;
    let record = MotoRecord {
        pid: child.id(),
        port,
        region: DEFAULT_REGION.to_owned(),
        version,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DrError::Internal(format!(
                "moto server exited ({status}): {}",
                tail(&fs::read_to_string(&log_path).unwrap_or_default(), 5)
            )));
        }
        if answers_http(port) {
            return Ok(record);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(DrError::Timeout(
        "moto server did not answer within 60 s".to_owned(),
    ))
}

fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Stops the server: SIGTERM, then SIGKILL if it lingers.
pub fn stop(record: &MotoRecord) -> DrResult<()> {
    if !is_running(record) {
        return Ok(());
    }
    let pid = Pid::from_raw(
        i32::try_from(record.pid)
            .map_err(|_| DrError::Internal(format!("bad moto pid {}", record.pid)))?,
    );
    // The server runs in its own process group; signal the whole group so
    // that any worker it forked goes too.
    let group = Pid::from_raw(-pid.as_raw());
    let _ = kill(group, Signal::SIGTERM).or_else(|_| kill(pid, Signal::SIGTERM));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !process_alive(record.pid) || !is_running(record) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill(group, Signal::SIGKILL).or_else(|_| kill(pid, Signal::SIGKILL));
    Ok(())
}
