//! The data-corruption recovery end to end on the local stack: real
//! PostgreSQL, point-in-time restores from archived WAL, moto.

mod common;

use std::time::Duration;

use common::*;
use dr_core::*;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

fn report_of(result: &Value) -> Value {
    let path = result["output"]["report"]["json_location"]
        .as_str()
        .unwrap_or_else(|| panic!("no report: {result:#}"));
    serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
}

/// The sample input with `changes`: a 1-second resolution, as the local
/// damage is seconds old.
fn request(changes: Value) -> Value {
    let mut input: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/data-corruption.json")).expect("event"),
    )
    .expect("json");
    let base = json!({"resolution_seconds": 1, "poll_interval_seconds": 1, "approval_timeout_seconds": 300});
    for c in [base, changes] {
        if let (Some(i), Some(c)) = (input.as_object_mut(), c.as_object()) {
            i.extend(c.clone());
        }
    }
    input
}

/// The application's credentials, as the app reads them.
async fn app_target(stack: &Stack, instance: &str) -> DatabaseTarget {
    let secret = dr_aws::SecretsManagerSecrets::new(stack.moto_clients().await.secrets)
        .get_secret("muejam/db/app")
        .await
        .expect("app secret");
    let document: Value = serde_json::from_str(secret.expose_secret()).expect("json");
    let mut target = stack
        .platform()
        .database_target(&id(instance), None)
        .expect("target");
    target.username = document["username"].as_str().expect("username").to_owned();
    target.password =
        SecretString::from(document["password"].as_str().expect("password").to_owned());
    target
}

async fn as_app(stack: &Stack, instance: &str) -> tokio_postgres::Client {
    dr_postgres::connect(&app_target(stack, instance).await)
        .await
        .expect("the app connects")
}

async fn story_ids(client: &tokio_postgres::Client, title: &str) -> Vec<i64> {
    client
        .query(
            "SELECT id FROM stories WHERE title = $1 ORDER BY id",
            &[&title],
        )
        .await
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn corrupt(stack: &Stack, kind: &str, rows: &str) -> Value {
    let out = drctl(
        &stack.home,
        &[
            "local",
            "corrupt",
            PRIMARY,
            "--kind",
            kind,
            "--rows",
            rows,
            "--output",
            "json",
            "--home",
            stack.home_str(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("damage")
}

async fn candidates_left(stack: &Stack) -> Vec<InstanceId> {
    stack
        .instance_ids()
        .await
        .into_iter()
        .filter(|i| i.as_str().contains("-c1"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_clean_moment_is_found_restored_verified_and_switched_to_after_approval() {
    let stack = Stack::up();
    let app = as_app(&stack, PRIMARY).await;
    // As on-call would bound it ("it was fine before W1"): the search
    // narrows seconds, not the whole restorable window since the stack
    // came up, which a loaded machine makes minutes long and rounds more.
    let known_clean = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    app.batch_execute("INSERT INTO stories (author_id, title) VALUES (3, 'W1'), (4, 'W1')")
        .await
        .expect("W1");
    std::thread::sleep(Duration::from_millis(1500));
    let damage = corrupt(&stack, "orphans", "3");
    std::thread::sleep(Duration::from_millis(1500));
    app.batch_execute(
        "INSERT INTO stories (author_id, title) VALUES (5, 'W2'), (6, 'W2'), (7, 'W2');
         UPDATE chapters SET title = 'W2 edit' WHERE id = 1;",
    )
    .await
    .expect("W2");
    std::thread::sleep(Duration::from_millis(1500));
    let w2_ids = story_ids(&app, "W2").await;
    let dns_before = stack.dns_value().await;

    // Named, the application is put in read-only mode before the writes
    // stop (runbook step 2) and out of it at the end.
    let mut run = Background::start(
        &stack,
        DATA_CORRUPTION,
        &request(json!({"app": stack.app_target(), "search_from": known_clean.to_rfc3339()})),
        "corrupt-1",
        &[],
    );
    let question = run.wait_for_message(&stack, "APPROVAL NEEDED");
    assert_eq!(stack.read_only_mode().as_deref(), Some("true"));
    let (code, body) = stack
        .app_write(author(&stack, PRIMARY).await, "during the recovery")
        .await;
    assert_eq!(code, 503, "the API answers writes with maintenance: {body}");
    let body = question["message"].as_str().unwrap_or_default().to_owned();
    assert!(body.contains("drctl approve corrupt-1"), "{body}");
    assert!(
        body.contains("stories: 3 new and 0 changed rows are lost"),
        "{body}"
    );
    assert!(
        body.contains("chapters: 0 new and 1 changed rows are lost"),
        "{body}"
    );

    // While the question waits, the application reads but cannot write,
    // whatever it sets in its session.
    let app = as_app(&stack, PRIMARY).await;
    app.query_one("SELECT count(*) FROM stories", &[])
        .await
        .expect("reads work");
    app.batch_execute("SET default_transaction_read_only = off")
        .await
        .expect("set");
    assert!(app
        .execute(
            "INSERT INTO stories (author_id, title) VALUES (2, 'blocked')",
            &[]
        )
        .await
        .is_err());
    assert_eq!(
        stack.dns_value().await,
        dns_before,
        "nothing switched before the answer"
    );

    answered(
        &stack,
        "approve",
        "corrupt-1",
        "the W2 writes can be replayed",
    );
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&result);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert!(
        report["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by alice") && a.contains("can be replayed")),
        "{report:#}"
    );

    // The chosen moment lies between W1 and the damage, within the resolution.
    let chosen: chrono::DateTime<chrono::Utc> = report["chosen_moment"]
        .as_str()
        .expect("moment")
        .parse()
        .expect("time");
    let before: chrono::DateTime<chrono::Utc> = damage["before"]
        .as_str()
        .expect("before")
        .parse()
        .expect("time");
    assert!(chosen < before, "{chosen} is before the damage ({before})");
    assert!(
        (before - chosen).num_milliseconds() <= 2000,
        "{chosen} within ~1 s of {before}"
    );
    let search = &report["search"];
    assert!(
        search["rounds"].as_u64().expect("rounds")
            <= search["rounds_bound"].as_u64().expect("bound"),
        "{search:#}"
    );

    // DNS points at the restored instance; it holds W1, not the damage, not W2.
    let restored = "muejam-db-prod-r1";
    assert_eq!(stack.dns_value().await, stack.address(restored).await);
    let new_app = as_app(&stack, restored).await;
    assert_eq!(story_ids(&new_app, "W1").await.len(), 2);
    assert!(story_ids(&new_app, "W2").await.is_empty());
    let orphans: i64 = new_app
        .query_one(
            "SELECT count(*) FROM stories s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.author_id)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(orphans, 0, "the damage is not there");
    new_app
        .execute(
            "INSERT INTO stories (author_id, title) VALUES (2, 'after')",
            &[],
        )
        .await
        .expect("the application writes on the new primary");
    assert!(
        report["findings_after"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{report:#}"
    );

    // The corrupt primary is fenced and kept; no candidate is left.
    assert!(stack.describe(PRIMARY).await.tags.contains_key(FENCED_TAG));
    assert!(candidates_left(&stack).await.is_empty());
    let topology = stack.topology().await;
    assert_eq!(topology.primary.as_str(), restored);
    assert_eq!(topology.retired, vec![id(REPLICA)]);
    assert!(stack.locks().await.is_empty(), "the lock is released");

    // W2 is reported lost, exactly, with its keys.
    let tables = report["loss"]["tables"].as_array().expect("tables");
    let stories = tables
        .iter()
        .find(|t| t["table"] == "stories")
        .expect("stories");
    assert_eq!(
        (stories["inserted"].as_u64(), stories["updated"].as_u64()),
        (Some(3), Some(0))
    );
    let users = tables
        .iter()
        .find(|t| t["table"] == "users")
        .expect("users");
    assert_eq!(
        users["deleted"].as_u64(),
        Some(3),
        "the deleted authors come back"
    );
    let csv = std::fs::read_to_string(report["loss"]["keys_location"].as_str().expect("csv"))
        .expect("csv");
    for id in w2_ids {
        assert!(
            csv.contains(&format!("stories,inserted,\"{{\"\"id\"\":\"\"{id}\"\"}}\"")),
            "{id} in {csv}"
        );
    }

    // The application is out of read-only mode, its servers replaced by
    // that rollout, and its writes land on the restored primary.
    assert_eq!(stack.read_only_mode(), None);
    let (code, written) = stack
        .app_write(author(&stack, restored).await, "after the recovery")
        .await;
    assert!((200..300).contains(&code), "{code} {written}");
    let restored_at = stack.describe(restored).await.endpoint.expect("endpoint");
    assert_eq!(
        written["database"],
        json!(format!("{}:{}", restored_at.address, restored_at.port)),
        "{written}"
    );
    let application: Vec<&str> = report["application"]
        .as_array()
        .expect("the application section")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(application.len(), 4, "{application:#?}");
    assert!(
        application[0].starts_with("read-only mode: put muejam/muejam-api in read-only mode"),
        "{application:#?}"
    );
    assert!(
        application[1].contains("and lifted it at"),
        "{application:#?}"
    );
    assert!(
        application[2].contains("successfully rolled out"),
        "{application:#?}"
    );
    assert!(
        application[3].contains("answered 200") && application[3].contains("(healthy)"),
        "{application:#?}"
    );
    assert!(
        report["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c
                .as_str()
                .is_some_and(|c| c.contains("lifted it at") && c.ends_with("(done)")))),
        "{report:#}"
    );
}

/// The application can write on `instance` (its writes were given back).
async fn app_writes(stack: &Stack, instance: &str) -> bool {
    as_app(stack, instance)
        .await
        .execute(
            "INSERT INTO stories (author_id, title) SELECT max(id), 'probe' FROM users",
            &[],
        )
        .await
        .is_ok()
}

/// An author the sample's damage never deletes (`orphans` deletes the
/// lowest ids), read on the primary (reads are never stopped).
async fn author(stack: &Stack, instance: &str) -> i64 {
    as_app(stack, instance)
        .await
        .query_one("SELECT max(id)::bigint FROM users", &[])
        .await
        .expect("an author")
        .get(0)
}

/// Damage committed seconds ago, with writes before and after it.
async fn damaged_stack() -> Stack {
    damaged_stack_with_time().await.0
}

/// [`damaged_stack`], and a moment before the damage.
async fn damaged_stack_with_time() -> (Stack, String) {
    let stack = Stack::up();
    let app = as_app(&stack, PRIMARY).await;
    app.batch_execute("INSERT INTO stories (author_id, title) VALUES (3, 'W1')")
        .await
        .expect("W1");
    std::thread::sleep(Duration::from_millis(1500));
    let damage = corrupt(&stack, "orphans", "2");
    std::thread::sleep(Duration::from_millis(1500));
    app.batch_execute("INSERT INTO stories (author_id, title) VALUES (5, 'W2')")
        .await
        .expect("W2");
    std::thread::sleep(Duration::from_millis(1500));
    let before: chrono::DateTime<chrono::Utc> = damage["before"]
        .as_str()
        .expect("before")
        .parse()
        .expect("time");
    let clean = (before - chrono::Duration::seconds(1)).to_rfc3339();
    (stack, clean)
}

/// Nothing was switched: DNS, roles and the primary's writes as before the run.
async fn nothing_switched(stack: &Stack, dns_before: &str, what: &str) {
    assert_eq!(stack.dns_value().await, dns_before, "{what}: DNS moved");
    assert!(
        !stack.describe(PRIMARY).await.tags.contains_key(FENCED_TAG),
        "{what}: the primary was fenced"
    );
    assert_eq!(stack.topology().await.primary.as_str(), PRIMARY, "{what}");
    assert!(
        app_writes(stack, PRIMARY).await,
        "{what}: the application cannot write"
    );
    assert!(
        candidates_left(stack).await.is_empty(),
        "{what}: candidates left"
    );
    assert!(stack.locks().await.is_empty(), "{what}: the lock is held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_switches_nothing_and_gives_the_writes_back() {
    let (stack, clean_moment) = damaged_stack_with_time().await;
    let dns_before = stack.dns_value().await;
    // The moment is named: the rejection is what is tested, not the search
    // (whose nine restores under a loaded CI took minutes).
    let mut run = Background::start(
        &stack,
        DATA_CORRUPTION,
        &request(json!({"app": stack.app_target(), "restore_time": clean_moment})),
        "corrupt-2",
        &[],
    );
    // A run that ends (or stalls) before it asks fails here, with what it
    // printed.
    run.wait_for_message(&stack, "APPROVAL NEEDED");
    assert!(
        !app_writes(&stack, PRIMARY).await,
        "writes are stopped meanwhile"
    );
    assert_eq!(stack.read_only_mode().as_deref(), Some("true"));
    answered(&stack, "reject", "corrupt-2", "we will repair by hand");
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&result);
    assert_eq!(report["outcome"], "rejected", "{report:#}");
    assert!(
        report["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("rejected") && a.contains("repair by hand")),
        "{report:#}"
    );
    assert_eq!(report["passed"], false);
    nothing_switched(&stack, &dns_before, "rejected").await;
    let kept = stack.describe("muejam-db-prod-r1").await;
    assert!(!kept.is_ephemeral(), "the restore is kept for inspection");
    let page = wait_for_message(&stack, "not switched (rejected)");
    let body = page["message"].as_str().unwrap_or_default();
    assert!(
        body.contains("gave muejam_app its writes back on muejam-db-prod"),
        "{body}"
    );
    assert!(body.contains("muejam-db-prod-r1"), "{body}");
    // The writes are back on the primary: so is the application.
    assert_eq!(stack.read_only_mode(), None);
    let (code, written) = stack
        .app_write(author(&stack, PRIMARY).await, "after the rejection")
        .await;
    assert!((200..300).contains(&code), "{code} {written}");

    // Asked to keep the writes stopped on an abort, it does, and says so; a
    // rerun restores under a fresh name (the first restore is kept). The
    // application stays in read-only mode with them, and a health check
    // that fails is reported, nothing more.
    let (code, result) = run_with_faults_on(
        &stack,
        "keep-1",
        &[
            "AssessLoss:1:Unsafe".to_owned(),
            "VerifyAppHealth:1:Unsafe".to_owned(),
        ],
        json!({"keep_writes_stopped_on_abort": true, "restore_time": clean_moment, "app": stack.app_target()}),
    );
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(stack.read_only_mode().as_deref(), Some("true"));
    assert_eq!(
        stack
            .app_write(author(&stack, PRIMARY).await, "kept stopped")
            .await
            .0,
        503
    );
    let application = stack.report_named("data-corruption", "keep-1")["application"].clone();
    let lines: Vec<&str> = application
        .as_array()
        .expect("application")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.iter().any(
            |l| l.contains("LEFT ON: the application's writes are still stopped")
                && l.contains("kubectl -n muejam set env deployment/muejam-api READ_ONLY_MODE-")
        ),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("health: FAILED (Unsafe")),
        "{lines:#?}"
    );
    let ids = stack.instance_ids().await;
    assert!(
        ids.contains(&id("muejam-db-prod-r1")) && ids.contains(&id("muejam-db-prod-r2")),
        "{ids:?}"
    );
    assert!(
        !app_writes(&stack, PRIMARY).await,
        "the writes stay stopped"
    );
    let page = wait_for_message(&stack, "recovery of muejam FAILED: Unsafe");
    let body = page["message"].as_str().unwrap_or_default();
    assert!(
        body.contains("WRITES ARE STILL STOPPED on muejam-db-prod"),
        "{body}"
    );
    assert!(candidates_left(&stack).await.is_empty());
    assert!(stack.locks().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_database_is_a_false_alarm_and_bad_input_changes_nothing() {
    let stack = Stack::up();
    let dns_before = stack.dns_value().await;
    let instances_before = stack.instance_ids().await;
    let (code, result) = stack.run(
        DATA_CORRUPTION,
        &request(json!({})),
        &["--virtual-time", "--name", "healthy-1"],
    );
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&result);
    assert_eq!(report["outcome"], "false_alarm", "{report:#}");
    assert!(
        report["changes"].as_array().is_some_and(Vec::is_empty),
        "{report:#}"
    );
    assert!(
        result["output"]["steps"]["stop_writes"].is_null(),
        "writes never stopped"
    );
    nothing_switched(&stack, &dns_before, "false alarm").await;
    assert_eq!(stack.instance_ids().await, instances_before);

    for (changes, expected) in [
        (
            json!({"restore_time": "2000-01-01T00:00:00Z"}),
            "outside the restorable window",
        ),
        (json!({"resolution_seconds": 0}), "resolution_seconds"),
        (json!({"candidates_per_round": 0}), "candidates_per_round"),
        (
            json!({"database": "muejam-typo"}),
            "not in the topology registry",
        ),
        (json!({"primary": "muejam-db-prod"}), "unknown field"),
    ] {
        let (code, result) = stack.run(
            DATA_CORRUPTION,
            &request(changes.clone()),
            &["--virtual-time"],
        );
        assert_eq!(code, 2, "{changes}: {result:#}");
        assert_eq!(result["error"], "InvalidInput", "{changes}");
        assert!(
            result["cause"]
                .as_str()
                .is_some_and(|c| c.contains(expected)),
            "{changes}: {result:#}"
        );
        nothing_switched(&stack, &dns_before, &changes.to_string()).await;
        assert_eq!(stack.instance_ids().await, instances_before, "{changes}");
    }
}

/// Every task of the recovery's success path (the round's tasks run in
/// each round's child execution).
const SUCCESS_PATH_TASKS: [&str; 24] = [
    "Plan",
    "AcquireLock",
    "Scope",
    "StopWrites",
    "StartSearch",
    "StartCandidate",
    "DescribeCandidate",
    "CheckCandidate",
    "DeleteCandidate",
    "NarrowSearch",
    "StartRestore",
    "DescribeRestore",
    "VerifyRestore",
    "AssessLoss",
    "FenceOldPrimary",
    "SwitchDns",
    "DnsStatus",
    "RestoreGrants",
    "RecordSwitch",
    "VerifyNewPrimary",
    "CreateReplica",
    "RecordReplica",
    "NotifyConclusion",
    "Report",
];

/// The approval answered yes without a person: the runner answers the task
/// with what `drctl approve` sends.
const APPROVED: &str =
    r#"return={"approved":true,"by":"test","at":"2026-11-27T00:00:00Z","reason":null}"#;

fn run_with_faults_on(
    stack: &Stack,
    name: &str,
    faults: &[String],
    changes: Value,
) -> (i32, Value) {
    let mut extra = vec!["--virtual-time", "--name", name];
    for f in faults {
        extra.extend(["--fault", f.as_str()]);
    }
    stack.run(DATA_CORRUPTION, &request(changes), &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_throttle_at_every_task_is_retried_and_the_recovery_still_switches() {
    let stack = damaged_stack().await;
    let mut faults: Vec<String> = SUCCESS_PATH_TASKS
        .iter()
        .map(|t| format!("{t}:1:Throttled"))
        .collect();
    faults.push("RequestApproval:1:Throttled".to_owned());
    faults.push(format!("RequestApproval:2:{APPROVED}"));
    // The application's tasks, with the app named.
    const APP_TASKS: [&str; 4] = ["ReadOnly", "LiftReadOnly", "AppRollout", "VerifyAppHealth"];
    faults.extend(APP_TASKS.iter().map(|t| format!("{t}:1:Throttled")));
    let (code, result) = run_with_faults_on(
        &stack,
        "throttled-1",
        &faults,
        json!({"app": stack.app_target()}),
    );
    assert_eq!(code, 0, "{result:#}");
    let failed = result["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .count();
    // The recovery's own tasks (the candidates' run in the rounds' child
    // executions, whose histories are their own), and the approval.
    let own = SUCCESS_PATH_TASKS
        .iter()
        .filter(|t| !t.ends_with("Candidate"))
        .count();
    assert_eq!(
        failed,
        own + 1 + APP_TASKS.len(),
        "each task failed once and was retried"
    );
    assert_eq!(stack.read_only_mode(), None, "lifted after its retry");
    assert_eq!(
        stack.dns_value().await,
        stack.address("muejam-db-prod-r1").await
    );
    assert!(candidates_left(&stack).await.is_empty());
    assert!(stack.locks().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_at_any_task_ends_failed_with_a_page_the_writes_back_and_nothing_left() {
    let (stack, clean_moment) = damaged_stack_with_time().await;
    let dns_before = stack.dns_value().await;
    for task in [
        "AcquireLock",
        "Scope",
        "StopWrites",
        "StartSearch",
        "StartCandidate",
        "DescribeCandidate",
        "CheckCandidate",
        "DeleteCandidate",
        "NarrowSearch",
        "StartRestore",
        "DescribeRestore",
        "VerifyRestore",
        "AssessLoss",
        "RequestApproval",
    ] {
        let before = stack.messages().len();
        let name = format!("fault-{}", task.to_lowercase());
        let faults = [
            format!("{task}:1:Unsafe"),
            format!("RequestApproval:2:{APPROVED}"),
        ];
        // Past the search, a given moment saves the search's restores.
        let searches = task.contains("Candidate") || task.contains("Search");
        let changes = if searches || ["AcquireLock", "Scope", "StopWrites"].contains(&task) {
            json!({})
        } else {
            json!({"restore_time": clean_moment})
        };
        let (code, result) = run_with_faults_on(&stack, &name, &faults, changes);
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["status"], "FAILED", "{task}");
        // A round's task fails its child execution: the recovery sees
        // States.TaskFailed with the child's error in the cause, as on AWS.
        let expected = if task.ends_with("Candidate") {
            "States.TaskFailed"
        } else {
            "Unsafe"
        };
        assert_eq!(result["error"], expected, "{task}: {result:#}");
        assert!(
            result["cause"]
                .as_str()
                .is_some_and(|c| c.contains("Unsafe")),
            "{task}: {result:#}"
        );
        let pages: Vec<Value> = stack.messages()[before..].to_vec();
        let subject = format!("Data corruption recovery of muejam FAILED: {expected}");
        assert!(
            pages
                .iter()
                .any(|m| m["subject"].as_str().is_some_and(|s| s.contains(&subject))),
            "{task}: no page in {pages:#?}"
        );
        nothing_switched(&stack, &dns_before, task).await;
    }
    // A permanent error at an application task is reported and the
    // recovery goes on (here to its abort at AssessLoss: nothing switches,
    // the writes come back). A lift that fails leaves the mode on and says
    // how to lift it; lifting it later goes by the same journal.
    for (task, says, mode_after) in [
        ("ReadOnly", "read-only mode: FAILED (Unsafe", None),
        ("AppRollout", "rollout: FAILED (Unsafe", None),
        (
            "LiftReadOnly",
            "lift of the read-only mode: FAILED (Unsafe",
            Some("true"),
        ),
    ] {
        let name = format!("fault-{}", task.to_lowercase());
        let (code, result) = run_with_faults_on(
            &stack,
            &name,
            &[format!("{task}:1:Unsafe"), "AssessLoss:1:Unsafe".to_owned()],
            json!({"restore_time": clean_moment, "app": stack.app_target()}),
        );
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "Unsafe", "{task}: {result:#}");
        let report = stack.report_named("data-corruption", &name);
        assert!(
            report["application"].as_array().is_some_and(|a| a
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.starts_with(says)))),
            "{task}: {report:#}"
        );
        assert!(app_writes(&stack, PRIMARY).await, "{task}: writes are back");
        assert_eq!(stack.read_only_mode().as_deref(), mode_after, "{task}");
        nothing_switched(&stack, &dns_before, task).await;
    }
    assert!(
        stack
            .report_named("data-corruption", "fault-liftreadonly")["application"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c.as_str().is_some_and(|c| c
                .contains("lift it by hand once its writes are back (kubectl -n muejam set env deployment/muejam-api READ_ONLY_MODE-)")))),
        "the failed lift says how to lift by hand"
    );
    stack.invoke(
        "restart-app",
        &json!({"action": "lift_read_only", "journal": {"recovery_id": "fault-liftreadonly", "execution": "by-hand"}}),
    );
    assert_eq!(stack.read_only_mode(), None);

    // Once the switch has begun, a failure says so and what to finish.
    let (code, result) = run_with_faults_on(
        &stack,
        "fault-switchdns",
        &[
            "SwitchDns:1:Unsafe".to_owned(),
            format!("RequestApproval:1:{APPROVED}"),
        ],
        json!({"restore_time": clean_moment}),
    );
    assert_eq!(code, 1, "{result:#}");
    let body = stack
        .messages()
        .into_iter()
        .rev()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Data corruption recovery of muejam FAILED: Unsafe"))
        })
        .and_then(|m| m["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        body.contains("THE SWITCH WAS BEGUN AND NOT FINISHED"),
        "{body}"
    );
    assert_eq!(
        stack.dns_value().await,
        dns_before,
        "DNS never moved to an unverified instance"
    );
    assert!(candidates_left(&stack).await.is_empty());
    assert!(stack.locks().await.is_empty());
}

/// A run killed (SIGKILL) after it stopped the writes: the death rule's
/// function (what EventBridge calls on FAILED / TIMED_OUT / ABORTED) gives
/// them back and deletes what the run left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_dies_after_stopping_the_writes_is_cleaned_up_by_the_death_rule() {
    let stack = damaged_stack().await;
    let input = request(json!({"app": stack.app_target()}));
    // Throttled at the first round, the run sleeps in a retry: killed there.
    let mut run = Background::start(
        &stack,
        DATA_CORRUPTION,
        &input,
        "dies-1",
        &["--fault", "StartSearch:1:Throttled"],
    );
    run.wait_for_line("✔ StopWrites");
    run.kill();
    assert!(
        !app_writes(&stack, PRIMARY).await,
        "the dead run left the writes stopped"
    );
    assert_eq!(
        stack.read_only_mode().as_deref(),
        Some("true"),
        "and the application in read-only mode"
    );
    // As Step Functions would show it: stopped.
    assert!(
        stack
            .executions(Some("data-corruption"))
            .contains(&("dies-1".to_owned(), "ABORTED".to_owned())),
        "{:?}",
        stack.executions(None)
    );

    let event = json!({
        "execution_name": "dies-1",
        "input": input.to_string(),
        "status": "ABORTED"
    });
    let output = stack.invoke("corruption-cleanup", &event);
    assert!(
        output["writes"]
            .as_str()
            .is_some_and(|w| w.starts_with("gave muejam_app its writes back")),
        "{output:#}"
    );
    assert!(app_writes(&stack, PRIMARY).await, "writes are back");
    assert!(candidates_left(&stack).await.is_empty());

    // Lambda hands the sweep's record to its destination, outside the VPC:
    // the read-only mode is lifted, since the journal says the writes are
    // back; once only, however often the record comes.
    let record = json!({
        "version": "1.0",
        "requestContext": {"condition": "Success", "approximateInvokeCount": 1},
        "requestPayload": event,
        "responsePayload": output,
    });
    let lifts: Vec<Value> = (0..2)
        .map(|_| stack.invoke("read-only-cleanup", &record))
        .collect();
    assert_eq!(lifts[0]["lifted"], true, "{:#}", lifts[0]);
    assert!(
        lifts[0]["sweep"]
            .as_str()
            .is_some_and(|s| s.starts_with("gave muejam_app its writes back")),
        "{:#}",
        lifts[0]
    );
    assert_eq!(lifts[1]["lifted"], false, "{:#}", lifts[1]);
    assert_eq!(stack.read_only_mode(), None);
    let (code, written) = stack
        .app_write(author(&stack, PRIMARY).await, "after the sweep")
        .await;
    assert!((200..300).contains(&code), "{code} {written}");

    // Again (the rule may deliver twice): nothing more to do, no error.
    stack.invoke("corruption-cleanup", &event);
    assert!(app_writes(&stack, PRIMARY).await);
}

/// RDS will not delete an instance it is still creating, which is where a
/// run that dies mid-search (its restores take hours) leaves its
/// candidates. The death rule's function gives the writes back first,
/// deletes every candidate it can, and fails naming the one left, so
/// Lambda's retry deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_rds_cannot_delete_yet_keeps_neither_the_writes_nor_the_other_candidates() {
    let (stack, clean_moment) = damaged_stack_with_time().await;
    let recovery = "dies-2";
    // What such a run leaves: its writes stopped, and its candidates.
    let topology = stack.topology().await;
    let application = topology.application.clone().expect("application");
    stack.invoke(
        "write-access",
        &json!({
            "action": "stop",
            "instance_id": PRIMARY,
            "database": topology.db_name,
            "credentials_secret_id": topology.credentials_secret_id,
            "application": application,
            "journal": {"recovery_id": recovery, "execution": recovery}
        }),
    );
    assert!(!app_writes(&stack, PRIMARY).await, "the writes are stopped");
    let candidates = ["muejam-db-prod-c1700000001", "muejam-db-prod-c1700000002"];
    for candidate in candidates {
        stack.invoke(
            "pitr-restore",
            &json!({
                "action": "start",
                "source_id": PRIMARY,
                "target_id": candidate,
                "restore_time": clean_moment,
                "purpose": "candidate",
                "recovery_id": recovery
            }),
        );
    }
    assert_eq!(candidates_left(&stack).await.len(), 2);

    let alerts = stack.topic_arn("muejam-dr-alerts").await;
    let event = json!({
        "execution_name": recovery,
        "input": request(json!({})).to_string(),
        "status": "ABORTED",
        "topic_arn": alerts
    });
    // RDS refuses the first delete (the instance is still creating).
    let out = stack.try_invoke(
        "corruption-cleanup",
        &event,
        &["--port-fault", "DeleteInstance:1:NotReady"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the call fails: {stderr}");
    assert!(stderr.contains("NotReady"), "{stderr}");
    assert!(
        stderr.contains(&format!("candidates not deleted: {}", candidates[0])),
        "names the one left: {stderr}"
    );
    assert!(
        stderr.contains(&format!("(deleted: {})", candidates[1])),
        "{stderr}"
    );
    assert!(
        stderr.contains("the writes: gave muejam_app its writes back"),
        "{stderr}"
    );
    assert!(
        app_writes(&stack, PRIMARY).await,
        "the writes are back though a candidate is left"
    );
    assert_eq!(
        candidates_left(&stack).await,
        vec![id(candidates[0])],
        "the other candidate was deleted"
    );

    // Had Lambda's retries failed too, its failure record reaches
    // read-only-cleanup, which tells the alerts topic what is left.
    let error_message = stderr
        .lines()
        .find(|l| l.contains("candidates not deleted"))
        .expect("the error's line")
        .to_owned();
    let before = stack.messages().len();
    let record = json!({
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responsePayload": {"errorType": "NotReady", "errorMessage": error_message},
    });
    let told = stack.invoke("read-only-cleanup", &record);
    assert!(
        told["sweep"]
            .as_str()
            .is_some_and(|s| s.starts_with("FAILED (RetriesExhausted): NotReady")),
        "{told:#}"
    );
    let said: Vec<Value> = stack.messages()[before..].to_vec();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Cleanup after dies-2 failed")),
        "{said:#?}"
    );
    let body = said[0]["message"].as_str().unwrap_or_default();
    assert!(
        body.contains(candidates[0]),
        "names the candidate left: {body}"
    );
    assert!(body.contains("delete-db-instance"), "{body}");

    // Lambda's retry, once RDS lets it: the one left is deleted, the writes
    // stay given back.
    let output = stack.invoke("corruption-cleanup", &event);
    assert_eq!(
        output["candidates_deleted"],
        json!([candidates[0]]),
        "{output:#}"
    );
    assert!(candidates_left(&stack).await.is_empty());
    assert!(app_writes(&stack, PRIMARY).await);
}

/// The death rule's transformer turns the documented status-change event
/// into the cleanup's input (the execution's name, its input as a string).
#[test]
fn the_death_rule_sends_the_cleanup_what_it_needs() {
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rules = template
        .event_rules("CorruptionCleanupFunction")
        .expect("rules");
    let rule = rules
        .iter()
        .find(|r| r.name == "CorruptionEnded")
        .expect("the death rule");
    let event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/execution-status-change.json")).expect("event"),
    )
    .expect("json");
    let input = rule.transform(&event).expect("transforms");
    assert_eq!(
        input,
        json!({
            "execution_name": "incident-2026-11-26",
            "input": "{\"database\": \"muejam\"}",
            "status": "ABORTED",
            "topic_arn": "arn:aws:sns:us-east-1:123456789012:muejam-dr-alerts"
        })
    );
    let parsed: Result<dr_scenarios::corruption::cleanup::CorruptionCleanupInput, _> =
        serde_json::from_value(input);
    assert!(parsed.is_ok(), "{parsed:?}");
    // After it, on success and on failure alike, Lambda hands its record to
    // the read-only sweep; the documented record is what that sweep reads.
    assert_eq!(
        template.lambda_destinations("CorruptionCleanupFunction"),
        [
            ("OnSuccess".to_owned(), "ReadOnlyCleanupFunction".to_owned()),
            ("OnFailure".to_owned(), "ReadOnlyCleanupFunction".to_owned()),
        ]
    );
    let record: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/functions/read-only-cleanup.json")).expect("record"),
    )
    .expect("json");
    let parsed: Result<dr_scenarios::corruption::read_only::ReadOnlyCleanupInput, _> =
        serde_json::from_value(record);
    assert!(parsed.is_ok(), "{parsed:?}");
}
