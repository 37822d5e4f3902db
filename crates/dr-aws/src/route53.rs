//! [`Dns`] on Route 53.

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_lowercase()
    } else {
        format!("{}.", name.to_lowercase())
    }
}

fn status(s: &ChangeStatus) -> DnsChangeStatus {
    if *s == ChangeStatus::Insync {
        DnsChangeStatus::Insync
    } else {
        DnsChangeStatus::Pending
    }
}

impl Route53Dns {
    pub fn new(client: aws_sdk_route53::Client) -> Self {
        Route53Dns { client }
    }

    /// One change of one record set, as ChangeResourceRecordSets takes it
    /// (a DELETE must name the set exactly as it is: name, type, TTL, value).
    async fn change(
        &self,
        action: ChangeAction,
        record: &DnsRecord,
        comment: &str,
    ) -> DrResult<DnsChange> {
        let zone = self.zone_id(&record.hosted_zone_id).await?;
        let record_type = RrType::from(record.record_type.as_str());
        let set = ResourceRecordSet::builder()
            .name(fqdn(&record.name))
            .r#type(record_type)
            .ttl(i64::from(record.ttl))
            .resource_records(
                ResourceRecord::builder()
                    .value(&record.value)
                    .build()
                    .map_err(|e| DrError::InvalidInput(e.to_string()))?,
            )
            .build()
            .map_err(|e| DrError::InvalidInput(e.to_string()))?;
        let batch = ChangeBatch::builder()
            .comment(comment)
            .changes(
                Change::builder()
                    .action(action)
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| DrError::InvalidInput(e.to_string()))?,
            )
            .build()
            .map_err(|e| DrError::InvalidInput(e.to_string()))?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("changing {}", record.name), e))?;
        let info = output.change_info().ok_or_else(|| {
            DrError::Internal("ChangeResourceRecordSets returned no change".into())
        })?;
        Ok(DnsChange {
            change_id: info.id().trim_start_matches("/change/").to_owned(),
            status: status(info.status()),
        })
    }

    /// Accepts a hosted zone id (`Z…`, with or without `/hostedzone/`) or a
    /// zone name (`muejam.internal`), which it looks up.
    pub async fn zone_id(&self, zone: &str) -> DrResult<String> {
        let zone = zone.trim_start_matches("/hostedzone/");
        if !zone.contains('.') {
            return Ok(zone.to_owned());
        }
        let wanted = fqdn(zone);
        let output = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(&wanted)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("looking up hosted zone {zone}"), e))?;
        output
            .hosted_zones()
            .iter()
            .find(|z| fqdn(z.name()) == wanted)
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .ok_or_else(|| DrError::NotFound(format!("hosted zone {zone} not found")))
    }
}

#[async_trait]
impl Dns for Route53Dns {
    async fn upsert_record(&self, record: &DnsRecord) -> DrResult<DnsChange> {
        if record.value.trim().is_empty() || record.name.trim().is_empty() {
            return Err(DrError::InvalidInput(
                "a DNS record needs a name and a value".to_owned(),
            ));
        }
        self.change(
            ChangeAction::Upsert,
            record,
            "MueJam DR: point the database record at the new primary",
        )
        .await
    }

    async fn change_status(&self, change_id: &str) -> DrResult<DnsChange> {
        let output = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading DNS change {change_id}"), e))?;
        let info = output
            .change_info()
            .ok_or_else(|| DrError::Internal("GetChange returned no change".into()))?;
        Ok(DnsChange {
            change_id: change_id.to_owned(),
            status: status(info.status()),
        })
    }

    async fn delete_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsChange>> {
        let Some(record) = self.get_record(hosted_zone_id, name, record_type).await? else {
            return Ok(None);
        };
        match self
            .change(
                ChangeAction::Delete,
                &record,
                "MueJam DR: remove a drill's record",
            )
            .await
        {
            Ok(change) => Ok(Some(change)),
            // Route 53 refuses a DELETE that does not match the set exactly
            // (InvalidChangeBatch): it changed since it was read.
            Err(DrError::InvalidInput(message)) => Err(DrError::Conflict(format!(
                "{name} changed while it was being deleted: {message}"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn get_record(
        &self,
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> DrResult<Option<DnsRecord>> {
        let zone = self.zone_id(hosted_zone_id).await?;
        let wanted = fqdn(name);
        let output = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .start_record_name(&wanted)
            .start_record_type(RrType::from(record_type))
            .max_items(1)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading {name}"), e))?;
        Ok(output
            .resource_record_sets()
            .iter()
            .find(|s| fqdn(s.name()) == wanted && s.r#type().as_str() == record_type)
            .and_then(|s| {
                Some(DnsRecord {
                    hosted_zone_id: zone.clone(),
                    name: wanted.clone(),
                    record_type: record_type.to_owned(),
                    ttl: u32::try_from(s.ttl()?).ok()?,
                    value: s.resource_records().first()?.value().to_owned(),
                })
            }))
    }
}
