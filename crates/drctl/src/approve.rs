//! `drctl approve|reject <execution>`: answer the question an execution is
//! waiting on, by the execution's name (no task token to copy), recording
//! who answered, when and why. Locally the answer goes to the running
//! `drctl run` through the home's token inbox; on AWS through Step
//! Functions' SendTaskSuccess / SendTaskFailure.

use std::path::PathBuf;
use std::process::ExitCode;

use async_trait::async_trait;
use clap::Args;
use dr_core::*;
use secrecy::ExposeSecret;

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The execution's name, as the approval message shows it.
    execution: String,
    /// Why (kept in the approval record and the report). Required to reject.
    #[arg(long)]
    reason: Option<String>,
    /// Who answers (default: $DRCTL_OPERATOR, else $USER).
    #[arg(long, env = "DRCTL_OPERATOR")]
    by: Option<String>,
    /// Answer an execution of the local stack (`drctl run --local`).
    #[arg(long)]
    local: bool,
    /// The approvals table on AWS (the stack's ApprovalsTableName output).
    #[arg(long, env = "DRCTL_APPROVALS_TABLE", default_value = crate::seed::APPROVALS_TABLE)]
    approvals_table: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// Answers the local runner's waiting tasks through its token inbox (the
/// directory `drctl run` watches, every 100 ms, for the tokens it waits on).
/// With `patience` (`drctl approve`, another process): as Step Functions
/// refuses a token that no longer waits (TaskTimedOut), an answer nobody
/// takes within it is taken back and is `NotFound`. Without (a step of the
/// run itself answering its own token): posted, as before.
pub(crate) struct InboxTaskTokens {
    pub(crate) dir: PathBuf,
    pub(crate) patience: Option<std::time::Duration>,
}

/// How long an answer may lie in the inbox before nobody is taken to wait
/// for it: a run drains it every 100 ms, far less on a loaded machine.
const INBOX_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

#[async_trait]
impl TaskTokens for InboxTaskTokens {
    async fn send_success(&self, token: &SecretString, output: &serde_json::Value) -> DrResult<()> {
        self.post(
            token,
            dr_runner::TokenOutcome::Success {
                output: output.clone(),
            },
        )
        .await
    }
    async fn send_failure(&self, token: &SecretString, error: &str, cause: &str) -> DrResult<()> {
        self.post(
            token,
            dr_runner::TokenOutcome::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
        )
        .await
    }
}

impl InboxTaskTokens {
    async fn post(&self, token: &SecretString, outcome: dr_runner::TokenOutcome) -> DrResult<()> {
        let posted = dr_runner::control::post_to_inbox(&self.dir, token.expose_secret(), &outcome)
            .map_err(|e| {
                DrError::Internal(format!("answering through {}: {e}", self.dir.display()))
            })?;
        let Some(patience) = self.patience else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if !posted.exists() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Taken back, unless the run takes it this very moment.
        match std::fs::remove_file(&posted) {
            Ok(()) => Err(DrError::NotFound(format!(
                "no run took the answer within {} s: the task no longer waits for it",
                patience.as_secs()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DrError::Internal(format!(
                "taking back {}: {e}",
                posted.display()
            ))),
        }
    }
}

fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "unknown operator".to_owned())
}

/// Checks the answer's own fields before anything is read or written.
fn check(args: &AnswerArgs, approve: bool) -> DrResult<()> {
    if args.execution.is_empty() || args.execution.len() > 80 {
        return Err(DrError::InvalidInput(
            "the execution name has 1 to 80 characters".to_owned(),
        ));
    }
    check_reason(args, approve)
}

fn check_reason(args: &AnswerArgs, approve: bool) -> DrResult<()> {
    if !approve && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(DrError::InvalidInput(
            "a rejection needs --reason: the report and the people on call will read it".to_owned(),
        ));
    }
    if args
        .reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > 2000)
    {
        return Err(DrError::InvalidInput(
            "--reason has at most 2000 characters".to_owned(),
        ));
    }
    Ok(())
}

/// Where an answer goes: the approvals table, the task tokens, and the
/// executions (whether a run whose token no longer waits still runs).
struct Answering {
    store: Box<dyn ApprovalStore>,
    tokens: Box<dyn TaskTokens>,
    executions: Box<dyn Executions>,
}

/// The approvals table, the task tokens and the executions, locally or on
/// AWS.
async fn open(args: &AnswerArgs) -> DrResult<Answering> {
    Ok(if args.local {
        let home = crate::local::existing_home(std::env::var_os("DRCTL_HOME").map(PathBuf::from))?;
        let platform = dr_local::LocalControlPlane::open(&home, None)?;
        let clients = crate::wiring::moto_clients(&platform).await?;
        Answering {
            store: Box::new(dr_aws::DynamoDbApprovals::new(
                clients.dynamodb,
                crate::seed::APPROVALS_TABLE,
            )),
            tokens: Box::new(InboxTaskTokens {
                dir: home.join("task-tokens"),
                patience: Some(INBOX_PATIENCE),
            }),
            executions: Box::new(dr_local::executions::LocalExecutions::new(platform.home())),
        }
    } else {
        let clients = dr_aws::AwsClients::connect(&dr_aws::AwsTarget::default()).await;
        Answering {
            store: Box::new(dr_aws::DynamoDbApprovals::new(
                clients.dynamodb.clone(),
                args.approvals_table.clone(),
            )),
            tokens: Box::new(dr_aws::SfnTaskTokens::new(clients.sfn.clone())),
            executions: Box::new(dr_aws::SfnExecutions::new(clients.sfn)),
        }
    })
}

pub async fn run(args: AnswerArgs, approve: bool) -> DrResult<ExitCode> {
    check(&args, approve)?;
    let to = open(&args).await?;
    let (closed, answer, delivery) = dr_scenarios::approval::answer(
        to.store.as_ref(),
        to.tokens.as_ref(),
        to.executions.as_ref(),
        &args.execution,
        approve,
        &operator(args.by.clone()),
        args.reason.as_deref(),
    )
    .await?;
    match args.output {
        OutputFormat::Json => {
            let mut shown = serde_json::to_value(&closed)
                .map_err(|e| DrError::Internal(format!("serializing the approval: {e}")))?;
            if let Some(fields) = shown.as_object_mut() {
                fields.insert("delivery".to_owned(), serde_json::json!(delivery));
            }
            crate::output::print_json(&shown)?
        }
        OutputFormat::Text => println!(
            "{} {}: {}\n  by {} at {}{}{}",
            if approve { "approved" } else { "rejected" },
            closed.execution_name,
            closed.question,
            answer.by,
            answer.at.to_rfc3339(),
            answer
                .reason
                .as_deref()
                .map(|r| format!("\n  reason: {r}"))
                .unwrap_or_default(),
            delivered_line(delivery, Some(&closed.execution_name))
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// What the operator is told of an answer the waiting step did not take
/// itself: taken at a tier's boundary, by the next tier's step.
fn delivered_line(delivery: dr_scenarios::approval::Delivery, watch: Option<&str>) -> String {
    match delivery {
        dr_scenarios::approval::Delivery::Taken => String::new(),
        dr_scenarios::approval::Delivery::NextTier => format!(
            "\n  the tier's wait ended as you answered: the next tier's step, already under way, takes this answer{}",
            watch
                .map(|e| format!(" (drctl watch {e} shows it)"))
                .unwrap_or_default()
        ),
    }
}

/// `drctl ack <page>`: someone has the page; its climb of the escalation
/// path stops (recorded with who and when, like an approval).
pub async fn ack(args: AnswerArgs) -> DrResult<ExitCode> {
    if args.execution.trim().is_empty() || args.execution.len() > 300 {
        return Err(DrError::InvalidInput(
            "the page's id (as its message shows it) has 1 to 300 characters".to_owned(),
        ));
    }
    check_reason(&args, true)?;
    let to = open(&args).await?;
    let (page, answer, delivery) = dr_scenarios::approval::answer(
        to.store.as_ref(),
        to.tokens.as_ref(),
        to.executions.as_ref(),
        &Page::key(&args.execution),
        true,
        &operator(args.by.clone()),
        args.reason.as_deref(),
    )
    .await
    .map_err(|e| match e {
        DrError::NotFound(_) => DrError::NotFound(format!(
            "no page {} is climbing the escalation path (is the id the one its message shows?)",
            args.execution
        )),
        other => other,
    })?;
    match args.output {
        OutputFormat::Json => crate::output::print_json(&page)?,
        OutputFormat::Text => println!(
            "acknowledged {}: {}\n  by {} at {}{}; the escalation stops{}",
            args.execution,
            page.question,
            answer.by,
            answer.at.to_rfc3339(),
            answer
                .tier
                .as_deref()
                .map(|t| format!(" (paged as {t})"))
                .unwrap_or_default(),
            delivered_line(delivery, None)
        ),
    }
    Ok(ExitCode::SUCCESS)
}
