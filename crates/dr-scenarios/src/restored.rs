//! A restore holds the passwords of its backup. After a rotation (the
//! security breach rotates both), a restore from an earlier backup — the
//! drill's, a candidate moment of the data-corruption search, the region
//! failover's copy — no longer matches the secrets: RDS keeps the master
//! password a snapshot or a point in time had, and `pg_authid` the
//! application role's. Before using one of our restores, its passwords are
//! set to the secrets' current ones: the master's through the control plane
//! (RDS ModifyDBInstance `MasterUserPassword` needs no old password), the
//! application role's with `ALTER ROLE` and a SCRAM verifier.
//!
//! Only on an instance we restored and have not switched to yet (tagged
//! ephemeral, or `dr:restored-from` by the data-corruption restore; the
//! callers check restores before any switch): a production instance
//! refusing the secret is a failure to report, never to "fix".

use dr_core::*;

use crate::Ports;

/// How long a restore's new master password is waited for inside one
/// invocation, and how often it is tried: the functions that align
/// passwords have 900 s, and RDS's asynchronous apply takes seconds to a
/// couple of minutes.
pub const MASTER_PASSWORD_WAIT_SECONDS: u64 = 180;
pub const MASTER_PASSWORD_POLL_SECONDS: u64 = 5;

/// The tag the data-corruption recovery puts on what it restores.
pub const RESTORED_FROM_TAG: &str = "dr:restored-from";

/// Whether the DR tooling restored the instance: a throw-away copy
/// (ephemeral) or the data-corruption recovery's chosen moment.
pub fn is_our_restore(description: &InstanceDescription) -> bool {
    description.is_ephemeral() || description.tags.contains_key(RESTORED_FROM_TAG)
}

/// Whether the instance refuses `target`'s password (and nothing else is
/// wrong with the connection).
async fn refuses(ports: &Ports, target: &DatabaseTarget) -> DrResult<bool> {
    let probe = ports.sql.probe(target, ProbeKind::Read).await?;
    Ok(probe.failure == Some(ProbeFailure::Authentication))
}

/// Aligns a restore's passwords with the secrets: `master` is the target
/// built from the master secret; `application`, the role and its secret.
/// `NotReady` while RDS has not applied the master's new password yet: the
/// caller's retry checks again.
pub async fn align_passwords(
    ports: &Ports,
    region: Option<&str>,
    description: &InstanceDescription,
    master: &DatabaseTarget,
    application: Option<&ApplicationAccess>,
) -> DrResult<Vec<String>> {
    let mut done = Vec::new();
    if !is_our_restore(description) {
        return Ok(done);
    }
    let id = &description.instance_id;
    if refuses(ports, master).await? {
        ports
            .plane(region)?
            .change_master_credentials(id, &master.password)
            .await?;
        // RDS applies it asynchronously (resetting-master-credentials,
        // typically within two minutes): wait for it here, looking every few
        // seconds, rather than leave it to the state's retries, which give
        // up after half a minute (`drctl estimate` found most restores of a
        // breach failing there).
        let mut waited = 0;
        while refuses(ports, master).await? {
            if waited >= MASTER_PASSWORD_WAIT_SECONDS {
                // The caller's retry checks again.
                return Err(DrError::NotReady(format!(
                    "{id} was restored with its backup's master password, which the secret no longer holds (rotated since): set to the secret's current one, not applied after {waited} s"
                )));
            }
            dr_core::clock::sleep(chrono::Duration::seconds(
                MASTER_PASSWORD_POLL_SECONDS as i64,
            ))
            .await;
            waited += MASTER_PASSWORD_POLL_SECONDS;
        }
        done.push(format!(
            "set the master password of {id} to its secret's current one (the backup held an older one)"
        ));
    }
    if let Some(app) = application {
        let endpoint = master.endpoint.clone();
        let app_target = crate::failover::target_for(
            ports,
            &crate::failover::SqlAccess {
                endpoint: &endpoint,
                database: &master.database,
                secret_id: &app.credentials_secret_id,
                connect_timeout_seconds: master.connect_timeout_seconds,
                statement_timeout_ms: master.statement_timeout_ms,
                tls_mode: None,
            },
        )
        .await?;
        if refuses(ports, &app_target).await? {
            ports
                .sql
                .set_role_password(master, &app.role, &app_target.password)
                .await?;
            done.push(format!(
                "set the password of {} on {id} to its secret's current one (the backup held an older one)",
                app.role
            ));
        }
    }
    if !done.is_empty() {
        tracing::warn!(instance = %id, "restored passwords aligned with the secrets");
    }
    Ok(done)
}
