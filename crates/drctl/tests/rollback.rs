//! Runbook "Rollback Procedures" end to end on the local stack: a release
//! that breaks `/health` and adds a migration (`drctl local deploy --bad
//! --migrations 3`), rolled back by the state machine — the migration first,
//! with the revision that has its file, then `rollout undo` — and checked as
//! on-call would: the health URL, the revision serving, the app's
//! migrations table and the schema, the report, the page.

mod common;

use common::*;
use dr_core::*;
use muejam_app::LocalAppPlatform;
use serde_json::{json, Value};

const MACHINE: &str = "statemachines/deployment-rollback.asl.json";
const SCENARIO: &str = "deployment-rollback";

fn request(stack: &Stack, changes: Value) -> Value {
    let mut input = json!({
        "deployment": {"namespace": "muejam", "name": "muejam-api"},
        "migration": {"app": "muejam", "target": "0002_story_views_source"},
        "health_url": stack.app_health_url(),
        "limits": {"poll_seconds": 1, "max_wait_seconds": 60, "health_attempts": 3},
        "trigger": {"source": "manual", "by": "test", "reason": "the release answers 500"}
    });
    if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
        i.extend(c.clone());
    }
    input
}

async fn applied(stack: &Stack) -> Vec<String> {
    stack
        .sql(PRIMARY)
        .await
        .query(
            "SELECT name FROM muejam_api.django_migrations ORDER BY id",
            &[],
        )
        .await
        .expect("migrations")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn featured_table(stack: &Stack) -> bool {
    stack
        .sql(PRIMARY)
        .await
        .query_one(
            "SELECT to_regclass('muejam_api.featured_stories') IS NOT NULL",
            &[],
        )
        .await
        .expect("regclass")
        .get(0)
}

async fn current(stack: &Stack) -> DeploymentStatus {
    LocalAppPlatform::new(&stack.home)
        .expect("app")
        .describe_deployment(&DeploymentRef {
            namespace: "muejam".into(),
            name: "muejam-api".into(),
        })
        .await
        .expect("describe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_and_its_migration_are_rolled_back_and_careless_requests_are_refused() {
    let stack = Stack::up();
    let url = stack.app_health_url();
    stack.deploy_bad_release();
    assert_eq!(Stack::http_get(&url).await.0, 500);
    let bad = current(&stack).await;
    assert_eq!(bad.current.revision, 2);
    let three = [
        "0001_story_views",
        "0002_story_views_source",
        "0003_featured_stories",
    ];
    assert_eq!(applied(&stack).await, three);

    // Refused before anything changes.
    for (changes, says) in [
        (
            json!({"deployment": {"namespace": "muejam", "name": "muejam-apo"}}),
            "does not exist",
        ),
        (
            json!({"migration": {"app": "muejam", "target": "0009_nope"}}),
            "unknown to muejam",
        ),
        // Revision 1 does not know 0003: it must be undone first.
        (
            json!({"migration": {"app": "muejam"}}),
            "give migration.target",
        ),
        (json!({"to_revision": 2}), "nothing to roll back to"),
        (json!({"to_revision": 7}), "not in the rollout history"),
        (json!({"health_url": "file:///etc/passwd"}), "http(s)"),
    ] {
        let (code, result) = stack.run(
            MACHINE,
            &request(&stack, changes.clone()),
            &["--virtual-time"],
        );
        assert_eq!(code, 2, "{changes}: {result:#}");
        assert_eq!(result["error"], "InvalidInput", "{changes}");
        let cause = result["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(says), "{says:?} not in {cause}");
        assert!(
            !state_names(&result).contains(&"AcquireLock".to_owned()),
            "{changes}"
        );
    }
    assert_eq!(
        current(&stack).await.current,
        bad.current,
        "nothing rolled back"
    );
    assert_eq!(applied(&stack).await, three, "nothing migrated");
    assert_eq!(
        stack
            .subjects()
            .iter()
            .filter(|s| s.starts_with("[MueJam DR] deployment rollback of")
                && s.ends_with("failed (FAILED)"))
            .count(),
        6,
        "each refusal is reported"
    );

    // The rollback: the migration back to 0002 with revision 2, then undo.
    let (code, result) = stack.run(
        MACHINE,
        &request(&stack, json!({})),
        // Real waits (one second each): the migration job is a real process.
        &["--name", "rollback-1"],
    );
    assert_eq!(code, 0, "{result:#}");
    let (status, body) = Stack::http_get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 3, "revision 1's template, renumbered 3");
    assert_eq!(applied(&stack).await, &three[..2]);
    assert!(!featured_table(&stack).await, "0003's down SQL ran");
    let after = current(&stack).await;
    assert_eq!(after.current.template_hash, bad.revisions[0].template_hash);
    assert!(rollout_progress(&after.rollout).is_done());
    let report = stack.report_named(SCENARIO, "rollback-1");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["passed"], true);
    assert_eq!(report["from"]["revision"], 2);
    assert_eq!(report["to"]["revision"], 1);
    assert_eq!(report["now_revision"], 3);
    assert_eq!(
        report["migrations_undone"],
        json!(["0003_featured_stories"])
    );
    let changes: Vec<String> = serde_json::from_value(report["changes"].clone()).expect("changes");
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].starts_with("job rollback-1-migrate ran `manage.py migrate muejam 0002_story_views_source` with revision 2"), "{changes:?}");
    assert!(
        changes[1].starts_with("rolled muejam/muejam-api back from revision 2"),
        "{changes:?}"
    );
    assert!(stack.subjects().contains(
        &"[MueJam DR] deployment rollback of muejam/muejam-api: succeeded (passed)".to_owned()
    ));
    assert!(stack.locks().await.is_empty());

    // Another rollback under a new name (the alarm again, a second person):
    // kubectl's previous revision is now the bad release, which it refuses
    // to deploy again unless named.
    let (code, result) = stack.run(
        MACHINE,
        &request(&stack, json!({})),
        &["--virtual-time", "--name", "rollback-2"],
    );
    assert_eq!(code, 2, "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("is the release rollback rollback-1 replaced"),
        "{cause}"
    );
    assert_eq!(
        current(&stack).await.current,
        after.current,
        "nothing rolled back"
    );
    assert_eq!(Stack::http_get(&url).await.0, 200);
}

/// The tasks of a rollback with a migration, in the order they run.
const TASKS: &[&str] = &[
    "Plan",
    "AcquireLock",
    "MigrateBack",
    "JobStatus",
    "Undo",
    "RolloutStatus",
    "VerifyHealth",
    "ReleaseLock",
    "Report",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_every_task_are_retried_or_paged_and_a_rerun_finishes_the_same_rollback() {
    let stack = Stack::up();
    let url = stack.app_health_url();

    stack.deploy_bad_release();
    let mut extra: Vec<String> = Vec::new();
    for task in TASKS {
        extra.push("--fault".into());
        extra.push(format!("{task}:1:Throttled"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (code, result) = stack.run(MACHINE, &request(&stack, json!({})), &extra);
    assert_eq!(code, 0, "{result:#}");
    let failed = result["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .count();
    assert_eq!(failed, TASKS.len(), "each failed once, retried");
    assert_eq!(Stack::http_get(&url).await.0, 200);

    for task in TASKS {
        stack.deploy_bad_release();
        assert_eq!(Stack::http_get(&url).await.0, 500, "{task}");
        let bad = current(&stack).await;
        let name = format!("rb-{}", task.to_lowercase());
        let before = stack.subjects().len();
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = stack.run(
            MACHINE,
            &request(&stack, json!({})),
            &["--name", &name, "--fault", &fault],
        );
        let subjects = stack.subjects();
        let new = &subjects[before..];
        match *task {
            "ReleaseLock" => assert_eq!(code, 0, "{task}: {result:#}"),
            "Report" => {
                assert_eq!(code, 1, "{task}");
                assert!(
                    new.iter().any(|s| s.contains("REPORT FAILED")),
                    "{task}: {new:?}"
                );
            }
            _ => {
                assert_eq!(code, 1, "{task}: {result:#}");
                assert!(
                    new.iter().any(|s| s
                        == "[MueJam DR] deployment rollback of muejam/muejam-api: failed (FAILED)"),
                    "{task}: {new:?}"
                );
            }
        }
        // Never the code behind the database: while the bad release still
        // serves, its migration may be applied or not; once rolled back,
        // 0003 is gone.
        let now = current(&stack).await;
        if now.current.template_hash != bad.current.template_hash {
            assert_eq!(applied(&stack).await.len(), 2, "{task}");
        }
        // The same name again resumes the same rollback (its recorded plan)
        // and finishes it; it never rolls forward to the bad release.
        let (code, result) = stack.run(MACHINE, &request(&stack, json!({})), &["--name", &name]);
        assert_eq!(code, 0, "{task} rerun: {result:#}");
        let (status, body) = Stack::http_get(&url).await;
        assert_eq!(status, 200, "{task}: {body}");
        assert_ne!(
            current(&stack).await.current.template_hash,
            bad.current.template_hash,
            "{task}"
        );
        assert_eq!(applied(&stack).await.len(), 2, "{task}");
        assert!(stack.locks().await.is_empty(), "{task}");
    }
}
