//! [`RecoveryLock`] on DynamoDB: a conditional put, so two triggers racing
//! for the same database cannot both win.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct DynamoDbLock {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbLock {
    /// The table has a string partition key `resource` (and TTL on `expires_at`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbLock {
            client,
            table: table.into(),
        }
    }
}

fn holder_from(item: &std::collections::HashMap<String, AttributeValue>) -> Option<LockHolder> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(LockHolder {
        resource: text("resource")?,
        owner: text("owner")?,
        acquired_at: DateTime::parse_from_rfc3339(&text("acquired_at")?)
            .ok()?
            .with_timezone(&Utc),
    })
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// Every item of a table, page after page (consistent reads).
pub(crate) async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    what: &str,
) -> DrResult<Vec<Item>> {
    let mut all = Vec::new();
    let mut start = None;
    loop {
        let output = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| map_sdk_error(what, e))?;
        all.extend(output.items().iter().cloned());
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    Ok(all)
}

impl DynamoDbLock {
    /// Writes the lock item of `owner`; `condition` (over `#r` resource, `#o`
    /// owner, `#e` expires_at, `:owner`, `:now` and `extra` values) decides
    /// whether it may replace what is there.
    async fn put_lock(
        &self,
        resource: &str,
        owner: &str,
        ttl_seconds: u64,
        condition: &str,
        extra: &[(&str, &str)],
    ) -> Result<DateTime<Utc>, DrError> {
        let now = Utc::now();
        let expires = now.timestamp() + i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 2);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("resource", AttributeValue::S(resource.to_owned()))
            .item("owner", AttributeValue::S(owner.to_owned()))
            .item("acquired_at", AttributeValue::S(now.to_rfc3339()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .condition_expression(condition)
            .expression_attribute_names("#r", "resource")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()));
        if condition.contains("#e") {
            put = put
                .expression_attribute_names("#e", "expires_at")
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(now.timestamp().to_string()),
                );
        }
        for (name, value) in extra {
            put = put.expression_attribute_values(*name, AttributeValue::S((*value).to_owned()));
        }
        put.send()
            .await
            .map(|_| now)
            .map_err(|e| map_sdk_error(&format!("locking {resource}"), e))
    }
}

#[async_trait]
impl RecoveryLock for DynamoDbLock {
    async fn acquire(&self, resource: &str, owner: &str, ttl_seconds: u64) -> DrResult<LockHolder> {
        let put = self
            .put_lock(
                resource,
                owner,
                ttl_seconds,
                "attribute_not_exists(#r) OR #o = :owner OR #e < :now",
                &[],
            )
            .await;
        match put {
            Ok(now) => Ok(LockHolder {
                resource: resource.to_owned(),
                owner: owner.to_owned(),
                acquired_at: now,
            }),
            Err(DrError::Conflict(_)) => {
                let holder = self.holder(resource).await?;
                Err(DrError::Conflict(match holder {
                    Some(h) => format!(
                        "a recovery of {resource} is already running: {} since {}",
                        h.owner,
                        h.acquired_at.to_rfc3339()
                    ),
                    None => format!("a recovery of {resource} is already running"),
                }))
            }
            Err(other) => Err(other),
        }
    }

    async fn take_over(
        &self,
        resource: &str,
        owner: &str,
        stale_owner: &str,
        ttl_seconds: u64,
    ) -> DrResult<LockHolder> {
        let put = self
            .put_lock(
                resource,
                owner,
                ttl_seconds,
                "attribute_not_exists(#r) OR #o = :stale OR #o = :owner",
                &[(":stale", stale_owner)],
            )
            .await;
        match put {
            Ok(now) => Ok(LockHolder {
                resource: resource.to_owned(),
                owner: owner.to_owned(),
                acquired_at: now,
            }),
            Err(DrError::Conflict(_)) => Err(DrError::Conflict(format!(
                "the lock of {resource} changed hands meanwhile"
            ))),
            Err(other) => Err(other),
        }
    }

    async fn holders(&self) -> DrResult<Vec<LockHolder>> {
        let mut all: Vec<LockHolder> =
            scan_all(&self.client, &self.table, "listing recovery locks")
                .await?
                .iter()
                .filter_map(holder_from)
                .collect();
        all.sort_by(|a, b| a.resource.cmp(&b.resource));
        Ok(all)
    }

    async fn release(&self, resource: &str, owner: &str) -> DrResult<()> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(resource.to_owned()))
            .condition_expression("attribute_not_exists(#r) OR #o = :owner")
            .expression_attribute_names("#r", "resource")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Held by someone else: not ours to release.
            Err(e) => match map_sdk_error(&format!("unlocking {resource}"), e) {
                DrError::Conflict(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn holder(&self, resource: &str) -> DrResult<Option<LockHolder>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(resource.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading the lock of {resource}"), e))?;
        Ok(output.item().and_then(holder_from))
    }
}
