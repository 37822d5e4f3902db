//! The topology registry's record: the current roles of one database, read
//! by every trigger by the database's name and updated by every switch, so
//! that the second incident after a failover needs no stack edit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DrError, DrResult};
use crate::model::{InstanceId, Tags, DRILL_TAG};

/// The longest DNS name (RFC 1035: 253 characters in text form).
pub const MAX_DNS_NAME: usize = 253;
/// The TTLs a failover record may have: a TTL of 0 is not cached at all by
/// some resolvers and cached by others; beyond an hour a failover takes
/// effect too late for the RTO.
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;

/// Where the database's DNS record lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsBinding {
    /// Hosted zone name (`muejam.internal`) or ID (`Z0123…`).
    pub hosted_zone: String,
    /// The record the applications connect to (`db.muejam.internal`).
    pub record_name: String,
    pub ttl: u32,
}

/// The current roles of one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The name triggers use (`muejam`).
    pub database: String,
    pub primary: InstanceId,
    /// Read replicas of the primary, the preferred promotion target first.
    pub replicas: Vec<InstanceId>,
    /// Former primaries, fenced and kept for forensics.
    #[serde(default)]
    pub fenced: Vec<InstanceId>,
    /// Replicas of a primary that a restore replaced: they hold its
    /// (corrupt) data, so they are never promoted; kept until a person
    /// deletes them.
    #[serde(default)]
    pub retired: Vec<InstanceId>,
    /// The SQL database name.
    pub db_name: String,
    pub credentials_secret_id: String,
    pub dns: DnsBinding,
    /// Zones a new replica may go to (one other than its source's is chosen).
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// How the application reaches its data: its login role, the secret
    /// that holds that role's credentials, and the schema of its tables.
    /// Stopping writes at the database needs it.
    #[serde(default)]
    pub application: Option<ApplicationAccess>,
    /// New instances are named `<prefix>-r<generation>`.
    pub instance_prefix: String,
    /// Bumped by every switch.
    #[serde(default)]
    pub generation: u32,
    /// Optimistic-concurrency version: a write must name the version it read.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_by: Option<String>,
    /// Tags every instance a recovery creates for this database carries,
    /// besides the recovery's own. A drill's copy carries the drill's
    /// (`dr:drill`, `ephemeral`), so its cleanup finds them.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// The application's access to the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationAccess {
    /// The login role the application connects as (not the owner of its
    /// tables: that one runs migrations).
    pub role: String,
    /// The secret with that role's credentials.
    pub credentials_secret_id: String,
    #[serde(default = "default_schema")]
    pub schema: String,
}

fn default_schema() -> String {
    "public".to_owned()
}

/// A PostgreSQL role or schema name as we accept one: 1 to 63 lower-case
/// letters, digits or underscores, starting with a letter or underscore
/// (names that never need quoting, so none can smuggle SQL).
pub fn validate_sql_name(what: &str, name: &str) -> DrResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(format!(
            "{what} {:?} must be 1 to 63 lower-case letters, digits or underscores, starting with a letter or underscore",
            shorten(name)
        )))
    }
}

impl ApplicationAccess {
    pub fn validate(&self) -> DrResult<()> {
        validate_sql_name("application.role", &self.role)?;
        validate_sql_name("application.schema", &self.schema)?;
        if self.credentials_secret_id.is_empty() || self.credentials_secret_id.len() > 2048 {
            return Err(DrError::InvalidInput(
                "application.credentials_secret_id must be 1 to 2048 characters".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A database name as triggers spell it: 1 to 63 lower-case letters, digits
/// or hyphens, starting with a letter.
pub fn validate_database_name(name: &str) -> DrResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DrError::InvalidInput(format!(
            "database {:?} must be 1 to 63 lower-case letters, digits or hyphens, starting with a letter",
            shorten(name)
        )))
    }
}

/// A DNS name in text form: at most 253 characters, labels of 1 to 63
/// letters, digits or hyphens (and `_` for service labels), no leading or
/// trailing hyphen; a trailing dot is allowed.
pub fn validate_dns_name(what: &str, name: &str) -> DrResult<()> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let bad = |why: &str| {
        Err(DrError::InvalidInput(format!(
            "{what} {:?} is not a DNS name: {why}",
            shorten(name)
        )))
    };
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.len() > MAX_DNS_NAME {
        return bad(&format!(
            "{} characters, at most {MAX_DNS_NAME}",
            trimmed.len()
        ));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("every label has 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label neither starts nor ends with a hyphen");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("labels hold letters, digits, hyphens and underscores only");
        }
    }
    Ok(())
}

/// At most 80 characters of a value, for error messages about huge inputs.
pub fn shorten(value: &str) -> String {
    if value.chars().count() <= 80 {
        value.to_owned()
    } else {
        let head: String = value.chars().take(60).collect();
        format!("{head}… ({} characters)", value.chars().count())
    }
}

fn dns_eq(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl DnsBinding {
    /// The record name and zone are DNS names, the record is inside the
    /// zone (when the zone is given by name) and the TTL is sane.
    pub fn validate(&self) -> DrResult<()> {
        validate_dns_name("dns.record_name", &self.record_name)?;
        let zone_is_name = self.hosted_zone.contains('.');
        if zone_is_name {
            validate_dns_name("dns.hosted_zone", &self.hosted_zone)?;
            let record = self.record_name.trim_end_matches('.').to_ascii_lowercase();
            let zone = self.hosted_zone.trim_end_matches('.').to_ascii_lowercase();
            if !(record == zone || record.ends_with(&format!(".{zone}"))) {
                return Err(DrError::InvalidInput(format!(
                    "dns.record_name {} is not inside the hosted zone {}",
                    shorten(&self.record_name),
                    shorten(&self.hosted_zone)
                )));
            }
        } else if self.hosted_zone.is_empty()
            || self.hosted_zone.len() > 32
            || !self.hosted_zone.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(DrError::InvalidInput(format!(
                "dns.hosted_zone {:?} is neither a zone name nor a hosted zone ID",
                shorten(&self.hosted_zone)
            )));
        }
        if !TTL_RANGE.contains(&self.ttl) {
            return Err(DrError::InvalidInput(format!(
                "dns.ttl {} must be between {} and {} seconds",
                self.ttl,
                TTL_RANGE.start(),
                TTL_RANGE.end()
            )));
        }
        Ok(())
    }

    /// Whether `name` is this binding's record.
    pub fn is_record(&self, name: &str) -> bool {
        dns_eq(&self.record_name, name)
    }
}

impl Topology {
    /// Every instance in a role, primary first.
    pub fn members(&self) -> impl Iterator<Item = &InstanceId> {
        std::iter::once(&self.primary)
            .chain(self.replicas.iter())
            .chain(self.fenced.iter())
            .chain(self.retired.iter())
    }

    /// The drill whose throw-away copy this is (its `dr:drill` tag); none
    /// for a real database.
    pub fn drill_id(&self) -> Option<&str> {
        self.tags.get(DRILL_TAG).map(String::as_str)
    }

    /// Whether an instance has any role in this database.
    pub fn knows(&self, id: &InstanceId) -> bool {
        self.members().any(|m| m == id)
    }

    /// The record is consistent: valid names, no instance in two roles, the
    /// DNS name inside its zone.
    pub fn validate(&self) -> DrResult<()> {
        validate_database_name(&self.database)?;
        if self.db_name.is_empty()
            || self.db_name.len() > 63
            || !self
                .db_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(DrError::InvalidInput(format!(
                "db_name {:?} must be 1 to 63 letters, digits or underscores",
                shorten(&self.db_name)
            )));
        }
        if self.credentials_secret_id.is_empty() || self.credentials_secret_id.len() > 2048 {
            return Err(DrError::InvalidInput(
                "credentials_secret_id must be 1 to 2048 characters".to_owned(),
            ));
        }
        InstanceId::parse(&self.instance_prefix).map_err(|_| {
            DrError::InvalidInput(format!(
                "instance_prefix {:?} must be a valid instance identifier",
                shorten(&self.instance_prefix)
            ))
        })?;
        if self.instance_prefix.len() > 50 {
            return Err(DrError::InvalidInput(
                "instance_prefix must leave room for a generation suffix (at most 50 characters)"
                    .to_owned(),
            ));
        }
        self.dns.validate()?;
        if let Some(application) = &self.application {
            application.validate()?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for member in self.members() {
            if !seen.insert(member) {
                return Err(DrError::InvalidInput(format!(
                    "instance {member} has two roles in the topology of {}",
                    self.database
                )));
            }
        }
        Ok(())
    }

    /// The identifier for the next new instance: `<prefix>-r<generation+1>`,
    /// or higher while that name is taken by a member.
    pub fn next_instance_id(&self) -> DrResult<InstanceId> {
        let mut n = self.generation.saturating_add(1);
        loop {
            let id = InstanceId::parse(&format!("{}-r{n}", self.instance_prefix))?;
            if !self.knows(&id) {
                return Ok(id);
            }
            n = n.saturating_add(1);
        }
    }

    /// The roles after a switch: `new_primary` (a replica) is the primary,
    /// the old primary is fenced, the other replicas are kept (they follow
    /// the old primary and are rebuilt later). Idempotent.
    pub fn after_switch(&self, new_primary: &InstanceId, by: &str) -> DrResult<Topology> {
        if &self.primary == new_primary {
            return Ok(self.clone());
        }
        if !self.replicas.contains(new_primary) {
            return Err(DrError::InvalidInput(format!(
                "{new_primary} is not a replica of {} in the topology of {}",
                self.primary, self.database
            )));
        }
        let mut next = self.clone();
        next.replicas.retain(|r| r != new_primary);
        if !next.fenced.contains(&self.primary) {
            next.fenced.push(self.primary.clone());
        }
        next.primary = new_primary.clone();
        next.generation = self.generation.saturating_add(1);
        next.updated_at = Some(crate::clock::now());
        next.updated_by = Some(by.to_owned());
        Ok(next)
    }

    /// The roles after a restore replaced the primary: `restored` (a new
    /// instance) is the primary, the old primary is fenced, and its
    /// replicas, which hold the same data, are retired (a failover must
    /// never promote one). Idempotent.
    pub fn after_restore(&self, restored: &InstanceId, by: &str) -> DrResult<Topology> {
        if &self.primary == restored {
            return Ok(self.clone());
        }
        if self.knows(restored) {
            return Err(DrError::InvalidInput(format!(
                "{restored} already has a role in the topology of {}: a restore makes a new instance",
                self.database
            )));
        }
        let mut next = self.clone();
        next.retired.append(&mut next.replicas);
        if !next.fenced.contains(&self.primary) {
            next.fenced.push(self.primary.clone());
        }
        next.primary = restored.clone();
        next.generation = self.generation.saturating_add(1);
        next.updated_at = Some(crate::clock::now());
        next.updated_by = Some(by.to_owned());
        Ok(next)
    }

    /// The roles after a region failover: `restored` (a new instance in
    /// `region`, restored from a copy) is the primary; the old primary and
    /// its replicas, in a region that is down, are retired (they cannot be
    /// fenced while it is down, and must never be promoted: they hold
    /// writes the copy lacks, or lack writes made since). New replicas go
    /// to `availability_zones`. Idempotent.
    pub fn after_region_switch(
        &self,
        restored: &InstanceId,
        region: &str,
        availability_zones: &[String],
        by: &str,
    ) -> DrResult<Topology> {
        crate::validate_region(region)?;
        if &self.primary == restored {
            return Ok(self.clone());
        }
        if self.knows(restored) {
            return Err(DrError::InvalidInput(format!(
                "{restored} already has a role in the topology of {}: a region failover restores a new instance",
                self.database
            )));
        }
        let mut next = self.clone();
        next.retired.append(&mut next.replicas);
        if !next.retired.contains(&self.primary) {
            next.retired.push(self.primary.clone());
        }
        next.primary = restored.clone();
        next.region = Some(region.to_owned());
        next.availability_zones = availability_zones.to_vec();
        next.generation = self.generation.saturating_add(1);
        next.updated_at = Some(crate::clock::now());
        next.updated_by = Some(by.to_owned());
        Ok(next)
    }

    /// The roles with `replica` following the primary. Idempotent.
    pub fn with_replica(&self, replica: &InstanceId, by: &str) -> DrResult<Topology> {
        if self.replicas.contains(replica) {
            return Ok(self.clone());
        }
        if self.knows(replica) {
            return Err(DrError::InvalidInput(format!(
                "{replica} already has another role in the topology of {}",
                self.database
            )));
        }
        let mut next = self.clone();
        next.replicas.insert(0, replica.clone());
        next.updated_at = Some(crate::clock::now());
        next.updated_by = Some(by.to_owned());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("id")
    }

    pub(crate) fn muejam() -> Topology {
        Topology {
            database: "muejam".to_owned(),
            primary: id("muejam-db-prod"),
            replicas: vec![id("muejam-db-prod-replica")],
            fenced: vec![],
            retired: vec![],
            application: None,
            db_name: "muejam".to_owned(),
            credentials_secret_id: "muejam/db/master".to_owned(),
            dns: DnsBinding {
                hosted_zone: "muejam.internal".to_owned(),
                record_name: "db.muejam.internal".to_owned(),
                ttl: 60,
            },
            availability_zones: vec!["us-east-1a".to_owned(), "us-east-1b".to_owned()],
            region: None,
            instance_prefix: "muejam-db-prod".to_owned(),
            generation: 0,
            version: 1,
            updated_at: None,
            updated_by: None,
            tags: Default::default(),
        }
    }

    #[test]
    fn a_sane_topology_validates_and_bad_ones_name_the_problem() {
        assert!(muejam().validate().is_ok());
        type Change = Box<dyn Fn(&mut Topology)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|t| t.dns.ttl = 0), "dns.ttl 0"),
            (Box::new(|t| t.dns.ttl = 86_400), "dns.ttl 86400"),
            (
                Box::new(|t| t.dns.record_name = "x".repeat(1 << 20)),
                "1048576 characters",
            ),
            (
                Box::new(|t| t.dns.record_name = "db.example.com".to_owned()),
                "not inside the hosted zone",
            ),
            (
                Box::new(|t| t.dns.record_name = "db..muejam.internal".to_owned()),
                "1 to 63 characters",
            ),
            (
                Box::new(|t| t.replicas.push(t.primary.clone())),
                "two roles",
            ),
            (Box::new(|t| t.database = "MueJam".to_owned()), "lower-case"),
            (Box::new(|t| t.db_name = "mue;jam".to_owned()), "db_name"),
        ];
        for (change, expected) in cases {
            let mut t = muejam();
            change(&mut t);
            let err = t.validate().expect_err(expected);
            assert_eq!(err.name(), "InvalidInput");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
            assert!(err.to_string().len() < 400, "no huge echo: {err}");
        }
        let mut by_id = muejam();
        by_id.dns.hosted_zone = "Z0123456789ABCDEFGHIJ".to_owned();
        assert!(by_id.validate().is_ok());
    }

    #[test]
    fn a_switch_fences_the_old_primary_and_a_fail_back_names_a_fresh_instance() {
        let t = muejam();
        assert_eq!(t.next_instance_id().expect("id"), id("muejam-db-prod-r1"));
        let switched = t
            .after_switch(&id("muejam-db-prod-replica"), "exec-1")
            .expect("switch");
        assert_eq!(switched.primary, id("muejam-db-prod-replica"));
        assert!(switched.replicas.is_empty());
        assert_eq!(switched.fenced, vec![id("muejam-db-prod")]);
        assert_eq!(switched.generation, 1);
        assert_eq!(
            switched
                .after_switch(&id("muejam-db-prod-replica"), "exec-1")
                .expect("again"),
            switched,
            "idempotent"
        );
        let new_replica = switched.next_instance_id().expect("id");
        assert_eq!(new_replica, id("muejam-db-prod-r2"));
        let with = switched.with_replica(&new_replica, "exec-1").expect("add");
        assert_eq!(with.replicas, vec![new_replica.clone()]);
        let back = with
            .after_switch(&new_replica, "exec-2")
            .expect("fail back");
        assert_eq!(back.primary, id("muejam-db-prod-r2"));
        assert_eq!(
            back.fenced,
            vec![id("muejam-db-prod"), id("muejam-db-prod-replica")]
        );
        assert_eq!(
            back.next_instance_id().expect("id"),
            id("muejam-db-prod-r3")
        );
        assert!(back.validate().is_ok());
        let err = t
            .after_switch(&id("muejam-db-prod-rx"), "e")
            .expect_err("not a replica");
        assert_eq!(err.name(), "InvalidInput");
        assert!(t.with_replica(&id("muejam-db-prod"), "e").is_err());
    }

    #[test]
    fn a_restore_fences_the_old_primary_and_retires_its_replicas() {
        let t = muejam();
        let restored = t.next_instance_id().expect("id");
        let after = t.after_restore(&restored, "exec-1").expect("restore");
        assert_eq!(after.primary, restored);
        assert!(
            after.replicas.is_empty(),
            "no replica of the corrupt data stays promotable"
        );
        assert_eq!(after.retired, vec![id("muejam-db-prod-replica")]);
        assert_eq!(after.fenced, vec![id("muejam-db-prod")]);
        assert_eq!(after.generation, 1);
        assert!(after.validate().is_ok());
        assert_eq!(
            after.after_restore(&restored, "exec-1").expect("again"),
            after
        );
        assert_eq!(
            after.next_instance_id().expect("id"),
            id("muejam-db-prod-r2")
        );
        // A restore makes a new instance: a known one (fenced, retired) is refused.
        for known in ["muejam-db-prod", "muejam-db-prod-replica"] {
            assert_eq!(
                after
                    .after_restore(&id(known), "e")
                    .expect_err(known)
                    .name(),
                "InvalidInput"
            );
        }
    }

    #[test]
    fn application_names_never_need_quoting() {
        for good in ["muejam_app", "_x", "a1"] {
            assert!(validate_sql_name("role", good).is_ok(), "{good}");
        }
        for bad in ["", "App", "a-b", "a;drop", "a\"b", "1a", &"a".repeat(64)] {
            assert_eq!(
                validate_sql_name("role", bad).expect_err(bad).name(),
                "InvalidInput"
            );
        }
        let mut t = muejam();
        t.application = Some(ApplicationAccess {
            role: "muejam app".to_owned(),
            credentials_secret_id: "s".to_owned(),
            schema: "public".to_owned(),
        });
        assert!(t.validate().is_err());
    }
}
