//! AWS adapters of the ports in `dr-core`, on the AWS SDK for Rust.
//!
//! The same adapters talk to AWS and, with an endpoint override, to the moto
//! server of the local stack: the same code path over the real wire protocol.

pub mod approvals;
pub mod errors;
pub mod executions;
pub mod firewall;
pub mod fleet;
pub mod iam;
pub mod journal;
pub mod lock;
pub mod metrics;
pub mod notifier;
pub mod permissions;
pub mod rds;
pub mod reports;
pub mod route53;
pub mod secrets;
pub mod topology;
pub mod triggers;
pub mod users;

use aws_config::{BehaviorVersion, Region};

pub use approvals::{DynamoDbApprovals, SfnTaskTokens};
/// Types needed to create the lock table (local stack set-up, tests).
pub use aws_config::SdkConfig;
pub use aws_sdk_dynamodb::types as dynamodb_types;
pub use executions::{SfnControl, SfnExecutions, SfnPager};
pub use firewall::WafFirewall;
pub use fleet::AutoScalingFleet;
pub use journal::DynamoDbJournal;
pub use lock::DynamoDbLock;
pub use metrics::CloudWatchMetrics;
pub use notifier::SnsNotifier;
pub use permissions::AwsPermissions;
pub use rds::{RdsControlPlane, RdsRegions};
pub use reports::S3ReportStore;
pub use route53::Route53Dns;
pub use secrets::SecretsManagerSecrets;
pub use topology::DynamoDbTopology;
pub use triggers::AwsTriggers;
pub use users::{DynamoDbLedger, SnsUserNotifier};

/// Where the SDK sends requests.
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    /// An endpoint override (the moto server); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    /// A region override; `None` for the environment's.
    pub region: Option<String>,
}

impl AwsTarget {
    /// The local stack's moto server, with placeholder credentials.
    pub fn moto(endpoint_url: &str, region: &str) -> Self {
        AwsTarget {
            endpoint_url: Some(endpoint_url.to_owned()),
            region: Some(region.to_owned()),
        }
    }

    /// Loads the shared SDK configuration once (credentials, region, retries).
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        // A region that is down must read as a timeout within a step, not
        // hang it until the Lambda dies: every call is bounded.
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(30))
                .build(),
        );
        if let Some(url) = &self.endpoint_url {
            // moto accepts any credentials; these are placeholders, not secrets.
            loader = loader.endpoint_url(url).credentials_provider(
                aws_sdk_sns::config::Credentials::new("testing", "testing", None, None, "moto"),
            );
        }
        loader.load().await
    }
}

/// Every client the adapters need, built from one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub rds: aws_sdk_rds::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub route53: aws_sdk_route53::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub wafv2: aws_sdk_wafv2::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            // moto (and any endpoint override) serves buckets by path.
            .force_path_style(config.endpoint_url().is_some())
            .build();
        AwsClients {
            rds: aws_sdk_rds::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            autoscaling: aws_sdk_autoscaling::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            wafv2: aws_sdk_wafv2::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
        }
    }

    pub async fn connect(target: &AwsTarget) -> Self {
        Self::new(&target.load().await)
    }
}
