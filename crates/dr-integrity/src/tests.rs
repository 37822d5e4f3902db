//! Unit tests of the planning, the SQL and the counts.

#[test]
fn an_unexpected_count_is_an_error_never_zero_orphans() {
    use super::count_in;
    assert_eq!(count_in(Some(Ok(Some(0))), 1).expect("zero"), 0);
    assert_eq!(count_in(Some(Ok(Some(42))), 1).expect("n"), 42);
    for (value, says) in [
        (None, "no row"),
        (Some(Ok(None)), "NULL in column 1"),
        (Some(Ok(Some(-1))), "returned -1"),
        (Some(Err("invalid type".to_owned())), "no count in column 1"),
    ] {
        let err = super::count_in(value, 1).expect_err(says);
        assert_eq!(err.name(), "Internal");
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
}

use super::*;

#[test]
fn logical_relations_parse_single_and_multi_column() {
    let r = LogicalRelation::parse("stories.author_id -> users.id").expect("parses");
    assert_eq!(
        (r.child_table.as_str(), r.parent_table.as_str()),
        ("stories", "users")
    );
    let r = LogicalRelation::parse("a.(x, y) -> b.(p, q)").expect("parses");
    assert_eq!(r.child_columns, vec!["x", "y"]);
    for bad in ["stories.author_id", "a.x -> b.(p, q)", ".x -> b.y"] {
        assert_eq!(
            LogicalRelation::parse(bad).expect_err(bad).name(),
            "InvalidInput"
        );
    }
}

#[test]
fn dense_keys_are_expected_only_when_the_estimate_fills_the_range() {
    let keys = DenseKeys::Interval {
        min: 1,
        max: 80_000,
    };
    assert_eq!(
        DenseKeys::expected(80_000.0, Some(1), Some(80_000)),
        Some(keys)
    );
    assert_eq!(
        DenseKeys::expected(79_500.0, Some(1), Some(80_000)),
        Some(keys),
        "estimates are rough"
    );
    assert_eq!(
        DenseKeys::expected(-1.0, Some(1), Some(80_000)),
        Some(keys),
        "never analyzed: try"
    );
    assert_eq!(
        DenseKeys::expected(40_000.0, Some(1), Some(80_000)),
        None,
        "half the keys are gone"
    );
    assert_eq!(DenseKeys::expected(5.0, None, None), Some(DenseKeys::Empty));
    assert_eq!(
        DenseKeys::Interval {
            min: i64::MIN,
            max: i64::MAX
        }
        .rows(),
        1u128 << 64
    );
    assert_eq!(DenseKeys::Interval { min: -2, max: 2 }.rows(), 5);
}

#[test]
fn a_table_scan_counts_rows_and_keys_outside_each_dense_parent() {
    let relation = |column: &str, dense| Relation {
        name: "fk".into(),
        kind: "foreign_key",
        child: "comments".into(),
        child_columns: vec![column.into()],
        parent: "users".into(),
        parent_columns: vec!["id".into()],
        parent_unique: true,
        child_indexed: true,
        dense: Some(dense),
        counts_child_rows: false,
    };
    let sql = table_scan_sql(
        "comments",
        &[
            relation(
                "user_id",
                DenseKeys::Interval {
                    min: -5,
                    max: 80_000,
                },
            ),
            relation("parent_id", DenseKeys::Empty),
        ],
    );
    assert_eq!(
        sql,
        "SELECT count(*), \
         count(*) FILTER (WHERE c.\"user_id\" IS NOT NULL AND (c.\"user_id\" < -5 OR c.\"user_id\" > 80000)), \
         count(*) FILTER (WHERE c.\"parent_id\" IS NOT NULL) FROM \"comments\" c"
    );
}

#[test]
fn a_counting_join_counts_child_rows_and_unmatched_non_null_keys() {
    let relation = Relation {
        name: "fk".into(),
        kind: "foreign_key",
        child: "comments".into(),
        child_columns: vec!["parent_id".into()],
        parent: "comments".into(),
        parent_columns: vec!["id".into()],
        parent_unique: true,
        child_indexed: true,
        dense: None,
        counts_child_rows: true,
    };
    assert_eq!(
        relation_sql(&relation),
        "SELECT count(*), count(*) FILTER (WHERE c.\"parent_id\" IS NOT NULL AND p.\"id\" IS NULL) \
         FROM \"comments\" c LEFT JOIN \"comments\" p ON p.\"id\" = c.\"parent_id\""
    );
}

fn fk(child: &str, column: &str, parent: &str, dense: Option<DenseKeys>) -> Relation {
    Relation {
        name: format!("fk_{child}_{column}"),
        kind: "foreign_key",
        child: child.into(),
        child_columns: vec![column.into()],
        parent: parent.into(),
        parent_columns: vec!["id".into()],
        parent_unique: true,
        child_indexed: true,
        dense,
        counts_child_rows: false,
    }
}

#[test]
fn each_table_is_counted_exactly_once_by_its_scan_or_one_of_its_joins() {
    let interval = Some(DenseKeys::Interval { min: 1, max: 10 });
    let tables = [
        ("comments".to_owned(), 300),
        ("stories".to_owned(), 200),
        ("users".to_owned(), 100),
    ];
    let work = plan(
        &tables,
        vec![
            fk("comments", "user_id", "users", None),
            fk("comments", "parent_id", "comments", None),
            fk("stories", "author_id", "users", interval),
        ],
    );
    let described: Vec<String> = work
        .iter()
        .map(|w| match w {
            Work::Table { table, dense } => format!("scan {table} ({} dense)", dense.len()),
            Work::Relation(r) => format!("join {} counting={}", r.name, r.counts_child_rows),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        described,
        vec![
            "join fk_comments_user_id counting=true",
            "join fk_comments_parent_id counting=false",
            "scan stories (1 dense)",
            "scan users (0 dense)",
        ],
        "largest first; comments counted by its first join, stories by its scan, users alone"
    );
}

#[test]
fn row_counts_are_held_to_the_baseline_within_the_tolerance() {
    let counts = BTreeMap::from([("users".to_owned(), 95), ("audit_logs".to_owned(), 0)]);
    let options = VerifyOptions {
        baseline: Some(BTreeMap::from([
            ("users".to_owned(), 100),
            ("stories".to_owned(), 10),
        ])),
        tolerance: 0.05,
        expected_tables: vec!["audit_logs".into(), "users".into()],
        ..VerifyOptions::default()
    };
    let checks: Vec<(String, CheckStatus)> = row_count_checks(&counts, &options)
        .into_iter()
        .map(|c| (c.name, c.status))
        .collect();
    assert_eq!(
        checks,
        vec![
            ("row_count_stories".to_owned(), CheckStatus::Failed),
            ("row_count_users".to_owned(), CheckStatus::Passed),
            ("expected_audit_logs".to_owned(), CheckStatus::Failed),
            ("expected_users".to_owned(), CheckStatus::Passed),
        ],
        "5 % of 100 allows 95; a missing table fails; an empty expected table fails"
    );
}

#[test]
fn orphans_are_counted_with_match_simple_nulls_exempt() {
    let relation = Relation {
        name: "fk".into(),
        kind: "foreign_key",
        child: "comments".into(),
        child_columns: vec!["chapter_id".into()],
        parent: "chapters".into(),
        parent_columns: vec!["id".into()],
        parent_unique: true,
        child_indexed: true,
        dense: None,
        counts_child_rows: false,
    };
    let sql = relation_sql(&relation);
    assert_eq!(
        sql,
        "SELECT count(*) FROM \"comments\" c WHERE c.\"chapter_id\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \"chapters\" p WHERE p.\"id\" = c.\"chapter_id\")"
    );
}

#[test]
fn a_dense_relation_passes_only_on_an_exact_parent_count_and_no_key_outside() {
    let interval = Some(DenseKeys::Interval { min: 1, max: 10 });
    let counts = |n: u64| BTreeMap::from([("users".to_owned(), n)]);
    // (outside, parent rows, dense) → passed without a join?
    let cases = [
        (Some(0), 10, interval, Some(true)),
        (Some(1), 10, interval, Some(false)),
        (Some(0), 9, interval, Some(false)),
        (Some(0), 11, interval, Some(false)),
        (None, 10, interval, Some(false)),
        (Some(0), 0, Some(DenseKeys::Empty), Some(true)),
        (Some(0), 10, None, None),
    ];
    for (outside, parent_rows, dense, expected) in cases {
        let relation = fk("posts", "author_id", "users", dense);
        let (passed, joins) = settle_dense(vec![(relation, outside, 7)], &counts(parent_rows));
        match expected {
            Some(true) => {
                assert_eq!(passed.len(), 1, "{outside:?} {parent_rows}");
                assert!(joins.is_empty());
                assert_eq!(passed[0].status, CheckStatus::Passed);
                assert_eq!(passed[0].count, Some(0));
                assert_eq!(passed[0].duration_ms, 7);
            }
            Some(false) => {
                assert!(passed.is_empty(), "{outside:?} {parent_rows}");
                assert!(matches!(joins.as_slice(), [Work::Relation(r)] if r.child == "posts"));
            }
            None => assert!(passed.is_empty() && joins.is_empty()),
        }
    }
}
