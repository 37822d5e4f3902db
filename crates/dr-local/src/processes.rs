//! A cluster's processes as the operating system sees them, for the
//! rehearsals a control plane cannot do through SQL: freezing a server (a
//! hang), and ending its client sessions while it is frozen (fencing).

use std::fs;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A child of the postmaster and its process title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProcess {
    pub pid: u32,
    pub title: String,
}

impl ServerProcess {
    /// Client backends and WAL senders show the peer as `host(port)` in
    /// their title; the server's own auxiliary processes do not.
    pub fn is_session(&self) -> bool {
        self.title.contains('(') && self.title.contains(')')
    }
}

/// The parent pid in `/proc/<pid>/stat` (the field after the state, which
/// follows the command name in parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The postmaster's children.
pub fn children(postmaster: u32) -> Vec<ServerProcess> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            if parent_of(&stat)? != postmaster {
                return None;
            }
            let title = fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .replace('\0', " ")
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            Some(ServerProcess { pid, title })
        })
        .collect()
}

fn send(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// Stops the postmaster and every child: the whole server freezes, existing
/// sessions included, as a hung host would.
pub fn freeze(postmaster: u32) {
    send(postmaster, Signal::SIGSTOP);
    for child in children(postmaster) {
        send(child.pid, Signal::SIGSTOP);
    }
}

/// Lets a frozen server run again (a no-op for one that runs).
pub fn thaw(postmaster: u32) {
    for child in children(postmaster) {
        send(child.pid, Signal::SIGCONT);
    }
    send(postmaster, Signal::SIGCONT);
}

/// Asks the postmaster to reload its configuration (pg_hba.conf), and ends
/// every client session and WAL sender as `pg_terminate_backend` would.
/// Signals sent to a frozen server wait until it runs again, and the reload
/// is handled before it accepts a new connection.
pub fn reload_and_end_sessions(postmaster: u32) -> usize {
    send(postmaster, Signal::SIGHUP);
    let sessions: Vec<ServerProcess> = children(postmaster)
        .into_iter()
        .filter(ServerProcess::is_session)
        .collect();
    for session in &sessions {
        send(session.pid, Signal::SIGTERM);
    }
    sessions.len()
}

/// Where new servers listen: below the kernel's ephemeral range.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A port for a new server, picked at random below the kernel's ephemeral
/// range (32768-60999 on Linux), skipping those `taken` says are in use.
/// The kernel hands ports in that range to outgoing connections, and a
/// test's client connecting to 127.0.0.3 takes its source port on
/// 127.0.0.3: that could take the port between this check and the server's
/// bind ("Address already in use"). Below the range, only an explicit bind
/// takes a port. The check binds the wildcard address, which fails while any
/// loopback address listens on the port (another stack's server included).
pub fn free_port(taken: impl Fn(u16) -> bool) -> dr_core::DrResult<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let port = rng.gen_range(PORT_RANGE);
        if taken(port) {
            continue;
        }
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(dr_core::DrError::Internal(format!(
        "no free loopback port in {}..{}",
        PORT_RANGE.start, PORT_RANGE.end
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_past_a_command_name_with_spaces_and_parentheses() {
        assert_eq!(parent_of("4242 (postgres) S 17 4242 4242 0 -1"), Some(17));
        assert_eq!(parent_of("4242 (a (weird) name) T 99 1 1"), Some(99));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn sessions_are_told_from_the_servers_own_processes() {
        let p = |title: &str| ServerProcess {
            pid: 1,
            title: title.to_owned(),
        };
        assert!(
            p("postgres: muejam-db-prod: muejam_admin muejam 127.0.0.1(51234) idle").is_session()
        );
        assert!(p(
            "postgres: muejam-db-prod: walsender rdsrepladmin 127.0.0.3(40000) streaming 0/3000060"
        )
        .is_session());
        assert!(!p("postgres: muejam-db-prod: checkpointer").is_session());
        assert!(!p("postgres: muejam-db-prod: autovacuum launcher").is_session());
    }
}
