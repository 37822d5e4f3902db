//! Replicas and promotion.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_the_primary_reaches_the_replica_and_promotion_is_idempotent() {
    let lab = lab();
    let primary = lab.primary("muejam-db-prod").await;
    assert_eq!(primary.status, InstanceStatus::Available);
    assert_eq!(primary.role, InstanceRole::Primary);

    let replica = lab
        .platform
        .create_read_replica(&CreateReplicaRequest {
            network: None,
            replica_id: id("muejam-db-prod-replica"),
            source_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
        })
        .await
        .expect("replica");
    assert_eq!(replica.role, InstanceRole::Replica);
    assert_eq!(replica.replication_source, Some(id("muejam-db-prod")));
    assert_ne!(replica.availability_zone, primary.availability_zone);
    assert!(replica.replica_lag.is_some());

    let again = lab
        .platform
        .create_read_replica(&CreateReplicaRequest {
            network: None,
            replica_id: id("muejam-db-prod-replica"),
            source_id: id("muejam-db-prod"),
            availability_zone: None,
            tags: Tags::new(),
        })
        .await
        .expect("creating the same replica again is a no-op");
    assert_eq!(again.endpoint, replica.endpoint);

    let writer = lab.sql("muejam-db-prod").await;
    writer
        .batch_execute("CREATE TABLE marker (id int PRIMARY KEY, note text); INSERT INTO marker VALUES (1, 'written on the primary')")
        .await
        .expect("write");
    let reader = lab.sql("muejam-db-prod-replica").await;
    eventually("the marker row replicating", || async {
        reader
            .query_opt("SELECT note FROM marker WHERE id = 1", &[])
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let read_only = reader
        .batch_execute("INSERT INTO marker VALUES (2, 'x')")
        .await
        .expect_err("a replica refuses writes");
    let read_only = dr_postgres::map_pg_error("insert on the replica", &read_only);
    assert!(read_only.to_string().contains("read-only"), "{read_only}");

    let primary_after = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert_eq!(
        primary_after.read_replicas,
        vec![id("muejam-db-prod-replica")]
    );

    let promoted = lab
        .platform
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("promote");
    assert!(!promoted.already_standalone);
    assert!(promoted.lag_at_promotion.is_some());
    assert!(promoted.instance.is_standalone_and_available());
    assert_eq!(promoted.instance.role, InstanceRole::Primary);

    let writer2 = lab.sql("muejam-db-prod-replica").await;
    writer2
        .batch_execute("INSERT INTO marker VALUES (2, 'written on the promoted replica')")
        .await
        .expect("the promoted replica accepts writes");
    let count: i64 = writer2
        .query_one("SELECT count(*) FROM marker", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);

    let second = lab
        .platform
        .promote_read_replica(&id("muejam-db-prod-replica"))
        .await
        .expect("second promote is a no-op");
    assert!(second.already_standalone);
    assert_eq!(second.instance.endpoint, promoted.instance.endpoint);
    let primary_after = lab
        .platform
        .describe_instance(&id("muejam-db-prod"))
        .await
        .expect("describe");
    assert!(primary_after.read_replicas.is_empty());
}
