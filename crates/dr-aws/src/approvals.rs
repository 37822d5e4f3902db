//! [`ApprovalStore`] on DynamoDB (partition key `execution`): the question as
//! a JSON document, its status as an attribute that every close is
//! conditioned on, so an approval is answered exactly once; and
//! [`TaskTokens`] on Step Functions.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct DynamoDbApprovals {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbApprovals {
    /// The table has a string partition key `execution`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbApprovals {
            client,
            table: table.into(),
        }
    }

    async fn write(
        &self,
        request: &ApprovalRequest,
        token: &SecretString,
        condition_pending: bool,
    ) -> DrResult<()> {
        let document = serde_json::to_string(request)
            .map_err(|e| DrError::Internal(format!("serializing an approval: {e}")))?;
        let status = serde_json::to_value(request.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "execution",
                AttributeValue::S(request.execution_name.clone()),
            )
            .item("status", AttributeValue::S(status))
            .item("document", AttributeValue::S(document))
            .item("token", AttributeValue::S(token.expose_secret().to_owned()))
            .item(
                "expires_at",
                AttributeValue::N((request.deadline.timestamp() + 30 * 86_400).to_string()),
            );
        if condition_pending {
            put = put
                .condition_expression("#s = :pending")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":pending", AttributeValue::S("pending".to_owned()));
        } else {
            // A retried request may overwrite its own pending record, never
            // an answered one.
            put = put
                .condition_expression("attribute_not_exists(#e) OR #s = :pending")
                .expression_attribute_names("#e", "execution")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":pending", AttributeValue::S("pending".to_owned()));
        }
        put.send().await.map_err(|e| {
            map_sdk_error(&format!("recording approval {}", request.execution_name), e)
        })?;
        Ok(())
    }
}

#[async_trait]
impl ApprovalStore for DynamoDbApprovals {
    async fn open(&self, request: &ApprovalRequest, token: &SecretString) -> DrResult<()> {
        match self.write(request, token, false).await {
            Err(DrError::Conflict(_)) => Err(DrError::Conflict(format!(
                "the approval of {} was already answered",
                request.execution_name
            ))),
            other => other,
        }
    }

    async fn get(&self, execution_name: &str) -> DrResult<Option<(ApprovalRequest, SecretString)>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("execution", AttributeValue::S(execution_name.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading approval {execution_name}"), e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let document = text("document")
            .ok_or_else(|| DrError::Internal("an approval item has no document".to_owned()))?;
        let request: ApprovalRequest = serde_json::from_str(&document)
            .map_err(|e| DrError::Internal(format!("an approval item is unreadable: {e}")))?;
        let token = text("token")
            .ok_or_else(|| DrError::Internal("an approval item has no token".to_owned()))?;
        Ok(Some((request, SecretString::from(token))))
    }

    async fn close(
        &self,
        execution_name: &str,
        status: ApprovalStatus,
        answer: Option<ApprovalAnswer>,
    ) -> DrResult<ApprovalRequest> {
        let (mut request, token) = self.get(execution_name).await?.ok_or_else(|| {
            DrError::NotFound(format!("no approval was requested by {execution_name}"))
        })?;
        let refuse = |r: &ApprovalRequest| {
            DrError::Conflict(match &r.answer {
                Some(a) => format!(
                    "the approval of {execution_name} is already {}: by {} at {}",
                    if a.approved { "approved" } else { "rejected" },
                    a.by,
                    a.at.to_rfc3339()
                ),
                None => format!(
                    "the approval of {execution_name} expired at {}",
                    r.deadline.to_rfc3339()
                ),
            })
        };
        if request.status != ApprovalStatus::Pending {
            return Err(refuse(&request));
        }
        request.status = status;
        request.answer = answer;
        match self.write(&request, &token, true).await {
            Ok(()) => Ok(request),
            Err(DrError::Conflict(_)) => {
                let now = self
                    .get(execution_name)
                    .await?
                    .map(|(r, _)| r)
                    .unwrap_or(request);
                Err(refuse(&now))
            }
            Err(e) => Err(e),
        }
    }
}

/// [`TaskTokens`] on Step Functions.
#[derive(Debug, Clone)]
pub struct SfnTaskTokens {
    client: aws_sdk_sfn::Client,
}

impl SfnTaskTokens {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        SfnTaskTokens { client }
    }
}

#[async_trait]
impl TaskTokens for SfnTaskTokens {
    async fn send_success(&self, token: &SecretString, output: &serde_json::Value) -> DrResult<()> {
        self.client
            .send_task_success()
            .task_token(token.expose_secret())
            .output(output.to_string())
            .send()
            .await
            .map_err(|e| map_sdk_error("answering the waiting task", e))?;
        Ok(())
    }

    async fn send_failure(&self, token: &SecretString, error: &str, cause: &str) -> DrResult<()> {
        self.client
            .send_task_failure()
            .task_token(token.expose_secret())
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| map_sdk_error("answering the waiting task", e))?;
        Ok(())
    }
}
