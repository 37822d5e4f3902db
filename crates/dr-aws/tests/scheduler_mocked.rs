//! GetSchedule as AWS answers it (aws-smithy-mocks): moto never refuses a
//! call for want of permission, while on AWS a role without
//! `scheduler:GetSchedule` on the schedule's ARN gets AccessDeniedException.
//! That must read "could not observe", never "the schedule does not exist".

use aws_sdk_scheduler::operation::get_schedule::{GetScheduleError, GetScheduleOutput};
use aws_sdk_scheduler::types::error::ResourceNotFoundException;
use aws_sdk_scheduler::types::{ScheduleState, Target};
use aws_sdk_scheduler::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use dr_aws::AwsTriggers;
use dr_core::*;

const DRILL: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:muejam-dr-drill";

async fn triggers(scheduler: Client) -> AwsTriggers {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    AwsTriggers::new(
        aws_sdk_cloudwatch::Client::new(&config),
        aws_sdk_eventbridge::Client::new(&config),
        scheduler,
    )
}

#[tokio::test]
async fn a_schedule_is_read_missing_or_not_observed() {
    let found = mock!(Client::get_schedule)
        .match_requests(|r| r.name() == Some("muejam-quarterly-drill") && r.group_name().is_none())
        .then_output(|| {
            GetScheduleOutput::builder()
                .name("muejam-quarterly-drill")
                .state(ScheduleState::Disabled)
                .target(
                    Target::builder()
                        .arn(DRILL)
                        .role_arn("arn:aws:iam::123456789012:role/scheduler")
                        .build()
                        .expect("target"),
                )
                .build()
        });
    let missing = mock!(Client::get_schedule)
        .match_requests(|r| r.name() == Some("muejam-replication"))
        .then_error(|| {
            GetScheduleError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Schedule muejam-replication does not exist.")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ResourceNotFoundException")
                            .build(),
                    )
                    .build()
                    .expect("error"),
            )
        });
    let denied = mock!(Client::get_schedule)
        .match_requests(|r| r.name() == Some("muejam-readiness"))
        .then_error(|| {
            GetScheduleError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform: scheduler:GetSchedule")
                    .build(),
            )
        });
    let scheduler = mock_client!(
        aws_sdk_scheduler,
        RuleMode::MatchAny,
        [&found, &missing, &denied]
    );
    let t = triggers(scheduler).await;
    assert_eq!(
        t.schedule("muejam-quarterly-drill").await.expect("read"),
        Some(ScheduleInfo {
            name: "muejam-quarterly-drill".into(),
            enabled: false,
            target_arn: DRILL.into(),
        })
    );
    assert_eq!(t.schedule("muejam-replication").await.expect("read"), None);
    let error = t
        .schedule("muejam-readiness")
        .await
        .expect_err("denied is not an answer");
    assert_eq!(error.name(), "Internal", "{error}");
    assert!(
        error.to_string().contains("AccessDeniedException"),
        "{error}"
    );
}
