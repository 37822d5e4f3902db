//! The IAM actions each adapter operation needs: the table the deployment
//! checks compare every function's policy with.

use dr_core::PortOperation;

/// IAM actions the AWS adapter needs for a port operation. SQL operations
/// need none (they speak PostgreSQL); secrets are read by the SQL handlers.
pub fn iam_actions(operation: PortOperation) -> &'static [&'static str] {
    use PortOperation::*;
    match operation {
        // Describing a replica also reads its CloudWatch ReplicaLag.
        DescribeInstance => &["rds:DescribeDBInstances", "cloudwatch:GetMetricStatistics"],
        ListInstances => &["rds:DescribeDBInstances", "cloudwatch:GetMetricStatistics"],
        ListSnapshots => &["rds:DescribeDBSnapshots"],
        PromoteReadReplica => &[
            "rds:DescribeDBInstances",
            "rds:PromoteReadReplica",
            "cloudwatch:GetMetricStatistics",
        ],
        // list_instances describes every instance, replicas included.
        CreateReadReplica => &[
            "rds:DescribeDBInstances",
            "cloudwatch:GetMetricStatistics",
            "rds:CreateDBInstanceReadReplica",
            "rds:AddTagsToResource",
        ],
        CreateSnapshot => &[
            "rds:CreateDBSnapshot",
            "rds:AddTagsToResource",
            "rds:DescribeDBSnapshots",
        ],
        RestoreFromSnapshot => &[
            "rds:DescribeDBInstances",
            "cloudwatch:GetMetricStatistics",
            "rds:RestoreDBInstanceFromDBSnapshot",
            "rds:AddTagsToResource",
        ],
        RestoreToPointInTime => &[
            "rds:DescribeDBInstances",
            "rds:RestoreDBInstanceToPointInTime",
            "rds:AddTagsToResource",
        ],
        DeleteInstance => &[
            "rds:DescribeDBInstances",
            "cloudwatch:GetMetricStatistics",
            "rds:DeleteDBInstance",
        ],
        DeleteSnapshot => &["rds:DeleteDBSnapshot"],
        DescribeSnapshot => &["rds:DescribeDBSnapshots"],
        // Called in the destination region: the source is read (for its
        // ARN) in its own region; an encrypted copy re-encrypted with the
        // destination's key needs a grant on the keys (RDS User Guide,
        // "Copying a DB snapshot": KMS permissions).
        CopySnapshot => &[
            "rds:DescribeDBSnapshots",
            "rds:CopyDBSnapshot",
            "rds:AddTagsToResource",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
        TagSnapshot => &["rds:DescribeDBSnapshots", "rds:AddTagsToResource"],
        FleetDescribe => &[
            "autoscaling:DescribeAutoScalingGroups",
            "elasticloadbalancing:DescribeTargetHealth",
        ],
        FleetSetDesiredCapacity => &[
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:SetDesiredCapacity",
        ],
        FleetStartRefresh => &[
            "autoscaling:StartInstanceRefresh",
            "autoscaling:DescribeInstanceRefreshes",
        ],
        FleetDescribeRefresh => &["autoscaling:DescribeInstanceRefreshes"],
        ChangeMasterCredentials => &["rds:ModifyDBInstance"],
        AddTags => &[
            "rds:DescribeDBInstances",
            "rds:DescribeDBSnapshots",
            "rds:AddTagsToResource",
        ],
        VerifySnapshot => &[],
        // An HTTP GET of the application, no AWS API.
        HealthGet => &[],
        // The cluster's endpoint and CA; what the function may do in the
        // cluster is Kubernetes RBAC (its EKS access entry), not IAM.
        DeploymentDescribe
        | DeploymentRestart
        | DeploymentRollBack
        | DeploymentSetEnv
        | DeploymentRunMigration
        | DeploymentMigrationState
        | DeploymentMigrations => &["eks:DescribeCluster"],
        SqlProbe | SqlWriteMarker | SqlMarkerPresent | SqlCommitDamage | SqlWriteGrants
        | SqlRevokeWrites | SqlGrantWrites | SqlRowChanges | SqlRevokeApiKeys
        | SqlAuditActivity | SqlRowCounts | SqlSetRolePassword => &[],
        FirewallGetIpSet => &["wafv2:GetIPSet"],
        FirewallUpdateIpSet => &["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
        DnsUpsert => &[
            "route53:ListHostedZonesByName",
            "route53:ChangeResourceRecordSets",
        ],
        DnsChangeStatus => &["route53:GetChange"],
        DnsDeleteRecord => &[
            "route53:ListHostedZonesByName",
            "route53:ListResourceRecordSets",
            "route53:ChangeResourceRecordSets",
        ],
        DnsGetRecord => &[
            "route53:ListHostedZonesByName",
            "route53:ListResourceRecordSets",
        ],
        NotifierPublish => &["sns:Publish"],
        NotifierSubscriptions => &["sns:ListSubscriptionsByTopic"],
        SecretsGet => &["secretsmanager:GetSecretValue"],
        SecretsPut => &["secretsmanager:PutSecretValue"],
        SecretsGetStage => &["secretsmanager:GetSecretValue"],
        SecretsPutPending => &["secretsmanager:PutSecretValue"],
        SecretsMoveStage => &["secretsmanager:UpdateSecretVersionStage"],
        ReportPut => &["s3:PutObject"],
        ReportGet => &["s3:GetObject"],
        ReportList => &["s3:ListBucket"],
        LockAcquire => &["dynamodb:PutItem", "dynamodb:GetItem"],
        LockRelease => &["dynamodb:DeleteItem"],
        LockHolder => &["dynamodb:GetItem"],
        // The verifier speaks PostgreSQL only.
        IntegrityVerify => &[],
        MetricsPut => &["cloudwatch:PutMetricData"],
        MetricsLatest => &["cloudwatch:GetMetricStatistics"],
        TriggerAlarm => &["cloudwatch:DescribeAlarms"],
        TriggerRules => &["events:ListRuleNamesByTarget", "events:DescribeRule"],
        TriggerSchedule => &["scheduler:GetSchedule"],
        PermissionsStateMachine => &["states:DescribeStateMachine"],
        PermissionsFunction => &["lambda:GetFunctionConfiguration"],
        PermissionsSimulate => &[
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "iam:ListAttachedRolePolicies",
            "iam:GetPolicy",
            "iam:GetPolicyVersion",
            "iam:SimulatePrincipalPolicy",
        ],
        FenceInstance => &[
            "rds:DescribeDBInstances",
            "rds:ModifyDBInstance",
            "rds:AddTagsToResource",
        ],
        InjectFailure => &["rds:DescribeDBInstances", "rds:ModifyDBInstance"],
        TopologyGet => &["dynamodb:GetItem"],
        TopologyPut => &["dynamodb:PutItem"],
        TopologyList => &["dynamodb:Scan"],
        TopologyDelete => &["dynamodb:DeleteItem"],
        ApprovalOpen => &["dynamodb:PutItem"],
        ApprovalGet => &["dynamodb:GetItem"],
        ApprovalClose => &["dynamodb:GetItem", "dynamodb:PutItem"],
        TaskAnswer => &["states:SendTaskSuccess", "states:SendTaskFailure"],
        PageRaise => &["states:StartExecution"],
        JournalRecord => &["dynamodb:PutItem"],
        JournalEntries => &["dynamodb:Query"],
        LockTakeOver => &["dynamodb:PutItem", "dynamodb:GetItem"],
        LockHolders => &["dynamodb:Scan"],
        ExecutionState => &["states:DescribeExecution"],
        ExecutionDefinition => &[
            "states:DescribeStateMachineForExecution",
            "states:DescribeStateMachine",
        ],
        // PublishBatch is authorised as sns:Publish.
        UserNotify => &["sns:Publish"],
        LedgerEntries => &["dynamodb:Query"],
        // TransactWriteItems is authorised per item, as UpdateItem.
        LedgerClaim | LedgerMarkSent => &["dynamodb:UpdateItem"],
    }
}

/// Actions that take no resource-level permission: the Service
/// Authorization Reference lists no resource type for them, so a policy can
/// only grant them on `*` (the task token itself is the capability).
pub const WITHOUT_RESOURCE_TYPES: &[&str] = &["states:SendTaskSuccess", "states:SendTaskFailure"];

/// Whether an IAM action changes something (and so must never be granted on
/// `*`, unless it takes no resource at all).
pub fn is_mutating(action: &str) -> bool {
    let name = action.split(':').nth(1).unwrap_or(action);
    !["Describe", "List", "Get"]
        .iter()
        .any(|p| name.starts_with(p))
}
