//! PublishBatch as AWS answers it (aws-smithy-mocks: moto accepts every
//! entry, while AWS reports each entry's failure in a 200 response).

use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
use aws_sdk_sns::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dr_aws::SnsUserNotifier;
use dr_core::*;

const FIFO: &str = "arn:aws:sns:us-east-1:123456789012:muejam-user-notifications.fifo";

fn message(user: i64) -> UserMessage {
    UserMessage {
        user_id: user,
        notification_id: format!("incident-1.{user}"),
        subject: "Security notice".into(),
        body: "b".into(),
    }
}

#[tokio::test]
async fn a_batch_answered_in_part_says_which_message_failed_and_a_fifo_send_carries_its_ids() {
    let publish = mock!(Client::publish_batch)
        .match_requests(|r| {
            let entries = r.publish_batch_request_entries();
            r.topic_arn() == Some(FIFO)
                && entries.len() == 3
                && entries.iter().zip([7, 8, 9]).all(|(e, user)| {
                    e.message_deduplication_id() == Some(format!("incident-1.{user}").as_str())
                        && e.message_group_id() == Some(format!("user-{user}").as_str())
                        && e.message_attributes()
                            .and_then(|a| a.get("user_id"))
                            .and_then(|v| v.string_value())
                            == Some(user.to_string().as_str())
                })
        })
        .then_output(|| {
            PublishBatchOutput::builder()
                .successful(
                    PublishBatchResultEntry::builder()
                        .id("m2")
                        .message_id("msg-9")
                        .build(),
                )
                .successful(
                    PublishBatchResultEntry::builder()
                        .id("m0")
                        .message_id("msg-7")
                        .build(),
                )
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("m1")
                        .code("InternalError")
                        .message("try again")
                        .sender_fault(false)
                        .build()
                        .expect("entry"),
                )
                .build()
        });
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]);
    let results = SnsUserNotifier::new(sns)
        .send_batch(FIFO, &[message(7), message(8), message(9)])
        .await
        .expect("sent in part");
    assert_eq!(
        results,
        vec![
            UserDelivery::Sent {
                message_id: "msg-7".into()
            },
            UserDelivery::Failed {
                reason: "InternalError: try again".into()
            },
            UserDelivery::Sent {
                message_id: "msg-9".into()
            },
        ]
    );
    assert_eq!(publish.num_calls(), 1);
}

#[tokio::test]
async fn more_than_ten_messages_are_refused_before_any_call() {
    let publish =
        mock!(Client::publish_batch).then_output(|| PublishBatchOutput::builder().build());
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]);
    let messages: Vec<UserMessage> = (1..=11).map(message).collect();
    let refused = SnsUserNotifier::new(sns)
        .send_batch(FIFO, &messages)
        .await
        .expect_err("eleven");
    assert_eq!(refused.name(), "InvalidInput");
    assert_eq!(publish.num_calls(), 0);
}
