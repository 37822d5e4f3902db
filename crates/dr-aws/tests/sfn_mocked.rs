//! Step Functions calls against the statuses and errors AWS answers with
//! (aws-smithy-mocks: moto keeps executions RUNNING with a canned history
//! and drops a task failure's cause).

use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::{SfnExecutions, SfnPager, SfnTaskTokens};
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
    // Named as a task that no longer waits: drctl approve then asks whether
    // the run still runs (the next tier's step takes a recorded answer).
    assert_eq!(err.name(), "NotFound", "{err}");
}

fn history_page(
    ids: std::ops::RangeInclusive<i64>,
    next: Option<&str>,
) -> aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput {
    use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType, StateEnteredEventDetails};
    let events = ids
        .rev()
        .map(|id| {
            HistoryEvent::builder()
                .id(id)
                .timestamp(aws_smithy_types::DateTime::from_secs(1_800_000_000 + id))
                .r#type(HistoryEventType::WaitStateEntered)
                .state_entered_event_details(
                    StateEnteredEventDetails::builder()
                        .name(format!("S{id}"))
                        .input(format!("{{\"polls\":{id}}}"))
                        .build()
                        .expect("details"),
                )
                .build()
                .expect("event")
        })
        .collect::<Vec<_>>();
    aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput::builder()
        .set_events(Some(events))
        .set_next_token(next.map(str::to_owned))
        .build()
        .expect("page")
}

#[tokio::test]
async fn the_history_is_read_newest_first_down_to_the_events_already_seen() {
    // AWS pages newest first when asked (moto ignores reverseOrder and
    // paging: a check moto cannot make).
    let newest = mock!(Client::get_execution_history)
        .match_requests(|r| r.reverse_order() == Some(true) && r.next_token().is_none())
        .then_output(|| history_page(6..=10, Some("older")));
    let older = mock!(Client::get_execution_history)
        .match_requests(|r| r.next_token() == Some("older"))
        .then_output(|| history_page(1..=5, None));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&newest, &older]);
    let control = dr_aws::SfnControl::new(sfn, "muejam-");
    let events = control.events(ARN, 7).await.expect("events");
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [8, 9, 10], "oldest first, only the new ones");
    assert_eq!(events[0].state.as_deref(), Some("S8"));
    assert_eq!(events[0].input, Some(serde_json::json!({"polls": 8})));
    assert_eq!(older.num_calls(), 0, "the older page was not read again");
    let all = control.events(ARN, 3).await.expect("events");
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, [4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(older.num_calls(), 1);
}

fn machines() -> aws_sdk_sfn::operation::list_state_machines::ListStateMachinesOutput {
    use aws_sdk_sfn::types::{StateMachineListItem, StateMachineType};
    aws_sdk_sfn::operation::list_state_machines::ListStateMachinesOutput::builder()
        .state_machines(
            StateMachineListItem::builder()
                .name("muejam-database-failover")
                .state_machine_arn(
                    "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-database-failover",
                )
                .r#type(StateMachineType::Standard)
                .creation_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .expect("machine"),
        )
        .build()
        .expect("list")
}

#[tokio::test]
async fn a_start_that_races_another_gives_back_the_running_execution_or_refuses_the_name() {
    use aws_sdk_sfn::operation::start_execution::StartExecutionError;
    let input = serde_json::json!({"database": "muejam"});
    for (theirs, want) in [
        (input.to_string(), Ok("already_running")),
        ("{\"database\":\"other\"}".to_owned(), Err("AlreadyExists")),
    ] {
        let list = mock!(Client::list_state_machines).then_output(machines);
        // Not there when looked at, started by someone else just before ours.
        let describe = mock!(Client::describe_execution)
            .sequence()
            .error(|| {
                DescribeExecutionError::ExecutionDoesNotExist(
                    aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder()
                        .message("Execution Does Not Exist")
                        .build(),
                )
            })
            .output({
                let theirs = theirs.clone();
                move || {
                    DescribeExecutionOutput::builder()
                        .execution_arn(ARN)
                        .name("incident-1")
                        .state_machine_arn(
                            "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-database-failover",
                        )
                        .status(ExecutionStatus::Running)
                        .input(theirs.clone())
                        .start_date(aws_smithy_types::DateTime::from_secs(0))
                        .build()
                        .expect("output")
                }
            })
            .build();
        let start = mock!(Client::start_execution).then_error(|| {
            StartExecutionError::ExecutionAlreadyExists(
                aws_sdk_sfn::types::error::ExecutionAlreadyExists::builder()
                    .message("Execution Already Exists")
                    .build(),
            )
        });
        let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&list, &describe, &start]);
        let outcome = dr_aws::SfnControl::new(sfn, "muejam-")
            .start("database-failover", "incident-1", &input)
            .await;
        let got = match &outcome {
            Ok(StartOutcome::AlreadyRunning(s)) => {
                assert_eq!(s.arn, ARN);
                assert_eq!(s.scenario, "database-failover");
                Ok("already_running")
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.name()),
        };
        assert_eq!(got, want, "{theirs}");
        assert_eq!(start.num_calls(), 1);
    }
}

fn page() -> Page {
    Page {
        id: "incident-1".to_owned(),
        subject: "[MueJam DR] Database failover: failed (FAILED)".to_owned(),
        body: "the report".to_owned(),
        scenario: "database-failover".to_owned(),
        resource: "muejam".to_owned(),
        raised_at: chrono::Utc::now(),
    }
}

/// A page's climb is one execution named after the page: the same page
/// raised again (the report after the notification, a retry) finds it
/// there and starts nothing; a refusal is an error, never "started".
#[tokio::test]
async fn a_page_starts_one_climb_named_after_it_and_a_refusal_is_an_error() {
    use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
    const MACHINE: &str =
        "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-page-escalation";
    let started = mock!(Client::start_execution)
        .match_requests(|r| {
            r.state_machine_arn() == Some(MACHINE)
                && r.name() == Some("page-incident-1")
                && r.input()
                    .is_some_and(|i| i.contains("\"id\":\"incident-1\""))
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn(format!("{MACHINE}:page-incident-1"))
                .start_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .expect("output")
        });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&started]);
    SfnPager::new(sfn, MACHINE)
        .raise(&page())
        .await
        .expect("started");
    assert_eq!(started.num_calls(), 1);

    let exists = mock!(Client::start_execution).then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(
            aws_sdk_sfn::types::error::ExecutionAlreadyExists::builder()
                .message("Execution Already Exists: 'page-incident-1'")
                .build(),
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&exists]);
    SfnPager::new(sfn, MACHINE)
        .raise(&page())
        .await
        .expect("already climbing is not an error");

    let denied = mock!(Client::start_execution).then_error(|| {
        StartExecutionError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: states:StartExecution")
                .build(),
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&denied]);
    let error = SfnPager::new(sfn, MACHINE)
        .raise(&page())
        .await
        .expect_err("refused");
    // A permission the deployment lacks: a configuration error, named.
    assert_eq!(error.name(), "Internal", "{error:?}");
    assert!(error.to_string().contains("page incident-1"), "{error}");
}
