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

/// Whether `topic` reaches somebody: SUCCESSFUL with a confirmed
/// subscription, FAILED (saying `nobody(pending)`) without; `details` gains
/// the counts.
async fn subscribed(
    ports: &Ports,
    name: &str,
    topic: &str,
    mut details: Value,
    nobody: impl FnOnce(u32) -> String,
) -> DrResult<TestResult> {
    let started = Stopwatch::start();
    let counts = ports.notifier.subscriptions(topic).await?;
    details["confirmed"] = json!(counts.confirmed);
    details["pending"] = json!(counts.pending);
    Ok(TestResult::new(
        name,
        if counts.confirmed > 0 {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        },
        (counts.confirmed == 0).then(|| nobody(counts.pending)),
        started,
        details,
    ))
}

pub async fn runbook_review(
    ports: &Ports,
    input: RunbookReviewInput,
) -> DrResult<RunbookReviewOutput> {
    let mut items = Vec::new();
    items.push(
        subscribed(
            ports,
            "alerts_topic_has_a_confirmed_subscriber",
            &input.topic_arn,
            json!({}),
            |pending| {
                format!(
                    "{} has no confirmed subscription ({pending} pending): alerts reach nobody",
                    input.topic_arn
                )
            },
        )
        .await?,
    );
    if !input.tiers.is_empty() {
        crate::escalation::validate_tiers(&input.tiers)?;
    }
    for (i, tier) in input.tiers.iter().enumerate() {
        items.push(
            subscribed(
                ports,
                &format!("escalation_tier_{}_has_a_confirmed_subscriber", i + 1),
                &tier.topic_arn,
                json!({"tier": tier.name}),
                |pending| {
                    format!(
                        "escalation tier {} ({}): {} has no confirmed subscription ({pending} pending): its pages and approvals reach nobody, and the climb loses {} min there",
                        i + 1,
                        tier.name,
                        tier.topic_arn,
                        tier.response_minutes
                    )
                },
            )
            .await?,
        );
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
