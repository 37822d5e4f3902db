//! The region failover end to end on the local stack: us-east-1 taken
//! down as a whole, the newest verified copy restored in us-west-2 after an
//! approval, verified against its row counts, the record moved, a replica
//! built there; and every way it must not happen.

mod common;

use std::collections::BTreeMap;

use common::*;
use dr_core::*;
use serde_json::{json, Value};

const REGION: &str = "statemachines/region-failover.asl.json";
const RESTORED: &str = "muejam-db-prod-r1";
const NEW_DR_REPLICA: &str = "muejam-db-prod-r2";
const FLEET: &str = "muejam-dr-app";
const APPROVED: &str =
    r#"return={"approved":true,"by":"test","at":"2026-11-27T00:00:00Z","reason":null}"#;

/// A stack with a verified copy in us-west-2 and an empty application
/// fleet there.
async fn prepared_stack() -> Stack {
    let stack = Stack::up();
    stack.replicate_to_us_west_2();
    let autoscaling = west_autoscaling(&stack).await;
    autoscaling
        .create_launch_configuration()
        .launch_configuration_name("muejam-dr-app")
        .image_id("ami-12c6146b")
        .instance_type("t3.medium")
        .send()
        .await
        .expect("launch configuration");
    autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(FLEET)
        .launch_configuration_name("muejam-dr-app")
        .min_size(0)
        .max_size(4)
        .desired_capacity(0)
        .availability_zones("us-west-2a")
        .send()
        .await
        .expect("fleet");
    stack
}

async fn west_autoscaling(stack: &Stack) -> aws_sdk_autoscaling::Client {
    let moto = stack
        .platform()
        .store()
        .read()
        .expect("state")
        .moto
        .expect("moto");
    let config = dr_aws::AwsTarget::moto(&dr_local::moto::endpoint(&moto), "us-west-2")
        .load()
        .await;
    aws_sdk_autoscaling::Client::new(&config)
}

async fn fleet_capacity(stack: &Stack) -> i32 {
    west_autoscaling(stack)
        .await
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(FLEET)
        .send()
        .await
        .expect("describe")
        .auto_scaling_groups()
        .first()
        .and_then(|g| g.desired_capacity())
        .expect("group")
}

/// The sample input with `changes`, aimed at the local stack: the primary's
/// port (the application's), no RDS placement, one-second polls.
async fn request(stack: &Stack, changes: Value) -> Value {
    let mut input: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/region-failover.json")).expect("event"),
    )
    .expect("json");
    let port = stack
        .describe(PRIMARY)
        .await
        .endpoint
        .expect("endpoint")
        .port;
    input["database_port"] = json!(port);
    input["network"] = Value::Null;
    input["instance_class"] = Value::Null;
    input["poll_interval_seconds"] = json!(1);
    input["approval_timeout_seconds"] = json!(300);
    input["fleet"] = json!({"auto_scaling_group": FLEET, "desired_capacity": 2});
    if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
        i.extend(c.clone());
    }
    input
}

/// The region failover on `input` with virtual waits, named, with `faults`.
fn run_with_faults(stack: &Stack, input: &Value, name: &str, faults: &[&str]) -> (i32, Value) {
    let mut extra = vec!["--virtual-time", "--name", name];
    for fault in faults {
        extra.extend(["--fault", fault]);
    }
    stack.run(REGION, input, &extra)
}

fn outage(stack: &Stack, verb: &str) {
    let out = drctl(
        &stack.home,
        &["local", verb, "us-east-1", "--home", stack.home_str()],
    );
    assert!(
        out.status.success(),
        "{verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn west(stack: &Stack) -> dr_local::LocalControlPlane {
    stack.platform().in_region("us-west-2").expect("west")
}

/// The verified copy snapshot replication made in us-west-2.
async fn verified_copy(stack: &Stack) -> SnapshotDescription {
    west(stack)
        .list_snapshots(None)
        .await
        .expect("copies")
        .into_iter()
        .next()
        .expect("a verified copy")
}

async fn west_instances(stack: &Stack) -> Vec<String> {
    west(stack)
        .list_instances()
        .await
        .expect("us-west-2")
        .iter()
        .map(|i| i.instance_id.to_string())
        .collect()
}

async fn west_counts(stack: &Stack, instance: &str) -> BTreeMap<String, u64> {
    let target = west(stack)
        .database_target(&id(instance), None)
        .expect("target");
    let client = dr_postgres::connect(&target).await.expect("connect");
    dr_postgres::target::table_row_counts(&client)
        .await
        .expect("counts")
}

fn report_of(stack: &Stack, name: &str) -> Value {
    stack.report_named("region-failover", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_region_is_failed_over_to_the_verified_copy_once_a_person_approves() {
    let stack = prepared_stack().await;
    let copy = verified_copy(&stack).await;
    let input = request(&stack, json!({})).await;
    let dns_before = stack.dns_value().await;
    outage(&stack, "region-outage");

    let mut run = Background::start(&stack, REGION, &input, "region-1", &[]);
    let question = run.wait_for_message(&stack, "APPROVAL NEEDED");
    let body = question["message"].as_str().unwrap_or_default().to_owned();
    assert!(body.contains(copy.snapshot_id.as_str()), "{body}");
    assert!(
        body.contains("everything written after it is lost"),
        "{body}"
    );
    assert!(body.contains("RTO budget left"), "{body}");
    assert!(body.contains("the region is down"), "{body}");
    assert!(
        west_instances(&stack).await.is_empty(),
        "nothing is created before the answer"
    );
    let out = answer(&stack, "approve", "region-1", "us-east-1 is gone, go");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");

    // A primary in us-west-2 holding exactly the copy's rows; the record
    // points at it; a replica follows it there.
    let restored = west(&stack)
        .describe_instance(&id(RESTORED))
        .await
        .expect("restored");
    assert!(restored.is_standalone_and_available());
    assert!(
        !restored.is_ephemeral(),
        "adopted: no cleanup may delete it"
    );
    assert_eq!(
        Some(west_counts(&stack, RESTORED).await),
        copy.row_counts,
        "the copy's rows, table by table"
    );
    let address = restored.endpoint.expect("endpoint").address;
    assert_eq!(stack.dns_value().await, address);
    assert_ne!(dns_before, address);
    let replica = west(&stack)
        .describe_instance(&id(NEW_DR_REPLICA))
        .await
        .expect("replica");
    assert_eq!(replica.replication_source, Some(id(RESTORED)));
    assert!(replica
        .availability_zone
        .as_deref()
        .is_some_and(|z| z.starts_with("us-west-2")));
    assert_eq!(
        fleet_capacity(&stack).await,
        2,
        "the backup fleet was raised"
    );

    // The registry: the database lives in us-west-2; the old roles are
    // retired, never to be promoted.
    let topology = stack.topology().await;
    assert_eq!(topology.primary, id(RESTORED));
    assert_eq!(topology.region.as_deref(), Some("us-west-2"));
    assert_eq!(topology.replicas, [id(NEW_DR_REPLICA)]);
    assert!(topology.retired.contains(&id(PRIMARY)) && topology.retired.contains(&id(REPLICA)));
    assert!(stack.locks().await.is_empty(), "the lock is released");

    let report = report_of(&stack, "region-1");
    assert_eq!(report["passed"], true, "{report:#}");
    assert!(
        report["rto"]["achieved_seconds"].as_f64().is_some(),
        "{report:#}"
    );
    assert_eq!(report["rto"]["met"], true);
    assert!(report["rpo"]["achieved_seconds"]
        .as_f64()
        .is_some_and(|s| s >= 0.0));
    assert_eq!(report["rpo"]["met"], true);
    assert!(report["approval"]
        .as_str()
        .is_some_and(|a| a.contains("approved by alice")));
    assert_eq!(report["verification"]["baseline_compared"], true);
    assert!(report["warnings"][0]
        .as_str()
        .is_some_and(|w| w.contains("could not be fenced")));
    let page = wait_for_message(&stack, "region failover of muejam: succeeded");
    assert!(page["message"]
        .as_str()
        .is_some_and(|m| m.contains("New primary: **muejam-db-prod-r1**")));

    // A second run finds nothing to do: the database already lives in
    // us-west-2, whose API answers.
    let (code, result) = stack.run(REGION, &input, &["--virtual-time", "--name", "region-2"]);
    assert_eq!(code, 2, "{result:#}");
    assert_eq!(result["error"], "InvalidInput");
    let refused = report_of(&stack, "region-2");
    assert_eq!(refused["outcome"], "failed", "{refused:#}");
    assert!(refused["error"][1]
        .as_str()
        .is_some_and(|c| c.contains("already lives in us-west-2")));
    wait_for_message(&stack, "region failover of muejam: failed");
    // The other recoveries of this deployment (which acts in us-east-1)
    // refuse the database by name instead of failing to find it.
    let (code, result) = stack.alarm_failover(json!({}), &["--virtual-time"]);
    assert_eq!(code, 2, "{result:#}");
    assert!(
        result["cause"]
            .as_str()
            .is_some_and(|c| c.contains("lives in us-west-2")),
        "{result:#}"
    );
    outage(&stack, "region-restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_no_answer_or_a_healthy_region_create_nothing() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let input = request(&stack, json!({})).await;
    let quick = request(&stack, json!({"approval_timeout_seconds": 60})).await;

    // us-east-1 healthy: a false alarm; nothing anywhere changes.
    let (code, result) = stack.run(REGION, &input, &["--virtual-time", "--name", "healthy"]);
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&stack, "healthy");
    assert_eq!(report["outcome"], "false_alarm", "{report:#}");
    assert!(report["evidence"].as_array().is_some_and(|e| e
        .iter()
        .any(|r| r.as_str().is_some_and(|r| r.contains("no region failure")))));
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);
    assert_eq!(fleet_capacity(&stack).await, 0);

    outage(&stack, "region-outage");
    // Rejected: nothing is created; the page says who said no.
    let mut run = Background::start(&stack, REGION, &input, "region-no", &[]);
    run.wait_for_message(&stack, "APPROVAL NEEDED");
    let out = answer(
        &stack,
        "reject",
        "region-no",
        "the region is coming back, wait",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, result) = run.finish();
    assert_eq!(
        code, 0,
        "a rejection is an answer, not a failure: {result:#}"
    );
    assert_eq!(report_of(&stack, "region-no")["outcome"], "rejected");
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);
    wait_for_message(&stack, "region failover of muejam: rejected");

    // Nobody answers before the deadline: nothing created, a page.
    let (code, result) = stack.run(REGION, &quick, &["--virtual-time", "--name", "region-late"]);
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "NotFailedOver", "{result:#}");
    assert_eq!(report_of(&stack, "region-late")["outcome"], "not_approved");
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);
    let page = wait_for_message(&stack, "region failover of muejam: not_approved");
    assert!(page["message"]
        .as_str()
        .is_some_and(|m| m.contains("FAILED")));
    assert_eq!(fleet_capacity(&stack).await, 0);
    assert!(stack.locks().await.is_empty());
    outage(&stack, "region-restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_switches_nothing_leaves_no_restore_and_pages() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let input = request(&stack, json!({})).await;
    outage(&stack, "region-outage");
    let before_pages = stack.messages().len();
    let tasks = [
        "AcquireLock",
        "ProbeRecord",
        "Confirm",
        "ChooseCopy",
        "RequestApproval",
        "StartRestore",
        "DescribeRestore",
        "VerifyRestore",
        "SwitchDns",
    ];
    for task in tasks {
        let name = format!("fault-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        // The approval is answered yes by the runner, unless it is the
        // task that fails.
        let approve = if task == "RequestApproval" {
            fault.clone()
        } else {
            format!("RequestApproval:1:{APPROVED}")
        };
        let (code, result) = run_with_faults(&stack, &input, &name, &[&fault, &approve]);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "Unsafe", "{task}: {result:#}");
        assert_eq!(
            stack.dns_value().await,
            dns_before,
            "{task}: nothing switched"
        );
        assert!(
            west_instances(&stack).await.is_empty(),
            "{task}: the restore is discarded"
        );
        assert!(
            stack.locks().await.is_empty(),
            "{task}: the lock is released"
        );
        assert_eq!(report_of(&stack, &name)["outcome"], "failed", "{task}");
    }
    let pages = stack.messages().len() - before_pages;
    assert!(pages >= tasks.len(), "a page per failed run ({pages})");

    // A failure after the switch: the record points at the verified restore
    // (never anything else), which is kept; the report says failed.
    let (code, result) = run_with_faults(
        &stack,
        &input,
        "fault-recordswitch",
        &[
            "RecordSwitch:1:Unsafe",
            &format!("RequestApproval:1:{APPROVED}"),
        ],
    );
    assert_eq!(code, 1, "{result:#}");
    let restored = west(&stack)
        .describe_instance(&id(RESTORED))
        .await
        .expect("kept");
    assert_eq!(
        stack.dns_value().await,
        restored.endpoint.expect("endpoint").address,
        "the record points at the verified restore"
    );
    assert_eq!(report_of(&stack, "fault-recordswitch")["outcome"], "failed");
    outage(&stack, "region-restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_evacuation_loses_no_row_and_gives_the_writes_back_on_the_new_primary() {
    let stack = prepared_stack().await;
    let input = request(
        &stack,
        json!({"mode": "planned", "kms_key_id": "local/us-west-2/snapshots"}),
    )
    .await;
    // One throttle at every task on the way: each is retried.
    let throttled = [
        "AcquireLock",
        "ProbeRecord",
        "Confirm",
        "StopWrites",
        "FinalSnapshot",
        "CopyFinal",
        "VerifyFinalCopy",
        "ChooseCopy",
        "StartRestore",
        "DescribeRestore",
        "VerifyRestore",
        "ScaleFleet",
        "SwitchDns",
        "Adopt",
        "DnsStatus",
        "RecordSwitch",
        "VerifyNewPrimary",
        "GrantWrites",
        "CreateReplica",
        "RecordReplica",
        "ReleaseLock",
        "Report",
    ]
    .map(|t| format!("{t}:1:Throttled"));
    let faults: Vec<&str> = throttled.iter().map(String::as_str).collect();
    let (code, result) = run_with_faults(&stack, &input, "evacuate", &faults);
    assert_eq!(code, 0, "{result:#}");

    // Every row the old primary held when its writes stopped is in the new one.
    let old = stack.sql(PRIMARY).await;
    let at_stop = dr_postgres::target::table_row_counts(&old)
        .await
        .expect("counts");
    assert_eq!(west_counts(&stack, RESTORED).await, at_stop);
    let report = report_of(&stack, "evacuate");
    assert_eq!(
        report["copy"]["row_counts"],
        serde_json::to_value(&at_stop).expect("json"),
        "the restore is held to the counts taken when the writes stopped"
    );
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["rows_lost"], 0, "{report:#}");
    assert_eq!(report["rpo"]["achieved_seconds"], 0.0);
    let restored = west(&stack)
        .describe_instance(&id(RESTORED))
        .await
        .expect("restored");
    assert_eq!(
        stack.dns_value().await,
        restored.endpoint.expect("endpoint").address
    );

    // The application writes on the new primary, and no longer on the old.
    assert!(
        application_can_write(&stack, RESTORED, "us-west-2").await,
        "writes given back on the new primary"
    );
    assert!(
        !application_can_write(&stack, PRIMARY, "us-east-1").await,
        "the old primary takes no application write"
    );
    assert_eq!(stack.topology().await.region.as_deref(), Some("us-west-2"));
}

/// Whether the application's role may write (INSERT into stories) on an
/// instance of `region`.
async fn application_can_write(stack: &Stack, instance: &str, region: &str) -> bool {
    let application = stack
        .topology()
        .await
        .application
        .expect("application role");
    let master = stack
        .platform()
        .in_region(region)
        .expect("region")
        .database_target(&id(instance), None)
        .expect("target");
    let client = dr_postgres::connect(&master).await.expect("connect");
    client
        .query_one(
            "SELECT has_table_privilege($1, 'public.stories', 'INSERT')",
            &[&application.role],
        )
        .await
        .expect("privilege")
        .get::<_, bool>(0)
}

fn warned(report: &Value, text: &str) -> bool {
    report["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(text)))
    })
}

/// Planned mode: a failure before the switch switches nothing, leaves no
/// restore and gives the stopped writes back on the old primary; writes not
/// given back on the new primary after the switch leave the evacuation
/// standing and say the application is read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_evacuation_that_fails_gives_the_writes_back_and_switches_nothing() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let topology_before = serde_json::to_value(stack.topology().await).expect("json");
    let input = request(
        &stack,
        json!({"mode": "planned", "kms_key_id": "local/us-west-2/snapshots"}),
    )
    .await;
    let tasks = [
        "StopWrites",
        "FinalSnapshot",
        "CopyFinal",
        "VerifyFinalCopy",
        "ChooseCopy",
        "StartRestore",
        "DescribeRestore",
        "VerifyRestore",
        "SwitchDns",
    ];
    for task in tasks {
        let name = format!("planned-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = run_with_faults(&stack, &input, &name, &[&fault]);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "Unsafe", "{task}: {result:#}");
        assert_eq!(
            stack.dns_value().await,
            dns_before,
            "{task}: nothing switched"
        );
        assert!(
            west_instances(&stack).await.is_empty(),
            "{task}: the restore is discarded"
        );
        assert!(
            stack.locks().await.is_empty(),
            "{task}: the lock is released"
        );
        assert!(
            application_can_write(&stack, PRIMARY, "us-east-1").await,
            "{task}: the writes are given back on the old primary"
        );
        let report = report_of(&stack, &name);
        assert_eq!(report["outcome"], "failed", "{task}");
        assert!(
            report["warnings"].as_array().is_some_and(Vec::is_empty),
            "{task}: {report:#}"
        );
    }

    let (code, result) =
        run_with_faults(&stack, &input, "planned-grant", &["GrantWrites:1:Unsafe"]);
    assert_eq!(code, 0, "the evacuation stands: {result:#}");
    let restored = west(&stack)
        .describe_instance(&id(RESTORED))
        .await
        .expect("restored");
    assert_eq!(
        stack.dns_value().await,
        restored.endpoint.expect("endpoint").address
    );
    assert!(!application_can_write(&stack, RESTORED, "us-west-2").await);
    let report = report_of(&stack, "planned-grant");
    assert_eq!(report["outcome"], "succeeded");
    assert!(
        warned(&report, "the application is read-only until they are"),
        "{report:#}"
    );
    wait_for_message(&stack, "region failover of muejam: succeeded");
    undo_switch(&stack, &dns_before, &topology_before).await;
}

/// A run killed (SIGKILL) after its restore began: the death rule's
/// function (what EventBridge calls on FAILED / TIMED_OUT / ABORTED)
/// deletes the restore it never switched to; the record never moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_dies_after_restoring_is_swept_by_the_death_rule() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let input = request(&stack, json!({})).await;
    outage(&stack, "region-outage");
    // Throttled at the restore's first look, the run sleeps in a retry:
    // killed there.
    let approve = format!("RequestApproval:1:{APPROVED}");
    kill_after(
        &stack,
        &input,
        "dies-1",
        &[&approve, "DescribeRestore:1:Throttled"],
        "✔ StartRestore",
    );
    assert_eq!(
        west_instances(&stack).await,
        [RESTORED],
        "the dead run left its restore"
    );

    let output = sweep(&stack, &input, "dies-1");
    assert_eq!(output["deleted"], json!([RESTORED]), "{output:#}");
    assert_eq!(
        output["writes"],
        "the run never stopped the application's writes"
    );
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);
    // Again (the rule may deliver twice): nothing more to do, no error.
    let output = sweep(&stack, &input, "dies-1");
    assert_eq!(output["deleted"], json!([]), "{output:#}");
    outage(&stack, "region-restore");
}

/// Starts the region failover with `faults` and kills it (SIGKILL) once its
/// progress shows `line`.
fn kill_after(stack: &Stack, input: &Value, name: &str, faults: &[&str], line: &str) {
    let mut extra = Vec::new();
    for fault in faults {
        extra.extend(["--fault", fault]);
    }
    let mut run = Background::start(stack, REGION, input, name, &extra);
    run.wait_for_line(line);
    run.kill();
}

/// What the death rules call for the run `name` that ended ABORTED: the
/// region-restore sweep (its output) and the cleanup that gives stopped
/// writes back (its `writes` merged in).
fn sweep(stack: &Stack, input: &Value, name: &str) -> Value {
    let invoke = |function: &str, event: Value| stack.invoke(function, &event);
    // The payloads as the template's rules make them from the status change.
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let status_change = json!({
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"name": name, "input": input.to_string(), "status": "ABORTED"}
    });
    let payload = |function: &str, rule: &str| {
        template
            .event_rules(function)
            .expect("rules")
            .iter()
            .find(|r| r.name == rule)
            .unwrap_or_else(|| panic!("{function} has no rule {rule}"))
            .transform(&status_change)
            .expect("transforms")
    };
    let mut output = invoke(
        "region-restore",
        payload("RegionRestoreFunction", "RegionFailoverEnded"),
    );
    let cleanup = invoke(
        "corruption-cleanup",
        payload("CorruptionCleanupFunction", "RegionFailoverWritesEnded"),
    );
    assert_eq!(cleanup["candidates_deleted"], json!([]), "{cleanup:#}");
    output["writes"] = cleanup["writes"].clone();
    output
}

/// A planned run killed after stopping the writes: the sweep gives them back
/// on the old primary. Killed after the record's switch began: they stay
/// stopped (two writable primaries would be one step away) and the restore
/// the record points at is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_run_that_dies_gets_its_writes_back_unless_the_switch_began() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let input = request(
        &stack,
        json!({"mode": "planned", "kms_key_id": "local/us-west-2/snapshots"}),
    )
    .await;
    kill_after(
        &stack,
        &input,
        "evacuate-1",
        &["FinalSnapshot:1:Throttled"],
        "✔ StopWrites",
    );
    assert!(
        !application_can_write(&stack, PRIMARY, "us-east-1").await,
        "the dead run left the writes stopped"
    );
    let output = sweep(&stack, &input, "evacuate-1");
    assert!(
        output["writes"]
            .as_str()
            .is_some_and(|w| w.starts_with("gave muejam_app its writes back")),
        "{output:#}"
    );
    assert!(application_can_write(&stack, PRIMARY, "us-east-1").await);
    assert_eq!(stack.dns_value().await, dns_before);

    kill_after(
        &stack,
        &input,
        "evacuate-2",
        &["Adopt:1:Throttled"],
        "✔ SwitchDns",
    );
    let output = sweep(&stack, &input, "evacuate-2");
    assert!(
        output["writes"]
            .as_str()
            .is_some_and(|w| w.starts_with("the record's switch had begun")),
        "{output:#}"
    );
    assert!(!application_can_write(&stack, PRIMARY, "us-east-1").await);
    assert_eq!(
        output["deleted"],
        json!([]),
        "the record points at it: {output:#}"
    );
    assert_eq!(west_instances(&stack).await, [RESTORED]);
}

/// Puts the stack back as it was before a switch: the record on the old
/// primary, the registry's old record, no instance in us-west-2.
async fn undo_switch(stack: &Stack, dns_before: &str, topology_before: &Value) {
    let route53 = stack.moto_clients().await.route53;
    let dns = dr_aws::Route53Dns::new(route53);
    let zone = dns
        .get_record("muejam.internal", "db.muejam.internal", "CNAME")
        .await
        .expect("record")
        .expect("exists")
        .hosted_zone_id;
    dns.upsert_record(&DnsRecord {
        hosted_zone_id: zone,
        name: "db.muejam.internal".into(),
        record_type: "CNAME".into(),
        ttl: 60,
        value: dns_before.to_owned(),
    })
    .await
    .expect("record back");
    stack.write_raw_topology(topology_before).await;
    for instance in west_instances(stack).await {
        west(stack)
            .delete_instance(&id(&instance), DeleteOptions { force: true })
            .await
            .expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_switch_leaves_the_record_on_the_verified_restore() {
    let stack = prepared_stack().await;
    let dns_before = stack.dns_value().await;
    let topology_before = serde_json::to_value(stack.topology().await).expect("json");
    let input = request(&stack, json!({})).await;
    outage(&stack, "region-outage");
    let approve = format!("RequestApproval:1:{APPROVED}");
    // Past the switch a failure cannot undo it: the record stays on the
    // verified restore, which is kept (never discarded), and the run fails
    // with a page.
    for task in ["Adopt", "DnsStatus", "VerifyNewPrimary"] {
        let name = format!("late-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = run_with_faults(&stack, &input, &name, &[&fault, &approve]);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "Unsafe", "{task}");
        let restored = west(&stack)
            .describe_instance(&id(RESTORED))
            .await
            .unwrap_or_else(|e| panic!("{task}: the restore is kept: {e}"));
        assert!(restored.is_standalone_and_available(), "{task}");
        assert_eq!(
            stack.dns_value().await,
            restored.endpoint.expect("endpoint").address,
            "{task}: the record points at the verified restore"
        );
        assert_eq!(report_of(&stack, &name)["outcome"], "failed", "{task}");
        assert!(stack.locks().await.is_empty(), "{task}");
        undo_switch(&stack, &dns_before, &topology_before).await;
    }
    // The replica is aftercare: the failover stands, the report says what
    // is missing.
    let (code, result) = run_with_faults(
        &stack,
        &input,
        "late-replica",
        &["CreateReplica:1:Unsafe", &approve],
    );
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&stack, "late-replica");
    assert_eq!(report["outcome"], "succeeded");
    assert!(
        report["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("replica")))),
        "{report:#}"
    );
    assert_eq!(west_instances(&stack).await, [RESTORED]);
    undo_switch(&stack, &dns_before, &topology_before).await;

    // Aftercare that fails is said, never silent: the fleet, the replica's
    // registration, the lock.
    for (task, says) in [
        ("ScaleFleet", "did not reach its capacity"),
        ("RecordReplica", "the topology registry does not list it"),
        (
            "ReleaseLock",
            "the recovery lock on muejam was not released",
        ),
    ] {
        let name = format!("aftercare-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = run_with_faults(&stack, &input, &name, &[&fault, &approve]);
        assert_eq!(code, 0, "{task}: {result:#}");
        let report = report_of(&stack, &name);
        assert_eq!(report["outcome"], "succeeded", "{task}");
        assert!(warned(&report, says), "{task}: {report:#}");
        if task == "RecordReplica" {
            assert_eq!(stack.topology().await.replicas, Vec::<InstanceId>::new());
        }
        undo_switch(&stack, &dns_before, &topology_before).await;
    }
    // The next run takes over the lock the last one left (its holder ended).
    // A report that fails: its page says so, with where things stand, and
    // the run fails with the report's error.
    let (code, result) = run_with_faults(
        &stack,
        &input,
        "aftercare-report",
        &["Report:1:Unsafe", &approve],
    );
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "Unsafe");
    let page = wait_for_message(
        &stack,
        "region failover of muejam: succeeded, REPORT FAILED",
    );
    assert!(
        page["message"]
            .as_str()
            .is_some_and(|m| m.contains("points at muejam-db-prod-r1 in us-west-2, verified")),
        "{page:#}"
    );
    assert!(stack.locks().await.is_empty());
    outage(&stack, "region-restore");
}

/// The quarterly drill's rehearsal: the newest verified copy restored into
/// a drill instance in us-west-2 and verified, then deleted; production's
/// lock (held here by a running recovery), record and registry untouched,
/// nobody asked or paged. A fault at the verification fails it and still
/// leaves nothing; a rehearsal is the drill's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_rehearsal_restores_and_verifies_the_newest_copy_then_deletes_it_touching_nothing_of_production(
) {
    let stack = prepared_stack().await;
    let copy = verified_copy(&stack).await;
    let dns_before = stack.dns_value().await;
    let topology_before = stack.topology().await;
    let owner = "arn:aws:states:us-east-1:000000000000:execution:database-failover:real-one";
    let _held = stack.hold_recovery_lock("muejam", owner).await;
    let rehearsal = json!({
        "mode": "rehearsal",
        "fleet": null,
        "drill": {"drill_id": "drill-rehearsal", "source": PRIMARY},
        "trigger": {"source": "drill", "reason": "quarterly drill"}
    });
    let input = request(&stack, rehearsal.clone()).await;
    let (code, result) = run_with_faults(&stack, &input, "rehearsal-1", &[]);
    assert_eq!(code, 0, "{result:#}");

    let report = report_of(&stack, "rehearsal-1");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["mode"], "rehearsal");
    assert_eq!(report["copy"]["snapshot_id"], copy.snapshot_id.as_str());
    assert!(
        report["rto"]["achieved_seconds"].as_f64().is_some(),
        "{report:#}"
    );
    assert!(report["rpo"]["achieved_seconds"]
        .as_f64()
        .is_some_and(|s| s >= 0.0));
    assert_eq!(report["verification"]["passed"], true);
    assert_eq!(report["verification"]["baseline_compared"], true);
    assert_eq!(report["new_primary"], Value::Null);
    assert!(report["approval"].is_null(), "nobody was asked: {report:#}");
    let changes = report["changes"].to_string();
    assert!(
        changes.contains("drill-muejam-db-prod-drillrehears-region"),
        "{changes}"
    );
    assert!(
        changes.contains("deleted the unswitched restore"),
        "{changes}"
    );

    // Nothing is left in us-west-2; production is as it was.
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);
    assert_eq!(stack.topology().await, topology_before);
    let locks = stack.locks().await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(
        locks[0].owner, owner,
        "the real recovery's lock stays its own"
    );
    assert!(
        !stack
            .messages()
            .iter()
            .any(|m| m.to_string().contains("APPROVAL NEEDED")),
        "nobody is asked"
    );

    // A fault at the verification fails the rehearsal; the restore still goes.
    let (code, result) =
        run_with_faults(&stack, &input, "rehearsal-2", &["VerifyRestore:1:Unsafe"]);
    assert_ne!(code, 0, "{result:#}");
    let failed = report_of(&stack, "rehearsal-2");
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.dns_value().await, dns_before);

    // A rehearsal is the drill's alone, and a drill only rehearses.
    let by_person = request(
        &stack,
        json!({"mode": "rehearsal", "fleet": null, "drill": {"drill_id": "drill-x", "source": PRIMARY}}),
    )
    .await;
    let (code, result) = run_with_faults(&stack, &by_person, "rehearsal-3", &[]);
    assert_eq!(code, 2, "{result:#}");
    let drill_failover = request(
        &stack,
        json!({"trigger": {"source": "drill", "reason": "quarterly drill"}}),
    )
    .await;
    let (code, result) = run_with_faults(&stack, &drill_failover, "rehearsal-4", &[]);
    assert_eq!(code, 2, "{result:#}");
    assert!(west_instances(&stack).await.is_empty());
    assert_eq!(stack.topology().await, topology_before);
}
