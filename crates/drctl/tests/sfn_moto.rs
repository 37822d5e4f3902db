//! `drctl start|watch|approve|reject|executions|report` on AWS, over Step
//! Functions' real wire protocol: moto's server executing a definition made
//! of Pass, Wait, Choice and a `.waitForTaskToken` task (moto cannot invoke
//! our Lambdas, so the test plays the approval and report functions: it
//! reads the token from the queue the task wrote to, records the approval
//! as the request-approval function does, and stores the report where the
//! report function does).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as Span, Utc};
use dr_aws::{AwsClients, AwsTarget, DynamoDbApprovals};
use dr_core::*;
use secrecy::SecretString;
use serde_json::{json, Value};

const BUCKET: &str = "muejam-dr-reports-test";
const TABLE: &str = "muejam-dr-approvals";
const MACHINE: &str = "muejam-database-failover";

struct Moto {
    record: dr_local::state::MotoRecord,
    endpoint: String,
    clients: AwsClients,
    home: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = dr_local::moto::stop(&self.record);
    }
}

impl Moto {
    /// `drctl` against this moto as the AWS account (no local stack).
    fn drctl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run drctl")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_drctl"));
        command
            .args(args)
            .env_remove("DRCTL_HOME")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            // moto accepts any credentials; placeholders, not secrets.
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", self.home.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("no-creds"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DRCTL_REPORTS_BUCKET", BUCKET)
            .env("DRCTL_APPROVALS_TABLE", TABLE)
            .env("DRCTL_OPERATOR", "alice")
            .current_dir(self.home.path());
        command
    }

    fn input(&self, name: &str, value: &Value) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, serde_json::to_vec(value).expect("json")).expect("input");
        path.display().to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// moto executing state machines, with the queue, table and bucket a
/// deployment has.
async fn moto() -> (Moto, String) {
    let home = tempfile::tempdir().expect("home");
    // No profile of this machine's may change what drctl talks to.
    for empty in ["no-config", "no-creds"] {
        std::fs::write(home.path().join(empty), "").expect("empty file");
    }
    let port = dr_local::processes::free_port(|_| false).expect("port");
    let record = dr_local::moto::start(home.path(), port).expect("moto starts");
    let endpoint = dr_local::moto::endpoint(&record);
    // Execution mode is set before any state machine is created.
    let configured = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/config"))
        .json(&json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .expect("config");
    assert!(configured.status().is_success(), "{}", configured.status());
    let clients = AwsClients::connect(&AwsTarget::moto(&endpoint, "us-east-1")).await;
    let sqs = aws_sdk_sqs::Client::new(&AwsTarget::moto(&endpoint, "us-east-1").load().await);
    let queue = sqs
        .create_queue()
        .queue_name("approvals")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    use dr_aws::dynamodb_types::*;
    clients
        .dynamodb
        .create_table()
        .table_name(TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("execution")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("execution")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table");
    clients
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    // A failover's shape: a bounded poll loop, then an approval.
    let definition = json!({
        "StartAt": "Plan",
        "States": {
            "Plan": {"Type": "Pass", "Result": {"limits": {"promotion_polls": 3}},
                     "ResultPath": "$.plan", "Next": "InitPromotionWait"},
            "InitPromotionWait": {"Type": "Pass", "Result": {"polls": 0},
                                  "ResultPath": "$.promotion_wait", "Next": "IsPromoted"},
            "IsPromoted": {"Type": "Choice", "Choices": [
                {"Variable": "$.promotion_wait.polls",
                 "NumericGreaterThanEqualsPath": "$.plan.limits.promotion_polls",
                 "Next": "AskApproval"}],
                "Default": "WaitForPromotion"},
            "WaitForPromotion": {"Type": "Wait", "Seconds": 1, "Next": "CountPromotionPoll"},
            "CountPromotionPoll": {"Type": "Pass",
                "Parameters": {"polls.$": "States.MathAdd($.promotion_wait.polls, 1)"},
                "ResultPath": "$.promotion_wait", "Next": "IsPromoted"},
            "AskApproval": {"Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue.clone(),
                    "MessageBody": {"token.$": "$$.Task.Token", "execution.$": "$$.Execution.Name"}},
                "ResultPath": "$.approval", "Next": "Done"},
            "Done": {"Type": "Succeed"}
        }
    });
    clients
        .sfn
        .create_state_machine()
        .name(MACHINE)
        .role_arn("arn:aws:iam::123456789012:role/muejam-dr-states")
        .definition(definition.to_string())
        .send()
        .await
        .expect("state machine");
    (
        Moto {
            record,
            endpoint,
            clients,
            home,
        },
        queue,
    )
}

/// The task token the approval task sent, for `execution`.
async fn token_for(moto: &Moto, queue: &str, execution: &str) -> String {
    let sqs = aws_sdk_sqs::Client::new(&AwsTarget::moto(&moto.endpoint, "us-east-1").load().await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .wait_time_seconds(1)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        for message in received.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap_or("{}")).expect("body");
            if body["execution"] == execution {
                return body["token"].as_str().expect("token").to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no approval request for {execution}"
        );
    }
}

/// What the request-approval function records, so that `drctl approve`
/// finds the token by execution name.
async fn open_approval(moto: &Moto, execution: &str, token: String) {
    let now = Utc::now();
    DynamoDbApprovals::new(moto.clients.dynamodb.clone(), TABLE)
        .open(
            &ApprovalRequest {
                execution_name: execution.to_owned(),
                execution_arn: format!(
                    "arn:aws:states:us-east-1:123456789012:execution:{MACHINE}:{execution}"
                ),
                scenario: "database-failover".to_owned(),
                resource: "muejam".to_owned(),
                question: "Promote muejam-db-prod-replica?".to_owned(),
                facts: vec![],
                proposed_action: "promote".to_owned(),
                default_action: "nothing is changed".to_owned(),
                requested_at: now,
                deadline: now + Span::minutes(30),
                status: ApprovalStatus::Pending,
                answer: None,
                escalation: vec![],
            },
            &SecretString::from(token),
        )
        .await
        .expect("approval recorded");
}

fn started_name(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(out));
    stdout
        .split_whitespace()
        .nth(1)
        .expect("a name after 'started'")
        .to_owned()
}

async fn executions(moto: &Moto) -> Vec<Value> {
    let out = moto.drctl(&["executions", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drctl_starts_watches_approves_and_reports_an_execution_on_step_functions() {
    let (moto, queue) = moto().await;
    let trigger = json!({"database": "muejam", "trigger": {"source": "manual", "reason": "primary unreachable"}});
    let input = moto.input("failover.json", &trigger);

    let first = moto.drctl(&["start", "database-failover", "--input", &input]);
    assert!(
        text(&first).starts_with("started database-failover-"),
        "{}",
        text(&first)
    );
    let name = started_name(&first);
    // The same trigger again, key order aside: the same execution.
    let reordered = moto.input(
        "again.json",
        &json!({"trigger": {"reason": "primary unreachable", "source": "manual"}, "database": "muejam"}),
    );
    let second = moto.drctl(&["start", "database-failover", "--input", &reordered]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).starts_with("already running since") && text(&second).contains(&name),
        "{}",
        text(&second)
    );

    // Watch it live while the loop polls and the approval waits.
    let watch = moto
        .command(&["watch", &name, "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let token = token_for(&moto, &queue, &name).await;
    open_approval(&moto, &name, token).await;
    // The report function's files, where it writes them.
    let start = executions(&moto).await[0]["started_at"]
        .as_str()
        .expect("start")
        .parse::<chrono::DateTime<Utc>>()
        .expect("time");
    let key = format!(
        "reports/database-failover/{}-{name}",
        start.format("%Y%m%dT%H%M%SZ")
    );
    let report = json!({"outcome": "succeeded", "passed": true,
        "rto": {"objective_seconds": 14400.0, "achieved_seconds": 42.0, "met": true}});
    for (ext, body) in [
        ("json", report.to_string()),
        ("md", "# Database failover: succeeded\n".to_owned()),
    ] {
        moto.clients
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(format!("{key}.{ext}"))
            .body(body.into_bytes().into())
            .send()
            .await
            .expect("report");
    }
    let approved = moto.drctl(&["approve", &name, "--reason", "replica verified by hand"]);
    assert!(approved.status.success(), "{}", text(&approved));
    assert!(text(&approved).contains("by alice"), "{}", text(&approved));

    let watched = watch.wait_with_output().expect("watch ends");
    let shown = text(&watched);
    assert_eq!(watched.status.code(), Some(0), "{shown}");
    for expected in [
        "(database-failover), started",
        "⏳ WaitForPromotion  poll 1/3 [#######-------------]",
        "⏳ WaitForPromotion  poll 3/3 [####################]",
        "✋ AskApproval (Task): waiting for an answer",
        &format!("approve: drctl approve {name} --reason"),
        "RTO left 3h 59m",
        "SUCCEEDED after",
        "outcome: succeeded, passed, RTO 42s of 4h 00m (met)",
        &format!("report: s3://{BUCKET}/{key}.md"),
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }

    // After it ran: the same trigger starts nothing.
    let third = moto.drctl(&["start", "database-failover", "--input", &input]);
    assert!(third.status.success(), "{}", text(&third));
    assert!(
        text(&third).starts_with(&format!("already ran: {name} SUCCEEDED")),
        "{}",
        text(&third)
    );
    let rows = executions(&moto).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["name"], name.as_str());
    assert_eq!(rows[0]["state"], "SUCCEEDED");
    assert_eq!(rows[0]["scenario"], "database-failover");
    // Its name with another input is refused, as StartExecution does.
    let other = moto.input("other.json", &json!({"database": "other"}));
    let refused = moto.drctl(&[
        "start",
        "database-failover",
        "--input",
        &other,
        "--name",
        &name,
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("error[AlreadyExists]"),
        "{}",
        text(&refused)
    );
    // The report, from the bucket.
    let md = moto.drctl(&["report", &name]);
    assert!(md.status.success(), "{}", text(&md));
    assert_eq!(
        String::from_utf8_lossy(&md.stdout),
        "# Database failover: succeeded\n"
    );
    // A scenario that is not deployed: nothing starts.
    let unknown = moto.drctl(&["start", "region-failover", "--input", &input]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no state machine muejam-region-failover"),
        "{}",
        text(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_execution_ends_the_watch_with_someone_must_act() {
    let (moto, queue) = moto().await;
    let input = moto.input(
        "failover.json",
        &json!({"database": "muejam", "trigger": {"source": "alarm", "reason": "probe failed"}}),
    );
    let name = started_name(&moto.drctl(&["start", "database-failover", "--input", &input]));
    let token = token_for(&moto, &queue, &name).await;
    open_approval(&moto, &name, token).await;
    let rejected = moto.drctl(&["reject", &name, "--reason", "the primary answers"]);
    assert!(rejected.status.success(), "{}", text(&rejected));
    // Watched after the fact: the whole history, then the outcome.
    let watched = moto.drctl(&["watch", &name, "--interval", "0.2", "--timeout", "60"]);
    let shown = text(&watched);
    assert_eq!(watched.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("✋ AskApproval (Task): waiting for an answer"),
        "{shown}"
    );
    assert!(shown.contains("✘ ExecutionFailed: Rejected"), "{shown}");
    assert!(shown.contains("FAILED after"), "{shown}");
    // No report was written for it (the test plays no report function).
    assert!(
        shown.contains(&format!("report: none was written for {name}")),
        "{shown}"
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_drctl")).exists());
}

/// A scheduled check's report, kept where ReadinessFunction keeps it.
async fn keep_readiness(moto: &Moto, minutes_ago: i64, ready: bool) {
    let checked_at = Utc::now() - Span::minutes(minutes_ago);
    let findings = vec![dr_scenarios::readiness::Finding {
        precondition: dr_scenarios::readiness::Precondition::AlertsSubscriber,
        met: ready,
        detail: if ready {
            "2 confirmed"
        } else {
            "nobody is subscribed"
        }
        .to_owned(),
    }];
    let report = dr_scenarios::readiness::ReadinessReport {
        database: "muejam".to_owned(),
        checked_at,
        rpo_seconds: 21_600.0,
        scenarios: dr_scenarios::readiness::assess(&findings, &[]),
        findings,
        not_checked: vec![],
        permissions: vec![],
    };
    moto.clients
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(format!(
            "reports/readiness/muejam/{}.json",
            checked_at.format("%Y%m%dT%H%M%SZ")
        ))
        .body(serde_json::to_vec(&report).expect("json").into())
        .send()
        .await
        .expect("kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drctl_readiness_on_aws_shows_the_newest_scheduled_check_and_says_when_it_is_stale() {
    let (moto, _) = moto().await;
    // No check ran yet: nothing to show, said so.
    let none = moto.drctl(&["readiness"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(
        text(&none).contains("has ReadinessFunction's schedule run?"),
        "{}",
        text(&none)
    );
    // An old check that failed, then a recent one: the recent one is shown.
    keep_readiness(&moto, 50, false).await;
    keep_readiness(&moto, 20, true).await;
    let shown = moto.drctl(&["readiness"]);
    let out = text(&shown);
    // Every scenario needs more than the alerts subscriber, so none is ready;
    // the alerts subscriber line is the recent check's.
    assert!(out.contains("ok   alerts_subscriber: 2 confirmed"), "{out}");
    assert!(!out.contains("STALE"), "{out}");
    assert_eq!(shown.status.code(), Some(1), "{out}");
    // Only checks older than an hour: stale, not measured, exit 1.
    let (stale, _) = crate::moto().await;
    keep_readiness(&stale, 90, true).await;
    let shown = stale.drctl(&["readiness", "--output", "text"]);
    assert_eq!(shown.status.code(), Some(1), "{}", text(&shown));
    assert!(
        text(&shown).contains("STALE: the newest check is 1h 30m old"),
        "{}",
        text(&shown)
    );
    // On AWS the check is the scheduled one: a request is refused.
    let refused = moto.drctl(&["readiness", "--input", "x.json"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
}
