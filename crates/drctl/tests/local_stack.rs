//! `drctl local up/status/down` as a user runs them: real PostgreSQL
//! clusters and a real moto server.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn drctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args(args)
        .env_remove("DRCTL_HOME")
        .output()
        .expect("run drctl")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Takes the stack down even when an assertion fails half-way.
struct Stack {
    home: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = drctl(&["local", "down", "--home", self.home.to_str().unwrap_or("")]);
    }
}

/// Live processes whose command line mentions `needle` (zombies have an empty
/// command line and do not count: they hold no port and no file).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

fn listening(address: &str, port: u64) -> bool {
    u16::try_from(port).is_ok_and(|port| TcpStream::connect((address, port)).is_ok())
}

fn home_arg(home: &Path) -> &str {
    home.to_str().expect("utf-8 temp path")
}

#[test]
fn up_status_down_runs_a_primary_a_streaming_replica_and_moto_then_leaves_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("drctl-e2e-")
        .tempdir()
        .expect("temp dir");
    let stack = Stack {
        home: dir.path().join("home"),
        _dir: dir,
    };
    let home = home_arg(&stack.home);

    let up = drctl(&["local", "up", "--home", home, "--scale", "0.01"]);
    assert!(up.status.success(), "{}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("export AWS_ENDPOINT_URL=http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("export AWS_ACCESS_KEY_ID=testing"));
    assert!(stdout.contains(&format!("export DRCTL_HOME={home}")));

    let status = drctl(&["local", "status", "--home", home, "--output", "json"]);
    assert!(status.status.success(), "{}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    let instances = status["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 2, "{status:#}");
    let primary = &instances[0];
    let replica = &instances[1];
    assert_eq!(primary["instance_id"], "muejam-db-prod");
    assert_eq!(primary["role"], "primary");
    assert_eq!(primary["status"], "available");
    assert_eq!(
        primary["read_replicas"],
        serde_json::json!(["muejam-db-prod-replica"])
    );
    assert!(primary["earliest_restorable_time"].is_string());
    assert_eq!(replica["instance_id"], "muejam-db-prod-replica");
    assert_eq!(replica["role"], "replica");
    assert_eq!(replica["status"], "available");
    assert_eq!(replica["replication_source"], "muejam-db-prod");
    assert!(replica["replica_lag"]["seconds"].is_number(), "{replica:#}");
    assert!(replica["replica_lag"]["bytes"].is_number(), "{replica:#}");
    assert_ne!(primary["availability_zone"], replica["availability_zone"]);

    let snapshots = status["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["encrypted"], true);
    assert_eq!(snapshots[0]["snapshot_type"], "automated");

    let moto = &status["moto"];
    assert_eq!(moto["running"], true, "{moto:#}");
    let moto_port: u64 = moto["endpoint"]
        .as_str()
        .and_then(|e| e.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("moto port");
    let ports: Vec<(String, u64)> = instances
        .iter()
        .map(|i| {
            (
                i["endpoint"]["address"]
                    .as_str()
                    .expect("address")
                    .to_owned(),
                i["endpoint"]["port"].as_u64().expect("port"),
            )
        })
        .chain([("127.0.0.1".to_owned(), moto_port)])
        .collect();
    assert_ne!(ports[0].0, ports[1].0, "each instance has its own address");
    for (address, port) in &ports {
        assert!(
            listening(address, *port),
            "{address}:{port} should be listening"
        );
    }

    let text_status = drctl(&["local", "status", "--home", home]);
    let text_status = String::from_utf8_lossy(&text_status.stdout);
    assert!(
        text_status.contains("muejam-db-prod-replica"),
        "{text_status}"
    );
    assert!(!text_status.contains("password"), "{text_status}");

    let down = drctl(&["local", "down", "--home", home]);
    assert!(down.status.success(), "{}", text(&down));
    for (address, port) in &ports {
        assert!(
            !listening(address, *port),
            "{address}:{port} still bound after down"
        );
    }
    assert_eq!(processes_mentioning(home), Vec::<String>::new());
    assert!(processes_mentioning(&format!("-p {moto_port}")).is_empty());
    assert!(
        stack.home.join("state.json").exists(),
        "a home the user chose is kept"
    );

    let after = drctl(&["local", "status", "--home", home, "--output", "json"]);
    let after: Value = serde_json::from_slice(&after.stdout).expect("JSON");
    for instance in after["instances"].as_array().expect("instances") {
        assert_eq!(instance["status"], "stopped");
    }
    assert!(after["moto"].is_null());
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_code_2_without_touching_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nothing-here");
    let out = drctl(&["local", "status", "--home", home_arg(&missing)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[NotFound]"));

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let bad_home = file.join("home");
    let out = drctl(&["local", "up", "--home", home_arg(&bad_home), "--no-moto"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[InvalidInput]"));

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("state.json"),
        br#"{"version":1,"temporary_home":false,"instances":{},"snapshots":{},"moto":null}"#,
    )
    .expect("state");
    let before = std::fs::read(home.join("state.json")).expect("state");
    let out = drctl(&["local", "snapshot", "no-such-db", "--home", home_arg(&home)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-db"));
    let out = drctl(&["local", "up", "--home", home_arg(&home), "--scale", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scale"));
    assert_eq!(
        std::fs::read(home.join("state.json")).expect("state"),
        before
    );
}
