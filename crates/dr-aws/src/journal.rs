//! [`RecoveryJournal`] on DynamoDB: partition key `recovery_id`, sort key
//! `key` (the step), the entry as a JSON document.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct DynamoDbJournal {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbJournal {
    /// The table has a string partition key `recovery_id` and a string sort key `key`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbJournal {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl RecoveryJournal for DynamoDbJournal {
    async fn record(&self, entry: &JournalEntry) -> DrResult<()> {
        let document = serde_json::to_string(entry)
            .map_err(|e| DrError::Internal(format!("serializing a journal entry: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("recovery_id", AttributeValue::S(entry.recovery_id.clone()))
            .item("key", AttributeValue::S(entry.key.clone()))
            .item("document", AttributeValue::S(document))
            .send()
            .await
            .map_err(|e| {
                map_sdk_error(
                    &format!("journaling {} of {}", entry.key, entry.recovery_id),
                    e,
                )
            })?;
        Ok(())
    }

    async fn entries(&self, recovery_id: &str) -> DrResult<Vec<JournalEntry>> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#r = :r")
                .expression_attribute_names("#r", "recovery_id")
                .expression_attribute_values(":r", AttributeValue::S(recovery_id.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("reading the journal of {recovery_id}"), e))?;
            for item in output.items() {
                let document = item
                    .get("document")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| {
                        DrError::Internal("a journal item has no document".to_owned())
                    })?;
                entries.push(serde_json::from_str::<JournalEntry>(document).map_err(|e| {
                    DrError::Internal(format!("a journal item is unreadable: {e}"))
                })?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        entries.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
        Ok(entries)
    }
}
