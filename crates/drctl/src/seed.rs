//! What `drctl local up` creates in moto so the scenarios find what they
//! would find in the MueJam AWS account: the database record, the alerts
//! topic (and a queue subscribed to it, to read messages back), the
//! database secret, and the recovery lock table.

use dr_aws::AwsClients;
use dr_core::{DrError, DrResult, InstanceId};
use dr_local::LocalControlPlane;
use secrecy::ExposeSecret;
use serde::Serialize;

pub const HOSTED_ZONE: &str = "muejam.internal";
pub const DATABASE_RECORD: &str = "db.muejam.internal";
pub const ALERTS_TOPIC: &str = "muejam-dr-alerts";
pub const ALERTS_INBOX_QUEUE: &str = "muejam-dr-alerts-inbox";
pub const DATABASE_SECRET: &str = "muejam/db/master";
/// The application role's credentials (what the app connects with).
pub const APP_SECRET: &str = "muejam/db/app";
pub const LOCK_TABLE: &str = "muejam-dr-locks";
pub const TOPOLOGY_TABLE: &str = "muejam-dr-topology";
pub const APPROVALS_TABLE: &str = "muejam-dr-approvals";
/// The escalation path's tier topics, in order (the template's defaults:
/// primary on-call, backup on-call, engineering manager, CTO).
pub const TIER_TOPICS: [&str; 4] = [
    "muejam-dr-tier-1",
    "muejam-dr-tier-2",
    "muejam-dr-tier-3",
    "muejam-dr-tier-4",
];
/// The queue subscribed to one tier's topic alone: what that tier's people
/// received.
pub fn tier_inbox_queue(tier: usize) -> String {
    format!("muejam-dr-tier-{tier}-inbox")
}
pub const JOURNAL_TABLE: &str = "muejam-dr-journal";
pub const NOTIFICATIONS_TABLE: &str = "muejam-dr-notifications";
/// The user-notification topic (FIFO: a repeated notification id is
/// dropped) and the queue that stands for the platform's mailer.
pub const USER_TOPIC: &str = "muejam-user-notifications.fifo";
pub const USER_INBOX_QUEUE: &str = "muejam-user-notifications-inbox.fifo";
/// The name triggers use for the MueJam database.
pub const DATABASE: &str = "muejam";

fn sdk(what: &str) -> impl Fn(String) -> DrError + '_ {
    move |e| DrError::Unavailable(format!("seeding moto ({what}): {e}"))
}

#[derive(Debug, Clone, Serialize)]
pub struct Seeded {
    pub alerts_topic_arn: String,
    pub alerts_inbox_queue_url: String,
    pub database_record: String,
}

/// Creates what is missing; never moves an existing record (after a
/// failover it points at the new primary, and `up` must not undo that).
pub async fn seed(
    platform: &LocalControlPlane,
    clients: &AwsClients,
    sqs: &aws_sdk_sqs::Client,
) -> DrResult<Seeded> {
    let primary = dr_core::InstanceId::parse(dr_local::stack::PRIMARY_ID)?;
    let zone_id = match dr_aws::Route53Dns::new(clients.route53.clone())
        .zone_id(HOSTED_ZONE)
        .await
    {
        Ok(id) => id,
        Err(DrError::NotFound(_)) => clients
            .route53
            .create_hosted_zone()
            .name(format!("{HOSTED_ZONE}."))
            .caller_reference(format!(
                "drctl-{}",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            ))
            .send()
            .await
            .map_err(|e| sdk("hosted zone")(e.to_string()))?
            .hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .ok_or_else(|| DrError::Internal("CreateHostedZone returned no zone".into()))?,
        Err(e) => return Err(e),
    };
    let dns = dr_aws::Route53Dns::new(clients.route53.clone());
    if dr_core::Dns::get_record(&dns, &zone_id, DATABASE_RECORD, "CNAME")
        .await?
        .is_none()
    {
        let endpoint = primary_endpoint(platform, &primary)?;
        dr_core::Dns::upsert_record(
            &dns,
            &dr_core::DnsRecord {
                hosted_zone_id: zone_id.clone(),
                name: DATABASE_RECORD.to_owned(),
                record_type: "CNAME".to_owned(),
                ttl: 60,
                value: endpoint,
            },
        )
        .await?;
    }
    let queue_url = sqs
        .create_queue()
        .queue_name(ALERTS_INBOX_QUEUE)
        .send()
        .await
        .map_err(|e| sdk("queue")(e.to_string()))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{ALERTS_INBOX_QUEUE}",
        dr_runner::sam::LOCAL_REGION,
        dr_runner::sam::LOCAL_ACCOUNT
    );
    // The inbox queue hears every topic: `drctl local messages` shows pages
    // and approval requests in the order they were sent; each tier's own
    // queue shows what that tier received.
    let mut topic_arn = String::new();
    for topic in std::iter::once(ALERTS_TOPIC).chain(TIER_TOPICS) {
        let arn = clients
            .sns
            .create_topic()
            .name(topic)
            .send()
            .await
            .map_err(|e| sdk("topic")(e.to_string()))?
            .topic_arn()
            .unwrap_or_default()
            .to_owned();
        subscribe_queue(clients, &arn, &queue_arn).await?;
        if let Some(tier) = TIER_TOPICS.iter().position(|t| *t == topic) {
            let name = tier_inbox_queue(tier + 1);
            sqs.create_queue()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| sdk("queue")(e.to_string()))?;
            let tier_queue_arn = format!(
                "arn:aws:sqs:{}:{}:{name}",
                dr_runner::sam::LOCAL_REGION,
                dr_runner::sam::LOCAL_ACCOUNT
            );
            subscribe_queue(clients, &arn, &tier_queue_arn).await?;
        }
        if topic == ALERTS_TOPIC {
            topic_arn = arn;
        }
    }
    let secret_exists = clients
        .secrets
        .describe_secret()
        .secret_id(DATABASE_SECRET)
        .send()
        .await
        .is_ok();
    if !secret_exists {
        let target = platform.database_target(&primary, None)?;
        let document = serde_json::json!({
            "engine": "postgres",
            "username": target.username,
            "password": target.password.expose_secret(),
            "dbname": target.database,
        });
        clients
            .secrets
            .create_secret()
            .name(DATABASE_SECRET)
            .secret_string(document.to_string())
            .send()
            .await
            .map_err(|e| sdk("secret")(e.to_string()))?;
    }
    let app_secret_exists = clients
        .secrets
        .describe_secret()
        .secret_id(APP_SECRET)
        .send()
        .await
        .is_ok();
    if !app_secret_exists {
        let target = platform.database_target(&primary, None)?;
        let password = platform
            .provision_login(&primary, dr_postgres::sample::APP_ROLE)
            .await?;
        let document = serde_json::json!({
            "engine": "postgres",
            "username": dr_postgres::sample::APP_ROLE,
            "password": password.expose_secret(),
            "dbname": target.database,
        });
        clients
            .secrets
            .create_secret()
            .name(APP_SECRET)
            .secret_string(document.to_string())
            .send()
            .await
            .map_err(|e| sdk("app secret")(e.to_string()))?;
    }
    ensure_table(clients, LOCK_TABLE, "resource", None).await?;
    ensure_table(clients, TOPOLOGY_TABLE, "database", None).await?;
    ensure_table(clients, APPROVALS_TABLE, "execution", None).await?;
    ensure_table(
        clients,
        JOURNAL_TABLE,
        "recovery_id",
        Some(("key", KeyKind::Text)),
    )
    .await?;
    ensure_table(
        clients,
        NOTIFICATIONS_TABLE,
        "incident",
        Some(("user_id", KeyKind::Number)),
    )
    .await?;
    ensure_user_topic(clients, sqs).await?;
    let registry = dr_aws::DynamoDbTopology::new(clients.dynamodb.clone(), TOPOLOGY_TABLE);
    if dr_core::TopologyRegistry::get(&registry, DATABASE)
        .await?
        .is_none()
    {
        dr_core::TopologyRegistry::put(&registry, &initial_topology()?, None).await?;
    }
    Ok(Seeded {
        alerts_topic_arn: topic_arn,
        alerts_inbox_queue_url: queue_url,
        database_record: DATABASE_RECORD.to_owned(),
    })
}

/// The user-notification FIFO topic, and a FIFO queue subscribed to it
/// that stands for the platform's mailer (`drctl local messages --users`).
async fn ensure_user_topic(clients: &AwsClients, sqs: &aws_sdk_sqs::Client) -> DrResult<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.create_queue()
        .queue_name(USER_INBOX_QUEUE)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| sdk("user queue")(e.to_string()))?;
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{USER_INBOX_QUEUE}",
        dr_runner::sam::LOCAL_REGION,
        dr_runner::sam::LOCAL_ACCOUNT
    );
    let arn = clients
        .sns
        .create_topic()
        .name(USER_TOPIC)
        .attributes("FifoTopic", "true")
        .send()
        .await
        .map_err(|e| sdk("user topic")(e.to_string()))?
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    subscribe_queue(clients, &arn, &queue_arn).await?;
    Ok(())
}

/// Subscribes `queue_arn` to `topic_arn`, once.
async fn subscribe_queue(clients: &AwsClients, topic_arn: &str, queue_arn: &str) -> DrResult<()> {
    let subscribed = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| sdk("subscriptions")(e.to_string()))?
        .subscriptions()
        .iter()
        .any(|s| s.endpoint() == Some(queue_arn));
    if !subscribed {
        clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .map_err(|e| sdk("subscription")(e.to_string()))?;
    }
    Ok(())
}

fn primary_endpoint(platform: &LocalControlPlane, primary: &InstanceId) -> DrResult<String> {
    Ok(platform.database_target(primary, None)?.endpoint.address)
}

/// The MueJam database as `up` creates it; registered once, never over a
/// record a failover has changed.
pub fn initial_topology() -> DrResult<dr_core::Topology> {
    Ok(dr_core::Topology {
        database: DATABASE.to_owned(),
        primary: dr_core::InstanceId::parse(dr_local::stack::PRIMARY_ID)?,
        replicas: vec![dr_core::InstanceId::parse(dr_local::stack::REPLICA_ID)?],
        fenced: Vec::new(),
        retired: Vec::new(),
        application: Some(dr_core::ApplicationAccess {
            role: dr_postgres::sample::APP_ROLE.to_owned(),
            credentials_secret_id: APP_SECRET.to_owned(),
            schema: "public".to_owned(),
        }),
        db_name: dr_local::DEFAULT_DATABASE.to_owned(),
        credentials_secret_id: DATABASE_SECRET.to_owned(),
        dns: dr_core::DnsBinding {
            hosted_zone: HOSTED_ZONE.to_owned(),
            record_name: DATABASE_RECORD.to_owned(),
            ttl: 60,
        },
        availability_zones: dr_local::AVAILABILITY_ZONES
            .iter()
            .map(|z| (*z).to_owned())
            .collect(),
        region: Some(dr_runner::sam::LOCAL_REGION.to_owned()),
        instance_prefix: dr_local::stack::PRIMARY_ID.to_owned(),
        generation: 0,
        version: 0,
        updated_at: None,
        updated_by: Some("drctl local up".to_owned()),
        tags: Default::default(),
    })
}

/// How a key attribute is typed.
#[derive(Clone, Copy)]
enum KeyKind {
    Text,
    Number,
}

/// Creates a DynamoDB table with a string partition key (and a sort key),
/// if missing.
async fn ensure_table(
    clients: &AwsClients,
    table: &str,
    key: &str,
    sort_key: Option<(&str, KeyKind)>,
) -> DrResult<()> {
    use dr_aws::dynamodb_types::*;
    let tables = clients
        .dynamodb
        .list_tables()
        .send()
        .await
        .map_err(|e| sdk("tables")(e.to_string()))?;
    if tables.table_names().iter().any(|t| t == table) {
        return Ok(());
    }
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in [
        (Some((key, KeyKind::Text)), KeyType::Hash),
        (sort_key, KeyType::Range),
    ] {
        let Some((name, kind)) = name else { continue };
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(match kind {
                        KeyKind::Text => ScalarAttributeType::S,
                        KeyKind::Number => ScalarAttributeType::N,
                    })
                    .build()
                    .map_err(|e| DrError::Internal(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .map_err(|e| DrError::Internal(e.to_string()))?,
            );
    }
    create.send().await.map_err(|e| sdk(table)(e.to_string()))?;
    Ok(())
}
