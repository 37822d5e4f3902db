//! Human and JSON renderings of CLI results.

use std::path::Path;

use clap::ValueEnum;
use dr_core::{DrError, DrResult, InstanceDescription, SnapshotDescription};
use dr_local::stack::{DownReport, StackStatus};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

pub fn print_json(value: &impl Serialize) -> DrResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| DrError::Internal(format!("rendering JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A JSON document from a file, or from standard input for "-".
pub fn read_json(path: &Path, what: &str) -> DrResult<serde_json::Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| DrError::InvalidInput(format!("reading standard input: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| DrError::InvalidInput(format!("reading {}: {e}", path.display())))?
    };
    serde_json::from_str(&text)
        .map_err(|e| DrError::InvalidInput(format!("{what} is not JSON: {e}")))
}

/// Environment a user (or the AWS SDK) needs to talk to the local stack.
pub fn environment(status: &StackStatus) -> Vec<(String, String)> {
    let mut env = vec![("DRCTL_HOME".to_owned(), status.home.display().to_string())];
    if let Some(moto) = &status.moto {
        env.extend([
            ("AWS_ENDPOINT_URL".to_owned(), moto.endpoint.clone()),
            ("AWS_REGION".to_owned(), moto.region.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), moto.region.clone()),
            // moto accepts any credentials; these are placeholders, not secrets.
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ]);
    }
    env.push((
        "PGPASSFILE".to_owned(),
        status.pgpass_file.display().to_string(),
    ));
    // Every cluster accepts TCP only over TLS, with a certificate from the
    // home's CA: psql verifies it as production callers verify RDS's.
    env.push(("PGSSLMODE".to_owned(), "verify-full".to_owned()));
    env.push((
        "PGSSLROOTCERT".to_owned(),
        status.ca_file.display().to_string(),
    ));
    env
}

pub fn print_up(status: &StackStatus, format: OutputFormat) -> DrResult<()> {
    if format == OutputFormat::Json {
        #[derive(Serialize)]
        struct Up<'a> {
            #[serde(flatten)]
            status: &'a StackStatus,
            environment: std::collections::BTreeMap<String, String>,
        }
        return print_json(&Up {
            status,
            environment: environment(status).into_iter().collect(),
        });
    }
    // stdout is shell-sourceable: `eval "$(drctl local up)"`.
    println!("# MueJam local stack is up. Instances:");
    for line in instance_table(&status.instances).lines() {
        println!("#   {line}");
    }
    for (key, value) in environment(status) {
        println!("export {key}={}", shell_quote(&value));
    }
    if let Some(primary) = status
        .instances
        .iter()
        .find(|i| i.instance_id.as_str() == dr_local::stack::PRIMARY_ID)
        .and_then(|i| i.endpoint.as_ref())
    {
        println!(
            "# connect: psql -h {} -p {} -U {} {}",
            primary.address,
            primary.port,
            dr_local::MASTER_USERNAME,
            dr_local::DEFAULT_DATABASE
        );
    }
    println!("# stop: drctl local down");
    Ok(())
}

fn shell_quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:".contains(c))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn instance_table(instances: &[InstanceDescription]) -> String {
    let mut out = format!(
        "{:<26} {:<8} {:<10} {:<17} {:<9} {:<24} {}\n",
        "INSTANCE", "ROLE", "STATUS", "ENDPOINT", "ZONE", "SOURCE", "LAG"
    );
    for i in instances {
        let role = match i.role {
            _ if i.tags.contains_key(dr_core::FENCED_TAG) => "fenced",
            dr_core::InstanceRole::Primary => "primary",
            dr_core::InstanceRole::Replica => "replica",
        };
        let lag = i.replica_lag.map_or_else(
            || "-".to_owned(),
            |l| match l.bytes {
                Some(bytes) => format!("{:.1} s / {bytes} B", l.seconds),
                None => format!("{:.1} s", l.seconds),
            },
        );
        out.push_str(&format!(
            "{:<26} {:<8} {:<10} {:<17} {:<9} {:<24} {}\n",
            i.instance_id,
            role,
            i.status,
            i.endpoint
                .as_ref()
                .map_or("-".to_owned(), |e| e.to_string()),
            i.availability_zone.as_deref().unwrap_or("-"),
            i.replication_source
                .as_ref()
                .map_or("-".to_owned(), |s| s.to_string()),
            lag
        ));
    }
    out
}

fn snapshot_table(snapshots: &[SnapshotDescription]) -> String {
    let mut out = format!(
        "{:<44} {:<24} {:<9} {:<20} {:>12} {}\n",
        "SNAPSHOT", "SOURCE", "TYPE", "CREATED (UTC)", "SIZE", "ENCRYPTED"
    );
    for s in snapshots {
        out.push_str(&format!(
            "{:<44} {:<24} {:<9} {:<20} {:>12} {}\n",
            s.snapshot_id,
            s.source_instance_id,
            match s.snapshot_type {
                dr_core::SnapshotType::Manual => "manual",
                dr_core::SnapshotType::Automated => "automated",
            },
            s.created_at.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(s.size_bytes),
            if s.encrypted { "yes" } else { "NO" }
        ));
    }
    out
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A recovery lock and whether its holder still runs.
#[derive(Debug, Clone, Serialize)]
pub struct LockView {
    pub resource: String,
    pub owner: String,
    pub acquired_at: chrono::DateTime<chrono::Utc>,
    /// The holder's execution state; `None` when it is not a local execution.
    pub holder_state: Option<dr_core::ExecutionState>,
}

/// The app fleet as `status` and `deploy` show it.
pub fn fleet_table(fleets: &[muejam_app::platform::FleetView]) -> String {
    let mut out = String::new();
    for f in fleets {
        out.push_str(&format!(
            "app group {} ({}): desired {} of at most {}, deployment {} at revision {} ({}{}), health URL {}\n",
            f.group,
            f.region,
            f.desired_capacity,
            f.max_size,
            f.deployment,
            f.revision,
            f.image,
            if f.read_only_mode { ", READ_ONLY_MODE" } else { "" },
            f.health_url.as_deref().unwrap_or("(load balancer not running)")
        ));
        for i in &f.instances {
            out.push_str(&format!(
                "  {}  {}  revision {}  {}\n",
                i.instance_id,
                i.url,
                i.revision,
                match (i.running, i.health) {
                    (false, _) => "DOWN".to_owned(),
                    (true, Some(code)) => format!("health {code}"),
                    (true, None) => "no answer".to_owned(),
                }
            ));
        }
    }
    out
}

pub fn print_status(
    status: &StackStatus,
    apps: &[muejam_app::platform::FleetView],
    locks: &[LockView],
    format: OutputFormat,
) -> DrResult<()> {
    if format == OutputFormat::Json {
        #[derive(Serialize)]
        struct Status<'a> {
            #[serde(flatten)]
            status: &'a StackStatus,
            app: &'a [muejam_app::platform::FleetView],
            locks: &'a [LockView],
        }
        return print_json(&Status {
            status,
            app: apps,
            locks,
        });
    }
    println!(
        "home: {}{}",
        status.home.display(),
        if status.temporary_home {
            " (temporary: `drctl local down` removes it)"
        } else {
            ""
        }
    );
    println!();
    for region in &status.regions_down {
        println!("region {region} is DOWN (drctl local region-restore {region} brings it back)");
    }
    print!("{}", instance_table(&status.instances));
    println!();
    if status.snapshots.is_empty() {
        println!("no snapshots");
    } else {
        print!("{}", snapshot_table(&status.snapshots));
    }
    println!();
    match &status.moto {
        Some(m) => println!(
            "moto: {} ({}, moto {}, region {})",
            m.endpoint,
            if m.running { "running" } else { "NOT running" },
            m.version,
            m.region
        ),
        None => println!("moto: not started"),
    }
    println!();
    if !apps.is_empty() {
        print!("{}", fleet_table(apps));
        println!();
    }
    if locks.is_empty() {
        println!("no recovery lock is held");
    }
    for lock in locks {
        println!(
            "LOCK {} held by {} since {} ({})",
            lock.resource,
            lock.owner,
            lock.acquired_at.to_rfc3339(),
            match lock.holder_state {
                Some(dr_core::ExecutionState::Running) => "running".to_owned(),
                Some(state) => format!(
                    "{}: stale, the next run of that database takes it over",
                    state.as_str()
                ),
                None => "not a local execution".to_owned(),
            }
        );
    }
    Ok(())
}

pub fn print_down(report: &DownReport, home: &Path, format: OutputFormat) -> DrResult<()> {
    if format == OutputFormat::Json {
        return print_json(report);
    }
    for id in &report.stopped_instances {
        println!("stopped {id}");
    }
    if report.stopped_moto {
        println!("stopped moto server");
    }
    if report.removed_home {
        println!("removed {}", home.display());
    } else {
        println!(
            "kept {} (start again with `drctl local up --home {}`)",
            home.display(),
            home.display()
        );
    }
    Ok(())
}

pub fn print_messages(
    messages: &[crate::wiring::DeliveredMessage],
    format: OutputFormat,
) -> DrResult<()> {
    if format == OutputFormat::Json {
        return print_json(&messages);
    }
    if messages.is_empty() {
        println!("no messages");
    }
    for m in messages {
        println!(
            "── {}  {}
{}
",
            m.timestamp, m.subject, m.message
        );
    }
    Ok(())
}

pub fn print_snapshot(snapshot: &SnapshotDescription, format: OutputFormat) -> DrResult<()> {
    if format == OutputFormat::Json {
        return print_json(snapshot);
    }
    print!("{}", snapshot_table(std::slice::from_ref(snapshot)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(150 * 1024 * 1024), "150.0 MiB");
    }

    #[test]
    fn exported_values_are_shell_safe() {
        assert_eq!(shell_quote("/tmp/drctl-ab12"), "/tmp/drctl-ab12");
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
    }
}
