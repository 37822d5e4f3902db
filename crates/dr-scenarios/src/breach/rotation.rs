//! Database credentials rotated the way Secrets Manager's rotation protocol
//! does it (createSecret → setSecret → testSecret → finishSecret), without a
//! rotation Lambda: the new password is stored as `AWSPENDING` under the
//! run's token, set on the database (the master user through the control
//! plane; an application role with `ALTER ROLE` and a SCRAM verifier, so the
//! password never appears in a statement), proven by a login, and only then
//! made `AWSCURRENT`. Every step is idempotent on the token: a re-run after
//! any step converges on the same password, and a finished rotation is not
//! done twice. Versions are always read and moved by stage (moto's stage-move
//! bug, `AWS-FIDELITY.md`).
//!
//! Between the database change and the stage move (seconds) the current
//! secret holds a password the database no longer takes: what reads it
//! (probe, failover, drill) fails for that long and retries. For a breach
//! that is the point: the old password must stop working.

use dr_core::*;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::Ports;

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";
/// Generated passwords: letters and digits only (RDS refuses `/ @ "` and
/// spaces in a master password), long enough not to need symbols.
pub const PASSWORD_LENGTH: usize = 40;

/// Whose password the secret holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Account {
    /// The instance's master user: changed through the control plane (RDS
    /// ModifyDBInstance, applied immediately).
    Master,
    /// A role of the database: `ALTER ROLE` as the master.
    Role { role: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// The secret: `{"username", "password", …}` (other fields are kept).
    pub secret_id: String,
    pub account: Account,
    pub instance_id: InstanceId,
    /// The SQL database to log in to.
    pub database: String,
    /// The master's secret, to connect for `ALTER ROLE`.
    pub master_secret_id: String,
    /// One per incident and secret: Secrets Manager's client request token
    /// (32 to 64 characters), the new version's id.
    pub token: String,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateOutput {
    pub secret_id: String,
    /// The version now `AWSCURRENT`.
    pub version_id: String,
    /// What this call did, in order; empty when the rotation was done.
    pub done: Vec<String>,
    /// What changed, for the report; `None` when it was done already.
    pub mutation: Option<String>,
}

/// Pure: the token's shape, checked before anything is read.
pub fn check_token(token: &str) -> DrResult<()> {
    let ok = (32..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(
            "token must be 32 to 64 letters, digits, - or _ (Secrets Manager's client request token)"
                .to_owned(),
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct Credentials {
    username: String,
    password: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn parse(secret_id: &str, value: &SecretString) -> DrResult<Credentials> {
    serde_json::from_str(value.expose_secret()).map_err(|_| {
        // Never the value itself: it is a password.
        DrError::InvalidInput(format!(
            "secret {secret_id} is not JSON with \"username\" and \"password\""
        ))
    })
}

/// The secret's value with a new password, every other field kept.
fn with_new_password(secret_id: &str, current: &SecretString) -> DrResult<SecretString> {
    let mut credentials = parse(secret_id, current)?;
    credentials.password = Alphanumeric.sample_string(&mut rand::rngs::OsRng, PASSWORD_LENGTH);
    let json = serde_json::to_string(&credentials)
        .map_err(|e| DrError::Internal(format!("serializing secret {secret_id}: {e}")))?;
    Ok(SecretString::from(json))
}

pub async fn rotate_credentials(ports: &Ports, input: RotateInput) -> DrResult<RotateOutput> {
    check_token(&input.token)?;
    if let Account::Role { role } = &input.account {
        validate_sql_name("account.role", role)?;
    }
    let secret = &input.secret_id;
    let current = ports
        .secrets
        .get_secret_stage(secret, CURRENT)
        .await?
        .ok_or_else(|| DrError::NotFound(format!("secret {secret} has no {CURRENT} version")))?;
    let mut done = Vec::new();
    let finished = current.version_id == input.token;
    let pending = if finished {
        current.clone()
    } else {
        match ports.secrets.get_secret_stage(secret, PENDING).await? {
            Some(p) if p.version_id == input.token => p,
            _ => {
                let value = with_new_password(secret, &current.value)?;
                let version_id = ports
                    .secrets
                    .put_secret_pending(secret, &input.token, &value)
                    .await?;
                done.push(format!("stored a new password for {secret} as {PENDING}"));
                SecretVersion {
                    version_id,
                    value,
                    stages: vec![PENDING.to_owned()],
                }
            }
        }
    };
    let new = parse(secret, &pending.value)?;
    let new_password = SecretString::from(new.password.clone());

    // setSecret: the database takes the new password (idempotent: the same
    // password set again), unless it already does.
    let (description, master_target) = crate::corruption::instance_target_in(
        ports,
        input.region.as_deref(),
        &input.instance_id,
        &input.database,
        &input.master_secret_id,
        30_000,
    )
    .await?;
    let mut login = master_target.clone();
    login.username = new.username.clone();
    login.password = new_password.clone();
    let takes_it = ports.sql.probe(&login, ProbeKind::Read).await?.healthy;
    if !takes_it {
        if finished {
            return Err(DrError::Unsafe(format!(
                "{secret}'s current password is not accepted by {} although this rotation finished: set it by hand",
                input.instance_id
            )));
        }
        match &input.account {
            Account::Master => {
                ports
                    .plane(input.region.as_deref())?
                    .change_master_credentials(&description.instance_id, &new_password)
                    .await?
            }
            Account::Role { role } => {
                ports
                    .sql
                    .set_role_password(&master_target, role, &new_password)
                    .await?
            }
        }
        done.push(format!(
            "set the new password of {} on {}",
            new.username, input.instance_id
        ));
        // testSecret: RDS applies a master password asynchronously.
        if !ports.sql.probe(&login, ProbeKind::Read).await?.healthy {
            return Err(DrError::NotReady(format!(
                "{} does not take the new password of {} yet",
                input.instance_id, new.username
            )));
        }
    }
    done.push(format!(
        "logged in to {} with the new password",
        input.instance_id
    ));

    // finishSecret: AWSCURRENT moves to the new version (AWSPREVIOUS keeps
    // the old, which no longer logs in); AWSPENDING is cleared.
    if !finished {
        ports
            .secrets
            .move_secret_stage(
                secret,
                CURRENT,
                &pending.version_id,
                Some(&current.version_id),
            )
            .await?;
        ports
            .secrets
            .remove_secret_stage(secret, PENDING, &pending.version_id)
            .await?;
        done.push(format!("made the new password {CURRENT}"));
    }
    let mutation = (!finished).then(|| {
        format!(
            "rotated the password of {} on {} ({secret}): the old one no longer logs in",
            new.username, input.instance_id
        )
    });
    Ok(RotateOutput {
        secret_id: secret.clone(),
        version_id: pending.version_id,
        done: if finished { Vec::new() } else { done },
        mutation,
    })
}
