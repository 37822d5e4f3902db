//! The adapters over the real wire protocol, against a moto server.

use std::collections::BTreeMap;

use dr_aws::*;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

/// A moto server for one test, stopped on drop.
struct Moto {
    record: dr_local::state::MotoRecord,
    clients: AwsClients,
    _home: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = dr_local::moto::stop(&self.record);
    }
}

async fn moto() -> Moto {
    let home = tempfile::tempdir().expect("home");
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let record = dr_local::moto::start(home.path(), port).expect("moto starts");
    let clients = AwsClients::connect(&AwsTarget::moto(
        &dr_local::moto::endpoint(&record),
        "us-east-1",
    ))
    .await;
    Moto {
        record,
        clients,
        _home: home,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_upserts_reads_back_and_reports_insync() {
    let moto = moto().await;
    moto.clients
        .route53
        .create_hosted_zone()
        .name("muejam.internal.")
        .caller_reference("test")
        .send()
        .await
        .expect("zone");
    let dns = Route53Dns::new(moto.clients.route53.clone());
    let record = |value: &str| DnsRecord {
        hosted_zone_id: "muejam.internal".to_owned(),
        name: "db.muejam.internal".to_owned(),
        record_type: "CNAME".to_owned(),
        ttl: 60,
        value: value.to_owned(),
    };
    dns.upsert_record(&record("muejam-db-prod.abc.rds.amazonaws.com"))
        .await
        .expect("first");
    let change = dns
        .upsert_record(&record("muejam-db-prod-replica.abc.rds.amazonaws.com"))
        .await
        .expect("upsert is idempotent");
    let read = dns
        .get_record("muejam.internal", "db.muejam.internal", "CNAME")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.value, "muejam-db-prod-replica.abc.rds.amazonaws.com");
    assert_eq!(read.ttl, 60);
    assert_eq!(
        dns.change_status(&change.change_id)
            .await
            .expect("status")
            .status,
        DnsChangeStatus::Insync
    );
    assert!(dns
        .get_record("muejam.internal", "nothing.muejam.internal", "CNAME")
        .await
        .expect("read")
        .is_none());
    let missing = dns
        .zone_id("no-such-zone.example")
        .await
        .expect_err("missing zone");
    assert_eq!(missing.name(), "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_messages_reach_an_sqs_subscriber_with_subject_and_attributes() {
    let moto = moto().await;
    let sqs = aws_sdk_sqs::Client::new(
        &AwsTarget::moto(&dr_local::moto::endpoint(&moto.record), "us-east-1")
            .load()
            .await,
    );
    let topic = moto
        .clients
        .sns
        .create_topic()
        .name("muejam-dr-alerts")
        .send()
        .await
        .expect("topic");
    let topic_arn = topic.topic_arn().expect("arn").to_owned();
    let queue = sqs
        .create_queue()
        .queue_name("alerts-inbox")
        .send()
        .await
        .expect("queue");
    let queue_url = queue.queue_url().expect("url").to_owned();
    let queue_arn = "arn:aws:sqs:us-east-1:123456789012:alerts-inbox";
    moto.clients
        .sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("subscribe");
    let notifier = SnsNotifier::new(moto.clients.sns.clone());
    let id = notifier
        .publish(&Notification {
            topic: topic_arn.clone(),
            subject: "Database failover of muejam-db-prod finished".to_owned(),
            body: "What happened: ...".to_owned(),
            attributes: BTreeMap::from([("scenario".to_owned(), "database-failover".to_owned())]),
        })
        .await
        .expect("publish");
    assert!(!id.is_empty());
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let body: serde_json::Value =
        serde_json::from_str(received.messages()[0].body().expect("body")).expect("envelope");
    assert_eq!(
        body["Subject"],
        "Database failover of muejam-db-prod finished"
    );
    assert_eq!(body["Message"], "What happened: ...");
    assert_eq!(
        body["MessageAttributes"]["scenario"]["Value"],
        "database-failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reports_and_the_recovery_lock_work_over_the_wire() {
    let moto = moto().await;
    moto.clients
        .secrets
        .create_secret()
        .name("muejam/db/master")
        .secret_string(r#"{"username":"muejam_admin","password":"first-password"}"#)
        .send()
        .await
        .expect("secret");
    let secrets = SecretsManagerSecrets::new(moto.clients.secrets.clone());
    assert!(secrets
        .get_secret("muejam/db/master")
        .await
        .expect("read")
        .expose_secret()
        .contains("first-password"));
    secrets
        .put_secret(
            "muejam/db/master",
            &SecretString::from(r#"{"username":"muejam_admin","password":"rotated"}"#.to_owned()),
        )
        .await
        .expect("rotate");
    assert!(secrets
        .get_secret("muejam/db/master")
        .await
        .expect("read")
        .expose_secret()
        .contains("rotated"));
    assert_eq!(
        secrets
            .get_secret("nope")
            .await
            .expect_err("missing")
            .name(),
        "NotFound"
    );

    moto.clients
        .s3
        .create_bucket()
        .bucket("muejam-dr-reports")
        .send()
        .await
        .expect("bucket");
    let reports = S3ReportStore::new(moto.clients.s3.clone(), "muejam-dr-reports", "reports");
    let location = reports
        .put("failover/x.json", "application/json", b"{\"ok\":true}")
        .await
        .expect("put");
    assert_eq!(location, "s3://muejam-dr-reports/reports/failover/x.json");
    assert_eq!(
        reports.get("failover/x.json").await.expect("get"),
        Some(b"{\"ok\":true}".to_vec())
    );
    assert_eq!(reports.get("failover/none.json").await.expect("get"), None);

    moto.clients
        .dynamodb
        .create_table()
        .table_name("muejam-dr-locks")
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("resource")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("resource")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table");
    let lock = DynamoDbLock::new(moto.clients.dynamodb.clone(), "muejam-dr-locks");
    lock.acquire("muejam-db-prod", "execution-a", 3600)
        .await
        .expect("first");
    lock.acquire("muejam-db-prod", "execution-a", 3600)
        .await
        .expect("same owner again");
    let conflict = lock
        .acquire("muejam-db-prod", "execution-b", 3600)
        .await
        .expect_err("held");
    assert_eq!(conflict.name(), "Conflict");
    assert!(conflict.to_string().contains("execution-a"), "{conflict}");
    lock.release("muejam-db-prod", "execution-b")
        .await
        .expect("not ours: no-op");
    assert_eq!(
        lock.holder("muejam-db-prod")
            .await
            .expect("holder")
            .map(|h| h.owner),
        Some("execution-a".to_owned())
    );
    lock.release("muejam-db-prod", "execution-a")
        .await
        .expect("release");
    lock.acquire("muejam-db-prod", "execution-b", 3600)
        .await
        .expect("free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_on_moto_creates_a_replica_promotes_it_once_and_refuses_unsafe_deletes() {
    let moto = moto().await;
    moto.clients
        .rds
        .create_db_instance()
        .db_instance_identifier("muejam-db-prod")
        .engine("postgres")
        .db_instance_class("db.t3.large")
        .allocated_storage(20)
        .master_username("muejam_admin")
        .master_user_password("not-a-real-secret-1")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("primary");
    let rds = RdsControlPlane::new(moto.clients.rds.clone(), None);
    let primary = ResourceId::parse("muejam-db-prod").expect("id");
    let replica_id = ResourceId::parse("muejam-db-prod-replica").expect("id");
    let request = CreateReplicaRequest {
        replica_id: replica_id.clone(),
        source_id: primary.clone(),
        availability_zone: Some("us-east-1b".to_owned()),
        tags: BTreeMap::from([("Application".to_owned(), "muejam".to_owned())]),
    };
    let replica = rds.create_read_replica(&request).await.expect("replica");
    assert_eq!(replica.replication_source, Some(primary.clone()));
    assert_eq!(replica.role, InstanceRole::Replica);
    let again = rds.create_read_replica(&request).await.expect("idempotent");
    assert_eq!(again.instance_id, replica_id);
    assert_eq!(
        rds.describe_instance(&primary)
            .await
            .expect("primary")
            .read_replicas,
        vec![replica_id.clone()]
    );

    let promoted = rds
        .promote_read_replica(&replica_id)
        .await
        .expect("promote");
    assert!(!promoted.already_standalone);
    // moto 5.2 accepts PromoteReadReplica but keeps the replication source in
    // DescribeDBInstances, unlike RDS; the real sequence (source cleared,
    // then a second promotion is a no-op) is covered in rds_mocked.rs.

    let refused = rds
        .delete_instance(&primary, DeleteOptions::default())
        .await
        .expect_err("not ephemeral");
    assert_eq!(refused.name(), "Unsafe");
    assert!(rds.describe_instance(&primary).await.is_ok());
    let missing = rds
        .describe_instance(&ResourceId::parse("no-such-db").expect("id"))
        .await
        .expect_err("missing");
    assert_eq!(missing.name(), "NotFound", "{missing}");
}
