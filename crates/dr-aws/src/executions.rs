//! [`Executions`] on Step Functions (DescribeExecution).

use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
}

impl SfnExecutions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        SfnExecutions { client }
    }
}

/// Step Functions' status as ours; a redrivable failure is still a failure
/// (nothing runs until someone redrives it).
pub fn state_of(status: &ExecutionStatus) -> ExecutionState {
    match status {
        ExecutionStatus::Running => ExecutionState::Running,
        ExecutionStatus::Succeeded => ExecutionState::Succeeded,
        ExecutionStatus::TimedOut => ExecutionState::TimedOut,
        ExecutionStatus::Aborted => ExecutionState::Aborted,
        // FAILED, PENDING_REDRIVE, and any status added later: not running.
        _ => ExecutionState::Failed,
    }
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn state(&self, execution_arn: &str) -> DrResult<Option<ExecutionState>> {
        if !execution_arn.starts_with("arn:") {
            return Ok(None);
        }
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(state_of(output.status()))),
            // The modeled error, whatever its wire code.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                Ok(None)
            }
            Err(e) => match map_sdk_error(&format!("describing execution {execution_arn}"), e) {
                DrError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn definitions(
        &self,
        state_machine_arn: &str,
        execution_arn: &str,
    ) -> DrResult<Option<DefinitionDigests>> {
        if !execution_arn.starts_with("arn:") {
            return Ok(None);
        }
        // What the execution ran (the definition it started with, even if
        // the state machine was updated since), then what is deployed now.
        let ran = match self
            .client
            .describe_state_machine_for_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(output) => output.definition().to_owned(),
            Err(e) => {
                return match map_sdk_error(
                    &format!("reading the definition {execution_arn} ran"),
                    e,
                ) {
                    DrError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let deployed = self
            .client
            .describe_state_machine()
            .state_machine_arn(state_machine_arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading {state_machine_arn}"), e))?
            .definition()
            .to_owned();
        Ok(Some(DefinitionDigests {
            ran_sha256: definition_sha256(&ran),
            deployed_sha256: definition_sha256(&deployed),
        }))
    }
}

/// [`ExecutionControl`] on Step Functions: the deployment's state machines
/// are found by name (`<prefix><scenario>`, e.g. `muejam-database-failover`).
#[derive(Debug, Clone)]
pub struct SfnControl {
    client: aws_sdk_sfn::Client,
    prefix: String,
}

/// The most recent executions listed per state machine.
const LISTED_PER_MACHINE: i32 = 50;

fn text(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

/// `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:<execution>`.
pub fn execution_arn_of(state_machine_arn: &str, execution: &str) -> Option<String> {
    state_machine_arn.contains(":stateMachine:").then(|| {
        format!(
            "{}:{execution}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        )
    })
}

/// One SDK history event as ours.
pub fn event_of(event: &aws_sdk_sfn::types::HistoryEvent) -> ExecutionEvent {
    let kind = event.r#type().as_str().to_owned();
    let (state, input) = match (
        event.state_entered_event_details(),
        event.state_exited_event_details(),
    ) {
        (Some(entered), _) => (
            Some(entered.name().to_owned()),
            entered.input().and_then(|i| serde_json::from_str(i).ok()),
        ),
        (None, Some(exited)) => (Some(exited.name().to_owned()), None),
        _ => (None, None),
    };
    let (error, cause) = if let Some(d) = event.execution_failed_event_details() {
        (text(d.error()), text(d.cause()))
    } else if let Some(d) = event.task_failed_event_details() {
        (text(d.error()), text(d.cause()))
    } else if let Some(d) = event.lambda_function_failed_event_details() {
        (text(d.error()), text(d.cause()))
    } else if let Some(d) = event.task_timed_out_event_details() {
        (text(d.error()), text(d.cause()))
    } else if let Some(d) = event.execution_timed_out_event_details() {
        (text(d.error()), text(d.cause()))
    } else if let Some(d) = event.execution_aborted_event_details() {
        (text(d.error()), text(d.cause()))
    } else {
        (None, None)
    };
    ExecutionEvent {
        id: u64::try_from(event.id()).unwrap_or_default(),
        timestamp: crate::rds::to_chrono(event.timestamp()).unwrap_or_default(),
        kind,
        state,
        input,
        error,
        cause,
    }
}

impl SfnControl {
    pub fn new(client: aws_sdk_sfn::Client, prefix: impl Into<String>) -> Self {
        SfnControl {
            client,
            prefix: prefix.into(),
        }
    }

    /// The deployment's state machines: (scenario, ARN).
    async fn machines(&self) -> DrResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error("listing state machines", e))?;
            for machine in page.state_machines() {
                if let Some(scenario) = machine.name().strip_prefix(&self.prefix) {
                    found.push((scenario.to_owned(), machine.state_machine_arn().to_owned()));
                }
            }
        }
        Ok(found)
    }

    async fn machine(&self, scenario: &str) -> DrResult<String> {
        self.machines()
            .await?
            .into_iter()
            .find(|(s, _)| s == scenario)
            .map(|(_, arn)| arn)
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "no state machine {}{scenario} in this account and region (is the stack deployed here, with this prefix?)",
                    self.prefix
                ))
            })
    }

    fn scenario_of(&self, state_machine_arn: &str) -> String {
        let name = state_machine_arn.rsplit(':').next().unwrap_or_default();
        name.strip_prefix(&self.prefix).unwrap_or(name).to_owned()
    }

    async fn describe_arn(&self, arn: &str) -> DrResult<Option<ExecutionDetail>> {
        let output = match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return match map_sdk_error(&format!("describing execution {arn}"), e) {
                    DrError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let json = |s: Option<&str>| s.and_then(|s| serde_json::from_str(s).ok());
        Ok(Some(ExecutionDetail {
            summary: ExecutionSummary {
                name: output.name().unwrap_or_default().to_owned(),
                arn: output.execution_arn().to_owned(),
                scenario: self.scenario_of(output.state_machine_arn()),
                state: state_of(output.status()),
                started_at: crate::rds::to_chrono(output.start_date()).unwrap_or_default(),
                stopped_at: output.stop_date().and_then(crate::rds::to_chrono),
            },
            input: json(output.input()),
            output: json(output.output()),
            error: text(output.error()),
            cause: text(output.cause()),
        }))
    }
}

#[async_trait]
impl ExecutionControl for SfnControl {
    async fn start(
        &self,
        scenario: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> DrResult<StartOutcome> {
        use dr_core::ExecutionState::Running;
        let machine = self.machine(scenario).await?;
        let arn = execution_arn_of(&machine, name)
            .ok_or_else(|| DrError::Internal(format!("{machine} is not a state machine ARN")))?;
        let body = serde_json::to_string(input)
            .map_err(|e| DrError::Internal(format!("serializing the input: {e}")))?;
        // Step Functions gives back a running execution of the same name and
        // input, and refuses the name otherwise (ExecutionAlreadyExists):
        // look first, so that each case is told apart.
        let same_input = |detail: &ExecutionDetail| detail.input.as_ref() == Some(input);
        if let Some(existing) = self.describe_arn(&arn).await? {
            return match (same_input(&existing), existing.summary.state) {
                (false, _) => Err(DrError::AlreadyExists(format!(
                    "an execution named {name} exists with another input: choose another name"
                ))),
                (true, Running) => Ok(StartOutcome::AlreadyRunning(existing.summary)),
                (true, _) => Ok(StartOutcome::AlreadyRan(existing.summary)),
            };
        }
        match self
            .client
            .start_execution()
            .state_machine_arn(&machine)
            .name(name)
            .input(body)
            .send()
            .await
        {
            Ok(started) => Ok(StartOutcome::New(ExecutionSummary {
                name: name.to_owned(),
                arn: started.execution_arn().to_owned(),
                scenario: scenario.to_owned(),
                state: Running,
                started_at: crate::rds::to_chrono(started.start_date()).unwrap_or_default(),
                stopped_at: None,
            })),
            // Started by someone else since we looked.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                match self.describe_arn(&arn).await? {
                    Some(existing) if same_input(&existing) => {
                        Ok(if existing.summary.state == Running {
                            StartOutcome::AlreadyRunning(existing.summary)
                        } else {
                            StartOutcome::AlreadyRan(existing.summary)
                        })
                    }
                    _ => Err(DrError::AlreadyExists(format!(
                        "an execution named {name} exists with another input: choose another name"
                    ))),
                }
            }
            Err(e) => Err(map_sdk_error(&format!("starting {name}"), e)),
        }
    }

    async fn describe(&self, execution: &str) -> DrResult<Option<ExecutionDetail>> {
        if execution.starts_with("arn:") {
            return self.describe_arn(execution).await;
        }
        for (_, machine) in self.machines().await? {
            if let Some(arn) = execution_arn_of(&machine, execution) {
                if let Some(found) = self.describe_arn(&arn).await? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    async fn events(&self, execution_arn: &str, after_id: u64) -> DrResult<Vec<ExecutionEvent>> {
        // Newest first, page by page, until the events already seen: a
        // long history is not read again at every look. (moto ignores
        // reverseOrder and paging and gives every event oldest first: a page
        // in that order is read to its end, then the next one.)
        let mut new = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(execution_arn)
                .reverse_order(true)
                .include_execution_data(true)
                .max_results(500)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(&format!("reading the history of {execution_arn}"), e)
                })?;
            let events: Vec<ExecutionEvent> = page.events().iter().map(event_of).collect();
            let newest_first = events.first().map(|e| e.id) >= events.last().map(|e| e.id);
            let reached_seen = events.iter().any(|e| e.id <= after_id);
            new.extend(events.into_iter().filter(|e| e.id > after_id));
            match page.next_token() {
                Some(next) if !(newest_first && reached_seen) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        new.sort_by_key(|e| e.id);
        new.dedup_by_key(|e| e.id);
        Ok(new)
    }

    async fn list(&self, scenario: Option<&str>) -> DrResult<Vec<ExecutionSummary>> {
        let mut all = Vec::new();
        for (name, machine) in self.machines().await? {
            if scenario.is_some_and(|s| s != name) {
                continue;
            }
            let page = self
                .client
                .list_executions()
                .state_machine_arn(&machine)
                .max_results(LISTED_PER_MACHINE)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("listing the executions of {machine}"), e))?;
            for e in page.executions() {
                all.push(ExecutionSummary {
                    name: e.name().to_owned(),
                    arn: e.execution_arn().to_owned(),
                    scenario: name.clone(),
                    state: state_of(e.status()),
                    started_at: crate::rds::to_chrono(e.start_date()).unwrap_or_default(),
                    stopped_at: e.stop_date().and_then(crate::rds::to_chrono),
                });
            }
        }
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.name.cmp(&b.name)));
        Ok(all)
    }

    async fn definition(&self, scenario: &str) -> DrResult<Option<serde_json::Value>> {
        let machine = self.machine(scenario).await?;
        let output = self
            .client
            .describe_state_machine()
            .state_machine_arn(&machine)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing {machine}"), e))?;
        Ok(serde_json::from_str(output.definition()).ok())
    }
}

/// [`Pager`] on Step Functions: StartExecution of the page-escalation state
/// machine, named after the page, so the same page raised twice (a retry,
/// the report after the notification) starts one climb.
#[derive(Debug, Clone)]
pub struct SfnPager {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnPager {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        SfnPager {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

#[async_trait]
impl Pager for SfnPager {
    async fn raise(&self, page: &Page) -> DrResult<()> {
        let input = serde_json::to_string(&serde_json::json!({ "page": page }))
            .map_err(|e| DrError::Internal(format!("serializing a page: {e}")))?;
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(Page::execution_name(&page.id))
            .input(input)
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            // The same name with another input (the report after the
            // notification of the same run): that page already climbs.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                Ok(())
            }
            Err(e) => Err(crate::errors::map_sdk_error(
                &format!("starting the climb of page {}", page.id),
                e,
            )),
        }
    }
}
