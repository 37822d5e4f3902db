//! [`Notifier`] on SNS.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use dr_core::*;

use crate::errors::map_sdk_error;

/// SNS email subjects are at most 100 characters.
const SUBJECT_LIMIT: usize = 100;

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
    let single_line = subject.replace(['\n', '\r'], " ");
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
