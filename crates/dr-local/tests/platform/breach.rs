//! The security breach's SQL on real PostgreSQL with the sample data: the
//! audit log's activity equals the seeded breach's truth, and API keys are
//! revoked once, in scope only.

use super::*;
use dr_postgres::sample::{self, BREACH_ADDRESSES};
use dr_postgres::PostgresSqlTarget;

async fn active_keys(client: &tokio_postgres::Client, users: Option<&[i64]>) -> i64 {
    let users: Option<Vec<i64>> = users.map(<[i64]>::to_vec);
    client
        .query_one(
            "SELECT count(*) FROM api_keys WHERE is_active AND ($1::bigint[] IS NULL OR user_id = ANY ($1))",
            &[&users],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_exactly_the_seeded_breach_and_keys_are_revoked_once_in_scope() {
    let lab = lab();
    lab.primary("muejam-db-prod").await;
    let master = lab.sql("muejam-db-prod").await;
    let plan = sample::generate(&master, 0.01).await.expect("sample data");
    let truth = plan.breach();
    let target = lab
        .platform
        .database_target(&id("muejam-db-prod"), None)
        .expect("target");
    let sql = PostgresSqlTarget;
    let now = chrono::Utc::now();
    let addresses: Vec<String> = BREACH_ADDRESSES.map(str::to_owned).to_vec();

    // The last day: the breach's rows, not its reconnaissance three days old.
    let day = sql
        .audit_activity(&target, &addresses, now - chrono::Duration::days(1), now, 5)
        .await
        .expect("activity");
    assert_eq!(day.events, truth.in_window);
    assert_eq!(day.users, truth.affected_users);
    assert_eq!(day.by_action, truth.by_action);
    assert_eq!(day.rows.len(), 5);
    assert!(day.truncated);
    assert!(day
        .rows
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));
    assert!(day
        .rows
        .iter()
        .all(|r| BREACH_ADDRESSES.contains(&r.ip_address.as_str())));
    assert!(day
        .first_seen
        .is_some_and(|t| t > now - chrono::Duration::hours(7)));

    // A wider window finds the reconnaissance too; a block finds its addresses.
    let week = sql
        .audit_activity(
            &target,
            &addresses,
            now - chrono::Duration::days(7),
            now,
            10_000,
        )
        .await
        .expect("activity");
    assert_eq!(week.events, truth.events as u64);
    assert!(!week.truncated);
    let block = sql
        .audit_activity(
            &target,
            &["203.0.113.0/24".to_owned()],
            now - chrono::Duration::days(1),
            now,
            10_000,
        )
        .await
        .expect("activity");
    let v6 = day_v6_events(&sql, &target, now).await;
    assert!(v6 > 0);
    assert_eq!(
        block.events + v6,
        day.events,
        "the IPv4 block holds every breach address but the IPv6 one"
    );
    // Nothing from elsewhere; an inverted window is refused.
    let none = sql
        .audit_activity(
            &target,
            &["198.51.100.7".to_owned()],
            now - chrono::Duration::days(1),
            now,
            10,
        )
        .await
        .expect("activity");
    assert_eq!(
        (none.events, none.users.len(), none.first_seen),
        (0, 0, None)
    );
    let inverted = sql
        .audit_activity(
            &target,
            &addresses,
            now,
            now - chrono::Duration::days(1),
            10,
        )
        .await
        .expect_err("inverted");
    assert_eq!(inverted.name(), "InvalidInput");

    // Keys of the affected users: revoked once; everyone else's untouched.
    let affected = &truth.affected_users[..];
    let in_scope = active_keys(&master, Some(affected)).await;
    let everyone = active_keys(&master, None).await;
    let revoked = sql
        .revoke_api_keys(&target, Some(affected), now)
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked.len() as i64, in_scope);
    assert_eq!(active_keys(&master, Some(affected)).await, 0);
    assert_eq!(active_keys(&master, None).await, everyone - in_scope);
    let again = sql
        .revoke_api_keys(&target, Some(affected), now + chrono::Duration::minutes(5))
        .await
        .expect("again");
    assert!(again.revoked.is_empty());
    assert!(again.already_inactive >= revoked.revoked.len() as u64);
    let first_revoked_at: Option<chrono::DateTime<chrono::Utc>> = master
        .query_one(
            "SELECT max(revoked_at) FROM api_keys WHERE id = ANY ($1)",
            &[&revoked.revoked],
        )
        .await
        .expect("revoked_at")
        .get(0);
    assert!(
        first_revoked_at.is_some_and(|t| (t - now).num_seconds().abs() < 1),
        "a re-run keeps the first revocation time"
    );
    // All of them.
    let all = sql.revoke_api_keys(&target, None, now).await.expect("all");
    assert_eq!(all.revoked.len() as i64, everyone - in_scope);
    assert_eq!(active_keys(&master, None).await, 0);
}

async fn day_v6_events(
    sql: &PostgresSqlTarget,
    target: &DatabaseTarget,
    now: chrono::DateTime<chrono::Utc>,
) -> u64 {
    sql.audit_activity(
        target,
        &[BREACH_ADDRESSES[3].to_owned()],
        now - chrono::Duration::days(1),
        now,
        1,
    )
    .await
    .expect("activity")
    .events
}
