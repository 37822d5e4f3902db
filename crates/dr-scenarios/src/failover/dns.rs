//! Describe an instance for the wait loops, and point the database record at
//! a promoted one.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeInstanceInput {
    pub instance_id: InstanceId,
    /// The region the instance lives in (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeInstanceOutput {
    pub instance_id: InstanceId,
    pub status: String,
    pub endpoint: Option<Endpoint>,
    pub replication_source: Option<InstanceId>,
    pub availability_zone: Option<String>,
    /// What the wait loop waits for: available and no replication source.
    pub standalone_and_available: bool,
}

pub async fn describe_instance(
    ports: &Ports,
    input: DescribeInstanceInput,
) -> DrResult<DescribeInstanceOutput> {
    let d = ports
        .plane(input.region.as_deref())?
        .describe_instance(&input.instance_id)
        .await?;
    Ok(DescribeInstanceOutput {
        standalone_and_available: d.is_standalone_and_available(),
        instance_id: d.instance_id,
        status: d.status.to_string(),
        endpoint: d.endpoint,
        replication_source: d.replication_source,
        availability_zone: d.availability_zone,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsAction {
    /// Point the record at the target instance's endpoint.
    Upsert,
    /// Report the status of a change (for the INSYNC wait).
    Status,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDnsInput {
    pub action: DnsAction,
    /// Hosted zone id or name.
    pub hosted_zone: String,
    pub record_name: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// For `upsert`: the instance the record must point at.
    pub target_instance_id: Option<InstanceId>,
    /// For `status`: the change to look at.
    pub change_id: Option<String>,
    #[serde(default)]
    pub journal: Option<JournalRef>,
    /// The region the target lives in (default: the home region); the
    /// record itself is global.
    #[serde(default)]
    pub region: Option<String>,
}

pub(crate) fn default_ttl() -> u32 {
    60
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDnsOutput {
    pub change_id: String,
    pub status: DnsChangeStatus,
    pub insync: bool,
    pub record_name: String,
    /// The value the record now has (after an upsert).
    pub value: Option<String>,
    /// The value it had before (after an upsert): what a rollback restores.
    pub previous_value: Option<String>,
    pub mutation: Option<String>,
}

impl Journaled for UpdateDnsOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Switches the database record, but only to a promoted, available instance:
/// DNS never points at a replica or at an instance that is not up.
pub async fn update_dns(ports: &Ports, input: UpdateDnsInput) -> DrResult<UpdateDnsOutput> {
    if input.action == DnsAction::Status {
        return update_dns_now(ports, input).await;
    }
    let what = format!(
        "pointing {} at {}",
        crate::truncate_message(&input.record_name),
        input
            .target_instance_id
            .as_ref()
            .map_or_else(|| "?".to_owned(), ToString::to_string)
    );
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "dns",
        &what,
        update_dns_now(ports, input),
    )
    .await
}

pub(crate) async fn update_dns_now(
    ports: &Ports,
    input: UpdateDnsInput,
) -> DrResult<UpdateDnsOutput> {
    // Names are checked before any call: the Route 53 client panics on a
    // request URI it cannot build (a record name of a megabyte).
    validate_dns_name("record_name", &input.record_name)?;
    if input.hosted_zone.is_empty() || input.hosted_zone.len() > MAX_DNS_NAME {
        return Err(DrError::InvalidInput(format!(
            "hosted_zone must be 1 to {MAX_DNS_NAME} characters"
        )));
    }
    if let Some(change) = &input.change_id {
        if change.is_empty() || change.len() > 128 {
            return Err(DrError::InvalidInput(
                "change_id must be 1 to 128 characters".to_owned(),
            ));
        }
    }
    match input.action {
        DnsAction::Status => {
            let change_id = input
                .change_id
                .as_deref()
                .ok_or_else(|| DrError::InvalidInput("action status needs change_id".to_owned()))?;
            let change = ports.dns.change_status(change_id).await?;
            Ok(UpdateDnsOutput {
                insync: change.status == DnsChangeStatus::Insync,
                change_id: change.change_id,
                status: change.status,
                record_name: input.record_name,
                value: None,
                previous_value: None,
                mutation: None,
            })
        }
        DnsAction::Upsert => {
            let target_id = input.target_instance_id.as_ref().ok_or_else(|| {
                DrError::InvalidInput("action upsert needs target_instance_id".to_owned())
            })?;
            if input.ttl == 0 || input.ttl > 86_400 {
                return Err(DrError::InvalidInput(
                    "ttl must be between 1 and 86400 seconds".to_owned(),
                ));
            }
            let target = ports
                .plane(input.region.as_deref())?
                .describe_instance(target_id)
                .await?;
            if !target.is_standalone_and_available() {
                return Err(DrError::Unsafe(format!(
                    "refusing to point {} at {target_id}: it is {}{}",
                    input.record_name,
                    target.status,
                    target
                        .replication_source
                        .as_ref()
                        .map(|s| format!(" and still replicates from {s}"))
                        .unwrap_or_default()
                )));
            }
            let endpoint = target
                .endpoint
                .ok_or_else(|| DrError::NotReady(format!("{target_id} has no endpoint yet")))?;
            let previous = ports
                .dns
                .get_record(&input.hosted_zone, &input.record_name, "CNAME")
                .await?;
            let change = ports
                .dns
                .upsert_record(&DnsRecord {
                    hosted_zone_id: input.hosted_zone.clone(),
                    name: input.record_name.clone(),
                    record_type: "CNAME".to_owned(),
                    ttl: input.ttl,
                    value: endpoint.address.clone(),
                })
                .await?;
            let previous_value = previous.map(|r| r.value);
            let mutation =
                (previous_value.as_deref() != Some(endpoint.address.as_str())).then(|| {
                    format!(
                        "pointed {} (CNAME, TTL {} s) at {target_id} ({}), was {}",
                        input.record_name,
                        input.ttl,
                        endpoint.address,
                        previous_value.as_deref().unwrap_or("absent")
                    )
                });
            Ok(UpdateDnsOutput {
                insync: change.status == DnsChangeStatus::Insync,
                change_id: change.change_id,
                status: change.status,
                record_name: input.record_name,
                value: Some(endpoint.address),
                previous_value,
                mutation,
            })
        }
    }
}
