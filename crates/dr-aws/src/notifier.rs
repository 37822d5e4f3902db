//! [`Notifier`] on SNS.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use dr_core::*;

use crate::errors::map_sdk_error;

/// SNS subjects must be "less than 100 characters long", with no line
/// breaks or control characters (Publish API reference); moto accepts
/// anything, AWS answers InvalidParameter.
const SUBJECT_LIMIT: usize = 99;

#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        SnsNotifier { client }
    }
}

pub fn clip_subject(subject: &str) -> String {
    let single_line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if single_line.chars().count() <= SUBJECT_LIMIT {
        single_line
    } else {
        let mut clipped: String = single_line.chars().take(SUBJECT_LIMIT - 1).collect();
        clipped.push('…');
        clipped
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(&self, notification: &Notification) -> DrResult<String> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&notification.topic)
            .subject(clip_subject(&notification.subject))
            .message(&notification.body);
        for (key, value) in &notification.attributes {
            request = request.message_attributes(
                key,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|e| DrError::InvalidInput(e.to_string()))?,
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("publishing to {}", notification.topic), e))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    async fn subscriptions(&self, topic: &str) -> DrResult<SubscriptionCounts> {
        let mut counts = SubscriptionCounts {
            confirmed: 0,
            pending: 0,
        };
        let mut pages = self
            .client
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| map_sdk_error(&format!("listing subscriptions of {topic}"), e))?;
            for subscription in page.subscriptions() {
                match subscription.subscription_arn() {
                    Some(arn) if arn.starts_with("arn:") => counts.confirmed += 1,
                    _ => counts.pending += 1,
                }
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_what_sns_accepts_less_than_100_characters_on_one_line() {
        let long = format!(
            "[MueJam DR] APPROVAL NEEDED by 03:14 UTC: {}",
            "x".repeat(200)
        );
        let clipped = clip_subject(&long);
        assert_eq!(clipped.chars().count(), 99);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_subject(&"y".repeat(99)), "y".repeat(99));
        assert_eq!(clip_subject(&"y".repeat(100)).chars().count(), 99);
        let with_controls = clip_subject("line one\nline\ttwo\r\u{7}");
        assert!(
            !with_controls.chars().any(char::is_control),
            "{with_controls:?}"
        );
    }
}
