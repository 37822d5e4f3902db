//! The local stack behind the ports: RDS played by the local platform, the
//! other AWS APIs by the real adapters on the moto server, reports in files.

use std::sync::Arc;

use dr_aws::{AwsClients, AwsTarget};
use dr_core::{DrError, DrResult};
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

/// Every message in the alerts inbox queue, oldest first, left in place.
pub async fn read_alerts(platform: &LocalControlPlane) -> DrResult<Vec<DeliveredMessage>> {
    let sqs = moto_sqs(platform).await?;
    let url = sqs
        .get_queue_url()
        .queue_name(crate::seed::ALERTS_INBOX_QUEUE)
        .send()
        .await
        .map_err(|e| DrError::NotFound(format!("alerts inbox queue: {e}")))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let mut seen = std::collections::BTreeMap::new();
    // Peek (visibility 0) until a receive brings nothing new.
    for _ in 0..50 {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| DrError::Unavailable(format!("reading the alerts inbox: {e}")))?;
        let before = seen.len();
        for m in received.messages() {
            if let (Some(id), Some(body)) = (m.message_id(), m.body()) {
                seen.entry(id.to_owned()).or_insert_with(|| body.to_owned());
            }
        }
        if seen.len() == before {
            break;
        }
    }
    let mut messages: Vec<DeliveredMessage> = seen
        .values()
        .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
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

pub async fn local_ports(platform: &LocalControlPlane) -> DrResult<Ports> {
    let clients = moto_clients(platform).await?;
    Ok(Ports {
        control_plane: Arc::new(platform.clone()),
        sql: Arc::new(dr_postgres::PostgresSqlTarget),
        secrets: Arc::new(dr_aws::SecretsManagerSecrets::new(clients.secrets.clone())),
        dns: Arc::new(dr_aws::Route53Dns::new(clients.route53.clone())),
        notifier: Arc::new(dr_aws::SnsNotifier::new(clients.sns.clone())),
        reports: Arc::new(FileReportStore::new(platform.home().join("reports"))),
        lock: Arc::new(dr_aws::DynamoDbLock::new(
            clients.dynamodb.clone(),
            LOCK_TABLE,
        )),
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
