//! EC2 Auto Scaling as AWS answers it where moto cannot: moto has no
//! instance refresh at all, so the status sequence of a refresh and the
//! "one is already running" fault are given here (aws-smithy-mocks).

use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
use aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshError;
use aws_sdk_autoscaling::types::error::InstanceRefreshInProgressFault;
use aws_sdk_autoscaling::types::{AutoScalingGroup, InstanceRefresh, InstanceRefreshStatus};
use aws_sdk_autoscaling::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::AutoScalingFleet;
use dr_core::*;

const GROUP: &str = "muejam-app";

fn fleet() -> FleetRef {
    FleetRef {
        auto_scaling_group: GROUP.into(),
        target_group_arn: None,
        region: None,
    }
}

fn no_load_balancer() -> aws_sdk_elasticloadbalancingv2::Client {
    mock_client!(aws_sdk_elasticloadbalancingv2, [])
}

fn refresh(id: &str, status: InstanceRefreshStatus, percent: i32) -> InstanceRefresh {
    InstanceRefresh::builder()
        .instance_refresh_id(id)
        .auto_scaling_group_name(GROUP)
        .status(status)
        .percentage_complete(percent)
        .build()
}

#[tokio::test]
async fn a_refresh_already_running_is_joined_not_failed() {
    let start = mock!(Client::start_instance_refresh).then_error(|| {
        StartInstanceRefreshError::InstanceRefreshInProgressFault(
            InstanceRefreshInProgressFault::builder()
                .message("An Instance Refresh is already in progress")
                .build(),
        )
    });
    // Newest first, as AWS lists them: the running one after a finished one.
    let list = mock!(Client::describe_instance_refreshes)
        .match_requests(|r| r.auto_scaling_group_name() == Some(GROUP))
        .then_output(|| {
            DescribeInstanceRefreshesOutput::builder()
                .instance_refreshes(refresh("old", InstanceRefreshStatus::Successful, 100))
                .instance_refreshes(refresh("running", InstanceRefreshStatus::InProgress, 40))
                .build()
        });
    let client = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&start, &list]);
    let joined = AutoScalingFleet::new(client, no_load_balancer())
        .start_instance_refresh(&fleet())
        .await
        .expect("joined");
    assert_eq!(joined.refresh_id, "running");
    assert_eq!(joined.status, "InProgress");
    assert_eq!(joined.percentage_complete, Some(40));
}

#[tokio::test]
async fn a_refresh_launches_before_it_terminates() {
    let start = mock!(Client::start_instance_refresh)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some(GROUP)
                && r.preferences().is_some_and(|p| {
                    p.min_healthy_percentage() == Some(100)
                        && p.max_healthy_percentage() == Some(200)
                })
        })
        .then_output(|| {
            aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshOutput::builder()
                .instance_refresh_id("rf-new")
                .build()
        });
    let client = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&start]);
    let started = AutoScalingFleet::new(client, no_load_balancer())
        .start_instance_refresh(&fleet())
        .await
        .expect("started with launch-before-terminate preferences");
    assert_eq!(started.refresh_id, "rf-new");
    assert_eq!(start.num_calls(), 1);
}

#[tokio::test]
async fn a_refresh_is_read_through_its_status_sequence() {
    let describe = mock!(Client::describe_instance_refreshes)
        .match_requests(|r| r.instance_refresh_ids() == ["rf-1"])
        .sequence()
        .output(|| {
            DescribeInstanceRefreshesOutput::builder()
                .instance_refreshes(refresh("rf-1", InstanceRefreshStatus::Pending, 0))
                .build()
        })
        .output(|| {
            DescribeInstanceRefreshesOutput::builder()
                .instance_refreshes(refresh("rf-1", InstanceRefreshStatus::InProgress, 50))
                .build()
        })
        .output(|| {
            DescribeInstanceRefreshesOutput::builder()
                .instance_refreshes(refresh("rf-1", InstanceRefreshStatus::Successful, 100))
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&describe]);
    let adapter = AutoScalingFleet::new(client, no_load_balancer());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = adapter
            .describe_instance_refresh(&fleet(), "rf-1")
            .await
            .expect("describe");
        seen.push((r.status, r.percentage_complete));
    }
    assert_eq!(
        seen,
        [
            ("Pending".to_owned(), Some(0)),
            ("InProgress".to_owned(), Some(50)),
            ("Successful".to_owned(), Some(100)),
        ]
    );
}

#[tokio::test]
async fn a_capacity_beyond_the_maximum_is_refused_before_any_change() {
    let group = mock!(Client::describe_auto_scaling_groups).then_output(|| {
        DescribeAutoScalingGroupsOutput::builder()
            .auto_scaling_groups(
                AutoScalingGroup::builder()
                    .auto_scaling_group_name(GROUP)
                    .min_size(1)
                    .max_size(6)
                    .desired_capacity(2)
                    .build(),
            )
            .build()
    });
    let set = mock!(Client::set_desired_capacity)
        .then_output(|| SetDesiredCapacityOutput::builder().build());
    let client = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&group, &set]);
    let err = AutoScalingFleet::new(client, no_load_balancer())
        .set_desired_capacity(&fleet(), 7)
        .await
        .expect_err("above MaxSize");
    assert_eq!(err.name(), "InvalidInput");
    assert_eq!(set.num_calls(), 0, "nothing was changed");
}

#[tokio::test]
async fn with_a_target_group_only_healthy_targets_count() {
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use aws_sdk_elasticloadbalancingv2::types::{
        TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
    };
    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/muejam-api/0123456789abcdef";
    let group = mock!(Client::describe_auto_scaling_groups).then_output(|| {
        DescribeAutoScalingGroupsOutput::builder()
            .auto_scaling_groups(
                AutoScalingGroup::builder()
                    .auto_scaling_group_name(GROUP)
                    .min_size(1)
                    .max_size(6)
                    .desired_capacity(4)
                    .build(),
            )
            .build()
    });
    let target = |state: TargetHealthStateEnum| {
        TargetHealthDescription::builder()
            .target_health(TargetHealth::builder().state(state).build())
            .build()
    };
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .match_requests(|r| r.target_group_arn() == Some(TG))
        .then_output(move || {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(target(TargetHealthStateEnum::Healthy))
                .target_health_descriptions(target(TargetHealthStateEnum::Unhealthy))
                .target_health_descriptions(target(TargetHealthStateEnum::Initial))
                .target_health_descriptions(target(TargetHealthStateEnum::Draining))
                .build()
        });
    let autoscaling = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&group]);
    let elbv2 = mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&health]
    );
    let status = AutoScalingFleet::new(autoscaling, elbv2)
        .describe_fleet(&FleetRef {
            auto_scaling_group: GROUP.into(),
            target_group_arn: Some(TG.into()),
            region: None,
        })
        .await
        .expect("described");
    assert_eq!((status.healthy_targets, status.unhealthy_targets), (1, 3));
}
