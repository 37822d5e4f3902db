//! `drctl estimate <scenario>`: what RTO the scenario would achieve on AWS.
//! The real state machine runs on the local runner in simulated time over
//! the simulated account (`dr-sim`), `--runs` times with durations drawn
//! from AWS's documented or reported figures; the figures say where the
//! time goes, what the history and payloads come to, and what a run costs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use dr_core::{DrError, DrResult};
use dr_runner::sam::SamTemplate;
use dr_scenarios::Function;
use dr_sim::estimate::{self, Estimate, Machines, Options};
use dr_sim::timings::Timings;
use dr_sim::SimConfig;
use tracing::instrument::WithSubscriber;

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// The scenario: database-failover, app-server-recovery,
    /// region-failover, data-corruption, security-breach,
    /// deployment-rollback or dr-drill.
    scenario: String,
    /// The execution input, as `drctl start` takes it.
    #[arg(long, required_unless_present = "event", conflicts_with = "event")]
    input: Option<PathBuf>,
    /// Or the event that starts the scenario on AWS (an alarm's state change,
    /// as events/alarm-state-change.json): the input is what the template's
    /// EventBridge rule makes of it.
    #[arg(long)]
    event: Option<PathBuf>,
    /// How many runs, each with its own draw of AWS's durations (1-1000).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// How many databases the account has; the drill covers them all (1-200).
    #[arg(long, default_value_t = 1)]
    databases: usize,
    /// Each database's size in GiB (1-65536): restores, replicas and copies
    /// take longer with size.
    #[arg(long, default_value_t = 50.0)]
    size_gib: f64,
    /// How the failover's primary fails: `failed` (its host is lost and RDS
    /// reports it failed: no one is asked) or `hung` (it stops answering
    /// while RDS says available: a person decides).
    #[arg(long, value_enum, default_value_t = FailureArg::Failed)]
    failure: FailureArg,
    /// The chance that one control-plane call is throttled (0-0.5).
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// The first run's seed (runs use seed, seed+1, ...): the same seed gives
    /// the same figures.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The SAM template (functions' memory and timeouts, substitutions).
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Print the timing table with the source of each figure, then the estimate.
    #[arg(long)]
    timings: bool,
    /// Replace one of AWS's figures with your own, in seconds (repeatable):
    /// `--set deregistration_delay=0..30`, `--set instance_warmup=60`; a
    /// measurement from a real drill beats any table. `--timings` lists
    /// the keys.
    #[arg(long = "set", value_name = "KEY=MIN..MAX")]
    set: Vec<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FailureArg {
    Failed,
    Hung,
}

impl EstimateArgs {
    /// Ranges, before anything runs.
    fn check(&self) -> DrResult<()> {
        let bad = |what: String| Err(DrError::InvalidInput(format!("drctl estimate: {what}")));
        if !dr_sim::SUPPORTED.contains(&self.scenario.as_str()) {
            return bad(format!(
                "the simulated AWS models {} (not {:?}): the other scenarios call services it does not model yet",
                dr_sim::SUPPORTED.join(", "),
                self.scenario
            ));
        }
        if !(1..=1000).contains(&self.runs) {
            return bad(format!("--runs {} is not within 1-1000", self.runs));
        }
        if !(1..=200).contains(&self.databases) {
            return bad(format!(
                "--databases {} is not within 1-200",
                self.databases
            ));
        }
        if !(self.size_gib.is_finite() && (1.0..=65536.0).contains(&self.size_gib)) {
            return bad(format!(
                "--size-gib {} is not within 1-65536",
                self.size_gib
            ));
        }
        if !(self.throttle.is_finite() && (0.0..=0.5).contains(&self.throttle)) {
            return bad(format!("--throttle {} is not within 0-0.5", self.throttle));
        }
        let mut timings = Timings::aws();
        for spec in &self.set {
            timings.set(spec)?;
        }
        Ok(())
    }
}

pub async fn run(args: EstimateArgs) -> DrResult<ExitCode> {
    args.check()?;
    let (path, _name, substitutions, children) =
        crate::run::locate_machine(&args.scenario, Some(&args.template))?;
    let template =
        SamTemplate::load(&args.template).map_err(|e| DrError::InvalidInput(e.to_string()))?;
    let input = match (&args.input, &args.event) {
        (Some(input), _) => crate::run::read_execution_input(input)?,
        (None, Some(event)) => input_from_event(&template, &args.scenario, event)?,
        (None, None) => {
            return Err(DrError::InvalidInput(
                "drctl estimate needs --input or --event".to_owned(),
            ))
        }
    };
    let known: BTreeSet<String> = Function::ALL
        .iter()
        .map(|f| f.logical_id().to_owned())
        .collect();
    let machine = crate::run::load_machine(&path, substitutions, &known)?;
    let mut child_machines = Vec::new();
    for child in children {
        child_machines.push((
            child.arn,
            child.name,
            crate::run::load_machine(&child.path, child.substitutions, &known)?,
        ));
    }
    let mut timings = Timings::aws();
    for spec in &args.set {
        timings.set(spec)?;
    }
    timings.throttle_rate = args.throttle;
    let options = Options {
        runs: args.runs,
        databases: args.databases,
        config: SimConfig {
            timings: timings.clone(),
            database_gib: args.size_gib,
            ..SimConfig::default()
        },
        memory_mb: template.function_memory_sizes(),
        timeouts: template.function_timeouts(),
        failure: match args.failure {
            FailureArg::Failed => estimate::Failure::Failed,
            FailureArg::Hung => estimate::Failure::Hung,
        },
    };
    let machines = Machines {
        scenario: &args.scenario,
        machine: &machine,
        children: &child_machines,
    };
    // The simulated runs' own log lines (approvals requested, warnings)
    // are not the operator's: the figures are.
    let estimate = estimate::estimate(&machines, &input, &options, args.seed)
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await?;
    match args.output {
        OutputFormat::Json => crate::output::print_json(&serde_json::json!({
            "estimate": estimate,
            "timings": timings.rows(),
        }))?,
        OutputFormat::Text => {
            if args.timings {
                print_timings(&timings);
            }
            print!("{}", render(&estimate, args.seed));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the scenario's EventBridge rule sends its state machine for
/// `event`: the first of its rules that can transform it.
fn input_from_event(
    template: &SamTemplate,
    scenario: &str,
    event: &Path,
) -> DrResult<serde_json::Value> {
    let event = crate::run::read_execution_input(event)?;
    let declared = template
        .state_machines()
        .map_err(|e| DrError::InvalidInput(e.to_string()))?
        .into_iter()
        .find(|d| {
            d.definition_uri
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == format!("{scenario}.asl.json"))
        })
        .ok_or_else(|| DrError::NotFound(format!("the template declares no {scenario}")))?;
    let rules = template
        .event_rules(&declared.logical_id)
        .map_err(|e| DrError::InvalidInput(e.to_string()))?;
    rules
        .iter()
        .find_map(|rule| rule.transform(&event).ok())
        .ok_or_else(|| {
            DrError::InvalidInput(format!(
                "no EventBridge rule of {} takes this event ({} rules)",
                declared.logical_id,
                rules.len()
            ))
        })
}

fn print_timings(timings: &Timings) {
    println!("AWS's durations (seconds; + per GiB):");
    for row in timings.rows() {
        let per = if row.range.per_gib_max > 0.0 {
            format!(" + {}-{}/GiB", row.range.per_gib_min, row.range.per_gib_max)
        } else {
            String::new()
        };
        println!(
            "  {:<21} {:<26} {:>7}-{:<7}{per:<14} {}",
            row.key, row.operation, row.range.min, row.range.max, row.basis
        );
    }
    println!();
}

fn minutes(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "n/a".to_owned(), |s| format!("{:.1} min", s / 60.0))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "not measured",
    }
}

/// The estimate as on-call reads it. Pure.
pub fn render(e: &Estimate, seed: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let runs = e.runs.len();
    let _ = writeln!(
        out,
        "{} on the simulated AWS: {runs} runs (seeds {seed}-{}), {} database{} of {} GiB",
        e.scenario,
        seed + runs.saturating_sub(1) as u64,
        e.databases,
        if e.databases == 1 { "" } else { "s" },
        e.database_gib
    );
    let runbook = e.runbook_minutes.map(|m| m * 60.0);
    let measures_rto = e.rto_not_measured < runs;
    if measures_rto {
        let _ = writeln!(
            out,
            "RTO  p50 {}  p95 {}  max {}  (not measured in {} of {runs}); runbook ~{}; objective 240 min",
            minutes(e.rto_p50_seconds),
            minutes(e.rto_p95_seconds),
            minutes(e.rto_max_seconds),
            e.rto_not_measured,
            minutes(runbook)
        );
    }
    let _ = writeln!(
        out,
        "duration  p50 {}  p95 {}{}; runbook ~{}",
        minutes(e.duration_p50_seconds),
        minutes(e.duration_p95_seconds),
        if e.executions_per_run > 1 {
            format!(
                " ({} executions of at most {} databases, one after another)",
                e.executions_per_run,
                dr_scenarios::drill::MAX_DATABASES
            )
        } else {
            String::new()
        },
        minutes(runbook)
    );
    let total = e.split_mean.total().max(f64::EPSILON);
    let _ = writeln!(
        out,
        "where the time goes (mean per run, {}):",
        if measures_rto {
            "start to recovery verified"
        } else {
            "start to end"
        }
    );
    for (what, seconds) in [
        ("AWS's own work", e.split_mean.aws_seconds),
        ("approvals (people)", e.split_mean.approval_seconds),
        ("integrity checks (SQL)", e.split_mean.check_seconds),
        ("retry intervals", e.split_mean.retry_seconds),
        ("polling past AWS's work", e.split_mean.polling_seconds),
        ("our steps (Lambda, API, SQL)", e.split_mean.steps_seconds),
    ] {
        let _ = writeln!(
            out,
            "  {what:<30} {:>8.1} s  {:>5.1} %",
            seconds,
            100.0 * seconds / total
        );
    }
    if let Some(w) = &e.worst_wait {
        let _ = writeln!(
            out,
            "  worst wait: {} of {} seen {:.1} s after AWS finished (poll interval {})",
            w.kind,
            w.resource,
            w.beyond_seconds,
            w.poll_interval_seconds
                .map_or_else(|| "n/a".to_owned(), |p| format!("{p:.0} s"))
        );
    }
    if let Some(run) = e.runs.first() {
        let slowest: Vec<String> = run
            .slowest_states
            .iter()
            .map(|(state, seconds)| format!("{state} {seconds:.0} s"))
            .collect();
        let _ = writeln!(
            out,
            "  slowest states (seed {}): {}",
            run.seed,
            slowest.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "history: {} events per execution at most (children {}), payload peak {} bytes",
        e.history_events_max, e.child_history_events_max, e.payload_peak_bytes
    );
    let _ = writeln!(
        out,
        "cost: ${:.4} per run ({:.0} state transitions), ${:.4} per database",
        e.cost_usd_mean, e.transitions_mean, e.cost_usd_per_database
    );
    let p95 = if measures_rto {
        e.rto_p95_seconds
    } else {
        e.duration_p95_seconds
    };
    let p95_share = match (p95, runbook) {
        (Some(p95), Some(book)) if book > 0.0 => Some(p95 / book),
        _ => None,
    };
    let polls_ok = e.runs.iter().flat_map(|r| r.waits.iter()).all(|w| {
        w.poll_interval_seconds
            .is_none_or(|p| w.beyond_seconds <= p + 1.0)
    });
    let _ = writeln!(out, "targets:");
    let _ = writeln!(
        out,
        "  {} p95 <= 25 % of the runbook's estimate: {}{}",
        if measures_rto { "RTO" } else { "duration" },
        verdict(p95_share.map(|s| s <= 0.25)),
        p95_share.map_or(String::new(), |s| format!(" ({:.0} %)", 100.0 * s))
    );
    let _ = writeln!(
        out,
        "  overhead <= one poll interval per wait: {}",
        verdict((!e.runs.is_empty()).then_some(polls_ok))
    );
    let _ = writeln!(
        out,
        "  overhead <= 2 % of {}: {}{}",
        if measures_rto { "RTO" } else { "the duration" },
        verdict(e.overhead_share_max.map(|s| s <= 0.02)),
        e.overhead_share_max
            .map_or(String::new(), |s| format!(" ({:.1} % at most)", 100.0 * s))
    );
    let _ = writeln!(
        out,
        "  cost <= $0.05 per database: {}",
        verdict(Some(e.cost_usd_per_database <= 0.05))
    );
    let _ = writeln!(
        out,
        "  history <= 20000 events per execution: {}",
        verdict(Some(
            e.history_events_max.max(e.child_history_events_max) <= 20_000
        ))
    );
    out
}
