//! The local stack behind the ports: RDS played by the local platform, the
//! other AWS APIs by the real adapters on the moto server, reports in files.

use std::sync::Arc;

use dr_aws::{AwsClients, AwsTarget};
use dr_core::{AppFleet, DrError, DrResult, FleetRef, FleetStatus, InstanceRefresh};
use dr_local::reports::FileReportStore;
use dr_local::LocalControlPlane;
use dr_runner::{HandlerError, Handlers};
use dr_scenarios::{dispatch, Function, Ports};

use crate::seed::LOCK_TABLE;

/// The moto server's clients, from the home's state file.
pub async fn moto_clients(platform: &LocalControlPlane) -> DrResult<AwsClients> {
    let state = platform.store().read()?;
    let moto = state
        .moto
        .as_ref()
        .filter(|m| dr_local::moto::is_running(m))
        .ok_or_else(|| {
            DrError::Unavailable(format!(
                "the moto server of {} is not running: run `drctl local up`",
                platform.home().display()
            ))
        })?;
    Ok(AwsClients::connect(&AwsTarget::moto(
        &dr_local::moto::endpoint(moto),
        &moto.region,
    ))
    .await)
}

pub async fn moto_sqs(platform: &LocalControlPlane) -> DrResult<aws_sdk_sqs::Client> {
    let state = platform.store().read()?;
    let moto = state
        .moto
        .as_ref()
        .ok_or_else(|| DrError::Unavailable("no moto server: run `drctl local up`".to_owned()))?;
    let config = AwsTarget::moto(&dr_local::moto::endpoint(moto), &moto.region)
        .load()
        .await;
    Ok(aws_sdk_sqs::Client::new(&config))
}

/// A notification as the alerts topic delivered it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveredMessage {
    pub subject: String,
    pub message: String,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub timestamp: String,
}

/// Every message the alerts topic delivered, oldest first. Messages are
/// moved from the inbox queue into `messages.jsonl` in the home, so reading
/// is complete (SQS hands out at most ten at a time) and can be repeated.
pub async fn read_alerts(platform: &LocalControlPlane) -> DrResult<Vec<DeliveredMessage>> {
    read_inbox(platform, crate::seed::ALERTS_INBOX_QUEUE, "messages.jsonl").await
}

/// Every message the user-notification topic delivered (what the
/// platform's mailer would have sent), oldest first; kept in
/// `user-messages.jsonl`.
pub async fn read_user_messages(platform: &LocalControlPlane) -> DrResult<Vec<DeliveredMessage>> {
    read_inbox(
        platform,
        crate::seed::USER_INBOX_QUEUE,
        "user-messages.jsonl",
    )
    .await
}

/// Every message escalation tier `tier`'s topic delivered, oldest first;
/// kept in `tier-<tier>-messages.jsonl`.
pub async fn read_tier_messages(
    platform: &LocalControlPlane,
    tier: usize,
) -> DrResult<Vec<DeliveredMessage>> {
    read_inbox(
        platform,
        &crate::seed::tier_inbox_queue(tier),
        &format!("tier-{tier}-messages.jsonl"),
    )
    .await
}

async fn read_inbox(
    platform: &LocalControlPlane,
    queue: &str,
    archive: &str,
) -> DrResult<Vec<DeliveredMessage>> {
    use std::io::Write;
    let sqs = moto_sqs(platform).await?;
    let url = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| DrError::NotFound(format!("inbox queue {queue}: {e}")))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let archive_path = platform.home().join(archive);
    let mut archive = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&archive_path)
        .map_err(|e| DrError::Internal(format!("opening {}: {e}", archive_path.display())))?;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .send()
            .await
            .map_err(|e| DrError::Unavailable(format!("reading {queue}: {e}")))?;
        if received.messages().is_empty() {
            break;
        }
        for m in received.messages() {
            if let Some(body) = m.body() {
                let line = serde_json::to_string(
                    &serde_json::from_str::<serde_json::Value>(body).unwrap_or_default(),
                )
                .map_err(|e| DrError::Internal(e.to_string()))?;
                writeln!(archive, "{line}")
                    .map_err(|e| DrError::Internal(format!("archiving a message: {e}")))?;
            }
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| DrError::Unavailable(format!("acknowledging a message: {e}")))?;
            }
        }
    }
    let text = std::fs::read_to_string(&archive_path)
        .map_err(|e| DrError::Internal(format!("reading {}: {e}", archive_path.display())))?;
    let mut messages: Vec<DeliveredMessage> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|envelope| DeliveredMessage {
            subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
            message: envelope["Message"].as_str().unwrap_or_default().to_owned(),
            attributes: envelope["MessageAttributes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v["Value"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: envelope["Timestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    messages.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    Ok(messages)
}

/// The local Auto Scaling groups: the app servers `drctl local up` runs
/// (real processes behind the local load balancer), and any other group
/// from the stack's moto (the backup region's, which only has to scale).
struct LocalFleets {
    app: muejam_app::LocalAppPlatform,
    aws: dr_aws::AutoScalingFleet,
}

impl LocalFleets {
    fn of(&self, fleet: &FleetRef) -> &dyn AppFleet {
        if self.app.serves(fleet) {
            &self.app
        } else {
            &self.aws
        }
    }
}

#[async_trait::async_trait]
impl AppFleet for LocalFleets {
    async fn describe_fleet(&self, fleet: &FleetRef) -> DrResult<FleetStatus> {
        self.of(fleet).describe_fleet(fleet).await
    }
    async fn set_desired_capacity(&self, fleet: &FleetRef, desired: u32) -> DrResult<()> {
        self.of(fleet).set_desired_capacity(fleet, desired).await
    }
    async fn start_instance_refresh(&self, fleet: &FleetRef) -> DrResult<InstanceRefresh> {
        self.of(fleet).start_instance_refresh(fleet).await
    }
    async fn describe_instance_refresh(
        &self,
        fleet: &FleetRef,
        refresh_id: &str,
    ) -> DrResult<InstanceRefresh> {
        self.of(fleet)
            .describe_instance_refresh(fleet, refresh_id)
            .await
    }
}

/// verify-full against the home's CA, unless `DB_TLS_MODE` / `DB_TLS_CA_FILE`
/// say otherwise (as they configure a Lambda): how a rehearsal points the
/// handlers at a CA bundle that does not match.
fn local_tls(platform: &LocalControlPlane) -> DrResult<dr_core::DatabaseTls> {
    let mut tls = platform.tls_policy();
    if let Some(mode) = std::env::var(dr_core::DatabaseTls::MODE_ENV)
        .ok()
        .filter(|m| !m.trim().is_empty())
    {
        tls.mode = dr_core::TlsMode::parse(mode.trim())?;
    }
    if let Some(ca) = std::env::var_os(dr_core::DatabaseTls::CA_FILE_ENV).filter(|c| !c.is_empty())
    {
        tls.ca_file = Some(ca.into());
    }
    Ok(tls)
}

/// What a page raised on the local stack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalPaging {
    /// Kept in `pages.jsonl` in the home; no climb is started (a failing
    /// local run would otherwise leave a climb of hours behind it).
    Recorded,
    /// Each page starts a `drctl run page-escalation` of its own, with the
    /// same clock (`drctl run --escalate-pages`).
    Climb {
        virtual_time: bool,
        token_patience: Option<u64>,
    },
}

/// [`Pager`](dr_core::Pager) on the local stack: see [`LocalPaging`].
struct LocalPager {
    home: std::path::PathBuf,
    paging: LocalPaging,
}

#[async_trait::async_trait]
impl dr_core::Pager for LocalPager {
    async fn raise(&self, page: &dr_core::Page) -> DrResult<()> {
        use std::io::Write;
        let path = self.home.join("pages.jsonl");
        let line = serde_json::to_string(page)
            .map_err(|e| DrError::Internal(format!("serializing a page: {e}")))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"))
            .map_err(|e| DrError::Internal(format!("keeping a page in {}: {e}", path.display())))?;
        let LocalPaging::Climb {
            virtual_time,
            token_patience,
        } = self.paging
        else {
            tracing::info!(page = %page.id, "page kept in pages.jsonl; its climb starts only under drctl run --escalate-pages");
            return Ok(());
        };
        let control = crate::control::LocalControl::new(&self.home, virtual_time)
            .with_token_patience(token_patience);
        dr_core::ExecutionControl::start(
            &control,
            "page-escalation",
            &dr_core::Page::execution_name(&page.id),
            &serde_json::json!({ "page": page }),
        )
        .await
        .map(drop)
        .or_else(|e| match e {
            // The same page's climb runs already (the report after the
            // notification of the same run).
            DrError::AlreadyExists(_) => Ok(()),
            other => Err(other),
        })
    }
}

pub async fn local_ports(platform: &LocalControlPlane) -> DrResult<Ports> {
    local_ports_paging(platform, LocalPaging::Recorded).await
}

/// [`local_ports`] with pages climbing as `paging` says.
pub async fn local_ports_paging(
    platform: &LocalControlPlane,
    paging: LocalPaging,
) -> DrResult<Ports> {
    let clients = moto_clients(platform).await?;
    Ok(Ports {
        control_plane: Arc::new(platform.clone()),
        regions: Arc::new(dr_local::LocalRegions::new(platform.clone())),
        sql: Arc::new(dr_postgres::PostgresSqlTarget),
        secrets: Arc::new(dr_aws::SecretsManagerSecrets::new(clients.secrets.clone())),
        dns: Arc::new(dr_aws::Route53Dns::new(clients.route53.clone())),
        notifier: Arc::new(dr_aws::SnsNotifier::new(clients.sns.clone())),
        reports: Arc::new(FileReportStore::new(platform.home().join("reports"))),
        lock: Arc::new(dr_aws::DynamoDbLock::new(
            clients.dynamodb.clone(),
            LOCK_TABLE,
        )),
        integrity: Arc::new(dr_integrity::PostgresIntegrityVerifier { jobs: 2 }),
        metrics: Arc::new(dr_aws::CloudWatchMetrics::new(clients.cloudwatch.clone())),
        database_tls: local_tls(platform)?,
        topology: Arc::new(dr_aws::DynamoDbTopology::new(
            clients.dynamodb.clone(),
            crate::seed::TOPOLOGY_TABLE,
        )),
        approvals: Arc::new(dr_aws::DynamoDbApprovals::new(
            clients.dynamodb.clone(),
            crate::seed::APPROVALS_TABLE,
        )),
        tokens: Arc::new(crate::approve::InboxTaskTokens {
            dir: platform.home().join("task-tokens"),
            patience: None,
        }),
        pager: Arc::new(LocalPager {
            home: platform.home().to_owned(),
            paging,
        }),
        journal: Arc::new(dr_aws::DynamoDbJournal::new(
            clients.dynamodb.clone(),
            crate::seed::JOURNAL_TABLE,
        )),
        executions: Arc::new(dr_local::executions::LocalExecutions::new(platform.home())),
        fleet: Arc::new(LocalFleets {
            app: muejam_app::LocalAppPlatform::new(platform.home())?,
            aws: dr_aws::AutoScalingFleet::new(clients.autoscaling.clone(), clients.elbv2.clone()),
        }),
        health: Arc::new(dr_http::HttpHealthCheck::new()?),
        deployment: Arc::new(muejam_app::LocalAppPlatform::new(platform.home())?),
        firewall: Arc::new(dr_aws::WafFirewall::new(clients.wafv2.clone())),
        triggers: Arc::new(dr_aws::AwsTriggers::new(
            clients.cloudwatch.clone(),
            clients.events.clone(),
            clients.scheduler.clone(),
        )),
        permissions: Arc::new(dr_aws::AwsPermissions::new(
            clients.sfn.clone(),
            clients.lambda.clone(),
            clients.iam.clone(),
        )),
        users: Arc::new(dr_aws::SnsUserNotifier::new(clients.sns.clone())),
        ledger: Arc::new(dr_aws::DynamoDbLedger::new(
            clients.dynamodb.clone(),
            crate::seed::NOTIFICATIONS_TABLE,
        )),
        initial_topologies: Vec::new(),
    })
}

/// Every function, registered under its template logical id.
pub fn handlers(ports: Ports) -> Handlers {
    let mut handlers = Handlers::new();
    for function in Function::ALL {
        let ports = ports.clone();
        handlers.register_fn(function.logical_id(), move |payload, _context| {
            let ports = ports.clone();
            async move {
                dispatch(function, &ports, payload)
                    .await
                    .map_err(HandlerError::from)
            }
        });
    }
    handlers
}
