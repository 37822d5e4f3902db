//! The local application tier as on-call meets it: the MueJam API behind
//! its load balancer, reaching the database through the record; a broken
//! release, all servers killed, and a migration rolled back by a one-off job
//! followed by `rollout undo` with kubectl's choice of revision.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dr_core::*;
use muejam_app::LocalAppPlatform;
use serde_json::{json, Value};

async fn get(url: &str) -> (u16, Value) {
    Stack::http_get(url).await
}

async fn applied(stack: &Stack) -> Vec<String> {
    let client = stack.sql(PRIMARY).await;
    client
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

async fn table_exists(stack: &Stack, table: &str) -> bool {
    let client = stack.sql(PRIMARY).await;
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .expect("regclass")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_through_the_record_and_its_failures_are_real() {
    let stack = Stack::up();
    let url = stack.app_health_url();
    let base = url.trim_end_matches("/health").to_owned();
    let primary = stack.describe(PRIMARY).await.endpoint.expect("endpoint");
    let primary = format!("{}:{}", primary.address, primary.port);

    // Healthy, through the record, to the primary; a write lands there.
    let (code, body) = get(&url).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["database"], json!(primary));
    let written = reqwest::Client::new()
        .post(format!("{base}/stories"))
        .json(&json!({"author_id": 1, "title": "written through the app"}))
        .send()
        .await
        .expect("write");
    assert_eq!(written.status().as_u16(), 201);
    let written: Value = written.json().await.expect("json");
    assert_eq!(written["database"], json!(primary));
    assert_eq!(
        applied(&stack).await,
        ["0001_story_views", "0002_story_views_source"]
    );

    // A broken release: every instance's health answers 500.
    stack.deploy_bad_release();
    assert_eq!(get(&url).await.0, 500);
    assert!(table_exists(&stack, "muejam_api.featured_stories").await);

    // Its migration goes back with the current revision (which has the
    // file), as a one-off job, then the rollout is undone.
    let app = LocalAppPlatform::new(&stack.home).expect("app");
    let deployment = DeploymentRef {
        namespace: "muejam".into(),
        name: "muejam-api".into(),
    };
    let status = app
        .describe_deployment(&deployment)
        .await
        .expect("describe");
    assert_eq!(status.current.revision, 2);
    assert!(!rollout_progress(&status.rollout).is_done(), "{status:?}");
    let job = MigrationJob {
        name: "rollback-1".into(),
        revision: 2,
        app: "muejam".into(),
        target: "0002_story_views_source".into(),
    };
    app.run_migration(&deployment, &job).await.expect("job");
    app.run_migration(&deployment, &job)
        .await
        .expect("the same job again joins it");
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        match app
            .migration_state(&deployment, "rollback-1")
            .await
            .expect("state")
        {
            JobState::Running if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => break other,
        }
    };
    assert!(matches!(state, JobState::Succeeded { .. }), "{state:?}");
    assert_eq!(
        applied(&stack).await,
        ["0001_story_views", "0002_story_views_source"]
    );
    assert!(
        !table_exists(&stack, "muejam_api.featured_stories").await,
        "the down SQL ran"
    );
    let choice = undo_choice(
        &status.revisions,
        &status.current.template_hash,
        status.paused,
        None,
    )
    .expect("a previous revision");
    let UndoChoice::RollBack { to } = choice else {
        panic!("{choice:?}")
    };
    assert_eq!(to.revision, 1);
    let now = app.roll_back(&deployment, &to).await.expect("undo");
    assert_eq!(now, 3, "revision 1's template comes back as revision 3");
    let (code, body) = get(&url).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["revision"], 3);
    let after = app
        .describe_deployment(&deployment)
        .await
        .expect("describe");
    assert!(rollout_progress(&after.rollout).is_done(), "{after:?}");
    let numbers: Vec<u64> = after.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(numbers, [2, 3]);

    // READ_ONLY_MODE: reads go on, writes get the maintenance answer.
    app.set_env(&deployment, "READ_ONLY_MODE", Some("true"))
        .await
        .expect("set env");
    assert_eq!(get(&format!("{base}/stories")).await.0, 200);
    let refused = reqwest::Client::new()
        .post(format!("{base}/stories"))
        .json(&json!({"author_id": 1, "title": "not now"}))
        .send()
        .await
        .expect("write");
    assert_eq!(refused.status().as_u16(), 503);
    app.set_env(&deployment, "READ_ONLY_MODE", None)
        .await
        .expect("unset env");

    // Every server killed: the load balancer has no target.
    stack.kill_app_servers();
    assert_eq!(get(&url).await.0, 503);
    let fleet = FleetRef {
        auto_scaling_group: "muejam-app".into(),
        target_group_arn: None,
        region: None,
    };
    let described = app.describe_fleet(&fleet).await.expect("fleet");
    assert_eq!(
        (described.desired_capacity, described.healthy_targets),
        (2, 0)
    );
    // An instance refresh brings them back.
    let refresh = app.start_instance_refresh(&fleet).await.expect("refresh");
    let done = app
        .describe_instance_refresh(&fleet, &refresh.refresh_id)
        .await
        .expect("refresh status");
    assert_eq!(done.status, "Successful", "{done:?}");
    assert_eq!(get(&url).await.0, 200);
    assert_eq!(
        app.set_desired_capacity(&fleet, 7)
            .await
            .expect_err("beyond the maximum")
            .name(),
        "InvalidInput"
    );
}
