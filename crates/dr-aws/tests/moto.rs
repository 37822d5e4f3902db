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
    let port = dr_local::processes::free_port(|_| false).expect("port");
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
    // A drill's record is removed whatever it points at, once.
    let drill = DnsRecord {
        name: "drill-q4.db.muejam.internal".to_owned(),
        ..record("drill-muejam-db-prod-q4.abc.rds.amazonaws.com")
    };
    dns.upsert_record(&drill).await.expect("drill record");
    assert!(dns
        .delete_record("muejam.internal", &drill.name, "CNAME")
        .await
        .expect("delete")
        .is_some());
    assert!(dns
        .get_record("muejam.internal", &drill.name, "CNAME")
        .await
        .expect("read")
        .is_none());
    assert!(dns
        .delete_record("muejam.internal", &drill.name, "CNAME")
        .await
        .expect("a second delete finds nothing")
        .is_none());
    assert_eq!(
        dns.get_record("muejam.internal", "db.muejam.internal", "CNAME")
            .await
            .expect("read")
            .map(|r| r.value),
        Some("muejam-db-prod-replica.abc.rds.amazonaws.com".to_owned()),
        "the production record is untouched"
    );
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
    // Listed without the store's own prefix, only under the one asked for.
    reports
        .put("drill/y.md", "text/markdown", b"# y")
        .await
        .expect("put");
    moto.clients
        .s3
        .put_object()
        .bucket("muejam-dr-reports")
        .key("elsewhere/z.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect("outside the prefix");
    assert_eq!(
        reports.list("").await.expect("list"),
        ["drill/y.md", "failover/x.json"]
    );
    assert_eq!(
        reports.list("failover/").await.expect("list"),
        ["failover/x.json"]
    );

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
    let primary = InstanceId::parse("muejam-db-prod").expect("id");
    let replica_id = InstanceId::parse("muejam-db-prod-replica").expect("id");
    let request = CreateReplicaRequest {
        network: None,
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
        .describe_instance(&InstanceId::parse("no-such-db").expect("id"))
        .await
        .expect_err("missing");
    assert_eq!(missing.name(), "NotFound", "{missing}");
}

/// A DynamoDB table with a string partition key (and sort key) in moto.
async fn table(moto: &Moto, name: &str, key: &str, sort: Option<&str>) {
    use aws_sdk_dynamodb::types::*;
    let mut create = moto
        .clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (k, kind) in [(Some(key), KeyType::Hash), (sort, KeyType::Range)] {
        let Some(k) = k else { continue };
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(k)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attr"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(k)
                    .key_type(kind)
                    .build()
                    .expect("key"),
            );
    }
    create.send().await.expect("table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_registry_writes_only_on_the_version_it_read() {
    let moto = moto().await;
    table(&moto, "muejam-dr-topology", "database", None).await;
    let registry = DynamoDbTopology::new(moto.clients.dynamodb.clone(), "muejam-dr-topology");
    let topology: Topology = serde_json::from_value(serde_json::json!({
        "database": "muejam", "primary": "muejam-db-prod", "replicas": ["muejam-db-prod-replica"],
        "db_name": "muejam", "credentials_secret_id": "muejam/db/master",
        "dns": {"hosted_zone": "muejam.internal", "record_name": "db.muejam.internal", "ttl": 60},
        "instance_prefix": "muejam-db-prod"
    }))
    .expect("topology");
    let stored = registry.put(&topology, None).await.expect("register");
    assert_eq!(stored.version, 1);
    let again = registry
        .put(&topology, None)
        .await
        .expect_err("registered once");
    assert_eq!(again.name(), "Conflict");
    let switched = stored
        .after_switch(
            &InstanceId::parse("muejam-db-prod-replica").expect("id"),
            "e1",
        )
        .expect("switch");
    let v2 = registry.put(&switched, Some(1)).await.expect("switch");
    assert_eq!(v2.version, 2);
    let stale = registry
        .put(&switched, Some(1))
        .await
        .expect_err("a writer that read version 1 lost the race");
    assert_eq!(stale.name(), "Conflict");
    let read = registry.get("muejam").await.expect("get").expect("exists");
    assert_eq!(read.primary.as_str(), "muejam-db-prod-replica");
    assert_eq!(read.version, 2);
    let mut bad = read.clone();
    bad.dns.ttl = 0;
    assert_eq!(
        registry
            .put(&bad, Some(2))
            .await
            .expect_err("invalid")
            .name(),
        "InvalidInput"
    );
    assert_eq!(registry.list().await.expect("list").len(), 1);
    assert!(registry.get("other").await.expect("get").is_none());
    // Removed only at the version read, once.
    let stale = registry
        .delete("muejam", 1)
        .await
        .expect_err("a stale version");
    assert_eq!(stale.name(), "Conflict");
    assert!(registry.get("muejam").await.expect("get").is_some());
    assert!(registry.delete("muejam", 2).await.expect("delete"));
    assert!(!registry.delete("muejam", 2).await.expect("gone already"));
    assert!(registry.list().await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_answered_exactly_once_and_its_token_stays_secret() {
    let moto = moto().await;
    table(&moto, "muejam-dr-approvals", "execution", None).await;
    let store = DynamoDbApprovals::new(moto.clients.dynamodb.clone(), "muejam-dr-approvals");
    let request = ApprovalRequest {
        execution_name: "incident-1".to_owned(),
        execution_arn: "arn:x".to_owned(),
        scenario: "database-failover".to_owned(),
        resource: "muejam".to_owned(),
        question: "Fail over?".to_owned(),
        facts: vec!["hung".to_owned()],
        proposed_action: "promote".to_owned(),
        default_action: "nothing".to_owned(),
        requested_at: chrono::Utc::now(),
        deadline: chrono::Utc::now() + chrono::Duration::minutes(10),
        status: ApprovalStatus::Pending,
        answer: None,
        escalation: vec![],
    };
    let token = SecretString::from("AQB4-secret-token".to_owned());
    store.open(&request, &token).await.expect("open");
    store
        .open(&request, &token)
        .await
        .expect("a retried request");
    // The escalation's next tier asks again with its own token: it replaces
    // the pending one, and the record says who has been asked.
    let mut escalated = request.clone();
    escalated.escalation = vec![
        TierAsked {
            tier: "primary-on-call".to_owned(),
            at: request.requested_at,
        },
        TierAsked {
            tier: "backup-on-call".to_owned(),
            at: request.requested_at + chrono::Duration::minutes(15),
        },
    ];
    let old_token = SecretString::from("AQB4-old-token".to_owned());
    store.open(&request, &old_token).await.expect("tier 1");
    store.open(&escalated, &token).await.expect("tier 2");
    let (read, read_token) = store.get("incident-1").await.expect("get").expect("exists");
    assert_eq!(read.status, ApprovalStatus::Pending);
    assert_eq!(read.escalation.len(), 2);
    assert_eq!(read_token.expose_secret(), "AQB4-secret-token");
    assert!(
        !format!("{read:?} {read_token:?}").contains("AQB4"),
        "never in Debug output"
    );
    let answer = ApprovalAnswer {
        approved: true,
        by: "alice".to_owned(),
        at: chrono::Utc::now(),
        reason: Some("gone".to_owned()),
        tier: Some("backup-on-call".to_owned()),
    };
    let closed = store
        .close("incident-1", ApprovalStatus::Approved, Some(answer.clone()))
        .await
        .expect("approve");
    assert_eq!(closed.answer, Some(answer));
    let second = store
        .close("incident-1", ApprovalStatus::Expired, None)
        .await
        .expect_err("answered already");
    assert_eq!(second.name(), "Conflict");
    assert!(
        second.to_string().contains("already approved: by alice"),
        "{second}"
    );
    assert_eq!(
        store
            .open(&request, &token)
            .await
            .expect_err("no reopening")
            .name(),
        "Conflict"
    );
    assert_eq!(
        store
            .close("never-asked", ApprovalStatus::Approved, None)
            .await
            .expect_err("unknown")
            .name(),
        "NotFound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_one_entry_per_step_of_a_recovery_in_time_order() {
    let moto = moto().await;
    table(&moto, "muejam-dr-journal", "recovery_id", Some("key")).await;
    let journal = DynamoDbJournal::new(moto.clients.dynamodb.clone(), "muejam-dr-journal");
    let entry = |key: &str, status: JournalStatus, seconds: i64| JournalEntry {
        recovery_id: "incident-1".to_owned(),
        key: key.to_owned(),
        execution: "run-1".to_owned(),
        at: chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time"),
        status,
        summary: format!("{key} {status:?}"),
        detail: None,
    };
    journal
        .record(&entry("promote", JournalStatus::Started, 2))
        .await
        .expect("record");
    journal
        .record(&entry("fence", JournalStatus::Done, 1))
        .await
        .expect("record");
    journal
        .record(&entry("promote", JournalStatus::Done, 3))
        .await
        .expect("record");
    let mut other = entry("fence", JournalStatus::Failed, 9);
    other.recovery_id = "incident-2".to_owned();
    journal.record(&other).await.expect("record");
    let entries = journal.entries("incident-1").await.expect("entries");
    let seen: Vec<(String, JournalStatus)> =
        entries.iter().map(|e| (e.key.clone(), e.status)).collect();
    assert_eq!(
        seen,
        vec![
            ("fence".to_owned(), JournalStatus::Done),
            ("promote".to_owned(), JournalStatus::Done)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_is_taken_over_only_from_the_holder_named() {
    let moto = moto().await;
    table(&moto, "muejam-dr-locks", "resource", None).await;
    let lock = DynamoDbLock::new(moto.clients.dynamodb.clone(), "muejam-dr-locks");
    lock.acquire("muejam", "dead", 3600).await.expect("first");
    let wrong = lock
        .take_over("muejam", "new", "someone-else", 3600)
        .await
        .expect_err("the stale holder is not the one named");
    assert_eq!(wrong.name(), "Conflict");
    lock.take_over("muejam", "new", "dead", 3600)
        .await
        .expect("take over");
    assert_eq!(
        lock.holders()
            .await
            .expect("holders")
            .iter()
            .map(|h| h.owner.as_str())
            .collect::<Vec<_>>(),
        vec!["new"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_copied_into_the_backup_region_under_its_key_once() {
    let moto = moto().await;
    moto.clients
        .rds
        .create_db_instance()
        .db_instance_identifier("muejam-db-prod")
        .engine("postgres")
        .db_instance_class("db.t3.large")
        .allocated_storage(20)
        .storage_encrypted(true)
        .master_username("muejam_admin")
        .master_user_password("not-a-real-secret-1")
        .send()
        .await
        .expect("primary");
    let home = RdsControlPlane::new(moto.clients.rds.clone(), None);
    let source = home
        .create_snapshot(&CreateSnapshotRequest {
            instance_id: InstanceId::parse("muejam-db-prod").expect("id"),
            snapshot_id: SnapshotId::parse("muejam-db-prod-s1").expect("id"),
            tags: Tags::new(),
        })
        .await
        .expect("snapshot");
    let regions = RdsRegions::new(home.clone());
    assert_eq!(regions.home_region(), "us-east-1");
    let west = regions.control_plane("us-west-2").expect("west");
    assert_eq!(
        regions.control_plane("us-west").err().map(|e| e.name()),
        Some("InvalidInput")
    );
    let endpoint = dr_local::moto::endpoint(&moto.record);
    let key_in = |region: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let config = AwsTarget::moto(&endpoint, region).load().await;
            aws_sdk_kms::Client::new(&config)
                .create_key()
                .send()
                .await
                .expect("key")
                .key_metadata()
                .map(|m| m.arn().unwrap_or_default().to_owned())
                .expect("arn")
        }
    };
    let west_key = key_in("us-west-2").await;
    let east_key = key_in("us-east-1").await;
    let request = |key: &str| CopySnapshotRequest {
        source_snapshot_id: source.snapshot_id.clone(),
        source_region: "us-east-1".into(),
        target_snapshot_id: SnapshotId::parse("dr-copy-muejam-db-prod-s1").expect("id"),
        kms_key_id: key.to_owned(),
        tags: BTreeMap::from([("dr:copy-of".to_owned(), "muejam".to_owned())]),
    };

    // A key of the source region is refused: keys are regional.
    let refused = west
        .copy_snapshot(&CopySnapshotRequest {
            target_snapshot_id: SnapshotId::parse("dr-copy-wrong-key").expect("id"),
            ..request(&east_key)
        })
        .await
        .expect_err("a us-east-1 key in us-west-2");
    assert_eq!(refused.name(), "InvalidInput", "{refused}");

    let copy = west.copy_snapshot(&request(&west_key)).await.expect("copy");
    assert_eq!(copy.region.as_deref(), Some("us-west-2"));
    assert!(copy.encrypted);
    assert_eq!(copy.kms_key_id.as_deref(), Some(west_key.as_str()));
    let source_arn = "arn:aws:rds:us-east-1:123456789012:snapshot:muejam-db-prod-s1";
    assert_eq!(
        copy.copied_from,
        Some(SnapshotSource {
            snapshot: source_arn.into(),
            region: Some("us-east-1".into())
        })
    );
    assert_eq!(
        copy.data_time(),
        source.created_at,
        "the data's time survives the copy"
    );

    // Asked again (a retried step), it is the same copy, not a second one.
    let again = west
        .copy_snapshot(&request(&west_key))
        .await
        .expect("again");
    assert_eq!(again.snapshot_id, copy.snapshot_id);
    assert_eq!(west.list_snapshots(None).await.expect("west").len(), 1);
    let east: Vec<String> = home
        .list_snapshots(None)
        .await
        .expect("east")
        .iter()
        .map(|s| s.snapshot_id.to_string())
        .collect();
    // (moto also makes an automated snapshot when an instance is created.)
    assert!(east.contains(&"muejam-db-prod-s1".to_owned()), "{east:?}");
    assert!(!east.iter().any(|s| s.starts_with("dr-copy")), "{east:?}");

    west.tag_snapshot(
        &copy.snapshot_id,
        &BTreeMap::from([("dr:verified".to_owned(), "2026-11-27T00:00:00Z".to_owned())]),
    )
    .await
    .expect("tag");
    let tagged = west
        .describe_snapshot(&copy.snapshot_id)
        .await
        .expect("describe");
    assert_eq!(
        tagged.tags.get("dr:verified").map(String::as_str),
        Some("2026-11-27T00:00:00Z")
    );
    assert_eq!(
        tagged.tags.get("dr:copy-of").map(String::as_str),
        Some("muejam")
    );
    west.delete_snapshot(&copy.snapshot_id)
        .await
        .expect("delete");
    assert_eq!(
        west.describe_snapshot(&copy.snapshot_id)
            .await
            .err()
            .map(|e| e.name()),
        Some("NotFound")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waf_ip_set_is_merged_under_its_lock_token_and_keeps_what_it_held() {
    let moto = moto().await;
    let created = moto
        .clients
        .wafv2
        .create_ip_set()
        .name("muejam-blocked")
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .ip_address_version(aws_sdk_wafv2::types::IpAddressVersion::Ipv4)
        .addresses("198.51.100.1/32")
        .addresses("192.0.2.0/24")
        .send()
        .await
        .expect("ip set");
    let summary = created.summary().expect("summary");
    let ip_set = IpSetRef {
        name: "muejam-blocked".into(),
        id: summary.id().expect("id").to_owned(),
        scope: "REGIONAL".into(),
    };
    let firewall = WafFirewall::new(moto.clients.wafv2.clone());

    // A token read before someone else's write is stale: Conflict.
    let before = firewall.get_ip_set(&ip_set).await.expect("read");
    assert_eq!(before.addresses.len(), 2);
    firewall
        .update_ip_set(
            &ip_set,
            &[&before.addresses[..], &["203.0.113.50/32".to_owned()]].concat(),
            &before.lock_token,
        )
        .await
        .expect("the other writer");
    let stale = firewall
        .update_ip_set(&ip_set, &before.addresses, &before.lock_token)
        .await
        .expect_err("stale token");
    assert_eq!(stale.name(), "Conflict", "{stale}");

    // The merge re-reads: every entry held stays, each new block once.
    let blocks = dr_scenarios::breach::addresses::normalise_all(&[
        "203.0.113.7".to_owned(),
        "192.0.2.77".to_owned(),
        "203.0.113.7/32".to_owned(),
    ])
    .expect("valid");
    let outcome = dr_scenarios::breach::block_addresses(&firewall, &ip_set, &blocks)
        .await
        .expect("blocked");
    assert_eq!(outcome.added, ["203.0.113.7/32"]);
    assert_eq!(outcome.already_blocked, ["192.0.2.77/32"]);
    let after = firewall.get_ip_set(&ip_set).await.expect("read");
    let mut held = after.addresses.clone();
    held.sort();
    assert_eq!(
        held,
        [
            "192.0.2.0/24",
            "198.51.100.1/32",
            "203.0.113.50/32",
            "203.0.113.7/32"
        ]
    );
    let again = dr_scenarios::breach::block_addresses(&firewall, &ip_set, &blocks)
        .await
        .expect("again");
    assert!(again.added.is_empty());

    let missing = IpSetRef {
        id: "00000000-0000-0000-0000-000000000000".into(),
        ..ip_set
    };
    assert_eq!(
        firewall
            .get_ip_set(&missing)
            .await
            .expect_err("missing")
            .name(),
        "NotFound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotates_by_stage_and_a_repeated_pending_write_stores_nothing_new() {
    let moto = moto().await;
    moto.clients
        .secrets
        .create_secret()
        .name("muejam/db/app")
        .secret_string(r#"{"username":"muejam_app","password":"old"}"#)
        .send()
        .await
        .expect("secret");
    let secrets = SecretsManagerSecrets::new(moto.clients.secrets.clone());
    let current = secrets
        .get_secret_stage("muejam/db/app", "AWSCURRENT")
        .await
        .expect("read")
        .expect("current");
    assert!(secrets
        .get_secret_stage("muejam/db/app", "AWSPENDING")
        .await
        .expect("read")
        .is_none());
    let token = "breach-app-breach-2026-11-27-----";
    let new = SecretString::from(r#"{"username":"muejam_app","password":"new"}"#.to_owned());
    let version = secrets
        .put_secret_pending("muejam/db/app", token, &new)
        .await
        .expect("pending");
    assert_eq!(version, token);
    // A retry with the same token and value: the same version.
    assert_eq!(
        secrets
            .put_secret_pending("muejam/db/app", token, &new)
            .await
            .expect("again"),
        token
    );
    let pending = secrets
        .get_secret_stage("muejam/db/app", "AWSPENDING")
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(pending.version_id, token);
    assert_eq!(
        secrets
            .get_secret("muejam/db/app")
            .await
            .expect("current")
            .expose_secret(),
        r#"{"username":"muejam_app","password":"old"}"#,
        "pending is not current"
    );
    secrets
        .move_secret_stage(
            "muejam/db/app",
            "AWSCURRENT",
            token,
            Some(&current.version_id),
        )
        .await
        .expect("move");
    secrets
        .remove_secret_stage("muejam/db/app", "AWSPENDING", token)
        .await
        .expect("remove");
    assert_eq!(
        secrets
            .get_secret("muejam/db/app")
            .await
            .expect("current")
            .expose_secret(),
        new.expose_secret(),
        "read by stage after the move: the new value (moto's plain read may lag)"
    );
    assert!(secrets
        .get_secret_stage("muejam/db/app", "AWSPENDING")
        .await
        .expect("read")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_ledger_claims_all_or_nothing_and_never_reclaims_a_send() {
    use aws_sdk_dynamodb::types::*;
    let moto = moto().await;
    let mut create = moto
        .clients
        .dynamodb
        .create_table()
        .table_name("muejam-dr-notifications")
        .billing_mode(BillingMode::PayPerRequest);
    for (k, t, kind) in [
        ("incident", ScalarAttributeType::S, KeyType::Hash),
        ("user_id", ScalarAttributeType::N, KeyType::Range),
    ] {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(k)
                    .attribute_type(t)
                    .build()
                    .expect("attr"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(k)
                    .key_type(kind)
                    .build()
                    .expect("key"),
            );
    }
    create.send().await.expect("table");
    let ledger = DynamoDbLedger::new(moto.clients.dynamodb.clone(), "muejam-dr-notifications");
    let now = chrono::Utc::now();
    assert!(ledger.entries("i-1").await.expect("empty").is_empty());
    ledger.claim("i-1", &[3, 1, 2], now).await.expect("claimed");
    ledger
        .mark_sent("i-1", &[(1, "m-1".into()), (3, "m-3".into())], now)
        .await
        .expect("recorded");
    // A claim again (a retry): the one still sending may be re-claimed.
    ledger.claim("i-1", &[2], now).await.expect("re-claimed");
    // A batch holding one already sent is refused whole.
    let refused = ledger
        .claim("i-1", &[2, 3, 4], now)
        .await
        .expect_err("3 was sent");
    assert_eq!(refused.name(), "Conflict", "{refused}");
    let entries = ledger.entries("i-1").await.expect("entries");
    let seen: Vec<(i64, LedgerState, u32, Option<&str>)> = entries
        .iter()
        .map(|e| (e.user_id, e.state, e.attempts, e.message_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, LedgerState::Sent, 1, Some("m-1")),
            (2, LedgerState::Sending, 2, None),
            (3, LedgerState::Sent, 1, Some("m-3")),
        ],
        "4 was never claimed: the refused batch changed nothing"
    );
    // Another incident is another ledger.
    assert!(ledger.entries("i-2").await.expect("other").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_topic_drops_a_repeated_notification_id() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let moto = moto().await;
    let config = AwsTarget::moto(&dr_local::moto::endpoint(&moto.record), "us-east-1")
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("mailer.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("queue");
    let url = queue.queue_url().expect("url").to_owned();
    let topic = moto
        .clients
        .sns
        .create_topic()
        .name("muejam-user-notifications.fifo")
        .attributes("FifoTopic", "true")
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_owned();
    moto.clients
        .sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:mailer.fifo")
        .send()
        .await
        .expect("subscribed");
    let notifier = SnsUserNotifier::new(moto.clients.sns.clone());
    let message = |user: i64| UserMessage {
        user_id: user,
        notification_id: format!("i-1.{user}"),
        subject: "Security notice".into(),
        body: format!("for {user}"),
    };
    let first = notifier
        .send_batch(&topic, &[message(1), message(2)])
        .await
        .expect("sent");
    assert!(first.iter().all(|d| matches!(d, UserDelivery::Sent { .. })));
    // A retry of the same batch, and a new user.
    notifier
        .send_batch(&topic, &[message(2), message(3)])
        .await
        .expect("sent again");
    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            break;
        }
        for m in received.messages() {
            let envelope: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("json");
            bodies.push(envelope["Message"].as_str().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    bodies.sort();
    assert_eq!(bodies, ["for 1", "for 2", "for 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_period_of_a_metric_is_read_back_with_its_dimensions() {
    let moto = moto().await;
    let metrics = CloudWatchMetrics::new(moto.clients.cloudwatch.clone());
    let now = chrono::Utc::now();
    let dims = |db: &str| BTreeMap::from([("Database".to_owned(), db.to_owned())]);
    let datum = |value: f64, minutes_ago: i64, db: &str| MetricDatum {
        name: "DatabaseProbeSuccess".to_owned(),
        value,
        unit: "Count".to_owned(),
        dimensions: dims(db),
        timestamp: now - chrono::Duration::minutes(minutes_ago),
    };
    let since = now - chrono::Duration::minutes(30);
    assert_eq!(
        metrics
            .latest(
                "MueJam/DR",
                "DatabaseProbeSuccess",
                &dims("db.muejam.internal"),
                since
            )
            .await
            .expect("read"),
        None,
        "nothing published yet"
    );
    metrics
        .put(
            "MueJam/DR",
            &[
                datum(1.0, 10, "db.muejam.internal"),
                // Just now: the minute in progress counts.
                datum(0.0, 0, "db.muejam.internal"),
                // Another database's, newer: not this one's.
                datum(1.0, 1, "db.other.internal"),
            ],
        )
        .await
        .expect("put");
    let newest = metrics
        .latest(
            "MueJam/DR",
            "DatabaseProbeSuccess",
            &dims("db.muejam.internal"),
            since,
        )
        .await
        .expect("read")
        .expect("a period");
    assert_eq!((newest.minimum, newest.maximum), (0.0, 0.0), "{newest:?}");
    assert!(newest.at > now - chrono::Duration::minutes(2), "{newest:?}");
}

/// What the permissions check reads of a deployment, as SAM deploys it:
/// a state machine with its role, a function with its role and DR_FUNCTION,
/// the role's inline policy (URL-encoded by IAM) and an attached managed
/// policy (its default version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_state_machine_function_and_role_are_read_back() {
    let moto = moto().await;
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = moto
        .clients
        .iam
        .create_role()
        .role_name("muejam-CheckDatabaseFunctionRole-X1")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("role");
    let role_arn = role.role().map(|r| r.arn().to_owned()).expect("arn");
    // A percent sign and a space survive the encoding.
    let inline = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["rds:DescribeDBInstances"], "Resource": "*",
        "Condition": {"StringLike": {"aws:ResourceTag/owner": "100% dr team"}}}]});
    moto.clients
        .iam
        .put_role_policy()
        .role_name("muejam-CheckDatabaseFunctionRole-X1")
        .policy_name("CheckDatabaseFunctionRolePolicy0")
        .policy_document(inline.to_string())
        .send()
        .await
        .expect("inline");
    let managed = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}]});
    let policy = moto
        .clients
        .iam
        .create_policy()
        .policy_name("basic-execution")
        .policy_document(managed.to_string())
        .send()
        .await
        .expect("policy");
    moto.clients
        .iam
        .attach_role_policy()
        .role_name("muejam-CheckDatabaseFunctionRole-X1")
        .policy_arn(policy.policy().and_then(|p| p.arn()).expect("arn"))
        .send()
        .await
        .expect("attach");
    let function = moto
        .clients
        .lambda
        .create_function()
        .function_name("muejam-CheckDatabaseFunction-A1")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&role_arn)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
                ))
                .build(),
        )
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("DR_FUNCTION", "check-database")
                .build(),
        )
        .send()
        .await
        .expect("function");
    let function_arn = function.function_arn().expect("arn").to_owned();
    let definition = serde_json::json!({"StartAt": "Check", "States": {"Check": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"}, "End": true}}});
    let machine = moto
        .clients
        .sfn
        .create_state_machine()
        .name("muejam-database-failover")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/muejam-DatabaseFailoverRole-Y")
        .send()
        .await
        .expect("state machine");

    let permissions = AwsPermissions::new(
        moto.clients.sfn.clone(),
        moto.clients.lambda.clone(),
        moto.clients.iam.clone(),
    );
    let deployed = permissions
        .state_machine(machine.state_machine_arn())
        .await
        .expect("described");
    assert_eq!(deployed.definition, definition);
    assert_eq!(
        deployed.role_arn,
        "arn:aws:iam::123456789012:role/muejam-DatabaseFailoverRole-Y"
    );
    assert_eq!(
        permissions.function(&function_arn).await.expect("read"),
        DeployedFunction {
            arn: function_arn.clone(),
            role_arn: role_arn.clone(),
            dr_function: Some("check-database".into()),
        }
    );
    assert_eq!(
        permissions
            .role_policies(&role_arn)
            .await
            .expect("policies"),
        vec![inline, managed]
    );
    // moto has no policy simulation: an error, never a verdict.
    let simulated = permissions
        .simulate(
            &role_arn,
            &[ActionRequest {
                action: "rds:DescribeDBInstances".into(),
                resources: vec![],
            }],
        )
        .await;
    assert!(simulated.is_err(), "{simulated:?}");
    assert_eq!(
        permissions
            .function("arn:aws:lambda:us-east-1:123456789012:function:gone")
            .await
            .expect_err("gone")
            .name(),
        "NotFound"
    );
}
