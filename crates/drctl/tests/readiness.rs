//! `drctl readiness` on the local stack: every scenario ready on a healthy
//! stack with a verified backup-region copy; then each thing that breaks a
//! scenario (the replica down, the copy gone, nobody subscribed to the
//! alerts) makes exactly the scenarios that need it not ready, each with
//! the reason.

mod common;

use common::*;
use dr_core::*;
use serde_json::{json, Value};

const REPLICATION: &str = "statemachines/snapshot-replication.asl.json";

/// What a deployed stack has (the template's alarms, rules and schedules),
/// in moto: the failover's and the app's alarms, each sent by an enabled
/// rule to its state machine, GuardDuty's findings to the containment, and
/// the drill's and the replication's schedules. Returns the failover rule's
/// name.
async fn seed_triggers(stack: &Stack) -> String {
    use aws_sdk_cloudwatch::types::ComparisonOperator;
    let clients = stack.moto_clients().await;
    for alarm in [
        "muejam-db-prod-unreachable",
        "local-app-no-healthy-hosts",
        "local-app-5xx-rate",
    ] {
        clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(alarm)
            .namespace("MueJam/DR")
            .metric_name("DatabaseProbeSuccess")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .period(60)
            .evaluation_periods(3)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::LessThanThreshold)
            .actions_enabled(true)
            .send()
            .await
            .expect("alarm");
    }
    let arn = |sm: &str| format!("arn:aws:states:local:000000000000:stateMachine:{sm}");
    let rules = [
        (
            "failover-alarm",
            json!({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                   "detail": {"alarmName": ["muejam-db-prod-unreachable"], "state": {"value": ["ALARM"]}}}),
            arn("database-failover"),
        ),
        (
            "app-alarms",
            json!({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                   "detail": {"alarmName": ["local-app-no-healthy-hosts", "local-app-5xx-rate"], "state": {"value": ["ALARM"]}}}),
            arn("app-server-recovery"),
        ),
        (
            "guardduty-findings",
            json!({"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}),
            arn("security-breach"),
        ),
    ];
    for (name, pattern, target) in rules {
        clients
            .events
            .put_rule()
            .name(name)
            .event_pattern(pattern.to_string())
            .state(aws_sdk_eventbridge::types::RuleState::Enabled)
            .send()
            .await
            .expect("rule");
        clients
            .events
            .put_targets()
            .rule(name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("sfn")
                    .arn(target)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("target");
    }
    for (name, expression, target) in [
        (
            "local-quarterly-drill",
            "cron(0 2 ? JAN,APR,JUL,OCT SUN#1 *)",
            "dr-drill",
        ),
        ("local-replication", "rate(6 hours)", "snapshot-replication"),
    ] {
        set_schedule(&clients.scheduler, name, expression, &arn(target), true).await;
    }
    "failover-alarm".to_owned()
}

/// Creates, or replaces, a schedule of the default group.
async fn set_schedule(
    scheduler: &aws_sdk_scheduler::Client,
    name: &str,
    expression: &str,
    target: &str,
    enabled: bool,
) {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState};
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .expect("window");
    let target = aws_sdk_scheduler::types::Target::builder()
        .arn(target)
        .role_arn("arn:aws:iam::000000000000:role/scheduler")
        .build()
        .expect("target");
    let state = if enabled {
        ScheduleState::Enabled
    } else {
        ScheduleState::Disabled
    };
    if scheduler.get_schedule().name(name).send().await.is_ok() {
        scheduler
            .delete_schedule()
            .name(name)
            .send()
            .await
            .expect("delete schedule");
    }
    scheduler
        .create_schedule()
        .name(name)
        .schedule_expression(expression)
        .flexible_time_window(window)
        .target(target)
        .state(state)
        .send()
        .await
        .expect("create schedule");
}

/// `drctl readiness --local --output json`: the exit code and the report.
fn readiness(stack: &Stack, request: &Value) -> (i32, Value) {
    let path = stack.home.join(format!("readiness-{}.json", uuid_like()));
    std::fs::write(&path, request.to_string()).expect("request");
    let out = drctl(
        &stack.home,
        &[
            "readiness",
            "--local",
            "--input",
            path.to_str().expect("path"),
            "--output",
            "json",
        ],
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

/// The scenarios not ready, with their reasons.
fn not_ready(report: &Value) -> Vec<(String, Vec<String>)> {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|s| s["ready"] == false)
        .map(|s| {
            (
                s["scenario"].as_str().unwrap_or_default().to_owned(),
                s["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )
        })
        .collect()
}

fn names(not_ready: &[(String, Vec<String>)]) -> Vec<&str> {
    not_ready.iter().map(|(s, _)| s.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_precondition_makes_exactly_its_scenarios_not_ready() {
    let stack = Stack::up();
    // What a deployed stack has: a verified copy in the backup region (the
    // snapshot replication's), and the WAF IP set the breach fills.
    let mut replication: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/snapshot-replication.json")).expect("event"),
    )
    .expect("json");
    replication["kms_key_id"] = json!("local/us-west-2/snapshots");
    replication["poll_interval_seconds"] = json!(1);
    let (code, result) = stack.run(
        REPLICATION,
        &replication,
        &["--virtual-time", "--name", "copy-1"],
    );
    assert_eq!(code, 0, "{result:#}");
    // `drctl executions` lists it, by scenario too.
    let copied = vec![("copy-1".to_owned(), "SUCCEEDED".to_owned())];
    assert_eq!(stack.executions(Some("snapshot-replication")), copied);
    assert_eq!(stack.executions(None), copied);
    assert!(stack.executions(Some("database-failover")).is_empty());
    let ip_set = stack
        .create_ip_set(
            "muejam-blocked",
            aws_sdk_wafv2::types::IpAddressVersion::Ipv4,
            &["198.51.100.1/32"],
        )
        .await;
    let mut request: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/readiness.json")).expect("event"),
    )
    .expect("json");
    request["ip_set"] = json!(ip_set);

    // Nothing wired yet: the scenarios that start by themselves are not
    // ready, each saying what is missing.
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1, "{report:#}");
    let unwired = not_ready(&report);
    assert_eq!(
        names(&unwired),
        [
            "database-failover",
            "region-failover",
            "dr-drill",
            "security-breach",
            "app-server-recovery"
        ],
        "{report:#}"
    );
    assert!(
        unwired[0].1[0]
            .starts_with("failover_trigger: alarm muejam-db-prod-unreachable does not exist"),
        "{unwired:?}"
    );
    assert_eq!(
        unwired[2].1,
        ["drill_schedule: schedule local-quarterly-drill does not exist"]
    );
    let failover_rule = seed_triggers(&stack).await;
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 0, "{report:#}");
    assert!(not_ready(&report).is_empty(), "{report:#}");
    assert_eq!(report["scenarios"].as_array().map(Vec::len), Some(7));

    // The failover's rule disabled (someone "silenced" it): the alarm would
    // fire and nothing would start.
    let events = stack.moto_clients().await.events;
    events
        .disable_rule()
        .name(&failover_rule)
        .send()
        .await
        .expect("disable");
    let (_, report) = readiness(&stack, &request);
    let broken = not_ready(&report);
    assert_eq!(names(&broken), ["database-failover"], "{report:#}");
    assert_eq!(
        broken[0].1,
        ["failover_trigger: no enabled rule sends alarm muejam-db-prod-unreachable to arn:aws:states:local:000000000000:stateMachine:database-failover"]
    );
    events
        .enable_rule()
        .name(&failover_rule)
        .send()
        .await
        .expect("enable");

    // The drill's schedule disabled (paused "for the migration" and never
    // resumed): the quarter would pass without a drill.
    let scheduler = stack.moto_clients().await.scheduler;
    let drill = "arn:aws:states:local:000000000000:stateMachine:dr-drill";
    let quarterly = "cron(0 2 ? JAN,APR,JUL,OCT SUN#1 *)";
    set_schedule(&scheduler, "local-quarterly-drill", quarterly, drill, false).await;
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1, "{report:#}");
    let broken = not_ready(&report);
    assert_eq!(names(&broken), ["dr-drill"], "{report:#}");
    assert_eq!(
        broken[0].1,
        ["drill_schedule: schedule local-quarterly-drill is disabled"]
    );
    set_schedule(&scheduler, "local-quarterly-drill", quarterly, drill, true).await;

    // The roles' permissions asked for, of a state machine moto does not
    // have: not measured, so that scenario alone is not ready; a scenario
    // that does not exist is refused.
    let mut roles = request.clone();
    roles["permissions"] = json!({"deployment-rollback": ["arn:aws:states:us-east-1:123456789012:stateMachine:muejam-deployment-rollback"]});
    let (code, report) = readiness(&stack, &roles);
    assert_eq!(code, 1, "{report:#}");
    let broken = not_ready(&report);
    assert_eq!(names(&broken), ["deployment-rollback"], "{report:#}");
    assert!(
        broken[0].1[0].starts_with("permissions: could not describe state machine arn:aws:states:us-east-1:123456789012:stateMachine:muejam-deployment-rollback (NotFound"),
        "{broken:?}"
    );
    roles["permissions"] =
        json!({"deployment-rollbak": ["arn:aws:states:us-east-1:1:stateMachine:x"]});
    assert_eq!(readiness(&stack, &roles).0, 2);

    // A careless request is refused, not judged.
    let mut bad = request.clone();
    bad["rpo_seconds"] = json!(0);
    assert_eq!(readiness(&stack, &bad).0, 2);
    let mut unknown = request.clone();
    unknown["database"] = json!("muejam-typo");
    assert_eq!(readiness(&stack, &unknown).0, 2);

    // The replica down: only the failover depends on it.
    stack.crash(REPLICA);
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1, "{report:#}");
    let broken = not_ready(&report);
    assert_eq!(names(&broken), ["database-failover"], "{report:#}");
    assert!(
        broken[0].1[0].starts_with("replica_in_sync: no replica in sync: muejam-db-prod-replica"),
        "{broken:?}"
    );

    // The backup region's copy gone: the region failover cannot restore.
    let west = stack.platform().in_region("us-west-2").expect("west");
    for copy in west.list_snapshots(None).await.expect("copies") {
        west.delete_snapshot(&copy.snapshot_id)
            .await
            .expect("delete");
    }
    let (_, report) = readiness(&stack, &request);
    let broken = not_ready(&report);
    assert_eq!(
        names(&broken),
        ["database-failover", "region-failover"],
        "{report:#}"
    );
    assert_eq!(
        broken[1].1,
        ["backup_copy: no verified copy of muejam in us-west-2"]
    );

    // Nobody subscribed to the alerts: no scenario can tell anyone.
    let sns = stack.moto_clients().await.sns;
    let topic = request["alerts_topic_arn"].as_str().expect("topic");
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .expect("subscriptions");
    for s in subscriptions.subscriptions() {
        sns.unsubscribe()
            .subscription_arn(s.subscription_arn().expect("arn"))
            .send()
            .await
            .expect("unsubscribe");
    }
    let (code, report) = readiness(&stack, &request);
    assert_eq!(code, 1);
    let broken = not_ready(&report);
    assert_eq!(broken.len(), 7, "{report:#}");
    assert!(
        broken.iter().all(|(_, reasons)| reasons.iter().any(|r| r
            .starts_with("alerts_subscriber: nobody will read arn:aws:sns:us-east-1:123456789012:muejam-dr-alerts"))),
        "{broken:?}"
    );
}

/// `drctl invoke <function> --local`: the exit code and the output.
fn invoke(stack: &Stack, function: &str, payload: &Value) -> (i32, Value, String) {
    let path = stack.home.join(format!("{function}-{}.json", uuid_like()));
    std::fs::write(&path, payload.to_string()).expect("payload");
    let out = drctl(
        &stack.home,
        &[
            "invoke",
            function,
            "--local",
            "--payload",
            path.to_str().expect("path"),
        ],
    );
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The highest `ScenarioReady` of each scenario in the last minutes (both
/// checks of this test fall in one period, whose minimum is the first's).
async fn ready_metric(stack: &Stack) -> Vec<(String, f64)> {
    let metrics = dr_aws::CloudWatchMetrics::new(stack.moto_clients().await.cloudwatch);
    let mut out = Vec::new();
    for (scenario, _) in dr_scenarios::readiness::SCENARIOS {
        let point = metrics
            .latest(
                "MueJam/DR",
                dr_scenarios::readiness::READY_METRIC,
                &[("Scenario".to_owned(), scenario.to_owned())].into(),
                chrono::Utc::now() - chrono::Duration::minutes(10),
            )
            .await
            .expect("read");
        if let Some(p) = point {
            out.push((scenario.to_owned(), p.maximum));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_check_judges_the_secret_by_the_probe_and_publishes_each_scenario() {
    let stack = Stack::up();
    // The schedule's request, as the template sends it: outside the VPC, the
    // credentials judged from the SQL probe's metric.
    let mut request: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/functions/readiness.json")).expect("event"),
    )
    .expect("json");
    request["backup_region"] = json!(null);
    request["ip_set"] = json!({"name": "", "id": "", "scope": "REGIONAL"});

    seed_triggers(&stack).await;
    // No probe has run yet: the credentials are not measured, so not met.
    let (code, report, stderr) = invoke(&stack, "readiness", &request);
    assert_eq!(code, 0, "{stderr}");
    let failover = not_ready(&report)
        .into_iter()
        .find(|(s, _)| s == "database-failover")
        .expect("the failover is not ready");
    assert!(
        failover
            .1
            .iter()
            .any(|r| r.starts_with("sql_credentials: the SQL probe published no result")),
        "{failover:?}"
    );
    // The probe runs (as its schedule does every minute) and succeeds.
    let primary = stack.describe(PRIMARY).await.endpoint.expect("endpoint");
    let probe = json!({
        "endpoint": {"address": primary.address, "port": primary.port},
        "credentials_secret_id": "muejam/db/master",
        "database_label": "db.muejam.internal",
        "connect_timeout_seconds": 2
    });
    let (code, _, stderr) = invoke(&stack, "probe-database", &probe);
    assert_eq!(code, 0, "{stderr}");
    let (code, report, stderr) = invoke(&stack, "readiness", &request);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        names(&not_ready(&report)),
        ["region-failover", "security-breach"],
        "only what this stack does not configure: {report:#}"
    );
    let sql = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["precondition"] == "sql_credentials")
        .expect("sql finding");
    assert_eq!(sql["met"], true, "{sql}");
    assert!(
        sql["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the SQL probe opened a session through db.muejam.internal"),
        "{sql}"
    );
    // What the alarms watch: one value per scenario, 1 ready, 0 not.
    let published = ready_metric(&stack).await;
    assert_eq!(published.len(), 7, "{published:?}");
    for (scenario, value) in &published {
        let want = if ["region-failover", "security-breach"].contains(&scenario.as_str()) {
            0.0
        } else {
            1.0
        };
        assert_eq!(*value, want, "{scenario}");
    }
    // The report is kept, as JSON and as the table on-call reads.
    let kept: Vec<String> = std::fs::read_dir(stack.home.join("reports/readiness/muejam"))
        .expect("kept")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kept.iter().filter(|k| k.ends_with(".json")).count(),
        2,
        "{kept:?}"
    );
    assert_eq!(
        kept.iter().filter(|k| k.ends_with(".txt")).count(),
        2,
        "{kept:?}"
    );

    // The primary crashes: the probe fails, and the failover (which must
    // connect) is no longer ready by the secret's evidence.
    stack.crash(PRIMARY);
    let (_, _, _) = invoke(&stack, "probe-database", &probe);
    let (_, report, stderr) = invoke(&stack, "readiness", &request);
    let failover = not_ready(&report)
        .into_iter()
        .find(|(s, _)| s == "database-failover")
        .unwrap_or_else(|| panic!("{stderr} {report:#}"));
    assert!(
        failover
            .1
            .iter()
            .any(|r| r.starts_with("sql_credentials: the SQL probe could not open a session")),
        "{failover:?}"
    );
}
