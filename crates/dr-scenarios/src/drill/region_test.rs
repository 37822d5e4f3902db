//! The region-restore rehearsal: the real `region-failover` state machine,
//! in its rehearsal mode, as a child of the drill. It restores the newest
//! verified copy of production in the backup region into a `drill-…`
//! instance, verifies it against the copy's row counts, and deletes it:
//! the region failover's restore and verification, without its lock,
//! approval, fleet, record or registry. What that run came to is judged
//! here.

use super::*;
use crate::region::report::SCENARIO as REGION_SCENARIO;
use crate::region::steps::RECOVERY_TAG;

/// The drill report's test.
pub const REGION_TEST: &str = "region_restore_test";

/// Where the drill rehearses the region restore (its input's
/// `region_restore`): the region failover's own fields for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRegionRestore {
    pub backup_region: String,
    /// The restore's class (RDS); the snapshot's when absent.
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Where the restore goes in the backup region (subnet group, security
    /// groups, parameter group), as the region failover would place it.
    #[serde(default)]
    pub network: Option<NetworkPlacement>,
}

impl DrillRegionRestore {
    /// Pure: the fields the drill can check before anything is created
    /// (the region failover's plan checks the rest, first, too).
    pub fn check(&self) -> DrResult<()> {
        let bad = |what: String| Err(DrError::InvalidInput(format!("dr-drill input: {what}")));
        if validate_region(&self.backup_region).is_err() {
            return bad(format!(
                "region_restore.backup_region {:?} is not a region (us-west-2)",
                shorten(&self.backup_region)
            ));
        }
        if let Some(class) = &self.instance_class {
            if !class.starts_with("db.") || class.len() > 64 {
                return bad(format!(
                    "region_restore.instance_class {:?} is not an instance class (db.…)",
                    shorten(class)
                ));
            }
        }
        Ok(())
    }
}

/// What the drill starts, or why it does not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRehearsalPlan {
    pub run: bool,
    /// Why it is not run (the test's reason).
    pub reason: Option<String>,
    /// The child execution's name (also its recovery id: the restore's tag).
    pub execution_name: String,
    pub backup_region: Option<String>,
    /// The region failover's execution input.
    pub input: Value,
}

/// Pure: the region failover's input for the drill's rehearsal of
/// production's region restore (the copies in the backup region are
/// production's: the copy the drill built has none).
pub fn region_rehearsal_plan(
    drill_id: &str,
    source: &InstanceId,
    copy: &CopyRegistration,
    request: &DrillRequest,
) -> RegionRehearsalPlan {
    let execution_name = format!("{}-region", copy.database);
    let Some(region) = &request.region_restore else {
        return RegionRehearsalPlan {
            run: false,
            reason: Some(
                "not run: the drill's input names no region_restore (the backup region): the region restore is not rehearsed, so the drill cannot pass"
                    .to_owned(),
            ),
            execution_name,
            backup_region: None,
            input: Value::Null,
        };
    };
    RegionRehearsalPlan {
        run: true,
        reason: None,
        execution_name,
        backup_region: Some(region.backup_region.clone()),
        input: json!({
            "database": copy.production.database,
            "mode": "rehearsal",
            "backup_region": region.backup_region,
            "instance_class": region.instance_class,
            "network": region.network,
            "poll_interval_seconds": request.poll_interval_seconds,
            "drill": {"drill_id": drill_id, "source": source},
            "trigger": {
                "source": "drill",
                "reason": format!(
                    "quarterly DR drill {drill_id} rehearses the region restore of {} in {}",
                    copy.production.database, region.backup_region
                ),
            },
        }),
    }
}

/// Everything the region rehearsal is judged on, as read after the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRehearsalFacts {
    pub execution_name: String,
    pub execution_arn: String,
    pub backup_region: String,
    pub error: Option<String>,
    pub report: Option<ChildReport>,
    pub definition: Option<DefinitionDigests>,
    /// The run's instances still in the backup region (not being deleted).
    pub left: Vec<InstanceId>,
    pub production: ProductionDatabase,
    pub production_primary: Option<InstanceId>,
    pub production_primary_endpoint: Option<String>,
    pub production_record: Option<String>,
}

impl RegionRehearsalFacts {
    pub async fn gather(
        ports: &Ports,
        copy: &CopyRegistration,
        backup_region: &str,
        state_machine_arn: &str,
        execution_name: &str,
        error: Option<Value>,
    ) -> DrResult<Self> {
        validate_region(backup_region)?;
        let (execution_arn, report, definition) =
            read_run(ports, REGION_SCENARIO, state_machine_arn, execution_name).await?;
        let left = ports
            .regions
            .control_plane(backup_region)?
            .list_instances()
            .await?
            .into_iter()
            .filter(|i| {
                i.tags.get(RECOVERY_TAG).map(String::as_str) == Some(execution_name)
                    && i.status != InstanceStatus::Deleting
            })
            .map(|i| i.instance_id)
            .collect();
        let (production_primary, production_primary_endpoint, production_record) =
            production_now(ports, &copy.production).await?;
        Ok(RegionRehearsalFacts {
            execution_name: execution_name.to_owned(),
            execution_arn,
            backup_region: backup_region.to_owned(),
            error: error.map(|e| describe_error(&e)),
            report,
            definition,
            left,
            production: copy.production.clone(),
            production_primary: Some(production_primary),
            production_primary_endpoint,
            production_record,
        })
    }
}

/// Pure: the region rehearsal's test. It passes only when the run
/// succeeded and passed its own report (the newest copy restored and
/// verified, then deleted: its RTO and the copy's age as its RPO), none of
/// its instances is left in the backup region, it ran the deployed
/// definition, and production's record still points at production's
/// primary. Anything not measured fails it.
pub fn judge_region_rehearsal(facts: &RegionRehearsalFacts) -> TestResult {
    let mut problems = run_problems(
        REGION_SCENARIO,
        facts.error.as_deref(),
        facts.report.as_ref(),
        &facts.execution_name,
        facts.definition.as_ref(),
    );
    if !facts.left.is_empty() {
        let names: Vec<String> = facts.left.iter().map(ToString::to_string).collect();
        problems.push(format!(
            "the rehearsal's restore {} is still in {}: the drill's cleanup deletes it",
            names.join(", "),
            facts.backup_region
        ));
    }
    problems.extend(production_problem(
        &facts.production.record_name,
        facts.production_record.as_deref(),
        facts.production_primary.as_ref(),
        facts.production_primary_endpoint.as_deref(),
    ));
    let report = facts.report.as_ref();
    TestResult {
        name: REGION_TEST.to_owned(),
        status: if problems.is_empty() {
            TestStatus::Successful
        } else {
            TestStatus::Failed
        },
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
        duration_seconds: report.and_then(|r| r.rto_seconds).unwrap_or(0.0),
        details: json!({
            "workflow": REGION_SCENARIO,
            "execution": facts.execution_name,
            "execution_arn": facts.execution_arn,
            "backup_region": facts.backup_region,
            "outcome": report.map(|r| r.outcome.clone()),
            "rto_seconds": report.and_then(|r| r.rto_seconds),
            // The newest copy's age when chosen: what a region failure
            // would have lost then.
            "rpo_seconds": report.and_then(|r| r.rpo_seconds),
            "report": report.map(|r| r.location.clone()),
            "left_in_backup_region": facts.left,
            "definition_sha256": facts.definition.as_ref().map(|d| d.ran_sha256.clone()),
            "deployed_sha256": facts.definition.as_ref().map(|d| d.deployed_sha256.clone()),
            "production": facts.production.database,
            "production_record": facts.production.record_name,
            "production_record_points_at": facts.production_record,
            "production_primary": facts.production_primary,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy() -> CopyRegistration {
        CopyRegistration {
            database: "drill-abc-muejam".into(),
            hosted_zone: "muejam.internal".into(),
            record_name: "drill-abc.db.muejam.internal".into(),
            primary: InstanceId::parse("drill-muejam-db-prod-abc").expect("id"),
            replica: InstanceId::parse("drill-muejam-db-prod-abc-rep").expect("id"),
            production: ProductionDatabase {
                database: "muejam".into(),
                hosted_zone: "muejam.internal".into(),
                record_name: "db.muejam.internal".into(),
            },
        }
    }

    fn request(region: Option<&str>) -> DrillRequest {
        let mut r = json!({
            "credentials_secret_id": "muejam/db/master",
            "database": "muejam",
            "max_backup_age_seconds": 21600,
            "restore_instance_class": null,
            "availability_zones": [],
            "row_count_tolerance": 0.0,
            "poll_interval_seconds": 15,
            "runbook_last_updated": null
        });
        if let Some(region) = region {
            r["region_restore"] = json!({"backup_region": region});
        }
        serde_json::from_value(r).expect("request")
    }

    #[test]
    fn the_rehearsal_runs_the_region_failover_in_rehearsal_mode_on_productions_copies() {
        let source = InstanceId::parse("muejam-db-prod").expect("id");
        let plan = region_rehearsal_plan("drill-1", &source, &copy(), &request(Some("us-west-2")));
        assert!(plan.run);
        assert_eq!(plan.execution_name, "drill-abc-muejam-region");
        assert_eq!(plan.input["database"], "muejam");
        assert_eq!(plan.input["mode"], "rehearsal");
        assert_eq!(plan.input["trigger"]["source"], "drill");
        assert_eq!(plan.input["drill"]["source"], "muejam-db-prod");
        // The input is one the region failover takes.
        let parsed: crate::region::RegionRequest =
            serde_json::from_value(plan.input.clone()).expect("a region failover input");
        crate::region::validate_request(&parsed).expect("valid");

        let skipped = region_rehearsal_plan("drill-1", &source, &copy(), &request(None));
        assert!(!skipped.run);
        assert!(skipped
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("cannot pass")));
        assert!(request(Some("west")).check().is_err());
        assert!(request(Some("us-west-2")).check().is_ok());
    }

    fn facts() -> RegionRehearsalFacts {
        RegionRehearsalFacts {
            execution_name: "drill-abc-muejam-region".into(),
            execution_arn: "arn:aws:states:us-east-1:1:execution:muejam-region-failover:drill-abc-muejam-region".into(),
            backup_region: "us-west-2".into(),
            error: None,
            report: Some(ChildReport {
                outcome: "succeeded".into(),
                passed: true,
                rto_seconds: Some(1800.0),
                rpo_seconds: Some(3600.0),
                rto_objective_seconds: Some(14_400.0),
                rpo_objective_seconds: Some(21_600.0),
                location: "region-failover/x.json".into(),
            }),
            definition: Some(DefinitionDigests {
                ran_sha256: "a".repeat(64),
                deployed_sha256: "a".repeat(64),
            }),
            left: Vec::new(),
            production: copy().production,
            production_primary: Some(InstanceId::parse("muejam-db-prod").expect("id")),
            production_primary_endpoint: Some("prod.rds".into()),
            production_record: Some("prod.rds".into()),
        }
    }

    #[test]
    fn a_region_rehearsal_passes_only_when_every_measure_is_taken_and_met() {
        type Spoil = fn(&mut RegionRehearsalFacts);
        let cases: [(&str, Spoil, &str); 7] = [
            ("as measured", |_| {}, ""),
            (
                "the run failed",
                |f| f.error = Some("States.TaskFailed: boom".into()),
                "run failed",
            ),
            ("no report", |f| f.report = None, "not measured"),
            (
                "the report did not pass",
                |f| {
                    if let Some(r) = f.report.as_mut() {
                        r.passed = false;
                        r.rto_seconds = Some(18_000.0);
                    }
                },
                "over its objective",
            ),
            (
                "another definition",
                |f| {
                    if let Some(d) = f.definition.as_mut() {
                        d.deployed_sha256 = "b".repeat(64);
                    }
                },
                "deployed one is",
            ),
            (
                "the restore is left",
                |f| f.left = vec![InstanceId::parse("drill-x-region").expect("id")],
                "still in us-west-2",
            ),
            (
                "production's record moved",
                |f| f.production_record = Some("elsewhere".into()),
                "production's record",
            ),
        ];
        for (what, spoil, says) in cases {
            let mut f = facts();
            spoil(&mut f);
            let result = judge_region_rehearsal(&f);
            assert_eq!(result.name, REGION_TEST);
            if says.is_empty() {
                assert_eq!(result.status, TestStatus::Successful, "{what}: {result:?}");
                assert_eq!(result.details["rpo_seconds"], 3600.0);
            } else {
                assert_eq!(result.status, TestStatus::Failed, "{what}");
                assert!(
                    result.reason.as_deref().is_some_and(|r| r.contains(says)),
                    "{what}: {:?}",
                    result.reason
                );
            }
        }
    }
}
