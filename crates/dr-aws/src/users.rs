//! Telling users of an incident: [`UserNotifier`] on SNS `PublishBatch`
//! (a FIFO topic deduplicates a repeated message by its notification id)
//! and [`NotificationLedger`] on DynamoDB (partition key `incident`, sort
//! key `user_id`, a number), written by transactions so that a claim is
//! all or nothing.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use chrono::{DateTime, Utc};
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct SnsUserNotifier {
    client: aws_sdk_sns::Client,
}

impl SnsUserNotifier {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        SnsUserNotifier { client }
    }
}

/// Pure: SNS FIFO ids allow letters, digits and ASCII punctuation, at most
/// 128 characters; anything else becomes `_`.
pub fn fifo_id(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(128)
        .collect()
}

fn attribute(value: &str) -> DrResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| DrError::InvalidInput(e.to_string()))
}

#[async_trait]
impl UserNotifier for SnsUserNotifier {
    async fn send_batch(
        &self,
        topic: &str,
        messages: &[UserMessage],
    ) -> DrResult<Vec<UserDelivery>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if messages.len() > USER_BATCH_MAX {
            return Err(DrError::InvalidInput(format!(
                "{} messages in one batch: SNS takes at most {USER_BATCH_MAX}",
                messages.len()
            )));
        }
        let fifo = topic.ends_with(".fifo");
        let mut request = self.client.publish_batch().topic_arn(topic);
        for (i, m) in messages.iter().enumerate() {
            let mut entry = PublishBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .subject(crate::notifier::clip_subject(&m.subject))
                .message(&m.body)
                .message_attributes("user_id", attribute(&m.user_id.to_string())?)
                .message_attributes("notification_id", attribute(&m.notification_id)?);
            if fifo {
                // One group per user: no ordering across users is needed,
                // and a FIFO topic spreads groups for throughput.
                entry = entry
                    .message_group_id(fifo_id(&format!("user-{}", m.user_id)))
                    .message_deduplication_id(fifo_id(&m.notification_id));
            }
            request = request.publish_batch_request_entries(
                entry
                    .build()
                    .map_err(|e| DrError::InvalidInput(e.to_string()))?,
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("publishing a batch to {topic}"), e))?;
        let mut results: Vec<UserDelivery> = messages
            .iter()
            .map(|_| UserDelivery::Failed {
                reason: "SNS answered nothing for this entry".to_owned(),
            })
            .collect();
        let index = |id: &str| {
            id.strip_prefix('m')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < messages.len())
        };
        for ok in output.successful() {
            if let Some(i) = ok.id().and_then(index) {
                results[i] = UserDelivery::Sent {
                    message_id: ok.message_id().unwrap_or_default().to_owned(),
                };
            }
        }
        for failed in output.failed() {
            if let Some(i) = index(failed.id()) {
                results[i] = UserDelivery::Failed {
                    reason: format!(
                        "{}: {}",
                        failed.code(),
                        failed.message().unwrap_or("no message")
                    ),
                };
            }
        }
        Ok(results)
    }
}

#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbLedger {
    /// The table has a string partition key `incident` and a number sort
    /// key `user_id`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbLedger {
            client,
            table: table.into(),
        }
    }

    fn key_update(
        &self,
        incident: &str,
        user: i64,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .key("incident", AttributeValue::S(incident.to_owned()))
            .key("user_id", AttributeValue::N(user.to_string()))
    }

    async fn transact(&self, context: &str, items: Vec<TransactWriteItem>) -> DrResult<()> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // A cancelled transaction says why per item: a broken
                // condition (someone recorded a send) or a concurrent
                // transaction is a Conflict to re-read.
                if let Some(TransactWriteItemsError::TransactionCanceledException(t)) =
                    e.as_service_error()
                {
                    let codes: Vec<&str> = t
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code())
                        .filter(|c| *c != "None")
                        .collect();
                    let message =
                        format!("{context}: transaction cancelled ({})", codes.join(", "));
                    return Err(
                        if codes
                            .iter()
                            .all(|c| *c == "ConditionalCheckFailed" || *c == "TransactionConflict")
                        {
                            DrError::Conflict(message)
                        } else if codes.contains(&"ThrottlingError") {
                            DrError::Throttled(message)
                        } else {
                            DrError::Unavailable(message)
                        },
                    );
                }
                Err(map_sdk_error(context, e))
            }
        }
    }
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

fn text<'a>(
    item: &'a std::collections::HashMap<String, AttributeValue>,
    key: &str,
) -> Option<&'a str> {
    item.get(key)?.as_s().ok().map(String::as_str)
}

fn time(
    item: &std::collections::HashMap<String, AttributeValue>,
    key: &str,
) -> Option<DateTime<Utc>> {
    text(item, key)?.parse().ok()
}

#[async_trait]
impl NotificationLedger for DynamoDbLedger {
    async fn entries(&self, incident: &str) -> DrResult<Vec<LedgerEntry>> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#i = :i")
                .expression_attribute_names("#i", "incident")
                .expression_attribute_values(":i", AttributeValue::S(incident.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("reading the ledger of {incident}"), e))?;
            for item in output.items() {
                let bad =
                    || DrError::Internal(format!("a ledger item of {incident} is unreadable"));
                entries.push(LedgerEntry {
                    user_id: number(item, "user_id").ok_or_else(bad)?,
                    state: match text(item, "state") {
                        Some("sent") => LedgerState::Sent,
                        Some("sending") => LedgerState::Sending,
                        _ => return Err(bad()),
                    },
                    claimed_at: time(item, "claimed_at").ok_or_else(bad)?,
                    attempts: number(item, "attempts")
                        .unwrap_or(1)
                        .clamp(0, i64::from(u32::MAX)) as u32,
                    message_id: text(item, "message_id").map(str::to_owned),
                    sent_at: time(item, "sent_at"),
                });
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        entries.sort_by_key(|e| e.user_id);
        Ok(entries)
    }

    async fn claim(&self, incident: &str, users: &[i64], at: DateTime<Utc>) -> DrResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let mut items = Vec::with_capacity(users.len());
        for user in users {
            let update = self
                .key_update(incident, *user)
                .update_expression("SET #s = :sending, claimed_at = :at ADD attempts :one")
                .condition_expression("attribute_not_exists(user_id) OR #s = :sending")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":sending", AttributeValue::S("sending".to_owned()))
                .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339()))
                .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                .build()
                .map_err(|e| DrError::Internal(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact(
            &format!("claiming {} user(s) of {incident}", users.len()),
            items,
        )
        .await
    }

    async fn mark_sent(
        &self,
        incident: &str,
        sent: &[(i64, String)],
        at: DateTime<Utc>,
    ) -> DrResult<()> {
        if sent.is_empty() {
            return Ok(());
        }
        let mut items = Vec::with_capacity(sent.len());
        for (user, message_id) in sent {
            let update = self
                .key_update(incident, *user)
                .update_expression("SET #s = :sent, message_id = :m, sent_at = :at")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":sent", AttributeValue::S("sent".to_owned()))
                .expression_attribute_values(":m", AttributeValue::S(message_id.clone()))
                .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339()))
                .build()
                .map_err(|e| DrError::Internal(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact(
            &format!("recording {} send(s) of {incident}", sent.len()),
            items,
        )
        .await
    }
}
