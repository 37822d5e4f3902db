//! [`Executions`] on Step Functions (DescribeExecution).

use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
}

impl SfnExecutions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        SfnExecutions { client }
    }
}

/// Step Functions' status as ours; a redrivable failure is still a failure
/// (nothing runs until someone redrives it).
pub fn state_of(status: &ExecutionStatus) -> ExecutionState {
    match status {
        ExecutionStatus::Running => ExecutionState::Running,
        ExecutionStatus::Succeeded => ExecutionState::Succeeded,
        ExecutionStatus::TimedOut => ExecutionState::TimedOut,
        ExecutionStatus::Aborted => ExecutionState::Aborted,
        // FAILED, PENDING_REDRIVE, and any status added later: not running.
        _ => ExecutionState::Failed,
    }
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>> {
        if !execution_arn.starts_with("arn:") {
            return Ok(None);
        }
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(state_of(output.status()))),
            // The modeled error, whatever its wire code.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                Ok(None)
            }
            Err(e) => match map_sdk_error(&format!("describing execution {execution_arn}"), e) {
                DrError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}
