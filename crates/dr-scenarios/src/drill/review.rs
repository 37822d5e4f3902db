//! What of the runbook review can be checked automatically.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookReviewInput {
    pub topic_arn: String,
    /// The runbook's "Last Updated" date (YYYY-MM-DD), when known.
    #[serde(default)]
    pub runbook_last_updated: Option<String>,
    #[serde(default = "default_review_days")]
    pub max_age_days: i64,
    /// The escalation path: each tier's topic must reach somebody (the
    /// runbook's "verify contact information").
    #[serde(default)]
    pub tiers: Vec<crate::escalation::Tier>,
}

pub(crate) fn default_review_days() -> i64 {
    92
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunbookReviewOutput {
    pub items: Vec<TestResult>,
    /// What a person still has to review.
    pub manual: Vec<String>,
}

pub async fn runbook_review(
    ports: &Ports,
    input: RunbookReviewInput,
) -> DrResult<RunbookReviewOutput> {
    let mut items = Vec::new();
    let started = Stopwatch::start();
    let counts = ports.notifier.subscriptions(&input.topic_arn).await?;
    items.push(TestResult::new(
        "alerts_topic_has_a_confirmed_subscriber",
        if counts.confirmed > 0 {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        },
        (counts.confirmed == 0).then(|| {
            format!(
                "{} has no confirmed subscription ({} pending): alerts reach nobody",
                input.topic_arn, counts.pending
            )
        }),
        started,
        json!({"confirmed": counts.confirmed, "pending": counts.pending}),
    ));
    if !input.tiers.is_empty() {
        crate::escalation::validate_tiers(&input.tiers)?;
    }
    for (i, tier) in input.tiers.iter().enumerate() {
        let started = Stopwatch::start();
        let counts = ports.notifier.subscriptions(&tier.topic_arn).await?;
        items.push(TestResult::new(
            &format!("escalation_tier_{}_has_a_confirmed_subscriber", i + 1),
            if counts.confirmed > 0 {
                TestStatus::Successful
            } else {
                TestStatus::Failed
            },
            (counts.confirmed == 0).then(|| {
                format!(
                    "escalation tier {} ({}): {} has no confirmed subscription ({} pending): its pages and approvals reach nobody, and the climb loses {} min there",
                    i + 1,
                    tier.name,
                    tier.topic_arn,
                    counts.pending,
                    tier.response_minutes
                )
            }),
            started,
            json!({"tier": tier.name, "confirmed": counts.confirmed, "pending": counts.pending}),
        ));
    }
    let started = Stopwatch::start();
    items.push(match &input.runbook_last_updated {
        None => TestResult::new(
            "runbook_reviewed_within_three_months",
            TestStatus::Skipped,
            Some("no runbook_last_updated given".to_owned()),
            started,
            json!({}),
        ),
        Some(date) => {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                DrError::InvalidInput(format!("runbook_last_updated {date:?} is not YYYY-MM-DD"))
            })?;
            let age = (dr_core::clock::now().date_naive() - date).num_days();
            TestResult::new(
                "runbook_reviewed_within_three_months",
                if age <= input.max_age_days {
                    TestStatus::Successful
                } else {
                    TestStatus::Failed
                },
                (age > input.max_age_days)
                    .then(|| format!("the runbook was last updated {age} days ago")),
                started,
                json!({"last_updated": date, "age_days": age}),
            )
        }
    });
    Ok(RunbookReviewOutput {
        items,
        manual: vec![
            "Verify the emergency contacts and escalation path (phone numbers, PagerDuty handles)"
                .to_owned(),
            "Review the runbook procedures against this drill's findings and update them"
                .to_owned(),
            "Confirm the external contacts (AWS Support plan, Clerk, Resend) are current"
                .to_owned(),
        ],
    })
}
