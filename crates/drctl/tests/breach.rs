//! The security breach end to end on the local stack: containment in
//! parallel (API keys, both database passwords, the WAF IP set in moto),
//! the impact against the breach seeded in the sample data, a report; and
//! what a failed step or a bad input leaves. Also the runbook's escalation
//! path, on the breach's approval to tell users (the longest approval),
//! on a failed recovery's page and on an alarm's page.

mod common;

use common::*;
use dr_core::*;
use serde_json::{json, Value};

const BREACH: &str = "statemachines/security-breach.asl.json";

/// The WAF IP sets in moto (a set holds one IP version, as on AWS), the
/// IPv4 one holding an address someone blocked before.
struct IpSets {
    v4: IpSetRef,
    v6: IpSetRef,
}

async fn ip_set(stack: &Stack) -> IpSets {
    use aws_sdk_wafv2::types::IpAddressVersion;
    IpSets {
        v4: stack
            .create_ip_set(
                "muejam-blocked",
                IpAddressVersion::Ipv4,
                &["198.51.100.1/32"],
            )
            .await,
        v6: stack
            .create_ip_set("muejam-blocked-v6", IpAddressVersion::Ipv6, &[])
            .await,
    }
}

/// What both sets hold, sorted.
async fn blocked(stack: &Stack, sets: &IpSets) -> Vec<String> {
    let firewall = dr_aws::WafFirewall::new(stack.moto_clients().await.wafv2);
    let mut held = Vec::new();
    for set in [&sets.v4, &sets.v6] {
        held.extend(firewall.get_ip_set(set).await.expect("read").addresses);
    }
    held.sort();
    held
}

/// The sample input aimed at `ip_set`, the window the last day.
fn request(ip_set: &IpSets, changes: Value) -> Value {
    let mut input: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/security-breach.json")).expect("event"),
    )
    .expect("json");
    let now = chrono::Utc::now();
    input["window"] = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": now.to_rfc3339()
    });
    input["ip_set"] = serde_json::to_value(&ip_set.v4).expect("json");
    input["ip_set_v6"] = serde_json::to_value(&ip_set.v6).expect("json");
    // Telling users waits for a person: the tests of it ask for it.
    input["notify_users"] = json!(false);
    if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
        i.extend(c.clone());
    }
    input
}

async fn secret(stack: &Stack, id: &str) -> (String, String) {
    let value: Value = serde_json::from_str(
        stack
            .moto_clients()
            .await
            .secrets
            .get_secret_value()
            .secret_id(id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("secret")
            .secret_string()
            .expect("string"),
    )
    .expect("json");
    (
        value["username"].as_str().expect("username").to_owned(),
        value["password"].as_str().expect("password").to_owned(),
    )
}

/// Whether `username` / `password` logs in to the primary.
async fn logs_in(stack: &Stack, username: &str, password: &str) -> bool {
    logs_in_to(stack, PRIMARY, username, password).await
}

/// Whether `username` / `password` logs in to `instance`.
async fn logs_in_to(stack: &Stack, instance: &str, username: &str, password: &str) -> bool {
    let mut target = stack
        .platform()
        .database_target(&id(instance), None)
        .expect("target");
    target.username = username.to_owned();
    target.password = secrecy::SecretString::from(password.to_owned());
    dr_postgres::connect(&target).await.is_ok()
}

async fn active_keys(stack: &Stack, users: Option<&[i64]>) -> i64 {
    let users: Option<Vec<i64>> = users.map(<[i64]>::to_vec);
    stack
        .sql(PRIMARY)
        .await
        .query_one(
            "SELECT count(*) FROM api_keys WHERE is_active AND ($1::bigint[] IS NULL OR user_id = ANY ($1))",
            &[&users],
        )
        .await
        .expect("count")
        .get(0)
}

/// The page (the report's message) of the run `name`.
fn page_of(stack: &Stack, name: &str) -> Value {
    let marker = format!("Execution `{name}`");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(m) = stack
            .messages()
            .into_iter()
            .find(|m| m["message"].as_str().is_some_and(|b| b.contains(&marker)))
        {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "no page of {name}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn report_of(stack: &Stack, name: &str) -> Value {
    stack.report_named("security-breach", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_contained_at_once_and_its_impact_is_the_seeded_truth() {
    let stack = Stack::up();
    let truth = dr_postgres::sample::SamplePlan::for_scale(0.01)
        .expect("scale")
        .breach();
    let ip_set = ip_set(&stack).await;
    let input = request(&ip_set, json!({}));
    let everyone = active_keys(&stack, None).await;
    let affected_before = active_keys(&stack, Some(&truth.affected_users)).await;
    assert!(affected_before > 0, "the seeded users hold keys");
    let (app_user, app_old) = secret(&stack, "muejam/db/app").await;
    let (master_user, master_old) = secret(&stack, "muejam/db/master").await;
    assert!(logs_in(&stack, &app_user, &app_old).await);

    let (code, result) = stack.run(BREACH, &input, &["--virtual-time", "--name", "breach-1"]);
    assert_eq!(code, 0, "{result:#}");

    // Keys: the affected users' are inactive, nobody else's changed.
    assert_eq!(active_keys(&stack, Some(&truth.affected_users)).await, 0);
    assert_eq!(active_keys(&stack, None).await, everyone - affected_before);
    // Passwords: the old ones no longer log in, the secrets' new ones do.
    let (_, app_new) = secret(&stack, "muejam/db/app").await;
    let (_, master_new) = secret(&stack, "muejam/db/master").await;
    assert_ne!(app_new, app_old);
    assert_ne!(master_new, master_old);
    assert!(
        !logs_in(&stack, &app_user, &app_old).await,
        "old app password"
    );
    assert!(
        !logs_in(&stack, &master_user, &master_old).await,
        "old master password"
    );
    assert!(logs_in(&stack, &app_user, &app_new).await);
    assert!(logs_in(&stack, &master_user, &master_new).await);
    // WAF: what it held, and each suspicious address once.
    assert_eq!(
        blocked(&stack, &ip_set).await,
        [
            "198.51.100.1/32",
            "2001:db8::bad:1/128",
            "203.0.113.10/32",
            "203.0.113.11/32",
            "203.0.113.12/32"
        ]
    );
    let report = report_of(&stack, "breach-1");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["not_done"], json!([]));
    assert!(report["containment"]["achieved_seconds"].as_f64().is_some());
    assert_eq!(report["impact"]["events"], truth.in_window);
    assert_eq!(
        report["impact"]["affected_users"],
        truth.affected_users.len() as u64
    );
    assert_eq!(
        report["impact"]["by_action"],
        serde_json::to_value(&truth.by_action).expect("json")
    );
    wait_for_message(&stack, "security breach of muejam: succeeded");

    // Again under the same name: converged, nothing changes.
    let (code, result) = stack.run(BREACH, &input, &["--virtual-time", "--name", "breach-1"]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(secret(&stack, "muejam/db/app").await.1, app_new);
    assert_eq!(secret(&stack, "muejam/db/master").await.1, master_new);
    assert_eq!(blocked(&stack, &ip_set).await.len(), 5);

    // What reads the secrets still works: the probe, the drill (whose
    // restore comes from a backup taken before the rotation), a failover.
    let endpoint = stack.describe(PRIMARY).await.endpoint.expect("endpoint");
    let probe = stack.home.join("probe-payload.json");
    std::fs::write(
        &probe,
        json!({
            "endpoint": {"address": endpoint.address, "port": endpoint.port},
            "credentials_secret_id": "muejam/db/master",
            "database_label": "db.muejam.internal",
            "connect_timeout_seconds": 2
        })
        .to_string(),
    )
    .expect("payload");
    let out = drctl(
        &stack.home,
        &[
            "invoke",
            "probe-database",
            "--local",
            "--payload",
            probe.to_str().expect("path"),
        ],
    );
    let probed: Value = serde_json::from_slice(&out.stdout).expect("probe output");
    assert_eq!(probed["success"], true, "{probed:#}");
    let drill: Value =
        serde_json::from_slice(&std::fs::read(repo().join("events/dr-drill.json")).expect("event"))
            .expect("json");
    // Its region-restore rehearsal restores a copy of that backup in
    // us-west-2, with the passwords from before the rotation too.
    stack.replicate_to_us_west_2();
    let (code, result) = stack.run("dr-drill", &drill, &[]);
    assert_eq!(code, 0, "the drill after the rotation: {result:#}");
    stack.crash(PRIMARY);
    let (code, result) = stack.failover(json!({}), &["--virtual-time"]);
    assert_eq!(code, 0, "the failover reads the rotated secret: {result:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_containment_step_leaves_the_others_done_says_which_and_a_rerun_finishes() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let input = request(&ip_set, json!({"revoke_keys": "all"}));
    let (_, master_old) = secret(&stack, "muejam/db/master").await;
    for (task, says) in [
        ("RevokeKeys", "revoke the API keys"),
        ("RotateApplication", "rotate the application's credentials"),
        ("RotateMaster", "rotate the master credentials"),
        ("BlockAddresses", "block the addresses"),
    ] {
        let name = format!("fault-{}", task.to_lowercase());
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = stack.run(
            BREACH,
            &input,
            &["--virtual-time", "--name", &name, "--fault", &fault],
        );
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "NotContained", "{task}: {result:#}");
        let report = report_of(&stack, &name);
        let not_done = report["not_done"].as_array().expect("not_done");
        assert_eq!(not_done.len(), 1, "{task}: {report:#}");
        assert!(
            not_done[0].as_str().is_some_and(|n| n.starts_with(says)),
            "{task}: {not_done:?}"
        );
        assert!(report["containment"]["achieved_seconds"].is_null());
        let page = page_of(&stack, &name);
        assert!(
            page["subject"]
                .as_str()
                .is_some_and(|s| s.contains("security breach of muejam: failed")),
            "{page:#}"
        );
        assert!(
            page["message"]
                .as_str()
                .is_some_and(|m| m.contains("NOT contained") && m.contains(says)),
            "{page:#}"
        );
        // The other steps are done.
        if task != "RevokeKeys" {
            assert_eq!(active_keys(&stack, None).await, 0, "{task}");
        }
        if task != "BlockAddresses" {
            assert_eq!(blocked(&stack, &ip_set).await.len(), 5, "{task}");
        }
        // Re-run under the same name: finished.
        let (code, result) = stack.run(BREACH, &input, &["--virtual-time", "--name", &name]);
        assert_eq!(code, 0, "{task}: the re-run finishes: {result:#}");
        assert_eq!(active_keys(&stack, None).await, 0);
        assert_eq!(blocked(&stack, &ip_set).await.len(), 5);
    }
    let (master_user, master_new) = secret(&stack, "muejam/db/master").await;
    assert!(!logs_in(&stack, &master_user, &master_old).await);
    assert!(logs_in(&stack, &master_user, &master_new).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_changes_nothing_and_exits_2() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let everyone = active_keys(&stack, None).await;
    let (_, master) = secret(&stack, "muejam/db/master").await;
    let now = chrono::Utc::now();
    for (name, change) in [
        ("bad-address", json!({"addresses": ["203.0.113.300"]})),
        ("too-broad", json!({"addresses": ["0.0.0.0/0"]})),
        (
            "inverted",
            json!({"window": {"from": now.to_rfc3339(), "to": (now - chrono::Duration::hours(1)).to_rfc3339()}}),
        ),
        ("unknown-database", json!({"database": "muejam-typo"})),
        ("v6-without-its-set", json!({"ip_set_v6": null})),
        (
            "v6-into-a-v4-set",
            json!({"ip_set_v6": serde_json::to_value(&ip_set.v4).expect("json")}),
        ),
    ] {
        let input = request(&ip_set, change);
        let (code, result) = stack.run(BREACH, &input, &["--virtual-time", "--name", name]);
        assert_eq!(code, 2, "{name}: {result:#}");
        assert_eq!(result["error"], "InvalidInput", "{name}");
        assert_eq!(report_of(&stack, name)["outcome"], "failed", "{name}");
    }
    let too_many: Vec<String> = (0..=10_000u32)
        .map(|i| std::net::Ipv4Addr::from(0xC633_0000 + i).to_string())
        .collect();
    let (code, _) = stack.run(
        BREACH,
        &request(&ip_set, json!({"addresses": too_many})),
        &["--virtual-time", "--name", "too-many"],
    );
    assert_eq!(code, 2);
    assert_eq!(active_keys(&stack, None).await, everyone, "no key revoked");
    assert_eq!(
        secret(&stack, "muejam/db/master").await.1,
        master,
        "no rotation"
    );
    assert_eq!(
        blocked(&stack, &ip_set).await,
        ["198.51.100.1/32"],
        "nothing blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_outside_containment_is_said_and_never_silent() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let input = request(&ip_set, json!({}));
    let everyone = active_keys(&stack, None).await;
    // The plan failing (the registry unreadable): nothing touched.
    let (code, result) = stack.run(
        BREACH,
        &input,
        &[
            "--virtual-time",
            "--name",
            "plan-1",
            "--fault",
            "Plan:1:Unsafe",
        ],
    );
    assert_eq!(
        (code, result["error"].as_str()),
        (1, Some("Unsafe")),
        "{result:#}"
    );
    assert_eq!(active_keys(&stack, None).await, everyone);
    assert_eq!(blocked(&stack, &ip_set).await, ["198.51.100.1/32"]);
    // The assessment or the affected users' keys failing: contained, but
    // the run fails and the report says what is missing.
    for (task, name) in [("Assess", "assess-1"), ("RevokeAffectedKeys", "affected-1")] {
        let fault = format!("{task}:1:Unsafe");
        let (code, result) = stack.run(
            BREACH,
            &input,
            &["--virtual-time", "--name", name, "--fault", &fault],
        );
        assert_eq!(code, 1, "{task}: {result:#}");
        assert_eq!(result["error"], "Incomplete", "{task}");
        let report = report_of(&stack, name);
        assert_eq!(report["outcome"], "failed", "{task}");
        assert_eq!(report["not_done"], json!([]), "containment itself was done");
        assert_eq!(blocked(&stack, &ip_set).await.len(), 5, "{task}");
    }
    // A report that fails fails the run, for the failed-run alarm to page.
    let (code, result) = stack.run(
        BREACH,
        &input,
        &[
            "--virtual-time",
            "--name",
            "report-1",
            "--fault",
            "Report:1:Unsafe",
        ],
    );
    assert_eq!(
        (code, result["error"].as_str()),
        (1, Some("Unsafe")),
        "{result:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardduty_finding_starts_the_containment_of_its_address() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rules = template
        .event_rules("SecurityBreachStateMachine")
        .expect("rules");
    let rule = rules
        .iter()
        .find(|r| r.name == "GuardDutyApiCaller")
        .expect("the GuardDuty rule");
    let mut finding: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/guardduty-finding.json")).expect("event"),
    )
    .expect("json");
    let now = chrono::Utc::now();
    // The seeded breach's rows are up to six hours old.
    finding["detail"]["service"]["eventFirstSeen"] =
        json!((now - chrono::Duration::hours(6)).to_rfc3339());
    finding["detail"]["service"]["eventLastSeen"] =
        json!((now - chrono::Duration::minutes(1)).to_rfc3339());
    let mut input = rule.transform(&finding).expect("transforms");
    assert_eq!(input["addresses"], json!(["203.0.113.10"]));
    assert_eq!(input["trigger"]["severity"], 8);
    assert_eq!(input["window"], Value::Null, "taken from the sightings");
    // The template's IP set parameters are empty by default: the test's set.
    input["ip_set"] = serde_json::to_value(&ip_set.v4).expect("json");
    assert_eq!(
        input["notify_users"],
        Value::Null,
        "users are told by default"
    );
    input["notify_users"] = json!(false);

    let (code, result) = stack.run(BREACH, &input, &["--virtual-time", "--name", "gd-1"]);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(
        blocked(&stack, &ip_set).await,
        ["198.51.100.1/32", "203.0.113.10/32"]
    );
    let report = report_of(&stack, "gd-1");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    // The seed gives 203.0.113.10 every fourth row; one in ten is three
    // days old, outside the window.
    let seeded = dr_postgres::sample::SamplePlan::for_scale(0.01)
        .expect("scale")
        .breach()
        .events;
    let from_it = (1..=seeded).filter(|i| i % 4 == 0 && i % 10 != 0).count() as u64;
    assert_eq!(report["impact"]["events"], from_it, "{report:#}");
}

/// What the user-notification topic delivered (the platform's mailer's
/// queue): (user, notification id) of each message.
fn user_messages(stack: &Stack) -> Vec<(i64, String)> {
    stack
        .messages_of(&["--users"])
        .iter()
        .map(|m| {
            (
                m["attributes"]["user_id"]
                    .as_str()
                    .and_then(|u| u.parse().ok())
                    .expect("user_id"),
                m["attributes"]["notification_id"]
                    .as_str()
                    .expect("notification_id")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affected_users_are_told_once_each_after_approval_even_when_a_batch_fails_midway() {
    let stack = Stack::up();
    let truth = dr_postgres::sample::SamplePlan::for_scale(0.01)
        .expect("scale")
        .breach();
    // The audit log's users and 25 named as compromised: three batches.
    let named: Vec<i64> = (1..=25).collect();
    let mut expected: Vec<i64> = truth.affected_users.iter().chain(&named).copied().collect();
    expected.sort_unstable();
    expected.dedup();
    let recipients = expected.len();
    assert!(recipients > 20, "three batches at least: {recipients}");
    let ip_set = ip_set(&stack).await;
    let input = request(&ip_set, json!({"notify_users": true, "users": named}));
    // The second batch is never sent (the topic fails), the third is sent
    // and never recorded (the ledger fails after the send): both retried.
    let mut run = Background::start(
        &stack,
        BREACH,
        &input,
        "notify-1",
        &[
            "--virtual-time",
            "--port-fault",
            "UserNotify:2:Unavailable",
            "--port-fault",
            "LedgerMarkSent:3:Unavailable",
        ],
    );
    let question = run.wait_for_message(&stack, "APPROVAL NEEDED");
    assert!(
        question["subject"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("Tell {recipients} user(s) of muejam"))),
        "{question:#}"
    );
    let body = question["message"].as_str().unwrap_or_default();
    let sample: Vec<String> = expected.iter().take(20).map(ToString::to_string).collect();
    assert!(
        body.contains(&format!("sample of users: {}", sample.join(", "))),
        "{body}"
    );
    assert!(
        user_messages(&stack).is_empty(),
        "nobody told before the answer"
    );
    answered(&stack, "approve", "notify-1", "legal signed off");
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");

    // Exactly one message per affected user, under this incident's ids.
    let told = user_messages(&stack);
    let mut users: Vec<i64> = told.iter().map(|(u, _)| *u).collect();
    users.sort_unstable();
    assert_eq!(users, expected, "each affected user once");
    assert!(told.iter().all(|(u, id)| *id == format!("notify-1.{u}")));
    let report = report_of(&stack, "notify-1");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["passed"], true);
    let n = &report["notifications"];
    assert_eq!(n["status"], "sent", "{n:#}");
    assert_eq!(n["ledger"]["sent"], recipients as u64);
    assert_eq!(n["ledger"]["not_sent"], 0);
    assert_eq!(n["ledger"]["sending"], 0);
    let retried = 10 + (recipients - 20).min(10);
    assert_eq!(
        n["ledger"]["retried"], retried as u64,
        "batches two and three: {n:#}"
    );
    assert!(
        n["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by alice") && a.contains("legal signed off")),
        "{n:#}"
    );

    // The same incident again (a new execution, as on AWS): nobody is
    // asked and nobody is told twice.
    let (code, result) = stack.run(
        BREACH,
        &request(
            &ip_set,
            json!({"notify_users": true, "recovery_id": "notify-1", "users": named}),
        ),
        &["--virtual-time", "--name", "notify-1-again"],
    );
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(
        report_of(&stack, "notify-1-again")["notifications"]["status"],
        "nobody_to_tell"
    );
    assert_eq!(user_messages(&stack).len(), recipients, "nobody told twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_notification_tells_nobody_and_says_so() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let mut run = Background::start(
        &stack,
        BREACH,
        &request(&ip_set, json!({"notify_users": true})),
        "notify-2",
        &["--virtual-time"],
    );
    run.wait_for_message(&stack, "APPROVAL NEEDED");
    answered(&stack, "reject", "notify-2", "legal wants to word it first");
    let (code, result) = run.finish();
    assert_eq!(code, 0, "containment is done: {result:#}");
    assert!(user_messages(&stack).is_empty(), "nobody told");
    let report = report_of(&stack, "notify-2");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let n = &report["notifications"];
    assert_eq!(n["status"], "rejected", "{n:#}");
    assert!(
        n["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("rejected") && a.contains("word it first")),
        "{n:#}"
    );
    let page = page_of(&stack, "notify-2");
    assert!(
        page["message"]
            .as_str()
            .is_some_and(|m| m.contains("**nobody was told**: the approval was rejected")),
        "{page:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_before_the_breach_takes_the_new_passwords_and_its_keys_are_revoked_again() {
    let stack = Stack::up();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let clean = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // What the attacker did after that moment.
    stack
        .sql(PRIMARY)
        .await
        .batch_execute(
            "INSERT INTO stories (author_id, title) VALUES (3, 'planted by the attacker')",
        )
        .await
        .expect("planted");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ip_set = ip_set(&stack).await;
    let (app_user, app_old) = secret(&stack, "muejam/db/app").await;
    let (master_user, master_old) = secret(&stack, "muejam/db/master").await;
    let now = chrono::Utc::now();
    let input = request(
        &ip_set,
        json!({
            "revoke_keys": "all",
            "restore_before_breach": true,
            "approval_timeout_seconds": 300,
            "window": {"from": clean.to_rfc3339(), "to": (now + chrono::Duration::minutes(1)).to_rfc3339()}
        }),
    );
    let mut run = Background::start(&stack, BREACH, &input, "restore-1", &["--virtual-time"]);
    // The restore's own question: what the switch loses.
    let question = run.wait_for_message(&stack, "APPROVAL NEEDED");
    assert!(
        question["message"]
            .as_str()
            .is_some_and(|m| m.contains("restore-1-restore")),
        "{question:#}"
    );
    answered(
        &stack,
        "approve",
        "restore-1-restore",
        "restore from before the breach",
    );
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");
    let report = report_of(&stack, "restore-1");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["restore"]["status"], "SUCCEEDED", "{report:#}");
    assert_eq!(report["restore"]["outcome"], "succeeded", "{report:#}");

    // The application's record points at the restore, which holds nothing
    // of what the attacker did after the moment.
    let primary = stack.topology().await.primary;
    assert_ne!(primary.as_str(), PRIMARY);
    assert_eq!(
        stack.dns_value().await,
        stack.address(primary.as_str()).await
    );
    let planted: i64 = stack
        .sql(primary.as_str())
        .await
        .query_one(
            "SELECT count(*) FROM stories WHERE title = 'planted by the attacker'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(planted, 0);
    // The restore came back with every key active and the old passwords:
    // the keys are revoked again, the passwords are the secrets' new ones.
    let active: i64 = stack
        .sql(primary.as_str())
        .await
        .query_one("SELECT count(*) FROM api_keys WHERE is_active", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(active, 0, "{report:#}");
    assert!(
        report["keys_after_restore"]["done"]["revoked"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report:#}"
    );
    let (_, app_new) = secret(&stack, "muejam/db/app").await;
    let (_, master_new) = secret(&stack, "muejam/db/master").await;
    let restored = primary.as_str();
    assert!(!logs_in_to(&stack, restored, &app_user, &app_old).await);
    assert!(!logs_in_to(&stack, restored, &master_user, &master_old).await);
    assert!(logs_in_to(&stack, restored, &app_user, &app_new).await);
    assert!(logs_in_to(&stack, restored, &master_user, &master_new).await);
}

/// The runbook's escalation path on virtual time: nobody answers the
/// approval to tell users, so it climbs every tier after the one before has
/// had its 15 / 30 / 60 / 120 minutes, each tier's message naming who was
/// asked before, then takes its safe default (nobody is told).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_nobody_answers_climbs_all_four_tiers_then_takes_its_safe_default() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let input = request(
        &ip_set,
        json!({"notify_users": true, "approval_timeout_seconds": 225 * 60}),
    );
    let (code, result) = stack.run(
        BREACH,
        &input,
        &[
            "--virtual-time",
            "--token-patience",
            "2",
            "--name",
            "climb-1",
        ],
    );
    assert_eq!(code, 0, "containment is done: {result:#}");
    assert!(user_messages(&stack).is_empty(), "nobody told");
    let earlier = ["primary-on-call", "backup-on-call", "engineering-manager"];
    for (tier, name) in (1..=4u8).zip([
        "primary-on-call",
        "backup-on-call",
        "engineering-manager",
        "cto",
    ]) {
        let messages = stack.tier_messages(tier);
        assert_eq!(messages.len(), 1, "tier {tier} asked once: {messages:#?}");
        let subject = messages[0]["subject"].as_str().unwrap_or_default();
        assert!(subject.contains(&format!("(tier {tier}/4)")), "{subject}");
        let body = messages[0]["message"].as_str().unwrap_or_default();
        assert!(
            body.contains(&format!("escalation tier {tier} of 4 ({name})")),
            "{body}"
        );
        for (i, before) in earlier.iter().enumerate() {
            assert_eq!(
                body.contains(&format!("{before} was asked at")),
                i + 1 < usize::from(tier),
                "tier {tier}'s message and {before}: {body}"
            );
        }
    }
    let n = &report_of(&stack, "climb-1")["notifications"];
    assert_eq!(n["status"], "expired", "{n:#}");
    let lines: Vec<&str> = n["escalation"]
        .as_array()
        .expect("escalation")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let waited: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit("no answer in ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        waited,
        vec!["15.0 min", "30.0 min", "1.00 h", "2.00 h"],
        "{lines:#?}"
    );
}

/// An answer after the second tier's message stops the climb: tiers three
/// and four hear nothing, and the report says which tier answered and when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_answered_at_the_second_tier_stops_the_climb() {
    let stack = Stack::up();
    let ip_set = ip_set(&stack).await;
    let input = request(
        &ip_set,
        json!({"notify_users": true, "approval_timeout_seconds": 225 * 60}),
    );
    let run = Background::start(
        &stack,
        BREACH,
        &input,
        "climb-2",
        &["--virtual-time", "--token-patience", "15"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while stack.tier_messages(2).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "tier 2 was never asked"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    answered(&stack, "approve", "climb-2", "backup on-call: go");
    let (code, result) = run.finish();
    assert_eq!(code, 0, "{result:#}");
    assert!(!user_messages(&stack).is_empty(), "the users were told");
    assert_eq!(stack.tier_messages(1).len(), 1);
    assert!(stack.tier_messages(3).is_empty(), "tier 3 hears nothing");
    assert!(stack.tier_messages(4).is_empty(), "tier 4 hears nothing");
    let n = &report_of(&stack, "climb-2")["notifications"];
    assert_eq!(n["status"], "sent", "{n:#}");
    let lines: Vec<&str> = n["escalation"]
        .as_array()
        .expect("escalation")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(lines[0].contains("no answer in 15.0 min"), "{lines:#?}");
    assert!(
        lines[1].starts_with("backup-on-call: asked at")
            && lines[1].contains("answered by alice (approved)"),
        "{lines:#?}"
    );
    assert_eq!(
        &lines[2..],
        &["engineering-manager: not asked", "cto: not asked"]
    );
}

/// The drill's runbook review checks that every tier of the escalation path
/// reaches somebody: a tier whose topic lost its subscribers is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_review_reports_a_tier_nobody_is_subscribed_to() {
    let stack = Stack::up();
    stack.unsubscribe_all("muejam-dr-tier-3").await;
    let mut tiers = Vec::new();
    for (i, name) in [
        "primary-on-call",
        "backup-on-call",
        "engineering-manager",
        "cto",
    ]
    .iter()
    .enumerate()
    {
        let arn = stack.topic_arn(&format!("muejam-dr-tier-{}", i + 1)).await;
        tiers.push(json!({"name": name, "topic_arn": arn, "response_minutes": "15"}));
    }
    let payload = stack.home.join("review-payload.json");
    std::fs::write(
        &payload,
        json!({"topic_arn": stack.topic_arn("muejam-dr-alerts").await, "tiers": tiers}).to_string(),
    )
    .expect("payload");
    let out = drctl(
        &stack.home,
        &[
            "invoke",
            "runbook-review",
            "--local",
            "--payload",
            payload.to_str().expect("path"),
        ],
    );
    let review: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("review output: {}", String::from_utf8_lossy(&out.stderr)));
    let status = |name: &str| {
        review["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name))
            .map(|i| (i["status"].clone(), i["reason"].clone()))
            .unwrap_or_else(|| panic!("no item {name}: {review:#}"))
    };
    for tier in [1, 2, 4] {
        assert_eq!(
            status(&format!(
                "escalation_tier_{tier}_has_a_confirmed_subscriber"
            ))
            .0,
            "SUCCESSFUL"
        );
    }
    let (third_status, reason) = status("escalation_tier_3_has_a_confirmed_subscriber");
    assert_eq!(third_status, "FAILED");
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.contains("engineering-manager") && r.contains("reach nobody")),
        "{reason}"
    );
}

/// A failed recovery pages tier 1 of the escalation path (in a climb of its
/// own); `drctl ack` stops the climb: no other tier hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_recovery_pages_tier_one_and_an_ack_stops_the_climb() {
    let stack = Stack::up();
    stack.crash(PRIMARY);
    let (code, result) = stack.failover(
        json!({}),
        &[
            "--virtual-time",
            "--escalate-pages",
            "--token-patience",
            "30",
            "--name",
            "paged-1",
            "--fault",
            "PromoteReplica:1:Unsafe",
        ],
    );
    assert_eq!(code, 1, "{result:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let page = loop {
        if let Some(m) = stack.tier_messages(1).into_iter().next() {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tier 1 was never paged"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        page["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("[MueJam DR] PAGE (tier 1/4)")),
        "{page:#}"
    );
    let body = page["message"].as_str().unwrap_or_default();
    assert!(body.contains("drctl ack paged-1"), "{body}");
    assert_eq!(page["attributes"]["event"], "page");
    let acked = drctl(
        &stack.home,
        &[
            "ack", "paged-1", "--local", "--by", "alice", "--reason", "on it",
        ],
    );
    assert!(
        acked.status.success(),
        "{}",
        String::from_utf8_lossy(&acked.stderr)
    );
    assert!(
        String::from_utf8_lossy(&acked.stdout).contains("(paged as primary-on-call)"),
        "{}",
        String::from_utf8_lossy(&acked.stdout)
    );
    // The climb ends acknowledged, and nobody else was paged.
    let registry = dr_local::executions::LocalExecutions::new(&stack.home);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = registry
            .get(&Page::execution_name("paged-1"))
            .expect("registry")
            .map(|r| r.state);
        if state == Some(ExecutionState::Succeeded) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the climb did not end acknowledged: {state:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    for tier in 2..=4 {
        assert!(stack.tier_messages(tier).is_empty(), "tier {tier} paged");
    }
    // A second acknowledgement is refused: it was acknowledged once.
    let again = drctl(&stack.home, &["ack", "paged-1", "--local", "--by", "bob"]);
    assert!(!again.status.success());
}

/// An alarm that pages (the probe that cannot probe) climbs all four tiers
/// when nobody acknowledges it, and the climb ends saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_nobody_acknowledges_pages_every_tier_in_turn() {
    let stack = Stack::up();
    let event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/page-escalation.json")).expect("event"),
    )
    .expect("json");
    let (code, result) = stack.run(
        "statemachines/page-escalation.asl.json",
        &event,
        &[
            "--virtual-time",
            "--token-patience",
            "1",
            "--name",
            "alarm-1",
        ],
    );
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["error"], "Unacknowledged", "{result:#}");
    for tier in 1..=4u8 {
        let messages = stack.tier_messages(tier);
        assert_eq!(messages.len(), 1, "tier {tier}: {messages:#?}");
        let body = messages[0]["message"].as_str().unwrap_or_default();
        assert!(
            body.contains("drctl ack muejam-dr-ProbeBrokenAlarm-1A2B3C-20261129T030000Z"),
            "{body}"
        );
        assert!(body.contains("Threshold Crossed"), "{body}");
    }
}
