//! The reports as one self-contained HTML page each (no script, no external
//! resource: it opens from a mail attachment or a bucket as it is): the
//! timeline as a Gantt chart (SVG), RTO and RPO against the objectives,
//! every change, the approval, the findings; and the quarterly evidence
//! pack: the drills' restore time and backup age as charts, with the
//! reports linked. Pages are built with `maud` (escaped by construction)
//! and charts with `svg`'s document model.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;
use svg::node::element::{Group, Line, Rectangle, Text, Title};
use svg::Document;

use crate::report::Objective;
use crate::watch::human_duration;

/// One bar of the Gantt chart: a step, from and to seconds after the run's
/// start.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub step: String,
    pub start: f64,
    pub end: f64,
    pub summary: String,
}

/// What every report shows, read from any scenario's JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportView {
    pub title: String,
    pub execution_name: String,
    pub outcome: String,
    pub passed: Option<bool>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// (label, objective): RTO and RPO, or for a drill the restore time and
    /// the backup age that are their evidence.
    pub objectives: Vec<(String, Objective)>,
    pub spans: Vec<Span>,
    pub approval: Option<String>,
    /// Who the approval climbed to on the escalation path, and who answered.
    pub escalation: Vec<String>,
    pub changes: Vec<String>,
    pub findings: Vec<String>,
    pub error: Option<String>,
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An item of a list as one line: a string as it is, an object by its
/// telling fields, anything else as compact JSON.
fn line_of(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            if let Some(what) = o.get("what").and_then(Value::as_str) {
                let outcome = o.get("outcome").and_then(Value::as_str).unwrap_or("");
                return format!("{what} ({outcome})");
            }
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                let status = o.get("status").and_then(Value::as_str).unwrap_or("");
                let count = o
                    .get("count")
                    .and_then(Value::as_u64)
                    .map(|c| format!(", {c} rows"))
                    .unwrap_or_default();
                let detail = o
                    .get("detail")
                    .or_else(|| o.get("reason"))
                    .and_then(Value::as_str)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                return format!("{name} {status}{count}{detail}");
            }
            item.to_string()
        }
        other => other.to_string(),
    }
}

fn lines(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().map(line_of).collect())
        .unwrap_or_default()
}

/// Pure: the Gantt bars from `(started_at, step, summary)` entries. Each
/// step lasts until the next one starts; the last until the run finished
/// (or a moment, when that is unknown). Entries are ordered by start.
pub fn spans(
    entries: &[(DateTime<Utc>, String, String)],
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
) -> Vec<Span> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|(t, _, _)| *t);
    let offset = |t: DateTime<Utc>| ((t - started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
    let end_of_run = finished_at.map(offset);
    (0..sorted.len())
        .map(|i| {
            let (t, step, summary) = &sorted[i];
            let start = offset(*t);
            let end = sorted
                .get(i + 1)
                .map(|(next, _, _)| offset(*next))
                .or(end_of_run)
                .unwrap_or(start)
                .max(start);
            Span {
                step: step.clone(),
                start,
                end,
                summary: summary.clone(),
            }
        })
        .collect()
}

/// A drill has no step timeline: its tests, one after another per
/// database, by their durations.
fn drill_spans(report: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for db in report["databases"].as_array().into_iter().flatten() {
        let database = db["database"].as_str().unwrap_or("?");
        let mut at = 0.0;
        for test in db["tests"].as_array().into_iter().flatten() {
            let seconds = test["duration_seconds"].as_f64().unwrap_or(0.0).max(0.0);
            out.push(Span {
                step: format!("{database}: {}", test["name"].as_str().unwrap_or("?")),
                start: at,
                end: at + seconds,
                summary: format!(
                    "{}{}",
                    test["status"].as_str().unwrap_or(""),
                    test["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            });
            at += seconds;
        }
    }
    out
}

/// The timeline entries of a report: objects `{step, started_at, summary}`
/// or pairs `[started_at, step]`.
fn entries(timeline: Option<&Value>) -> Vec<(DateTime<Utc>, String, String)> {
    timeline
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| match e {
            Value::Object(_) => Some((
                time(&e["started_at"])?,
                e["step"].as_str()?.to_owned(),
                e["summary"].as_str().unwrap_or("").to_owned(),
            )),
            Value::Array(pair) => {
                let (a, b) = (pair.first()?, pair.get(1)?);
                match (time(a), time(b)) {
                    (Some(t), _) => Some((t, b.as_str()?.to_owned(), String::new())),
                    (None, Some(t)) => Some((t, a.as_str()?.to_owned(), String::new())),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn objective(value: &Value) -> Option<Objective> {
    serde_json::from_value(value.clone()).ok()
}

/// Pure: what a JSON report of any scenario says, for the page.
pub fn view_of(report: &Value) -> ReportView {
    let started_at = time(&report["started_at"]);
    let finished_at = time(&report["finished_at"]);
    let drill = report.get("drill_id").is_some();
    let mut objectives = Vec::new();
    for (key, label) in [
        ("rto", "RTO"),
        ("rpo", "RPO"),
        ("restore_time", "Restore time (RTO evidence)"),
        ("backup_age", "Backup age (RPO evidence)"),
    ] {
        if let Some(o) = report.get(key).and_then(objective) {
            objectives.push((label.to_owned(), o));
        }
    }
    let spans = if drill {
        drill_spans(report)
    } else {
        match started_at {
            Some(start) => spans(&entries(report.get("timeline")), start, finished_at),
            None => Vec::new(),
        }
    };
    let scenario =
        report["scenario"]
            .as_str()
            .unwrap_or(if drill { "dr-drill" } else { "recovery" });
    let mut findings = Vec::new();
    for key in ["findings_before", "findings_after", "findings"] {
        findings.extend(lines(report.get(key)).into_iter().map(|l| {
            if key == "findings_after" {
                format!("after: {l}")
            } else {
                l
            }
        }));
    }
    findings.extend(lines(report.pointer("/evidence/reasons")));
    findings.extend(crate::drill_report::rehearsal_lines(report));
    findings.extend(lines(report.get("manual_review")));
    let mut changes = lines(report.get("changes"));
    if changes.is_empty() {
        changes = lines(report.get("mutations"));
    }
    ReportView {
        title: format!(
            "{scenario}{}",
            report["resource"]
                .as_str()
                .map(|r| format!(" of {r}"))
                .unwrap_or_default()
        ),
        execution_name: report["execution_name"].as_str().unwrap_or("").to_owned(),
        outcome: report["outcome"]
            .as_str()
            .or_else(|| report["overall_status"].as_str())
            .unwrap_or("unknown")
            .to_owned(),
        passed: report["passed"].as_bool(),
        started_at,
        finished_at,
        objectives,
        spans,
        approval: report["approval"].as_str().map(str::to_owned),
        // The breach keeps its approval with the notifications.
        escalation: report
            .get("escalation")
            .or_else(|| report.pointer("/notifications/escalation"))
            .and_then(Value::as_array)
            .map(|lines| lines.iter().map(line_of).collect())
            .unwrap_or_default(),
        changes,
        findings,
        error: report["error"].as_str().map(|e| {
            format!(
                "{e}{}",
                report["cause"]
                    .as_str()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            )
        }),
    }
}

/// A step's bar colour: failures red, waits for people or AWS grey, the
/// rest blue. A failure is what the reports write as one (`FAILED` in the
/// summary, or a failure step): a summary that mentions a failover or the
/// failure being recovered from is not one.
fn colour(span: &Span) -> &'static str {
    let step = span.step.to_lowercase();
    if span.summary.contains("FAILED") || step.contains("failure") || step.ends_with("_failed") {
        "#c0392b"
    } else if step.contains("wait") || step.contains("approv") {
        "#95a5a6"
    } else {
        "#2e86c1"
    }
}

/// A duration for a chart or table: tenths of a second below 10 s (a local
/// run's steps), else as [`human_duration`].
pub fn short_duration(seconds: f64) -> String {
    if seconds.abs() < 10.0 {
        format!("{seconds:.1}s")
    } else {
        human_duration(seconds)
    }
}

/// Pure: the Gantt chart of `spans` as an SVG document, with the RTO
/// achieved and the objective as vertical lines when they fall on it.
pub fn gantt_svg(spans: &[Span], rto: Option<&Objective>) -> String {
    const LABEL: f64 = 270.0;
    /// Longer step names are cut (the whole name is in the bar's tooltip).
    const LABEL_CHARS: usize = 40;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 30.0;
    let end = spans
        .iter()
        .map(|s| s.end)
        .fold(0.0_f64, f64::max)
        .max(rto.and_then(|r| r.achieved_seconds).unwrap_or(0.0))
        .max(1.0);
    let plot = WIDTH - LABEL - 20.0;
    let x = |seconds: f64| LABEL + seconds / end * plot;
    let height = TOP + ROW * spans.len() as f64 + 30.0;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, WIDTH, height))
        .set("width", WIDTH)
        .set("height", height)
        .set("role", "img")
        .set("id", "gantt")
        .set("font-family", "sans-serif")
        .set("font-size", 12);
    doc = doc.add(Title::new("Timeline of the run (seconds after its start)"));
    // The time axis: five ticks.
    for i in 0..=4 {
        let t = end * f64::from(i) / 4.0;
        doc = doc
            .add(
                Line::new()
                    .set("x1", x(t))
                    .set("x2", x(t))
                    .set("y1", TOP - 5.0)
                    .set("y2", height - 25.0)
                    .set("stroke", "#ddd"),
            )
            .add(
                Text::new(short_duration(t))
                    .set("x", x(t))
                    .set("y", TOP - 10.0)
                    .set("text-anchor", "middle")
                    .set("fill", "#555"),
            );
    }
    for (i, span) in spans.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let width = ((span.end - span.start) / end * plot).max(2.0);
        doc = doc.add(
            Group::new()
                .set("class", "step")
                .add(Title::new(format!(
                    "{}: {} ({})",
                    span.step,
                    span.summary,
                    short_duration(span.end - span.start)
                )))
                .add(
                    Text::new(if span.step.chars().count() > LABEL_CHARS {
                        let cut: String = span.step.chars().take(LABEL_CHARS - 1).collect();
                        format!("{cut}…")
                    } else {
                        span.step.clone()
                    })
                    .set("x", LABEL - 8.0)
                    .set("y", y + 15.0)
                    .set("text-anchor", "end"),
                )
                .add(
                    Rectangle::new()
                        .set("x", x(span.start))
                        .set("y", y + 3.0)
                        .set("width", width)
                        .set("height", ROW - 6.0)
                        .set("rx", 3)
                        .set("fill", colour(span)),
                ),
        );
    }
    let bottom = height - 25.0;
    if let Some(achieved) = rto.and_then(|r| r.achieved_seconds) {
        doc = doc
            .add(
                Line::new()
                    .set("x1", x(achieved))
                    .set("x2", x(achieved))
                    .set("y1", TOP - 5.0)
                    .set("y2", bottom)
                    .set("stroke", "#27ae60")
                    .set("stroke-width", 2),
            )
            .add(
                Text::new(format!("recovered at {}", short_duration(achieved)))
                    .set("x", x(achieved))
                    .set("y", bottom + 15.0)
                    .set("text-anchor", "middle")
                    .set("fill", "#27ae60"),
            );
    }
    if let Some(objective) = rto.map(|r| r.objective_seconds).filter(|o| *o <= end) {
        doc = doc.add(
            Line::new()
                .set("x1", x(objective))
                .set("x2", x(objective))
                .set("y1", TOP - 5.0)
                .set("y2", bottom)
                .set("stroke", "#c0392b")
                .set("stroke-dasharray", "4 3"),
        );
    }
    doc.to_string()
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
h1{font-size:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
.passed{color:#1e8449}.failed{color:#c0392b}li{margin:2px 0}svg{max-width:100%;height:auto}";

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

fn verdict(o: &Objective) -> &'static str {
    match o.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        // Not measured is never met.
        None => "not measured",
    }
}

fn stamp(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Pure: the page of one run's JSON report.
pub fn report_html(report: &Value) -> String {
    let view = view_of(report);
    let rto = view
        .objectives
        .iter()
        // A drill's restore time is a duration, not a moment of its
        // timeline: only a recovery's RTO is drawn on the chart.
        .find(|(l, _)| l == "RTO")
        .map(|(_, o)| o);
    let status = match view.passed {
        Some(true) => ("passed", "passed"),
        Some(false) => ("failed", "NOT passed"),
        None => ("", ""),
    };
    let body = html! {
        h1 { "MueJam DR: " (view.title) }
        p {
            "Execution " code { (view.execution_name) } ", " (stamp(view.started_at))
            " to " (stamp(view.finished_at)) "."
        }
        p id="outcome" { "Outcome: " strong { (view.outcome) } " " span class=(status.0) { (status.1) } }
        @if let Some(error) = &view.error { p class="failed" { "Error: " (error) } }
        h2 { "Objectives" }
        table id="objectives" {
            tr { th { "" } th { "achieved" } th { "objective" } th { "" } }
            @for (label, o) in &view.objectives {
                tr {
                    td { (label) }
                    td { (o.achieved_seconds.map(short_duration).unwrap_or_else(|| "not measured".to_owned())) }
                    td { (short_duration(o.objective_seconds)) }
                    td class=(if o.is_met() { "passed" } else { "failed" }) { (verdict(o)) }
                }
            }
        }
        h2 { "Timeline" }
        @if view.spans.is_empty() {
            p { "No step was recorded." }
        } @else {
            (PreEscaped(gantt_svg(&view.spans, rto)))
            table id="steps" {
                tr { th { "step" } th { "from" } th { "took" } th { "what happened" } }
                @for s in &view.spans {
                    tr { td { (s.step) } td { "+" (short_duration(s.start)) } td { (short_duration(s.end - s.start)) } td { (s.summary) } }
                }
            }
        }
        h2 { "Approval" }
        p id="approval" { (view.approval.as_deref().unwrap_or("None was needed.")) }
        @if !view.escalation.is_empty() {
            h2 { "Escalation" }
            ul id="escalation" { @for e in &view.escalation { li { (e) } } }
        }
        h2 { "Changes" }
        @if view.changes.is_empty() { p { "Nothing was changed." } }
        ul id="changes" { @for c in &view.changes { li { (c) } } }
        @if !view.findings.is_empty() {
            h2 { "Findings and what a person must review" }
            ul id="findings" { @for f in &view.findings { li { (f) } } }
        }
    };
    page(&format!("MueJam DR: {}", view.title), body)
}

/// One drill in the evidence pack.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillPoint {
    pub execution_name: String,
    pub started_at: DateTime<Utc>,
    pub passed: bool,
    pub restore_seconds: Option<f64>,
    pub backup_age_seconds: Option<f64>,
    pub restore_objective: Option<f64>,
    pub backup_objective: Option<f64>,
    /// Rows written before the rehearsed failure and missing after it, over
    /// the drill's databases (`None`: no failover test measured it).
    pub rows_lost: Option<u64>,
    /// Where its report is (relative key or URL).
    pub link: String,
}

/// Pure: a drill report as a point of the pack; `None` for a document that
/// is not a drill report.
pub fn drill_point(report: &Value, link: &str) -> Option<DrillPoint> {
    report.get("drill_id")?;
    Some(DrillPoint {
        execution_name: report["execution_name"].as_str()?.to_owned(),
        started_at: time(&report["started_at"])?,
        passed: report["passed"].as_bool().unwrap_or(false),
        restore_seconds: report["restore_time"]["achieved_seconds"].as_f64(),
        backup_age_seconds: report["backup_age"]["achieved_seconds"].as_f64(),
        restore_objective: report["restore_time"]["objective_seconds"].as_f64(),
        backup_objective: report["backup_age"]["objective_seconds"].as_f64(),
        rows_lost: report["databases"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|db| db["tests"].as_array().into_iter().flatten())
            .filter(|t| t["name"] == "failover_test")
            .filter_map(|t| t["details"]["rows_lost"].as_u64())
            .reduce(|a, b| a + b),
        link: link.to_owned(),
    })
}

/// Pure: a bar per drill, the objective as a dashed line; a drill that
/// measured nothing has no bar and says so.
pub fn bars_svg(
    id: &str,
    title: &str,
    points: &[(String, Option<f64>)],
    objective: Option<f64>,
    unit: fn(f64) -> String,
) -> String {
    const WIDTH: f64 = 900.0;
    const HEIGHT: f64 = 240.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 50.0;
    let top = points
        .iter()
        .filter_map(|(_, v)| *v)
        .chain(objective)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - 10.0) / points.len().max(1) as f64;
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, WIDTH, HEIGHT))
        .set("width", WIDTH)
        .set("height", HEIGHT)
        .set("id", id)
        .set("role", "img")
        .set("font-family", "sans-serif")
        .set("font-size", 12)
        .add(Title::new(title))
        .add(
            Text::new(title)
                .set("x", LEFT)
                .set("y", 18)
                .set("font-weight", "bold"),
        );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        doc = doc
            .add(
                Line::new()
                    .set("x1", LEFT)
                    .set("x2", WIDTH - 10.0)
                    .set("y1", y(v))
                    .set("y2", y(v))
                    .set("stroke", "#eee"),
            )
            .add(
                Text::new(unit(v))
                    .set("x", LEFT - 6.0)
                    .set("y", y(v) + 4.0)
                    .set("text-anchor", "end")
                    .set("fill", "#555"),
            );
    }
    for (i, (label, value)) in points.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let w = slot * 0.6;
        doc = doc.add(
            Text::new(label.clone())
                .set("x", x + w / 2.0)
                .set("y", HEIGHT - BOTTOM + 16.0)
                .set("text-anchor", "middle"),
        );
        doc = match value {
            Some(v) => doc.add(
                Group::new()
                    .set("class", "bar")
                    .add(Title::new(format!("{label}: {}", unit(*v))))
                    .add(
                        Rectangle::new()
                            .set("x", x)
                            .set("y", y(*v))
                            .set("width", w)
                            .set("height", (y(0.0) - y(*v)).max(1.0))
                            .set("fill", "#2e86c1"),
                    ),
            ),
            None => doc.add(
                Text::new("not measured")
                    .set("x", x + w / 2.0)
                    .set("y", y(0.0) - 6.0)
                    .set("text-anchor", "middle")
                    .set("fill", "#c0392b"),
            ),
        };
    }
    if let Some(o) = objective {
        doc = doc.add(
            Line::new()
                .set("x1", LEFT)
                .set("x2", WIDTH - 10.0)
                .set("y1", y(o))
                .set("y2", y(o))
                .set("stroke", "#c0392b")
                .set("stroke-dasharray", "5 4"),
        );
    }
    doc.to_string()
}

/// Pure: the quarterly evidence pack over `drills` (any order): the
/// history as charts, a table, and the reports linked (newest first).
pub fn evidence_html(period: &str, drills: &[DrillPoint]) -> String {
    let mut drills = drills.to_vec();
    drills.sort_by_key(|d| d.started_at);
    let label = |d: &DrillPoint| d.started_at.format("%Y-%m-%d").to_string();
    let restore: Vec<(String, Option<f64>)> = drills
        .iter()
        .map(|d| (label(d), d.restore_seconds))
        .collect();
    let backup: Vec<(String, Option<f64>)> = drills
        .iter()
        .map(|d| (label(d), d.backup_age_seconds))
        .collect();
    let lost: Vec<(String, Option<f64>)> = drills
        .iter()
        .map(|d| (label(d), d.rows_lost.map(|r| r as f64)))
        .collect();
    let rows = |v: f64| format!("{v:.0}");
    let passed = drills.iter().filter(|d| d.passed).count();
    let body = html! {
        h1 { "MueJam DR evidence: " (period) }
        p id="summary" { (drills.len()) " drill(s), " (passed) " passed." }
        @if drills.is_empty() {
            p { "No drill ran in this period: there is no evidence that a restore works." }
        } @else {
            h2 { "Restore time (RTO evidence)" }
            (PreEscaped(bars_svg("restore-chart", "Restore time per drill", &restore, drills.iter().find_map(|d| d.restore_objective), short_duration)))
            h2 { "Backup age: the data a restore would lose (RPO evidence)" }
            (PreEscaped(bars_svg("backup-chart", "Backup age per drill", &backup, drills.iter().find_map(|d| d.backup_objective), short_duration)))
            h2 { "Data lost by the rehearsed failover (rows)" }
            (PreEscaped(bars_svg("loss-chart", "Rows lost per drill", &lost, Some(0.0), rows)))
            h2 { "Drills" }
            table id="drills" {
                tr { th { "drill" } th { "started" } th { "restore time" } th { "backup age" } th { "rows lost" } th { "" } th { "report" } }
                @for d in drills.iter().rev() {
                    tr {
                        td { (d.execution_name) }
                        td { (d.started_at.format("%Y-%m-%d %H:%M UTC")) }
                        td { (d.restore_seconds.map(short_duration).unwrap_or_else(|| "not measured".to_owned())) }
                        td { (d.backup_age_seconds.map(short_duration).unwrap_or_else(|| "not measured".to_owned())) }
                        td { (d.rows_lost.map(|r| r.to_string()).unwrap_or_else(|| "not measured".to_owned())) }
                        td class=(if d.passed { "passed" } else { "failed" }) { (if d.passed { "passed" } else { "NOT passed" }) }
                        td { a href=(d.link) { (d.link) } }
                    }
                }
            }
        }
    };
    page(&format!("MueJam DR evidence: {period}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        time(&json!(s)).expect("time")
    }

    #[test]
    fn each_step_lasts_until_the_next_one_and_the_last_until_the_end() {
        let start = at("2026-11-28T03:00:00Z");
        let entries = vec![
            (
                at("2026-11-28T03:00:10Z"),
                "promote".to_owned(),
                "p".to_owned(),
            ),
            (at("2026-11-28T03:00:00Z"), "plan".to_owned(), "".to_owned()),
            (at("2026-11-28T03:01:00Z"), "dns".to_owned(), "".to_owned()),
        ];
        let cases = [
            (
                Some(at("2026-11-28T03:01:30Z")),
                vec![
                    ("plan", 0.0, 10.0),
                    ("promote", 10.0, 60.0),
                    ("dns", 60.0, 90.0),
                ],
            ),
            (
                None,
                vec![
                    ("plan", 0.0, 10.0),
                    ("promote", 10.0, 60.0),
                    ("dns", 60.0, 60.0),
                ],
            ),
            // A finish recorded before the last step (clock skew): no negative bar.
            (
                Some(at("2026-11-28T03:00:30Z")),
                vec![
                    ("plan", 0.0, 10.0),
                    ("promote", 10.0, 60.0),
                    ("dns", 60.0, 60.0),
                ],
            ),
        ];
        for (finished, want) in cases {
            let got: Vec<(String, f64, f64)> = spans(&entries, start, finished)
                .into_iter()
                .map(|s| (s.step, s.start, s.end))
                .collect();
            let want: Vec<(String, f64, f64)> = want
                .into_iter()
                .map(|(s, a, b)| (s.to_owned(), a, b))
                .collect();
            assert_eq!(got, want, "{finished:?}");
        }
        assert!(spans(&[], start, None).is_empty());
    }

    #[test]
    fn any_scenario_report_reads_into_the_view() {
        let failover = json!({
            "scenario": "database-failover", "resource": "muejam", "execution_name": "incident-1",
            "outcome": "succeeded", "passed": true,
            "started_at": "2026-11-28T03:00:00Z", "finished_at": "2026-11-28T03:02:00Z",
            "rto": {"objective_seconds": 14400.0, "achieved_seconds": 90.0, "met": true},
            "rpo": {"objective_seconds": 21600.0, "achieved_seconds": null, "met": null},
            "timeline": [{"step": "plan", "started_at": "2026-11-28T03:00:00Z", "summary": "ok <b>"},
                         {"step": "promote", "started_at": "2026-11-28T03:00:30Z", "summary": "done"}],
            "changes": [{"step": "promote", "outcome": "done", "what": "promoted the replica"}],
            "evidence": {"decision": "failover", "reasons": ["the primary refuses connections"]},
            "approval": "approved by alice", "error": null
        });
        let v = view_of(&failover);
        assert_eq!(v.title, "database-failover of muejam");
        assert_eq!(v.outcome, "succeeded");
        assert_eq!(v.passed, Some(true));
        assert_eq!(v.objectives.len(), 2);
        assert_eq!(
            v.spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
            [(0.0, 30.0), (30.0, 120.0)]
        );
        assert_eq!(v.changes, ["promoted the replica (done)"]);
        assert_eq!(v.findings, ["the primary refuses connections"]);
        assert!(v.escalation.is_empty(), "nobody was escalated to");
        // The escalation, of a report and of the breach's notifications.
        let lines = json!([
            "primary-on-call: asked at 03:00, no answer in 15.0 min",
            "backup-on-call: asked at 03:15, answered by bob (approved)"
        ]);
        let mut climbed = failover.clone();
        climbed["escalation"] = lines.clone();
        let v = view_of(&climbed);
        assert_eq!(v.escalation.len(), 2);
        let page = report_html(&climbed);
        assert!(
            page.contains("<ul id=\"escalation\"><li>primary-on-call"),
            "{page}"
        );
        let breach = json!({"scenario": "security-breach", "outcome": "succeeded", "notifications": {"escalation": lines}});
        assert_eq!(view_of(&breach).escalation.len(), 2);
        // Pairs, as the recovery reports keep their timeline.
        let recovery = json!({"scenario": "app-server-recovery", "outcome": "failed", "passed": false,
            "started_at": "2026-11-28T03:00:00Z", "finished_at": "2026-11-28T03:00:20Z",
            "timeline": [["2026-11-28T03:00:05Z", "refresh"], ["2026-11-28T03:00:00Z", "plan"]],
            "changes": ["started an instance refresh"],
            "findings_before": [{"name": "fk_stories_author", "status": "failed", "count": 3, "detail": "orphans"}],
            "error": "Unsafe", "cause": "no"});
        let v = view_of(&recovery);
        assert_eq!(
            v.spans.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
            ["plan", "refresh"]
        );
        assert_eq!(v.findings, ["fk_stories_author failed, 3 rows: orphans"]);
        assert_eq!(v.error.as_deref(), Some("Unsafe: no"));
        // A drill: its tests as bars, restore time and backup age as objectives.
        let drill = json!({"drill_id": "d1", "execution_name": "drill-1", "overall_status": "SUCCESSFUL", "passed": true,
            "started_at": "2026-11-28T03:00:00Z", "finished_at": "2026-11-28T03:10:00Z",
            "databases": [{"database": "muejam", "tests": [
                {"name": "backup_verification", "status": "SUCCESSFUL", "duration_seconds": 5.0},
                {"name": "restore_test", "status": "FAILED", "reason": "slow", "duration_seconds": 100.0}]}],
            "restore_time": {"objective_seconds": 14400.0, "achieved_seconds": 100.0, "met": true},
            "backup_age": {"objective_seconds": 21600.0, "achieved_seconds": 600.0, "met": true},
            "manual_review": ["check the contacts"]});
        let v = view_of(&drill);
        assert_eq!(v.outcome, "SUCCESSFUL");
        assert_eq!(v.spans[1].step, "muejam: restore_test");
        assert_eq!((v.spans[1].start, v.spans[1].end), (5.0, 105.0));
        assert_eq!(v.objectives[0].0, "Restore time (RTO evidence)");
        assert_eq!(v.findings, ["check the contacts"]);
        // Only a recovery's RTO is a moment on its chart.
        assert!(!report_html(&drill).contains("recovered at"));
        assert!(report_html(&failover).contains("recovered at 1m 30s"));
    }

    #[test]
    fn the_page_escapes_what_the_report_says_and_never_calls_unmeasured_met() {
        let report = json!({
            "scenario": "database-failover", "execution_name": "x<script>alert(1)</script>",
            "outcome": "succeeded", "passed": false,
            "started_at": "2026-11-28T03:00:00Z", "finished_at": "2026-11-28T03:02:00Z",
            "rto": {"objective_seconds": 14400.0, "achieved_seconds": null, "met": null},
            "timeline": [{"step": "plan</text><script>", "started_at": "2026-11-28T03:00:00Z", "summary": "a & b"}]
        });
        let page = report_html(&report);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("x&lt;script&gt;"), "{page}");
        assert!(page.contains("not measured"));
        assert!(!page.contains(">met<"), "{page}");
        assert!(page.contains("<svg"));
        assert!(page.contains("NOT passed"));
        // Self-contained: nothing fetched from elsewhere (the SVG namespace
        // is a name, not an address).
        let outside = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for fetch in ["src=", "<link", "url(", "http://", "https://"] {
            assert!(!outside.contains(fetch), "{fetch} in {page}");
        }
    }

    #[test]
    fn the_gantt_chart_has_a_bar_per_step_and_marks_the_rto() {
        let spans = vec![
            Span {
                step: "plan".into(),
                start: 0.0,
                end: 10.0,
                summary: "".into(),
            },
            Span {
                step: "promote".into(),
                start: 10.0,
                end: 60.0,
                summary: "failed".into(),
            },
        ];
        let rto = Objective::measure(14_400.0, Some(50.0));
        let svg = gantt_svg(&spans, Some(&rto));
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(!svg.contains("#c0392b"), "no step failed");
        assert!(svg.contains("recovered at 50s"), "{svg}");
        let failed = [
            Span {
                step: "promote".into(),
                start: 0.0,
                end: 1.0,
                summary: "promote FAILED: Unsafe".into(),
            },
            Span {
                step: "notify_failure".into(),
                start: 1.0,
                end: 2.0,
                summary: "".into(),
            },
            // Mentions of the failure recovered from are not failures.
            Span {
                step: "confirm".into(),
                start: 2.0,
                end: 3.0,
                summary: "the control plane reports it failed".into(),
            },
            Span {
                step: "notify_succeeded".into(),
                start: 3.0,
                end: 3.5,
                summary: "Failover done".into(),
            },
        ];
        let colours: Vec<&str> = failed.iter().map(colour).collect();
        assert_eq!(colours, ["#c0392b", "#c0392b", "#2e86c1", "#2e86c1"]);
        let short = gantt_svg(&failed, None);
        assert!(
            short.contains("\n1.8s\n"),
            "tenths on a short run's axis: {short}"
        );
        // The objective (4 h) is far off this chart: not drawn.
        assert!(!svg.contains("stroke-dasharray"), "{svg}");
    }

    #[test]
    fn the_evidence_pack_charts_every_drill_and_links_its_report() {
        let drill = |day: u32, restore: Option<f64>, passed: bool| DrillPoint {
            execution_name: format!("drill-{day}"),
            started_at: at(&format!("2026-10-{day:02}T03:00:00Z")),
            passed,
            restore_seconds: restore,
            backup_age_seconds: Some(600.0),
            restore_objective: Some(14_400.0),
            backup_objective: Some(21_600.0),
            rows_lost: Some(0),
            link: format!("dr-drill/2026100{day}-drill-{day}.html"),
        };
        let page = evidence_html(
            "2026-Q4",
            &[drill(5, Some(120.0), true), drill(1, None, false)],
        );
        assert!(page.contains("2 drill(s), 1 passed"), "{page}");
        assert_eq!(
            page.matches("class=\"bar\"").count(),
            5,
            "two backup bars, two rows-lost bars and one restore bar"
        );
        assert!(page.contains("not measured"));
        assert!(page.contains("href=\"dr-drill/20261005-drill-5.html\""));
        // Newest first in the table.
        assert!(page.find("drill-5").expect("5") < page.rfind("drill-1").expect("1"));
        let empty = evidence_html("2026-Q3", &[]);
        assert!(empty.contains("there is no evidence that a restore works"));
        let point = drill_point(
            &json!({"drill_id": "d", "execution_name": "n", "started_at": "2026-10-01T00:00:00Z",
            "passed": true, "restore_time": {"objective_seconds": 1.0, "achieved_seconds": 2.0}}),
            "l",
        );
        assert_eq!(
            point.map(|p| (p.restore_seconds, p.backup_age_seconds)),
            Some((Some(2.0), None))
        );
        assert_eq!(
            drill_point(&json!({"scenario": "database-failover"}), "l"),
            None
        );
    }
}
