//! Where `drctl start|watch|executions|report` act: the local runner
//! (`--local`) or the deployment's Step Functions and reports bucket, behind
//! the same ports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use clap::Args;
use dr_core::*;
use dr_local::executions::{ExecutionRecord, LocalExecutions, StartClaim};
use dr_scenarios::watch::{input_digest, start_decision, StartDecision};
use serde_json::Value;

/// The target of the execution commands.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The local stack's runner instead of the deployment on AWS.
    #[arg(long)]
    pub local: bool,
    /// On AWS: the deployment's state machines are named <prefix><scenario>.
    #[arg(long, env = "DRCTL_STATE_MACHINE_PREFIX", default_value = "muejam-")]
    pub prefix: String,
    /// On AWS: the reports bucket (the stack's ReportsBucketName output).
    #[arg(long, env = "DRCTL_REPORTS_BUCKET")]
    pub reports_bucket: Option<String>,
}

/// The executions and the reports of the target.
pub struct Target {
    pub control: Box<dyn ExecutionControl>,
    /// `None` on AWS without `--reports-bucket`.
    pub reports: Option<Box<dyn ReportStore>>,
    /// Where the reports are, for people: a directory or `s3://bucket`.
    pub reports_at: String,
    pub local: bool,
}

impl TargetArgs {
    pub async fn open(&self, virtual_time: bool) -> DrResult<Target> {
        if self.local {
            let home =
                crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))?;
            let reports = home.join("reports");
            return Ok(Target {
                control: Box::new(LocalControl::new(&home, virtual_time)),
                reports_at: reports.display().to_string(),
                reports: Some(Box::new(dr_local::reports::FileReportStore::new(reports))),
                local: true,
            });
        }
        let clients = dr_aws::AwsClients::connect(&dr_aws::AwsTarget::default()).await;
        Ok(Target {
            control: Box::new(dr_aws::SfnControl::new(
                clients.sfn.clone(),
                self.prefix.clone(),
            )),
            reports_at: self
                .reports_bucket
                .as_deref()
                .map(|b| format!("s3://{b}/{}", dr_aws::reports::REPORTS_PREFIX))
                .unwrap_or_else(|| "the stack's ReportsBucket".to_owned()),
            reports: self.reports_bucket.as_deref().map(|bucket| {
                Box::new(dr_aws::S3ReportStore::new(
                    clients.s3.clone(),
                    bucket,
                    dr_aws::reports::REPORTS_PREFIX,
                )) as Box<dyn ReportStore>
            }),
            local: false,
        })
    }
}

/// The local runner's executions: a start runs `drctl run` detached, whose
/// history file `drctl watch` follows.
pub struct LocalControl {
    home: PathBuf,
    registry: LocalExecutions,
    virtual_time: bool,
    /// `--token-patience` for the runs it starts (with virtual time).
    token_patience: Option<u64>,
}

/// How long a detached run may take to register itself.
const REGISTRATION_WAIT: Duration = Duration::from_secs(60);

fn summary_of(record: &ExecutionRecord) -> ExecutionSummary {
    ExecutionSummary {
        name: record.name.clone(),
        arn: record.arn.clone(),
        scenario: record.state_machine.clone(),
        state: record.effective_state(),
        started_at: record.started_at,
        stopped_at: record.stopped_at,
    }
}

/// The name in an execution ARN (or the name itself).
fn name_of(execution: &str) -> &str {
    if execution.starts_with("arn:") {
        execution.rsplit(':').next().unwrap_or(execution)
    } else {
        execution
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl LocalControl {
    pub fn new(home: &Path, virtual_time: bool) -> Self {
        LocalControl {
            home: home.to_owned(),
            registry: LocalExecutions::new(home),
            virtual_time,
            token_patience: None,
        }
    }

    /// The runs it starts wait this many real seconds for a person on the
    /// virtual clock (`drctl run --token-patience`).
    pub fn with_token_patience(mut self, seconds: Option<u64>) -> Self {
        self.token_patience = seconds;
        self
    }

    fn existing(&self, name: &str, claim: &StartClaim) -> DrResult<ExecutionSummary> {
        Ok(match self.registry.get(name)? {
            Some(record) => summary_of(&record),
            // Claimed, not registered yet: it is starting.
            None => ExecutionSummary {
                name: name.to_owned(),
                arn: dr_runner::engine::execution_arn(&claim.scenario, name),
                scenario: claim.scenario.clone(),
                state: ExecutionState::Running,
                started_at: claim.claimed_at,
                stopped_at: None,
            },
        })
    }

    /// Runs `drctl run` for the claimed name, detached from this process
    /// (its own process group: a Ctrl-C here does not stop the recovery),
    /// and waits until it has registered.
    async fn spawn(&self, scenario: &str, name: &str, input: &Value) -> DrResult<ExecutionSummary> {
        let files = self.registry.files(name);
        let input_path = self.registry.set_input(name, input)?;
        let log_path = files.join("run.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| DrError::Internal(format!("creating {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| DrError::Internal(format!("opening {}: {e}", log_path.display())))?;
        let exe = std::env::current_exe()
            .map_err(|e| DrError::Internal(format!("finding drctl itself: {e}")))?;
        let mut command = std::process::Command::new(exe);
        command
            .args(["run", scenario, "--local", "--name", name, "--input"])
            .arg(&input_path)
            .env("DRCTL_HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if self.virtual_time {
            command.arg("--virtual-time");
            if let Some(seconds) = self.token_patience {
                command.args(["--token-patience", &seconds.to_string()]);
            }
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| DrError::Internal(format!("starting drctl run: {e}")))?;
        let pid = child.id();
        let deadline = std::time::Instant::now() + REGISTRATION_WAIT;
        loop {
            if let Some(record) = self.registry.get(name)? {
                if record.pid == pid {
                    return Ok(summary_of(&record));
                }
            }
            let exited = child
                .try_wait()
                .map_err(|e| DrError::Internal(format!("watching drctl run: {e}")))?;
            if exited.is_some() || std::time::Instant::now() > deadline {
                if exited.is_none() {
                    let _ = child.kill();
                }
                // It never ran: the name may be started again.
                let _ = std::fs::remove_file(files.join("claim.json"));
                return Err(DrError::InvalidInput(format!(
                    "drctl run did not start {name}:\n{}",
                    tail(&log_path)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl ExecutionControl for LocalControl {
    async fn start(&self, scenario: &str, name: &str, input: &Value) -> DrResult<StartOutcome> {
        let digest = input_digest(input);
        let claim = StartClaim {
            scenario: scenario.to_owned(),
            input_digest: digest.clone(),
            claimed_at: Utc::now(),
        };
        let Some(earlier) = self.registry.claim(name, &claim)? else {
            return self
                .spawn(scenario, name, input)
                .await
                .map(StartOutcome::New);
        };
        let existing = self.existing(name, &earlier)?;
        match start_decision(
            Some((earlier.input_digest.as_str(), existing.state)),
            &digest,
        ) {
            StartDecision::AlreadyRunning => Ok(StartOutcome::AlreadyRunning(existing)),
            StartDecision::AlreadyRan => Ok(StartOutcome::AlreadyRan(existing)),
            StartDecision::Conflict | StartDecision::Start => Err(DrError::AlreadyExists(format!(
                "an execution named {name} exists with another input: choose another name"
            ))),
        }
    }

    async fn describe(&self, execution: &str) -> DrResult<Option<ExecutionDetail>> {
        let name = name_of(execution);
        let Some(record) = self.registry.get(name)? else {
            return Ok(None);
        };
        let input = self.registry.input(name)?;
        let result = self.registry.result(name)?;
        Ok(Some(ExecutionDetail {
            summary: summary_of(&record),
            input,
            output: result.as_ref().and_then(|r| r.output.clone()),
            error: result.as_ref().and_then(|r| r.error.clone()),
            cause: result.and_then(|r| r.cause),
        }))
    }

    async fn events(&self, execution_arn: &str, after_id: u64) -> DrResult<Vec<ExecutionEvent>> {
        Ok(self
            .registry
            .events(name_of(execution_arn), after_id)?
            .iter()
            .filter_map(ExecutionEvent::from_history_json)
            .collect())
    }

    async fn list(&self, scenario: Option<&str>) -> DrResult<Vec<ExecutionSummary>> {
        Ok(self
            .registry
            .list()?
            .iter()
            .filter(|r| scenario.is_none_or(|s| s == r.state_machine))
            .map(summary_of)
            .collect())
    }

    async fn definition(&self, scenario: &str) -> DrResult<Option<Value>> {
        let path = Path::new("statemachines").join(format!("{scenario}.asl.json"));
        Ok(std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
}
