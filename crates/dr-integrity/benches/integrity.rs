//! The integrity verifier against the floor and the runbook's naive queries,
//! on one generated MueJam dataset (at least 5 million rows). Prints its
//! figures; targets: within 1.5x of the floor, at least 3x faster than naive.
//!
//!   scripts/bench integrity            (DRCTL_BENCH_SCALE=8 by default: 5.4M rows)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dr_core::DatabaseTarget;
use dr_integrity::{verify, VerifyOptions};
use dr_local::lab::Lab;

const NAIVE_CAP: Duration = Duration::from_secs(30);

/// A plain parallel sequential scan of every table: two sessions pulling
/// tables from one queue, reading every heap page once.
async fn floor(target: &DatabaseTarget, tables: &[String], jobs: usize) -> Duration {
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(tables.iter().cloned().collect::<VecDeque<_>>()));
    let mut workers = Vec::new();
    for _ in 0..jobs {
        let queue = Arc::clone(&queue);
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let client = dr_postgres::connect(&target).await.expect("connect");
            client
                .batch_execute("SET enable_indexonlyscan = off; SET enable_indexscan = off; SET enable_bitmapscan = off; SET max_parallel_workers_per_gather = 0")
                .await
                .expect("settings");
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(table) = next else { break };
                client.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).await.expect("scan");
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    started.elapsed()
}

/// The runbook's query, per foreign key, one after another, default settings.
async fn naive(target: &DatabaseTarget) -> (Duration, usize, usize) {
    let client = dr_postgres::connect(target).await.expect("connect");
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            NAIVE_CAP.as_millis()
        ))
        .await
        .expect("timeout");
    let fks = client
        .query(
            "SELECT cc.relname, a.attname, pc.relname, pa.attname FROM pg_constraint c
               JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_class pc ON pc.oid = c.confrelid
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
              WHERE c.contype = 'f' ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("fks");
    let started = Instant::now();
    let mut timed_out = 0;
    for fk in &fks {
        let (child, column, parent, key): (String, String, String, String) =
            (fk.get(0), fk.get(1), fk.get(2), fk.get(3));
        let sql = format!("SELECT count(*) FROM \"{child}\" WHERE \"{column}\" NOT IN (SELECT \"{key}\" FROM \"{parent}\")");
        if client.query_one(&sql, &[]).await.is_err() {
            timed_out += 1;
        }
    }
    (started.elapsed(), fks.len(), timed_out)
}

/// Best of three runs of the verification and of the floor, interleaved.
async fn best_of_three(
    target: &DatabaseTarget,
    tables: &[String],
    options: &VerifyOptions,
) -> (Duration, Duration) {
    let mut ours = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let report = verify(target, options).await.expect("verify");
        ours.push(started.elapsed());
        assert!(
            report.passed(),
            "the generated data is consistent: {report:#?}"
        );
        floors.push(floor(target, tables, 2).await);
    }
    (
        ours.into_iter().min().unwrap_or_default(),
        floors.into_iter().min().unwrap_or_default(),
    )
}

fn main() {
    let scale: f64 = std::env::var("DRCTL_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lab = Lab::new().expect("lab");
    runtime.block_on(async {
        let target = lab.instance("bench-db").await.expect("instance");
        let client = dr_postgres::connect(&target).await.expect("connect");
        let generated = Instant::now();
        let plan = dr_postgres::sample::generate(&client, scale).await.expect("data");
        client.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
        println!(
            "dataset: scale {scale}, {} rows in {} tables, generated in {:.1} s",
            plan.total_rows(),
            plan.expected_counts().len(),
            generated.elapsed().as_secs_f64()
        );
        let tables: Vec<String> = plan.expected_counts().keys().cloned().collect();
        let options = VerifyOptions { jobs: 2, amcheck: false, ..VerifyOptions::default() };

        // Warm the cache once.
        floor(&target, &tables, 2).await;
        let (ours, floor_time) = best_of_three(&target, &tables, &options).await;
        let (naive_time, naive_queries, naive_timeouts) = naive(&target).await;
        println!("verification (12 foreign keys, catalog checks, row counts; 2 connections): {:.2} s", ours.as_secs_f64());
        println!("floor (parallel sequential scan of the same tables, 2 connections):     {:.2} s", floor_time.as_secs_f64());
        println!(
            "naive (runbook NOT IN per relation, one after another):                 {}{:.2} s ({naive_queries} queries{})",
            if naive_timeouts > 0 { ">= " } else { "" },
            naive_time.as_secs_f64(),
            if naive_timeouts > 0 { format!(", {naive_timeouts} stopped at the {} s cap", NAIVE_CAP.as_secs()) } else { String::new() }
        );
        let vs_floor = ours.as_secs_f64() / floor_time.as_secs_f64();
        let vs_naive = naive_time.as_secs_f64() / ours.as_secs_f64();
        println!(
            "verification / floor = {vs_floor:.2}x (target <= 1.5x: {}); naive / verification = {}{vs_naive:.1}x (target >= 3x: {})",
            if vs_floor <= 1.5 { "met" } else { "MISSED" },
            if naive_timeouts > 0 { ">= " } else { "" },
            if vs_naive >= 3.0 { "met" } else { "MISSED" }
        );

        // The generated keys have no gaps, which lets each child table be
        // checked by its own scan. Real tables lose rows: one parent row with
        // a far key in every referenced table sends every foreign key to a join.
        client
            .batch_execute(
                "INSERT INTO users (id, username, email, display_name) VALUES (10000000, 'gap', 'gap@example.com', 'Gap');
                 INSERT INTO stories (id, author_id, title) VALUES (10000000, 1, 'gap');
                 INSERT INTO chapters (id, story_id, number, title, body, word_count) VALUES (10000000, 1, 100000, 'gap', '', 0);
                 INSERT INTO comments (id, chapter_id, user_id, body) VALUES (10000000, 1, 1, 'gap');
                 INSERT INTO reading_lists (id, user_id, name) VALUES (10000000, 1, 'gap')",
            )
            .await
            .expect("gaps");
        client.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
        let (gapped, gapped_floor) = best_of_three(&target, &tables, &options).await;
        println!(
            "with a gap in every parent's keys: verification {:.2} s, floor {:.2} s = {:.2}x (all 12 foreign keys joined)",
            gapped.as_secs_f64(),
            gapped_floor.as_secs_f64(),
            gapped.as_secs_f64() / gapped_floor.as_secs_f64()
        );
    });
}
