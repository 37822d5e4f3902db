//! Step Functions calls against the statuses and errors AWS answers with
//! (aws-smithy-mocks: moto keeps executions RUNNING with a canned history
//! and drops a task failure's cause).

use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::{SfnExecutions, SfnTaskTokens};
use dr_core::*;

const ARN: &str =
    "arn:aws:states:us-east-1:123456789012:execution:muejam-database-failover:incident-1";

fn described(status: ExecutionStatus) -> DescribeExecutionOutput {
    DescribeExecutionOutput::builder()
        .execution_arn(ARN)
        .state_machine_arn(
            "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-database-failover",
        )
        .status(status)
        .start_date(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .expect("output")
}

#[tokio::test]
async fn a_lock_holder_is_running_only_while_step_functions_says_running() {
    let table = [
        (ExecutionStatus::Running, ExecutionState::Running),
        (ExecutionStatus::Succeeded, ExecutionState::Succeeded),
        (ExecutionStatus::Failed, ExecutionState::Failed),
        (ExecutionStatus::TimedOut, ExecutionState::TimedOut),
        (ExecutionStatus::Aborted, ExecutionState::Aborted),
        // A failed execution waiting to be redriven runs nothing meanwhile.
        (ExecutionStatus::PendingRedrive, ExecutionState::Failed),
    ];
    for (status, state) in table {
        let s = status.clone();
        let describe = mock!(Client::describe_execution)
            .match_requests(|r| r.execution_arn() == Some(ARN))
            .then_output(move || described(s.clone()));
        let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&describe]);
        assert_eq!(
            SfnExecutions::new(sfn).state(ARN).await.expect("state"),
            Some(state),
            "{status:?}"
        );
    }
    let gone = mock!(Client::describe_execution).then_error(|| {
        DescribeExecutionError::ExecutionDoesNotExist(
            aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder()
                .message("Execution Does Not Exist")
                .build(),
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&gone]);
    assert_eq!(
        SfnExecutions::new(sfn.clone())
            .state(ARN)
            .await
            .expect("state"),
        None,
        "unknown: nothing can be concluded, the lock is kept"
    );
    assert_eq!(
        SfnExecutions::new(sfn)
            .state("not-an-arn")
            .await
            .expect("state"),
        None
    );
}

#[tokio::test]
async fn answering_a_task_that_timed_out_is_an_error_not_a_silent_success() {
    let late = mock!(Client::send_task_success).then_error(|| {
        SendTaskSuccessError::generic(
            ErrorMetadata::builder()
                .code("TaskTimedOut")
                .message("Task Timed Out: 'Provided task does not exist anymore'")
                .build(),
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&late]);
    let err = SfnTaskTokens::new(sfn)
        .send_success(
            &SecretString::from("token".to_owned()),
            &serde_json::json!({}),
        )
        .await
        .expect_err("too late");
    assert!(err.to_string().contains("TaskTimedOut"), "{err}");
}
