//! The [`AppDeployment`] port on Kubernetes, as kubectl does it:
//!
//! - `describe_deployment` reads the Deployment and the ReplicaSets it owns
//!   (each one a revision: `deployment.kubernetes.io/revision`, its
//!   `pod-template-hash`, image and `kubernetes.io/change-cause`);
//! - `roll_back` is `kubectl rollout undo`: the chosen ReplicaSet's pod
//!   template (without its hash label) and annotations written back with one
//!   JSON patch, as kubectl's `DeploymentRollbacker` does;
//! - `rollout_restart` sets `kubectl.kubernetes.io/restartedAt`;
//! - `set_env` patches every container (strategic merge: add, or `$patch:
//!   delete` to unset);
//! - a migration is a Job from the revision's pod template (its image and
//!   environment) running `python manage.py migrate <app> <target>`;
//!   `migrations` runs `showmigrations <app>` the same way and reads `[X]`.
//!
//! On EKS the client authenticates with a token from a presigned STS
//! `GetCallerIdentity` ([`token`]), the cluster's endpoint and CA from
//! `eks:DescribeCluster`. No API server can run on the machines this is
//! built on: the tests serve the API's responses over loopback HTTP.

pub mod token;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use base64::Engine;
use chrono::{DateTime, Utc};
use dr_core::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodTemplateSpec};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// Annotations kubectl's rollback neither copies from the ReplicaSet nor
/// drops from the Deployment (`annotationsToSkip` in kubectl).
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];
/// The label our jobs carry, and the one naming the revision they ran.
pub const JOB_LABEL: &str = "muejam.dr/job";
/// How long `migrations` waits for its `showmigrations` job.
pub const SHOWMIGRATIONS_WAIT: Duration = Duration::from_secs(60);
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API server is, and how to log in.
pub enum Access {
    /// A client made elsewhere (a kubeconfig; the tests' loopback server).
    Client(kube::Client),
    Eks(EksCluster),
}

/// An EKS cluster: endpoint and CA from `DescribeCluster` (once), a fresh
/// token for every client.
pub struct EksCluster {
    eks: aws_sdk_eks::Client,
    credentials: SharedCredentialsProvider,
    region: String,
    name: String,
    endpoint: OnceCell<(http::Uri, Vec<Vec<u8>>)>,
}

impl EksCluster {
    pub fn new(
        eks: aws_sdk_eks::Client,
        credentials: SharedCredentialsProvider,
        region: &str,
        name: &str,
    ) -> Self {
        EksCluster {
            eks,
            credentials,
            region: region.to_owned(),
            name: name.to_owned(),
            endpoint: OnceCell::new(),
        }
    }

    async fn endpoint(&self) -> DrResult<&(http::Uri, Vec<Vec<u8>>)> {
        self.endpoint
            .get_or_try_init(|| async {
                let described = self
                    .eks
                    .describe_cluster()
                    .name(&self.name)
                    .send()
                    .await
                    .map_err(|e| {
                        dr_aws::errors::map_sdk_error(
                            &format!("describing EKS cluster {}", self.name),
                            e,
                        )
                    })?;
                let cluster = described.cluster().ok_or_else(|| {
                    DrError::NotFound(format!("EKS cluster {} has no description", self.name))
                })?;
                let endpoint = cluster.endpoint().ok_or_else(|| {
                    DrError::NotReady(format!("EKS cluster {} has no endpoint yet", self.name))
                })?;
                let ca = cluster
                    .certificate_authority()
                    .and_then(|c| c.data())
                    .ok_or_else(|| {
                        DrError::NotReady(format!("EKS cluster {} has no CA yet", self.name))
                    })?;
                Ok((
                    endpoint.parse::<http::Uri>().map_err(|e| {
                        DrError::Internal(format!("EKS endpoint {endpoint:?}: {e}"))
                    })?,
                    ca_certificates(ca)?,
                ))
            })
            .await
    }

    async fn client(&self) -> DrResult<kube::Client> {
        let (endpoint, ca) = self.endpoint().await?.clone();
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| DrError::Internal(format!("AWS credentials for EKS: {e}")))?;
        let token = token::token(&credentials, &self.region, &self.name, SystemTime::now())?;
        let mut config = kube::Config::new(endpoint);
        config.root_cert = Some(ca);
        config.auth_info.token = Some(token);
        config.connect_timeout = Some(API_TIMEOUT);
        config.read_timeout = Some(API_TIMEOUT);
        config.write_timeout = Some(API_TIMEOUT);
        kube::Client::try_from(config)
            .map_err(|e| DrError::Internal(format!("Kubernetes client for EKS: {e}")))
    }
}

/// The DER certificates of `certificateAuthority.data` (base64 of PEM).
pub fn ca_certificates(data: &str) -> DrResult<Vec<Vec<u8>>> {
    use rustls_pki_types::pem::PemObject;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| DrError::Internal(format!("the EKS CA is not base64: {e}")))?;
    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| DrError::Internal(format!("the EKS CA is not PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(DrError::Internal("the EKS CA holds no certificate".into()));
    }
    Ok(certs)
}

/// Kubernetes API errors as stable names.
pub fn map_kube_error(context: &str, error: kube::Error) -> DrError {
    match error {
        kube::Error::Api(status) => {
            let message = format!("{context}: {} ({})", status.message, status.reason);
            match status.code {
                404 => DrError::NotFound(message),
                409 if status.reason == "AlreadyExists" => DrError::AlreadyExists(message),
                409 => DrError::Conflict(message),
                429 => DrError::Throttled(message),
                400 | 422 => DrError::InvalidInput(message),
                // Our own identity is not let in: a configuration problem
                // (the access entry, the RBAC role), never the application's.
                401 | 403 => DrError::Internal(format!(
                    "{message}: the functions' role is not allowed on the cluster (EKS access entry, RBAC)"
                )),
                500..=599 => DrError::Unavailable(message),
                _ => DrError::Internal(message),
            }
        }
        other => DrError::Unavailable(format!("{context}: {other}")),
    }
}

pub struct KubernetesDeployment {
    access: Access,
}

impl KubernetesDeployment {
    pub fn new(access: Access) -> Self {
        KubernetesDeployment { access }
    }

    async fn client(&self) -> DrResult<kube::Client> {
        match &self.access {
            Access::Client(c) => Ok(c.clone()),
            Access::Eks(cluster) => cluster.client().await,
        }
    }

    async fn deployment(&self, d: &DeploymentRef) -> DrResult<(kube::Client, Deployment)> {
        d.validate()?;
        let client = self.client().await?;
        let api: Api<Deployment> = Api::namespaced(client.clone(), &d.namespace);
        let found = api
            .get(&d.name)
            .await
            .map_err(|e| map_kube_error(&format!("reading deployment {d}"), e))?;
        Ok((client, found))
    }

    /// The ReplicaSets the deployment owns, by its selector and owner uid.
    async fn replica_sets(
        &self,
        client: &kube::Client,
        d: &DeploymentRef,
        deployment: &Deployment,
    ) -> DrResult<Vec<ReplicaSet>> {
        let selector = selector_of(deployment)?;
        let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &d.namespace);
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| map_kube_error(&format!("listing the replica sets of {d}"), e))?;
        let uid = deployment.metadata.uid.clone();
        Ok(listed
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata.owner_references.as_ref().is_some_and(|owners| {
                    owners
                        .iter()
                        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
                })
            })
            .collect())
    }

    async fn job_logs(&self, client: &kube::Client, namespace: &str, job: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let Ok(listed) = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
        else {
            return String::new();
        };
        let Some(name) = listed.items.first().and_then(|p| p.metadata.name.clone()) else {
            return String::new();
        };
        pods.logs(
            &name,
            &LogParams {
                limit_bytes: Some(64 * 1024),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_default()
    }

    async fn create_job(
        &self,
        client: &kube::Client,
        d: &DeploymentRef,
        name: &str,
        revision: u64,
        command: Vec<String>,
    ) -> DrResult<()> {
        let (_, deployment) = self.deployment(d).await?;
        let sets = self.replica_sets(client, d, &deployment).await?;
        let rs = sets
            .iter()
            .find(|rs| revision_of(rs) == Some(revision))
            .ok_or_else(|| {
                DrError::InvalidInput(format!("{d} has no revision {revision} in its history"))
            })?;
        let job = job_from(rs, name, revision, command)?;
        let api: Api<Job> = Api::namespaced(client.clone(), &d.namespace);
        match api.create(&PostParams::default(), &job).await {
            Ok(_) => Ok(()),
            // The same name again: a retry joins the job it started.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(map_kube_error(&format!("creating job {name}"), e)),
        }
    }

    async fn job_state(
        &self,
        client: &kube::Client,
        namespace: &str,
        job: &str,
    ) -> DrResult<JobState> {
        let api: Api<Job> = Api::namespaced(client.clone(), namespace);
        let found = api
            .get(job)
            .await
            .map_err(|e| map_kube_error(&format!("reading job {job}"), e))?;
        match job_outcome(&found) {
            JobOutcome::Running => Ok(JobState::Running),
            JobOutcome::Succeeded => Ok(JobState::Succeeded {
                output: self.job_logs(client, namespace, job).await,
            }),
            JobOutcome::Failed(reason) => {
                let logs = self.job_logs(client, namespace, job).await;
                let tail: String = logs
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join(" | ");
                Ok(JobState::Failed {
                    reason: if tail.is_empty() {
                        reason
                    } else {
                        format!("{reason}: {tail}")
                    },
                })
            }
        }
    }
}

/// `matchLabels` of the deployment's selector as a label selector string.
pub fn selector_of(deployment: &Deployment) -> DrResult<String> {
    let labels = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            DrError::Internal("the deployment has no matchLabels selector".to_owned())
        })?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

pub fn revision_of(rs: &ReplicaSet) -> Option<u64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

fn first_container(template: Option<&PodTemplateSpec>) -> Option<&Container> {
    template?.spec.as_ref()?.containers.first()
}

fn to_chrono(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).ok()?,
    )
}

/// Pure: a ReplicaSet as a revision.
pub fn revision(rs: &ReplicaSet) -> Option<AppRevision> {
    Some(AppRevision {
        revision: revision_of(rs)?,
        image: first_container(rs.spec.as_ref()?.template.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        template_hash: rs.metadata.labels.as_ref()?.get(HASH_LABEL)?.clone(),
        change_cause: rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION).cloned()),
        created_at: rs.metadata.creation_timestamp.as_ref().and_then(to_chrono),
    })
}

/// Pure: the deployment's rollout status as kubectl reads it.
pub fn observation(deployment: &Deployment) -> RolloutObservation {
    let status = deployment.status.clone().unwrap_or_default();
    let as_u32 = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
    RolloutObservation {
        generation: deployment.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        desired_replicas: deployment
            .spec
            .as_ref()
            .map(|s| as_u32(s.replicas.or(Some(1)))),
        replicas: as_u32(status.replicas),
        updated_replicas: as_u32(status.updated_replicas),
        available_replicas: as_u32(status.available_replicas),
        progressing_reason: status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.reason),
    }
}

/// Pure: the deployment and its ReplicaSets as the port describes them.
/// The current revision is the ReplicaSet whose revision the deployment's
/// annotation names (the controller keeps them equal).
pub fn status(
    d: &DeploymentRef,
    deployment: &Deployment,
    sets: &[ReplicaSet],
) -> DrResult<DeploymentStatus> {
    let mut revisions: Vec<AppRevision> = sets.iter().filter_map(revision).collect();
    revisions.sort_by_key(|r| r.revision);
    let current_number: Option<u64> = deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse().ok());
    let current = current_number
        .and_then(|n| revisions.iter().find(|r| r.revision == n))
        .or_else(|| revisions.last())
        .cloned()
        .ok_or_else(|| DrError::NotReady(format!("{d} has no revision yet")))?;
    let env = first_container(deployment.spec.as_ref().map(|s| &s.template))
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect::<BTreeMap<_, _>>();
    Ok(DeploymentStatus {
        deployment: d.clone(),
        current,
        revisions,
        paused: deployment
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false),
        env,
        rollout: observation(deployment),
    })
}

/// Pure: kubectl's rollback patch: the ReplicaSet's template without its
/// hash label, and the deployment's annotations with the ReplicaSet's
/// (those kubectl skips kept from the deployment).
pub fn rollback_patch(deployment: &Deployment, rs: &ReplicaSet) -> DrResult<Value> {
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| DrError::Internal("the replica set has no pod template".into()))?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let mut annotations = BTreeMap::new();
    if let Some(current) = &deployment.metadata.annotations {
        for k in ANNOTATIONS_TO_SKIP {
            if let Some(v) = current.get(k) {
                annotations.insert(k.to_owned(), v.clone());
            }
        }
    }
    if let Some(from_rs) = &rs.metadata.annotations {
        for (k, v) in from_rs {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    let template = serde_json::to_value(&template)
        .map_err(|e| DrError::Internal(format!("the pod template: {e}")))?;
    Ok(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
}

/// Pure: a one-off Job from a revision's pod template: its image and
/// environment, `command` instead of the server, never restarted.
pub fn job_from(rs: &ReplicaSet, name: &str, revision: u64, command: Vec<String>) -> DrResult<Job> {
    validate_k8s_name("job name", name)?;
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| DrError::Internal("the replica set has no pod template".into()))?;
    let mut meta = template.metadata.take().unwrap_or_default();
    // Not the deployment's labels: the job's pod must not join its
    // ReplicaSet or receive its traffic.
    meta.labels = Some(BTreeMap::from([
        (JOB_LABEL.to_owned(), name.to_owned()),
        ("muejam.dr/revision".to_owned(), revision.to_string()),
    ]));
    meta.annotations = None;
    template.metadata = Some(meta);
    let spec = template
        .spec
        .as_mut()
        .ok_or_else(|| DrError::Internal("the pod template has no spec".into()))?;
    let container = spec
        .containers
        .first_mut()
        .ok_or_else(|| DrError::Internal("the pod template has no container".into()))?;
    container.command = Some(command);
    container.args = None;
    container.ports = None;
    container.liveness_probe = None;
    container.readiness_probe = None;
    container.startup_probe = None;
    spec.containers.truncate(1);
    spec.restart_policy = Some("Never".into());
    Ok(Job {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(JOB_LABEL.to_owned(), name.to_owned())])),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(1800),
            ttl_seconds_after_finished: Some(7 * 24 * 3600),
            template,
            ..Default::default()
        }),
        status: None,
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Succeeded,
    Failed(String),
}

/// Pure: a Job's outcome from its conditions (Complete / Failed) and counts.
pub fn job_outcome(job: &Job) -> JobOutcome {
    let status = job.status.clone().unwrap_or_default();
    for c in status.conditions.unwrap_or_default() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return JobOutcome::Succeeded,
            "Failed" | "FailureTarget" => {
                return JobOutcome::Failed(
                    c.reason
                        .or(c.message)
                        .unwrap_or_else(|| "the job failed".to_owned()),
                )
            }
            _ => {}
        }
    }
    if status.succeeded.unwrap_or(0) > 0 {
        JobOutcome::Succeeded
    } else if status.failed.unwrap_or(0) > 0 {
        JobOutcome::Failed("its pod failed".to_owned())
    } else {
        JobOutcome::Running
    }
}

/// Pure: `manage.py showmigrations <app>` output: `[X] name` applied,
/// `[ ] name` known only.
pub fn parse_showmigrations(output: &str) -> MigrationHistory {
    let mut history = MigrationHistory::default();
    for line in output.lines() {
        let line = line.trim();
        let (applied, name) = if let Some(n) = line.strip_prefix("[X]") {
            (true, n)
        } else if let Some(n) = line.strip_prefix("[ ]") {
            (false, n)
        } else {
            continue;
        };
        let name = name.trim().to_owned();
        if name.is_empty() {
            continue;
        }
        if applied {
            history.applied.push(name.clone());
        }
        history.known.push(name);
    }
    history
}

/// A job name for a question asked of a revision (`showmigrations`): the
/// same question twice joins one job.
fn question_job(d: &DeploymentRef, revision: u64, app: &str) -> String {
    let mut name = format!("{}-showmigrations-{revision}-{app}", d.name);
    name.retain(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

#[async_trait]
impl AppDeployment for KubernetesDeployment {
    async fn describe_deployment(&self, d: &DeploymentRef) -> DrResult<DeploymentStatus> {
        let (client, deployment) = self.deployment(d).await?;
        let sets = self.replica_sets(&client, d, &deployment).await?;
        status(d, &deployment, &sets)
    }

    async fn rollout_restart(&self, d: &DeploymentRef) -> DrResult<()> {
        let (client, _) = self.deployment(d).await?;
        let api: Api<Deployment> = Api::namespaced(client, &d.namespace);
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }}}}});
        api.patch(&d.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|e| map_kube_error(&format!("restarting {d}"), e))?;
        Ok(())
    }

    async fn roll_back(&self, d: &DeploymentRef, to: &AppRevision) -> DrResult<u64> {
        let (client, deployment) = self.deployment(d).await?;
        let sets = self.replica_sets(&client, d, &deployment).await?;
        let rs = sets
            .iter()
            .find(|rs| revision_of(rs) == Some(to.revision))
            .ok_or_else(|| {
                DrError::InvalidInput(format!("{d} has no revision {} any more", to.revision))
            })?;
        let newest = sets.iter().filter_map(revision_of).max().unwrap_or(0);
        let patch: json_patch::Patch = serde_json::from_value(rollback_patch(&deployment, rs)?)
            .map_err(|e| DrError::Internal(format!("the rollback patch: {e}")))?;
        let api: Api<Deployment> = Api::namespaced(client, &d.namespace);
        api.patch(&d.name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map_err(|e| {
                map_kube_error(&format!("rolling {d} back to revision {}", to.revision), e)
            })?;
        // The controller gives the template that comes back the next number.
        Ok(newest + 1)
    }

    async fn set_env(&self, d: &DeploymentRef, name: &str, value: Option<&str>) -> DrResult<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(DrError::InvalidInput(format!(
                "{name:?} is not an environment variable name"
            )));
        }
        let (client, deployment) = self.deployment(d).await?;
        let containers: Vec<Value> = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let entry = match value {
                    Some(v) => json!({"name": name, "value": v}),
                    None => json!({"name": name, "$patch": "delete"}),
                };
                json!({"name": c, "env": [entry]})
            })
            .collect();
        if containers.is_empty() {
            return Err(DrError::Internal(format!("{d} has no container")));
        }
        let api: Api<Deployment> = Api::namespaced(client, &d.namespace);
        api.patch(
            &d.name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": containers}}}})),
        )
        .await
        .map_err(|e| map_kube_error(&format!("setting {name} on {d}"), e))?;
        Ok(())
    }

    async fn run_migration(&self, d: &DeploymentRef, job: &MigrationJob) -> DrResult<()> {
        job.validate()?;
        let client = self.client().await?;
        self.create_job(
            &client,
            d,
            &job.name,
            job.revision,
            vec![
                "python".into(),
                "manage.py".into(),
                "migrate".into(),
                job.app.clone(),
                job.target.clone(),
                "--no-input".into(),
            ],
        )
        .await
    }

    async fn migration_state(&self, d: &DeploymentRef, job: &str) -> DrResult<JobState> {
        d.validate()?;
        validate_k8s_name("job name", job)?;
        let client = self.client().await?;
        self.job_state(&client, &d.namespace, job).await
    }

    async fn migrations(
        &self,
        d: &DeploymentRef,
        revision: u64,
        app: &str,
    ) -> DrResult<MigrationHistory> {
        validate_django_label(app)?;
        let client = self.client().await?;
        let name = question_job(d, revision, app);
        self.create_job(
            &client,
            d,
            &name,
            revision,
            vec![
                "python".into(),
                "manage.py".into(),
                "showmigrations".into(),
                app.to_owned(),
            ],
        )
        .await?;
        let deadline = tokio::time::Instant::now() + SHOWMIGRATIONS_WAIT;
        loop {
            match self.job_state(&client, &d.namespace, &name).await? {
                JobState::Succeeded { output } => return Ok(parse_showmigrations(&output)),
                JobState::Failed { reason } => {
                    return Err(DrError::Internal(format!(
                        "showmigrations {app} with revision {revision} failed: {reason}"
                    )))
                }
                JobState::Running if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(2)).await
                }
                JobState::Running => {
                    return Err(DrError::NotReady(format!(
                    "showmigrations {app} with revision {revision} is still running (job {name})"
                )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showmigrations_is_read_as_applied_and_known() {
        let h = parse_showmigrations(
            "muejam\n [X] 0001_story_views\n [X] 0002_story_views_source\n [ ] 0003_featured\n(no migrations)\n",
        );
        assert_eq!(h.applied, ["0001_story_views", "0002_story_views_source"]);
        assert_eq!(
            h.known,
            [
                "0001_story_views",
                "0002_story_views_source",
                "0003_featured"
            ]
        );
    }

    #[test]
    fn question_jobs_are_kubernetes_names() {
        let d = DeploymentRef {
            namespace: "muejam".into(),
            name: "muejam-api".into(),
        };
        let name = question_job(&d, 12, "muejam_api");
        assert_eq!(name, "muejam-api-showmigrations-12-muejamapi");
        assert!(validate_k8s_name("job", &name).is_ok());
    }
}
