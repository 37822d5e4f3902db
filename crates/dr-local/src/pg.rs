//! Locating PostgreSQL 15's binaries and running them as the right user.
//!
//! PostgreSQL refuses to run as root. When this process is root, every
//! PostgreSQL binary runs as the `postgres` user, and the files it must own are
//! handed to that user.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use dr_core::{DrError, DrResult};
use nix::unistd::{Gid, Uid, User};
use tokio::process::Command;

/// Overrides the directory holding `initdb`, `pg_ctl`, `pg_basebackup`, ...
pub const PG_BINDIR_ENV: &str = "DRCTL_PG_BINDIR";

/// The user PostgreSQL runs as, and where its binaries are.
#[derive(Debug, Clone)]
pub struct PgRuntime {
    bindir: PathBuf,
    /// `Some` when we are root and must switch to the `postgres` user.
    run_as: Option<(Uid, Gid, PathBuf)>,
}

impl PgRuntime {
    /// Finds the binaries (`$DRCTL_PG_BINDIR`, then `pg_config --bindir`, then
    /// Debian's `/usr/lib/postgresql/15/bin`) and the user to run them as.
    pub fn discover() -> DrResult<Self> {
        let bindir = std::env::var_os(PG_BINDIR_ENV)
            .map(PathBuf::from)
            .or_else(|| {
                std::process::Command::new("pg_config")
                    .arg("--bindir")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            })
            .filter(|dir| dir.join("initdb").exists())
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        if !bindir.join("initdb").exists() || !bindir.join("pg_ctl").exists() {
            return Err(DrError::Internal(format!(
                "PostgreSQL server binaries not found in {} (install postgresql-15, or set {PG_BINDIR_ENV})",
                bindir.display()
            )));
        }
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")
                .map_err(|e| DrError::Internal(format!("looking up the postgres user: {e}")))?
                .ok_or_else(|| {
                    DrError::Internal(
                        "running as root, and PostgreSQL will not: a `postgres` user is needed"
                            .to_owned(),
                    )
                })?;
            Some((user.uid, user.gid, user.dir))
        } else {
            None
        };
        Ok(PgRuntime { bindir, run_as })
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A command for a PostgreSQL binary, set to run as the PostgreSQL user.
    pub fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.bindir.join(binary));
        self.configure(&mut command);
        command
    }

    /// Sets user, group, HOME and working directory for any command that must
    /// run as the PostgreSQL user.
    pub fn configure(&self, command: &mut Command) {
        command.env_remove("PGPASSWORD").kill_on_drop(false);
        if let Some((uid, gid, home)) = &self.run_as {
            command
                .uid(uid.as_raw())
                .gid(gid.as_raw())
                .env("HOME", home)
                .current_dir("/");
        }
    }

    /// A blocking command for a PostgreSQL binary (for paths that cannot
    /// await, such as cleanup on drop).
    pub fn blocking_command(&self, binary: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(self.bindir.join(binary));
        command.env_remove("PGPASSWORD");
        if let Some((uid, gid, home)) = &self.run_as {
            command
                .uid(uid.as_raw())
                .gid(gid.as_raw())
                .env("HOME", home)
                .current_dir("/");
        }
        command
    }

    /// Hands a path (recursively) to the PostgreSQL user; a no-op unless root.
    pub fn give(&self, path: &Path) -> DrResult<()> {
        let Some((uid, gid, _)) = &self.run_as else {
            return Ok(());
        };
        chown_recursive(path, uid.as_raw(), gid.as_raw())
            .map_err(|e| DrError::Internal(format!("chown {}: {e}", path.display())))
    }

    /// Runs a PostgreSQL binary to completion; a non-zero exit is an error
    /// carrying the last lines of its stderr.
    pub async fn run<I, S>(&self, binary: &str, args: I) -> DrResult<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(binary);
        command.args(args);
        run_checked(binary, command).await
    }
}

/// Runs a prepared command and turns failure into an error with its stderr tail.
pub async fn run_checked(what: &str, mut command: Command) -> DrResult<Output> {
    command.stdin(std::process::Stdio::null());
    let output = command
        .output()
        .await
        .map_err(|e| DrError::Internal(format!("starting {what}: {e}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(DrError::Internal(format!(
            "{what} failed ({}): {}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 8)
        )))
    }
}

/// The last `lines` lines of a text, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

fn chown_recursive(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
