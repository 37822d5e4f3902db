//! Helpers shared by the end-to-end tests: a local stack per test, taken
//! down on drop; runs of the real state machines through `drctl run`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dr_aws::{AwsClients, AwsTarget};
use dr_core::*;
use dr_local::LocalControlPlane;
use serde_json::Value;

pub const PRIMARY: &str = "muejam-db-prod";
pub const REPLICA: &str = "muejam-db-prod-replica";
/// The replica a first failover builds: the registry names it `<prefix>-r1`.
pub const NEW_REPLICA: &str = "muejam-db-prod-r1";
/// The database's name in the topology registry.
pub const DATABASE: &str = "muejam";

/// The state machines the end-to-end tests run.
pub const FAILOVER: &str = "statemachines/database-failover.asl.json";
pub const DATA_CORRUPTION: &str = "statemachines/data-corruption.asl.json";

/// A `drctl run` in the background, as on-call would leave one waiting for
/// an approval.
///
/// A test that panics never leaves it running: dropping it kills the run.
pub struct Background {
    child: Option<Child>,
    /// The run's progress lines (stderr), read from the start by a thread
    /// that drains the pipe to its end: a run whose progress nobody reads
    /// (a test waiting on a message) would otherwise block on a full pipe
    /// once it printed 64 KiB (a corruption run prints about 10 KiB before
    /// it asks; a long poll loop prints more).
    progress: std::sync::mpsc::Receiver<String>,
    /// Every progress line read so far, for the panic messages.
    printed: Vec<String>,
}

/// How long a test waits for a progress line before it gives up on the run:
/// far beyond any run these tests make, short of nextest's own limit.
pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(240);

/// How long a test waits for a background run to end.
pub const RUN_DEADLINE: Duration = Duration::from_secs(480);

impl Background {
    pub fn start(
        stack: &Stack,
        machine: &str,
        input: &Value,
        name: &str,
        extra: &[&str],
    ) -> Background {
        Self::start_with_env(stack, machine, input, name, extra, &[])
    }

    pub fn start_with_env(
        stack: &Stack,
        machine: &str,
        input: &Value,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Background {
        let path = stack.home.join(format!("input-{name}.json"));
        std::fs::write(&path, serde_json::to_vec(input).expect("json")).expect("input");
        let mut child = Command::new(env!("CARGO_BIN_EXE_drctl"))
            .args([
                "run",
                machine,
                "--input",
                path.to_str().expect("path"),
                "--local",
                "--output",
                "json",
                "--name",
                name,
            ])
            .args(extra)
            .env("DRCTL_HOME", &stack.home)
            .envs(env.iter().copied())
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drctl run");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, progress) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens, keep draining to the end.
                let _ = tx.send(line);
            }
        });
        Background {
            child: Some(child),
            progress,
            printed: Vec::new(),
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the run was not yet reaped")
    }

    /// Reads the run's progress until a line contains `text`. Panics, with
    /// what the run printed, when the run ends first or no such line comes
    /// within [`PROGRESS_DEADLINE`] (the run is killed then): a run that
    /// hangs fails its test instead of holding CI until its time-out.
    pub fn wait_for_line(&mut self, text: &str) {
        let deadline = Instant::now() + PROGRESS_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self.progress.recv_timeout(left);
            match received {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.printed.push(line);
                    if hit {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self.give_up(format!(
                    "no progress line with {text:?} within {PROGRESS_DEADLINE:?}"
                )),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the run ended before {text:?}; it printed:\n{}",
                    self.printed.join("\n")
                ),
            }
        }
    }

    /// Waits until a message whose subject contains `text` has been
    /// delivered, as [`wait_for_message`]; panics with what the run printed
    /// when the run ends first or the message has not come within
    /// [`MESSAGE_DEADLINE`] (the run is killed then).
    pub fn wait_for_message(&mut self, stack: &Stack, text: &str) -> Value {
        let deadline = Instant::now() + MESSAGE_DEADLINE;
        loop {
            if let Some(m) = message_with(stack, text) {
                return m;
            }
            self.printed.extend(self.progress.try_iter());
            let ended = self.child().try_wait().ok().flatten();
            if let Some(status) = ended {
                // The message may have been sent just before the end.
                if let Some(m) = message_with(stack, text) {
                    return m;
                }
                self.printed.extend(self.progress.iter());
                panic!(
                    "the run ended ({status}) without a message with {text:?}; it printed:\n{}",
                    self.printed.join("\n")
                );
            }
            if Instant::now() > deadline {
                self.give_up(format!(
                    "no message with {text:?} within {MESSAGE_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills the run and fails the test with `why` and what the run printed.
    fn give_up(&mut self, why: String) -> ! {
        self.kill();
        self.printed.extend(self.progress.try_iter());
        panic!("{why}; the run printed:\n{}", self.printed.join("\n"));
    }

    /// Kills the run (SIGKILL, as a Lambda's or the runner's death) and
    /// reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the run to end: its exit code and `--output json`.
    /// Panics, with what the run printed, when it has not ended within
    /// [`RUN_DEADLINE`] (the run is killed then).
    pub fn finish(mut self) -> (i32, Value) {
        use std::io::Read;
        let child = self.child();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let out = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                self.give_up(format!("the run did not end within {RUN_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        let stdout = out.join().expect("stdout reader");
        // The reader ends at the pipe's end, after the run's last line.
        self.printed.extend(self.progress.iter());
        let printed = self.printed.join("\n");
        let result = serde_json::from_slice(&stdout)
            .unwrap_or_else(|_| panic!("run printed no JSON: {printed}"));
        (status.code().unwrap_or(-1), result)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long a test waits for a message: patience, not a measure. On 2 busy
/// cores (./scripts/test runs two end-to-end tests at once) a recovery took
/// over 120 s to ask.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(300);

fn message_with(stack: &Stack, text: &str) -> Option<Value> {
    stack
        .messages()
        .into_iter()
        .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(text)))
}

/// Waits until a message whose subject contains `text` has been delivered.
/// A test with a run in the background waits with
/// [`Background::wait_for_message`], which says what the run did.
pub fn wait_for_message(stack: &Stack, text: &str) -> Value {
    let deadline = Instant::now() + MESSAGE_DEADLINE;
    loop {
        if let Some(m) = message_with(stack, text) {
            return m;
        }
        assert!(Instant::now() < deadline, "no message with {text:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `drctl approve|reject`, which must be accepted.
pub fn answered(stack: &Stack, verb: &str, execution: &str, reason: &str) {
    let out = answer(stack, verb, execution, reason);
    assert!(
        out.status.success(),
        "{verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `drctl approve|reject <execution>` as alice.
pub fn answer(stack: &Stack, verb: &str, execution: &str, reason: &str) -> Output {
    drctl(
        &stack.home,
        &[
            verb, execution, "--local", "--reason", reason, "--by", "alice",
        ],
    )
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn drctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drctl"))
        .args(args)
        .env("DRCTL_HOME", home)
        .current_dir(repo())
        .output()
        .expect("run drctl")
}

pub fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

/// A local stack for one test; taken down on drop, even after a failure.
pub struct Stack {
    pub home: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = drctl(
            &self.home,
            &["local", "down", "--home", self.home.to_str().unwrap_or("")],
        );
    }
}

impl Stack {
    pub fn up() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("failover-e2e-")
            .tempdir()
            .expect("tmp");
        let stack = Stack {
            home: dir.path().join("home"),
            _dir: dir,
        };
        let out = drctl(
            &stack.home,
            &["local", "up", "--home", stack.home_str(), "--scale", "0.01"],
        );
        assert!(
            out.status.success(),
            "up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stack
    }

    /// The MueJam API's health URL behind the stack's load balancer.
    pub fn app_health_url(&self) -> String {
        let out = drctl(
            &self.home,
            &[
                "local",
                "status",
                "--home",
                self.home_str(),
                "--output",
                "json",
            ],
        );
        let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        status["app"][0]["health_url"]
            .as_str()
            .expect("a health URL")
            .to_owned()
    }

    /// The application a recovery restarts and checks: the local API's
    /// deployment and its health URL.
    pub fn app_target(&self) -> Value {
        serde_json::json!({
            "deployment": {"namespace": "muejam", "name": "muejam-api"},
            "health_url": self.app_health_url()
        })
    }

    /// `drctl local <args> --home <home>` (an app-tier command), which must succeed.
    pub fn local(&self, args: &[&str]) {
        let mut all = vec!["local"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--home", self.home_str()]);
        let out = drctl(&self.home, &all);
        assert!(
            out.status.success(),
            "drctl {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A broken release (health answers 500) that adds migration 0003.
    pub fn deploy_bad_release(&self) {
        self.local(&["deploy", "--bad", "--migrations", "3"]);
    }

    /// Every app server killed.
    pub fn kill_app_servers(&self) {
        self.local(&["app-kill"]);
    }

    /// The app servers' instance ids, sorted.
    pub fn app_servers(&self) -> Vec<String> {
        let state = muejam_app::LocalAppPlatform::new(&self.home)
            .expect("app")
            .read()
            .expect("fleet state");
        let mut ids: Vec<String> = state
            .groups
            .values()
            .flat_map(|g| g.instances.iter().map(|i| i.instance_id.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// `READ_ONLY_MODE` in the local API deployment's current template.
    pub fn read_only_mode(&self) -> Option<String> {
        let state = muejam_app::LocalAppPlatform::new(&self.home)
            .expect("app")
            .read()
            .expect("app state");
        state
            .deployments
            .values()
            .next()
            .expect("the API's deployment")
            .current_revision()
            .expect("a revision")
            .template
            .env
            .get("READ_ONLY_MODE")
            .cloned()
    }

    /// A story by `author_id` written through the load balancer: the status
    /// and the body.
    pub async fn app_write(&self, author_id: i64, title: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.app_health_url().replace("/health", "/stories"))
            .json(&serde_json::json!({"author_id": author_id, "title": title}))
            .send()
            .await
            .expect("an answer");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// `drctl invoke <function> --local` with `payload` and `extra`
    /// arguments, however it ends.
    pub fn try_invoke(&self, function: &str, payload: &Value, extra: &[&str]) -> Output {
        let path = self.home.join(format!("payload-{}.json", uuid_like()));
        std::fs::write(&path, payload.to_string()).expect("payload");
        let mut args = vec![
            "invoke",
            function,
            "--local",
            "--payload",
            path.to_str().expect("path"),
        ];
        args.extend(extra);
        drctl(&self.home, &args)
    }

    /// `drctl invoke <function> --local` with `payload`, which must succeed:
    /// the function's output.
    pub fn invoke(&self, function: &str, payload: &Value) -> Value {
        let out = self.try_invoke(function, payload, &[]);
        assert!(
            out.status.success(),
            "{function}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the function's JSON output")
    }

    /// `drctl executions --local [scenario] --output json`: (name, state).
    pub fn executions(&self, scenario: Option<&str>) -> Vec<(String, String)> {
        let mut args = vec!["executions", "--local", "--output", "json"];
        args.extend(scenario);
        let out = drctl(&self.home, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("rows");
        rows.iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// A WAF IP set in moto, holding `addresses`.
    pub async fn create_ip_set(
        &self,
        name: &str,
        version: aws_sdk_wafv2::types::IpAddressVersion,
        addresses: &[&str],
    ) -> IpSetRef {
        let created = self
            .moto_clients()
            .await
            .wafv2
            .create_ip_set()
            .name(name)
            .scope(aws_sdk_wafv2::types::Scope::Regional)
            .ip_address_version(version)
            .set_addresses(Some(addresses.iter().map(|a| (*a).to_owned()).collect()))
            .send()
            .await
            .expect("ip set");
        IpSetRef {
            name: name.into(),
            id: created
                .summary()
                .and_then(|s| s.id())
                .expect("id")
                .to_owned(),
            scope: "REGIONAL".into(),
        }
    }

    /// `GET url`: the status and the JSON body (null when it is not JSON).
    pub async fn http_get(url: &str) -> (u16, Value) {
        let r = reqwest::get(url).await.expect("an answer");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    pub fn home_str(&self) -> &str {
        self.home.to_str().expect("utf-8 path")
    }

    pub fn platform(&self) -> LocalControlPlane {
        LocalControlPlane::open(&self.home, None).expect("platform")
    }

    /// The failover event with `changes` applied.
    pub fn request(&self, changes: Value) -> Value {
        let mut input: Value = serde_json::from_slice(
            &std::fs::read(repo().join("events/database-failover.json")).expect("event"),
        )
        .expect("json");
        if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
            i.extend(c.clone());
        }
        input
    }

    /// Runs a state machine on `input`; returns the exit code and `--output json`.
    pub fn run(&self, machine: &str, input: &Value, extra: &[&str]) -> (i32, Value) {
        let path = self.home.join(format!("input-{}.json", uuid_like()));
        std::fs::write(&path, serde_json::to_vec(input).expect("json")).expect("write input");
        let mut args = vec![
            "run",
            machine,
            "--input",
            path.to_str().expect("path"),
            "--local",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = drctl(&self.home, &args);
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "run printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), result)
    }

    /// Snapshot replication run once (as its schedule would): a verified
    /// copy of the newest snapshot in us-west-2, what the region failover
    /// and the drill's region-restore rehearsal restore.
    pub fn replicate_to_us_west_2(&self) {
        let input = serde_json::json!({
            "backup_region": "us-west-2",
            "kms_key_id": "local/us-west-2/snapshots",
            "poll_interval_seconds": 1
        });
        let (code, result) = self.run(
            "statemachines/snapshot-replication.asl.json",
            &input,
            &["--virtual-time", "--name", "repl"],
        );
        assert_eq!(code, 0, "snapshot replication: {result:#}");
    }

    /// The input the alarm sends: the database's name only.
    pub fn alarm_request(&self, changes: Value) -> Value {
        let mut input = serde_json::json!({
            "database": DATABASE,
            "trigger": {"source": "cloudwatch-alarm", "alarm": "muejam-db-prod-unreachable"}
        });
        if let (Some(i), Some(c)) = (input.as_object_mut(), changes.as_object()) {
            i.extend(c.clone());
        }
        input
    }

    /// Runs the failover as the alarm starts it; returns the exit code and `--output json`.
    pub fn alarm_failover(&self, changes: Value, extra: &[&str]) -> (i32, Value) {
        self.run(
            "statemachines/database-failover.asl.json",
            &self.alarm_request(changes),
            extra,
        )
    }

    /// The identifiers of every instance of the stack, sorted.
    pub async fn instance_ids(&self) -> Vec<InstanceId> {
        self.platform()
            .list_instances()
            .await
            .expect("list")
            .into_iter()
            .map(|i| i.instance_id)
            .collect()
    }

    /// Every recovery lock held.
    pub async fn locks(&self) -> Vec<LockHolder> {
        dr_aws::DynamoDbLock::new(self.moto_clients().await.dynamodb, "muejam-dr-locks")
            .holders()
            .await
            .expect("locks")
    }

    /// Writes a topology record as it is, bypassing the registry's checks
    /// (as a hand edit of the table would).
    pub async fn write_raw_topology(&self, topology: &Value) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.moto_clients()
            .await
            .dynamodb
            .put_item()
            .table_name("muejam-dr-topology")
            .item("database", AttributeValue::S(DATABASE.to_owned()))
            .item(
                "version",
                AttributeValue::N(topology["version"].as_u64().unwrap_or(1).to_string()),
            )
            .item("document", AttributeValue::S(topology.to_string()))
            .send()
            .await
            .expect("raw put");
    }

    /// The topology registry's record of the MueJam database.
    pub async fn topology(&self) -> Topology {
        dr_aws::DynamoDbTopology::new(self.moto_clients().await.dynamodb, "muejam-dr-topology")
            .get(DATABASE)
            .await
            .expect("registry")
            .expect("registered")
    }

    /// Runs the failover; returns the exit code and `--output json`.
    pub fn failover(&self, changes: Value, extra: &[&str]) -> (i32, Value) {
        self.run(
            "statemachines/database-failover.asl.json",
            &self.request(changes),
            extra,
        )
    }

    pub fn crash(&self, instance: &str) {
        let out = drctl(
            &self.home,
            &["local", "crash", instance, "--home", self.home_str()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn describe(&self, instance: &str) -> InstanceDescription {
        self.platform()
            .describe_instance(&id(instance))
            .await
            .expect("describe")
    }

    /// Clients of this stack's moto server.
    pub async fn moto_clients(&self) -> AwsClients {
        let moto = self
            .platform()
            .store()
            .read()
            .expect("state")
            .moto
            .expect("moto");
        AwsClients::connect(&AwsTarget::moto(
            &dr_local::moto::endpoint(&moto),
            "us-east-1",
        ))
        .await
    }

    /// Holds the recovery lock of `resource` as `owner`, as a running recovery would.
    pub async fn hold_recovery_lock(&self, resource: &str, owner: &str) -> dr_aws::DynamoDbLock {
        let lock = dr_aws::DynamoDbLock::new(self.moto_clients().await.dynamodb, "muejam-dr-locks");
        lock.acquire(resource, owner, 3600)
            .await
            .expect("lock taken");
        lock
    }

    /// The address of an instance's endpoint (what the DNS record should name).
    pub async fn address(&self, instance: &str) -> String {
        self.describe(instance)
            .await
            .endpoint
            .expect("the instance has an endpoint")
            .address
    }

    /// The database record's value, if the record exists.
    pub async fn dns_value_or_none(&self) -> Option<String> {
        dr_aws::Route53Dns::new(self.moto_clients().await.route53)
            .get_record("muejam.internal", "db.muejam.internal", "CNAME")
            .await
            .expect("read record")
            .map(|r| r.value)
    }

    /// Deletes the database record, as a bad DNS change would.
    pub async fn delete_dns_record(&self) {
        use aws_sdk_route53::types::*;
        let route53 = self.moto_clients().await.route53;
        let zone = dr_aws::Route53Dns::new(route53.clone())
            .zone_id("muejam.internal")
            .await
            .expect("zone");
        let value = self.dns_value().await;
        let record = ResourceRecordSet::builder()
            .name("db.muejam.internal.")
            .r#type(RrType::Cname)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
            .build()
            .expect("record");
        route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Delete)
                            .resource_record_set(record)
                            .build()
                            .expect("change"),
                    )
                    .build()
                    .expect("batch"),
            )
            .send()
            .await
            .expect("delete record");
        assert_eq!(self.dns_value_or_none().await, None);
    }

    pub async fn dns_value(&self) -> String {
        dr_aws::Route53Dns::new(self.moto_clients().await.route53)
            .get_record("muejam.internal", "db.muejam.internal", "CNAME")
            .await
            .expect("read record")
            .expect("record exists")
            .value
    }

    pub fn messages(&self) -> Vec<Value> {
        self.messages_of(&[])
    }

    /// What escalation tier `n`'s topic delivered (its own SQS queue).
    pub fn tier_messages(&self, n: u8) -> Vec<Value> {
        self.messages_of(&["--tier", &n.to_string()])
    }

    /// `drctl local messages` with `which` (none: the alerts inbox).
    pub fn messages_of(&self, which: &[&str]) -> Vec<Value> {
        let mut args = vec!["local", "messages"];
        args.extend_from_slice(which);
        args.extend_from_slice(&["--home", self.home_str(), "--output", "json"]);
        let out = drctl(&self.home, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The ARN of the local topic named `name`.
    pub async fn topic_arn(&self, name: &str) -> String {
        let topics = self
            .moto_clients()
            .await
            .sns
            .list_topics()
            .send()
            .await
            .expect("topics");
        topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|t| t.ends_with(&format!(":{name}")))
            .unwrap_or_else(|| panic!("no topic {name}"))
            .to_owned()
    }

    /// Removes every subscription of the local topic named `name`: nobody
    /// hears it any more.
    pub async fn unsubscribe_all(&self, name: &str) {
        let arn = self.topic_arn(name).await;
        let sns = self.moto_clients().await.sns;
        let subscriptions = sns
            .list_subscriptions_by_topic()
            .topic_arn(&arn)
            .send()
            .await
            .expect("subscriptions");
        for subscription in subscriptions.subscriptions() {
            sns.unsubscribe()
                .subscription_arn(subscription.subscription_arn().unwrap_or_default())
                .send()
                .await
                .expect("unsubscribe");
        }
    }

    pub fn subjects(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter_map(|m| m["subject"].as_str().map(str::to_owned))
            .collect()
    }

    /// The JSON report of run `name` of `scenario` (kept whether the run
    /// passed or not).
    pub fn report_named(&self, scenario: &str, name: &str) -> Value {
        let dir = self.home.join("reports").join(scenario);
        let suffix = format!("-{name}.json");
        let path = std::fs::read_dir(&dir)
            .expect("reports")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .unwrap_or_else(|| panic!("no report of {name} in {}", dir.display()));
        serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
    }

    pub async fn sql(&self, instance: &str) -> tokio_postgres::Client {
        let target = self
            .platform()
            .database_target(&id(instance), None)
            .expect("target");
        dr_postgres::connect(&target).await.expect("connect")
    }
}

/// The failover input the alarm's EventBridge rule sends for the documented
/// alarm event (events/alarm-state-change.json).
pub fn alarm_event_input() -> Value {
    let template =
        dr_runner::sam::SamTemplate::load(&repo().join("template.yaml")).expect("template");
    let rules = template
        .event_rules("DatabaseFailoverStateMachine")
        .expect("rules");
    let rule = rules
        .iter()
        .find(|r| r.name == "DatabaseAlarm")
        .expect("the alarm rule");
    let event: Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/alarm-state-change.json")).expect("event"),
    )
    .expect("json");
    rule.transform(&event).expect("transforms")
}

pub fn uuid_like() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

pub fn state_names(result: &Value) -> Vec<String> {
    result["history"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| {
                    e["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("StateEntered"))
                })
                .filter_map(|e| {
                    e["stateEnteredEventDetails"]["name"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What headless Chromium made of a page: its DOM after rendering, and how
/// many pixels of its screenshot are not the white background and how many
/// are the reports' bar blue (#2e86c1).
pub struct Rendered {
    pub dom: String,
    pub painted_pixels: usize,
    pub bar_pixels: usize,
}

/// Renders `page` in Debian's Chromium, headless (installed by
/// `scripts/setup`): a real browser's layout, not a string match.
pub fn render_in_chromium(page: &Path) -> Rendered {
    let profile = tempfile::tempdir().expect("profile");
    let shot = profile.path().join("shot.png");
    let url = format!("file://{}", page.display());
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1000,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs (./scripts/setup --deploy-tools installs it)")
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let screenshot = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(
        screenshot.status.success(),
        "{}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("png");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("frame");
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let (mut painted, mut bars) = (0, 0);
    for p in pixels.chunks(channels) {
        if p[..3] != [255, 255, 255] {
            painted += 1;
        }
        if p[0].abs_diff(0x2e) < 8 && p[1].abs_diff(0x86) < 8 && p[2].abs_diff(0xc1) < 8 {
            bars += 1;
        }
    }
    Rendered {
        dom: String::from_utf8_lossy(&dom.stdout).into_owned(),
        painted_pixels: painted,
        bar_pixels: bars,
    }
}
