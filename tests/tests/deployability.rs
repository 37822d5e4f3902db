//! The repository as it is deploys: and each kind of breakage is caught.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of what the checks read, to break on purpose.
fn copy_of_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        repo().join("template.yaml"),
        dir.path().join("template.yaml"),
    )
    .expect("template");
    copy_tree(&repo().join("events"), &dir.path().join("events"));
    for sub in ["layers", "statemachines", "functions"] {
        copy_tree(&repo().join(sub), &dir.path().join(sub));
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("file");
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn the_repository_passes_every_offline_check() {
    let problems = deploy_checks::check(&repo());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn cfn_lint_accepts_the_template_and_every_state_machine() {
    let scratch = tempfile::tempdir().expect("tmp");
    let problems = deploy_checks::cfn_lint(&repo(), scratch.path());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_substitution_is_caught() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("statemachines/database-failover.asl.json"),
        "${PromoteReplicaFunctionArn}",
        "${PromoteReplicaFunctionArnTypo}",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("PromoteReplicaFunctionArnTypo")),
        "{problems:#?}"
    );
}

/// Each mutation of `file` (from, to) gives a problem containing `expected`.
fn caught(file: &str, mutations: &[(&str, &str, &str)]) {
    for (from, to, expected) in mutations {
        let copy = copy_of_repo();
        edit(&copy.path().join(file), from, to);
        let problems = deploy_checks::check(copy.path());
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:#?}"
        );
    }
}

#[test]
fn a_function_built_apart_wired_to_another_step_or_undocumented_is_caught() {
    caught(
        "template.yaml",
        &[
            (
                "        Binary: muejam-dr\n    Properties:\n      CodeUri: ./\n      Environment:\n        Variables:\n          DR_FUNCTION: check-database",
                "        Binary: check-database\n    Properties:\n      CodeUri: ./\n      Environment:\n        Variables:\n          DR_FUNCTION: check-database",
                "CheckDatabaseFunction is built differently from the other functions",
            ),
            (
                "DR_FUNCTION: promote-replica",
                "DR_FUNCTION: drill-copy",
                "PromoteReplicaFunction sets DR_FUNCTION \"drill-copy\", the step of DrillCopyFunction",
            ),
            (
                "DR_FUNCTION: notify",
                "DR_FUNCTION: notfy",
                "NotifyFunction sets DR_FUNCTION \"notfy\", which is no function",
            ),
            (
                "          DR_FUNCTION: describe-instance\n",
                "",
                "DescribeInstanceFunction does not set Environment.Variables.DR_FUNCTION",
            ),
            (
                "      CodeUri: ./\n      Environment:\n        Variables:\n          DR_FUNCTION: describe-instance",
                "      CodeUri: ./\n      Runtime: provided.al2\n      Environment:\n        Variables:\n          DR_FUNCTION: describe-instance",
                "DescribeInstanceFunction sets Runtime",
            ),
        ],
    );
    caught(
        "functions/README.md",
        &[
            (
                "| `notify` |",
                "| `notifier` |",
                "does not list notify (NotifyFunction)",
            ),
            (
                "| `notify` |",
                "| `notifier` |",
                "lists notifier (NotifyFunction), which is no function",
            ),
        ],
    );
    caught(
        "functions/Cargo.toml",
        &[(
            "[[bin]]\nname = \"muejam-dr\"",
            "[[bin]]\nname = \"bootstrap\"",
            "is built differently",
        )],
    );
}

#[test]
fn an_unreferenced_function_is_caught() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "        - LambdaInvokePolicy:\n            FunctionName: !Ref NotifyFunction\n",
        "",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("invokes NotifyFunction, which its policies do not allow")),
        "{problems:#?}"
    );
}

#[test]
fn a_wildcard_mutating_action_or_a_missing_action_is_caught() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "              Action: rds:PromoteReadReplica\n              Resource: !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*\n              Condition:\n                StringEquals:\n                  aws:ResourceTag/dr:managed: 'true'\n",
        "              Action: rds:PromoteReadReplica\n              Resource: '*'\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems
            .iter()
            .any(|p| p
                .contains("PromoteReplicaFunction may rds:PromoteReadReplica on every resource")),
        "{problems:#?}"
    );

    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "              Action: rds:PromoteReadReplica\n",
        "              Action: rds:RebootDBInstance\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems.iter().any(|p| p.contains(
            "PromoteReplicaFunction calls rds:PromoteReadReplica but its policy does not allow it"
        )),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("allowed rds:RebootDBInstance, which its code never calls")),
        "{problems:#?}"
    );
}

#[test]
fn a_promotion_policy_frozen_on_one_instance_id_is_caught() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "              Action: rds:PromoteReadReplica\n              Resource: !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*\n              Condition:\n                StringEquals:\n                  aws:ResourceTag/dr:managed: 'true'\n",
        "              Action: rds:PromoteReadReplica\n              Resource: !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${ReplicaInstanceId}\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("PromoteReplicaFunction may rds:PromoteReadReplica only on !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${ReplicaInstanceId}: scope it to db:* by the dr:managed tag"),
        "{problems:#?}"
    );
}

#[test]
fn put_metric_data_on_every_resource_needs_its_namespace_condition() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "              Resource: '*'\n              Condition:\n                StringEquals:\n                  cloudwatch:namespace: !Ref MetricNamespace\n",
        "              Resource: '*'\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems.iter().any(|p| p
            .contains("ProbeDatabaseFunction may cloudwatch:PutMetricData on every resource (*)")),
        "{problems:#?}"
    );
}

#[test]
fn a_schedule_that_sends_an_undocumented_input_is_caught() {
    let copy = copy_of_repo();
    assert_eq!(
        deploy_checks::check(copy.path()),
        Vec::<String>::new(),
        "the copy is clean"
    );
    edit(
        &copy.path().join("template.yaml"),
        "\"write_probe\": false,\n",
        "\"write_probe\": true,\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems.iter().any(
            |p| p.starts_with("ProbeDatabaseFunction event Probe sends {")
                && p.contains("\"write_probe\":true")
                && p.ends_with("which no file under events/ documents")
        ),
        "{problems:#?}"
    );

    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "\"row_count_tolerance\": 0.0,",
        "\"row_count_tolerance\": 0.0",
    );
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems
            .iter()
            .any(|p| p
                .contains("DrDrillStateMachine event QuarterlyDrill sends input that is not JSON")),
        "{problems:#?}"
    );
}

/// The drill the quarterly schedule starts, as the template resolves it.
fn scheduled_drill(root: &Path) -> serde_json::Value {
    let template = dr_runner::sam::SamTemplate::load(&root.join("template.yaml")).expect("loads");
    let inputs = template
        .scheduled_inputs("DrDrillStateMachine")
        .expect("resolves");
    let (_, input) = inputs
        .iter()
        .find(|(event, _)| event == "QuarterlyDrill")
        .expect("the quarterly schedule");
    let value: serde_json::Value = serde_json::from_str(input).expect("JSON");
    let request: dr_scenarios::drill::DrillRequest =
        serde_json::from_value(value.clone()).expect("a drill's input");
    request.check().expect("the drill accepts it");
    value
}

#[test]
fn the_schedule_places_the_region_rehearsal_in_the_backup_network_once_it_is_given() {
    // Not given (the defaults): no network, as documented.
    assert_eq!(
        scheduled_drill(&repo())["region_restore"]["network"],
        serde_json::Value::Null
    );
    // Given at deploy time: the rehearsal's restore is placed there.
    let copy = copy_of_repo();
    let template = copy.path().join("template.yaml");
    edit(
        &template,
        "  BackupDbSubnetGroup:\n    Type: String\n    Default: ''",
        "  BackupDbSubnetGroup:\n    Type: String\n    Default: muejam-dr-private",
    );
    edit(
        &template,
        "  BackupDbSecurityGroupIds:\n    Type: CommaDelimitedList\n    Default: ''",
        "  BackupDbSecurityGroupIds:\n    Type: CommaDelimitedList\n    Default: sg-0a,sg-0b",
    );
    assert_eq!(
        scheduled_drill(copy.path())["region_restore"]["network"],
        serde_json::json!({
            "subnet_group": "muejam-dr-private",
            "security_groups": ["sg-0a", "sg-0b"],
            "parameter_group": null
        })
    );
}

#[test]
fn a_function_that_speaks_sql_without_the_rds_ca_bundle_is_caught() {
    let copy = copy_of_repo();
    edit(
        &copy.path().join("template.yaml"),
        "      Timeout: 30\n      Layers: [!Ref RdsCaBundleLayer]\n",
        "      Timeout: 30\n",
    );
    let problems = deploy_checks::check(copy.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("ProbeDatabaseFunction speaks SQL but does not ship RdsCaBundleLayer"),
        "{problems:?}"
    );
}

#[test]
fn a_function_that_speaks_sql_outside_the_vpc_is_caught() {
    let vpc = "      VpcConfig:\n        SubnetIds: !Ref SubnetIds\n        SecurityGroupIds: !If\n          - CreateVpcEndpoints\n          - !Split [',', !Join [',', [!Ref EndpointClientSecurityGroup, !Join [',', !Ref SecurityGroupIds]]]]\n          - !Ref SecurityGroupIds\n";
    let copy = copy_of_repo();
    edit_resource(copy.path(), "ProbeDatabaseFunction", |b| b.replace(vpc, ""));
    assert_eq!(
        deploy_checks::check(copy.path()),
        vec!["ProbeDatabaseFunction speaks SQL but has no VpcConfig: it cannot reach a database in the VPC".to_owned()]
    );

    // The VPC as an option (the template before issue 12): a deploy without
    // subnets put the probe outside the VPC.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "ProbeDatabaseFunction", |b| {
        b.replace(
            vpc,
            "      VpcConfig: !If\n        - CreateVpcEndpoints\n        - SubnetIds: !Ref SubnetIds\n          SecurityGroupIds: !Ref SecurityGroupIds\n        - !Ref AWS::NoValue\n",
        )
    });
    edit(
        &copy.path().join("template.yaml"),
        "  SubnetIds:\n    Type: List<AWS::EC2::Subnet::Id>\n",
        "  SubnetIds:\n    Type: CommaDelimitedList\n    Default: ''\n",
    );
    assert_eq!(
        deploy_checks::check(copy.path()),
        vec![
            "ProbeDatabaseFunction speaks SQL but its VpcConfig is not always SubnetIds (a condition or another value could deploy it outside the VPC)".to_owned(),
            "parameter SubnetIds has a Default: a deploy that does not name the subnets must fail, not run the functions that speak SQL outside the VPC".to_owned(),
        ]
    );
}

#[test]
fn a_function_in_the_vpc_calling_an_api_it_has_no_route_to_is_caught() {
    // Route 53's API has no VPC endpoint: the DNS switch in the VPC would
    // never connect without NAT.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "UpdateDnsFunction", |b| {
        b.replace(
            "      CodeUri: ./\n",
            "      CodeUri: ./\n      VpcConfig:\n        SubnetIds: !Ref SubnetIds\n        SecurityGroupIds: !Ref SecurityGroupIds\n",
        )
    });
    let problems = deploy_checks::check(copy.path());
    assert_eq!(
        problems,
        vec!["UpdateDnsFunction calls route53 from the VPC, whose API has no VPC endpoint: without NAT the call never connects; make it from a function outside the VPC".to_owned()],
    );

    // Without the Secrets Manager endpoint, every function in the VPC that
    // reads the database's credentials is cut off.
    let copy = copy_of_repo();
    let template = std::fs::read_to_string(copy.path().join("template.yaml")).expect("template");
    let block = resource_block(&template, "SecretsManagerEndpoint");
    std::fs::write(
        copy.path().join("template.yaml"),
        template.replacen(&block, "", 1),
    )
    .expect("write");
    let problems = deploy_checks::check(copy.path());
    assert!(!problems.is_empty());
    for problem in &problems {
        assert!(
            problem.ends_with("calls secretsmanager from the VPC, but the template offers no VPC endpoint com.amazonaws.<region>.secretsmanager: with VpcEndpoints=create and no NAT the call never connects"),
            "{problems:#?}"
        );
    }
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("ConfirmFailureFunction ")),
        "{problems:#?}"
    );

    // An endpoint nothing in the VPC calls only costs.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "CloudWatchEndpoint", |b| {
        b.replace(".monitoring", ".sqs")
    });
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems.contains(&"CloudWatchEndpoint (sqs) serves no function in the VPC: an interface endpoint costs by the hour in every zone".to_owned()),
        "{problems:#?}"
    );
}

/// The text of one resource of the template, for edits confined to it.
fn resource_block(template: &str, id: &str) -> String {
    let start = template
        .find(&format!("\n  {id}:\n"))
        .unwrap_or_else(|| panic!("{id} in the template"))
        + 1;
    let rest = &template[start + 3..];
    let end = rest
        .match_indices("\n  ")
        .find(|(i, _)| rest[i + 3..].starts_with(|c: char| c.is_ascii_alphabetic()))
        .map_or(template.len(), |(i, _)| start + 3 + i + 1);
    template[start..end].to_owned()
}

/// Applies `change` to one resource's text in a copy of the repository.
fn edit_resource(root: &Path, id: &str, change: impl Fn(&str) -> String) {
    let path = root.join("template.yaml");
    let template = std::fs::read_to_string(&path).expect("template");
    let block = resource_block(&template, id);
    let changed = change(&block);
    assert_ne!(changed, block, "the edit of {id} changed nothing");
    std::fs::write(&path, template.replacen(&block, &changed, 1)).expect("write");
}

#[test]
fn a_publisher_without_the_topics_key_is_caught() {
    let copy = copy_of_repo();
    edit_resource(copy.path(), "NotifyFunction", |b| {
        b.replace("                - kms:GenerateDataKey\n", "")
    });
    let problems = deploy_checks::check(copy.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("NotifyFunction may not kms:GenerateDataKey on !GetAtt TopicsKey.Arn: publishing to a topic encrypted"),
        "{problems:#?}"
    );
}

#[test]
fn reading_an_optional_report_without_list_bucket_is_caught() {
    let copy = copy_of_repo();
    edit_resource(copy.path(), "DrillReportFunction", |b| {
        b.replace(
            "              Action: s3:ListBucket\n",
            "              Action: s3:GetObjectVersion\n",
        )
    });
    let problems = deploy_checks::check(copy.path());
    assert!(
        problems.iter().any(|p| p.starts_with(
            "DrillReportFunction may not s3:ListBucket on !GetAtt ReportsBucket.Arn: reading a key that may not exist needs it (else S3 answers 403"
        )),
        "{problems:#?}"
    );
}

#[test]
fn a_stateful_resource_the_stack_would_delete_is_caught() {
    let copy = copy_of_repo();
    edit_resource(copy.path(), "JournalTable", |b| {
        b.replace("    DeletionPolicy: Retain\n", "")
    });
    let problems = deploy_checks::check(copy.path());
    assert_eq!(
        problems,
        vec!["JournalTable (AWS::DynamoDB::Table) has no DeletionPolicy: Retain: deleting or replacing the stack would destroy what it holds".to_owned()]
    );
}

#[test]
fn sam_accepts_the_template() {
    let problems = deploy_checks::sam_validate(&repo());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_template_sam_cannot_transform_is_caught() {
    // A SAM policy template given the wrong parameter: `sam validate --lint`
    // alone passes it, `sam deploy` would refuse it.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "NotifyFunction", |b| {
        b.replace(
            "            TopicName: !GetAtt AlertsTopic.TopicName",
            "            TopicArn: !GetAtt AlertsTopic.TopicName",
        )
    });
    let problems = deploy_checks::sam_validate(copy.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("sam validate:")
            && problems[0].contains("required parameters of template 'SNSPublishMessagePolicy' don't have values: ['TopicName']"),
        "{problems:#?}"
    );
}

#[test]
fn every_policy_names_resources_of_the_types_its_actions_authorise() {
    let problems = deploy_checks::iam_resource_types(&repo());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_restore_without_the_groups_it_is_placed_in_is_caught() {
    // Before issue 12: restores allowed on db: and snapshot: only.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "StartRestoreFunction", |b| {
        b.replace(
            "                - !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:og:*\n",
            "",
        )
    });
    assert_eq!(
        deploy_checks::iam_resource_types(copy.path()),
        vec![
            "StartRestoreFunctionRole: rds:RestoreDBInstanceFromDBSnapshot also authorises the og resource (arn:${Partition}:rds:${Region}:${Account}:og:${OptionGroupName}), which no statement allows: the call is AccessDenied".to_owned(),
        ]
    );
}

#[test]
fn a_resource_of_a_type_the_action_does_not_authorise_is_caught() {
    // ListBucket is authorised on the bucket, never on its objects: scoped
    // to the objects it never matches, and S3 answers 403 for a missing key.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "DrillReportFunction", |b| {
        b.replace(
            "              Action: s3:ListBucket\n              Resource: !GetAtt ReportsBucket.Arn\n",
            "              Action: s3:ListBucket\n              Resource: !Sub ${ReportsBucket.Arn}/reports/*\n",
        )
    });
    let problems = deploy_checks::iam_resource_types(copy.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("DrillReportFunctionRole: s3:ListBucket on arn:aws:s3:::")
            && problems[0].ends_with("/reports/*: the action authorises no resource of that form (it authorises accesspoint, bucket): the statement never matches and the call is AccessDenied"),
        "{problems:#?}"
    );

    // An action that has no resource type is granted on * only.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "ProbeDatabaseFunction", |b| {
        b.replacen(
            "              Resource: '*'\n",
            "              Resource: !Sub arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:metric/*\n",
            1,
        )
    });
    let problems = deploy_checks::iam_resource_types(copy.path());
    assert!(
        problems.contains(&"ProbeDatabaseFunctionRole: cloudwatch:PutMetricData has no resource types, so only Resource '*' grants it, not arn:aws:cloudwatch:us-east-1:123456789012:metric/*".to_owned()),
        "{problems:#?}"
    );
}

#[test]
fn a_drill_that_may_not_follow_its_child_executions_is_caught() {
    let copy = copy_of_repo();
    edit_resource(copy.path(), "DrDrillStateMachine", |b| {
        b.replace("                - states:StopExecution\n", "")
    });
    assert_eq!(
        deploy_checks::check(copy.path()),
        vec!["DrDrillStateMachine state \"DrillDatabase\" waits for DrDrillDatabaseStateMachine (.sync) but may not states:StopExecution: the task fails with AccessDenied".to_owned()]
    );
}

#[test]
fn both_deployments_do_what_their_region_needs() {
    let problems = deploy_checks::deployments(&repo());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_standby_that_watches_or_cannot_fail_over_is_caught() {
    // A standby alarm pages for a database it does not watch (its probe is
    // off) and would start a failover from the wrong region.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "ProbeSilentAlarm", |b| {
        b.replace("    Condition: InPrimaryRegion\n", "")
    });
    assert_eq!(
        deploy_checks::deployments(copy.path()),
        vec![
            "standby (us-west-2): creates alarms ProbeSilentAlarm: a standby watches nothing"
                .to_owned()
        ]
    );

    // The region failover runs in the standby: asking the failed region's
    // API in its own region is AccessDenied, "cannot confirm", no failover.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "ConfirmRegionFunction", |b| {
        b.replace(
            "rds:${PrimaryRegion}:${AWS::AccountId}:db:*",
            "rds:${AWS::Region}:${AWS::AccountId}:db:*",
        )
    });
    assert_eq!(
        deploy_checks::deployments(copy.path()),
        vec!["standby (us-west-2): ConfirmRegionFunction may not rds:DescribeDBInstances in us-east-1 (primary region), where the region failover needs it (allowed: ['arn:aws:rds:us-west-2:123456789012:db:*'])".to_owned()]
    );

    // The standby has no registry resource: it uses the global table's replica.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "UpdateTopologyFunction", |b| {
        b.replace(
            "TOPOLOGY_TABLE: muejam-dr-topology",
            "TOPOLOGY_TABLE: !Ref TopologyTable",
        )
    });
    assert_eq!(
        deploy_checks::deployments(copy.path()),
        vec!["standby (us-west-2): UpdateTopologyFunction refers to TopologyTable, which this deployment does not create".to_owned()]
    );

    // A schedule armed in both regions runs the replication (or the drill)
    // twice, once from a region that is not the database's.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "SnapshotReplicationStateMachine", |b| {
        b.replace(
            "            State: !If [InPrimaryRegion, ENABLED, DISABLED]\n",
            "",
        )
    });
    let problems = deploy_checks::deployments(copy.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .starts_with("standby (us-west-2): the schedule SnapshotReplicationStateMachine")
            && problems[0].ends_with(" is ENABLED, must be DISABLED"),
        "{problems:#?}"
    );

    // A secret the standby cannot read.
    let copy = copy_of_repo();
    edit_resource(copy.path(), "DatabaseSecret", |b| {
        b.replace(
            "      ReplicaRegions:\n        - Region: !Ref BackupRegion\n",
            "",
        )
    });
    assert_eq!(
        deploy_checks::deployments(copy.path()),
        vec!["primary (us-east-1): the database secret is not replicated to us-west-2".to_owned()]
    );
}

/// The rehearsed failover promotes, fences and cuts off the drill's copy
/// with the same policies as production's: RDS checks each tag those
/// policies' conditions name, so the drill's instances must carry them
/// (moto checks no condition: without this, AccessDenied on AWS only).
#[test]
fn the_drills_instances_carry_every_tag_the_failovers_policies_require() {
    let template = std::fs::read_to_string(repo().join("template.yaml")).expect("template");
    let tags = dr_scenarios::drill::drill_tags(
        "q4",
        &dr_core::InstanceId::parse("muejam-db-prod").expect("id"),
    );
    let mut required = Vec::new();
    for function in [
        "PromoteReplicaFunction",
        "FenceInstanceFunction",
        "UpdateDnsFunction",
        "CheckDatabaseFunction",
        "ConfirmFailureFunction",
    ] {
        let block = resource_block(&template, function);
        for line in block.lines() {
            if let Some((key, value)) = line.trim().split_once(": ") {
                if let Some(tag) = key.strip_prefix("aws:ResourceTag/") {
                    required.push((
                        function,
                        tag.to_owned(),
                        value.trim_matches('\'').to_owned(),
                    ));
                }
            }
        }
    }
    assert!(
        !required.is_empty(),
        "the promotion is conditioned on a tag"
    );
    for (function, tag, value) in required {
        assert_eq!(
            tags.get(&tag).map(String::as_str),
            Some(value.as_str()),
            "{function} acts only on instances tagged {tag}={value}: the drill's are not"
        );
    }
}
