//! The Kubernetes adapter against the API's responses, served over loopback
//! HTTP (no API server can run here): a Deployment `muejam/muejam-api` with
//! three revisions of its own and one ReplicaSet of another owner, jobs and
//! their pods' logs. Every request is recorded, so the tests check what
//! kubectl would have sent.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dr_core::*;
use dr_k8s::{Access, KubernetesDeployment};
use serde_json::{json, Value};

#[derive(Default)]
struct Cluster {
    requests: Vec<(String, String, String, String, Value)>,
    generation: i64,
    observed: i64,
    paused: bool,
    progressing_reason: Option<String>,
    jobs: Vec<Value>,
    forbidden: bool,
}

type Shared = Arc<Mutex<Cluster>>;

const UID: &str = "3c6e9a1e-0001-4b7e-9d35-000000000001";

fn rs(revision: u64, hash: &str, image: &str, owner: &str, cause: &str) -> Value {
    json!({
        "metadata": {
            "name": format!("muejam-api-{hash}"),
            "namespace": "muejam",
            "labels": {"app": "muejam-api", "pod-template-hash": hash},
            "annotations": {
                "deployment.kubernetes.io/revision": revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": "2",
                "kubernetes.io/change-cause": cause
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "muejam-api",
                                  "uid": owner, "controller": true}],
            "creationTimestamp": format!("2026-11-2{revision}T10:00:00Z")
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "muejam-api"}},
            "template": {
                "metadata": {"labels": {"app": "muejam-api", "pod-template-hash": hash}},
                "spec": {"containers": [{
                    "name": "api", "image": image,
                    "env": [{"name": "DJANGO_SETTINGS_MODULE", "value": "muejam.settings"}],
                    "ports": [{"containerPort": 8000}],
                    "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}
                }]}
            }
        }
    })
}

fn replica_sets() -> Vec<Value> {
    vec![
        rs(1, "5d8f7c9b4", "muejam/api:1.4.0", UID, "release 1.4.0"),
        rs(2, "6f9c8d7a5", "muejam/api:1.5.0", UID, "release 1.5.0"),
        rs(
            3,
            "7a1b2c3d4",
            "muejam/api:1.6.0",
            UID,
            "release 1.6.0 (bad)",
        ),
        // Matches the selector, owned by another deployment: not a revision.
        rs(9, "9e9e9e9e9", "someone/else:1", "another-uid", "not ours"),
    ]
}

fn deployment(c: &Cluster) -> Value {
    let mut conditions =
        vec![json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"})];
    if let Some(reason) = &c.progressing_reason {
        conditions.push(json!({"type": "Progressing", "status": "False", "reason": reason}));
    }
    json!({
        "metadata": {
            "name": "muejam-api", "namespace": "muejam", "uid": UID, "generation": c.generation,
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "kubernetes.io/change-cause": "release 1.6.0 (bad)"
            }
        },
        "spec": {
            "replicas": 2,
            "paused": c.paused,
            "selector": {"matchLabels": {"app": "muejam-api"}},
            "template": {
                "metadata": {"labels": {"app": "muejam-api"}},
                "spec": {"containers": [{
                    "name": "api", "image": "muejam/api:1.6.0",
                    "env": [{"name": "DJANGO_SETTINGS_MODULE", "value": "muejam.settings"},
                            {"name": "READ_ONLY_MODE", "value": "true"}]
                }]}
            }
        },
        "status": {"observedGeneration": c.observed, "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2, "conditions": conditions}
    })
}

fn record(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> bool {
    let mut c = s.lock().expect("lock");
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    c.requests.push((
        method.to_string(),
        uri.to_string(),
        header("content-type"),
        header("authorization"),
        serde_json::from_slice(body).unwrap_or(Value::Null),
    ));
    c.forbidden
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).expect("code"),
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": message, "reason": reason, "code": code}),
        ),
    )
        .into_response()
}

async fn deployment_route(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if record(&s, &method, &uri, &headers, &body) {
        return status(403, "Forbidden", "deployments.apps is forbidden: User \"arn:aws:sts::1:assumed-role/x\" cannot get resource");
    }
    if ns != "muejam" || name != "muejam-api" {
        return status(
            404,
            "NotFound",
            &format!("deployments.apps \"{name}\" not found"),
        );
    }
    let c = s.lock().expect("lock");
    Json(deployment(&c)).into_response()
}

async fn replica_set_list(
    State(s): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&s, &method, &uri, &headers, &Bytes::new());
    assert_eq!(
        q.get("labelSelector").map(String::as_str),
        Some("app=muejam-api")
    );
    Json(json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": replica_sets()}))
        .into_response()
}

async fn create_job(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&s, &method, &uri, &headers, &body);
    let job: Value = serde_json::from_slice(&body).expect("job");
    let mut c = s.lock().expect("lock");
    let name = job["metadata"]["name"].clone();
    if c.jobs.iter().any(|j| j["metadata"]["name"] == name) {
        return status(
            409,
            "AlreadyExists",
            &format!("jobs.batch {name} already exists"),
        );
    }
    let mut stored = job.clone();
    stored["status"] =
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    c.jobs.push(stored);
    (StatusCode::CREATED, Json(job)).into_response()
}

async fn read_job(
    State(s): State<Shared>,
    Path((_ns, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&s, &method, &uri, &headers, &Bytes::new());
    let c = s.lock().expect("lock");
    match c.jobs.iter().find(|j| j["metadata"]["name"] == json!(name)) {
        Some(j) => Json(j.clone()).into_response(),
        None => status(404, "NotFound", "no job"),
    }
}

async fn pods(
    State(s): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&s, &method, &uri, &headers, &Bytes::new());
    let job = q
        .get("labelSelector")
        .and_then(|l| l.strip_prefix("job-name="))
        .unwrap_or_default()
        .to_owned();
    Json(
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                "items": [{"metadata": {"name": format!("{job}-x7k2p"), "namespace": "muejam"}}]}),
    )
    .into_response()
}

async fn logs(
    State(s): State<Shared>,
    Path((_ns, pod)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&s, &method, &uri, &headers, &Bytes::new());
    if pod.contains("showmigrations") {
        "muejam\n [X] 0001_story_views\n [X] 0002_story_views_source\n [ ] 0003_featured_stories\n"
            .into_response()
    } else {
        "Operations to perform:\n  Target specific migration: 0002_story_views_source, from muejam\nRunning migrations:\n  Unapplying muejam.0003_featured_stories... OK\n"
            .into_response()
    }
}

async fn serve(cluster: Cluster) -> (KubernetesDeployment, Shared) {
    let shared: Shared = Arc::new(Mutex::new(cluster));
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(deployment_route).patch(deployment_route),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/replicasets",
            get(replica_set_list),
        )
        .route("/apis/batch/v1/namespaces/{ns}/jobs", post(create_job))
        .route("/apis/batch/v1/namespaces/{ns}/jobs/{name}", get(read_job))
        .route("/api/v1/namespaces/{ns}/pods", get(pods))
        .route("/api/v1/namespaces/{ns}/pods/{pod}/log", get(logs))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
    config.auth_info.token = Some("k8s-aws-v1.dGVzdA".to_owned().into());
    let client = kube::Client::try_from(config).expect("client");
    (KubernetesDeployment::new(Access::Client(client)), shared)
}

fn healthy() -> Cluster {
    Cluster {
        generation: 7,
        observed: 7,
        ..Cluster::default()
    }
}

fn muejam_api() -> DeploymentRef {
    DeploymentRef {
        namespace: "muejam".into(),
        name: "muejam-api".into(),
    }
}

#[tokio::test]
async fn rollout_undo_picks_the_previous_revision_as_kubectl_does_and_patches_it_back() {
    let (k8s, shared) = serve(healthy()).await;
    let status = k8s
        .describe_deployment(&muejam_api())
        .await
        .expect("describe");
    let numbers: Vec<u64> = status.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(
        numbers,
        [1, 2, 3],
        "the other owner's replica set is not a revision"
    );
    assert_eq!(status.current.revision, 3);
    assert_eq!(status.current.image, "muejam/api:1.6.0");
    assert_eq!(
        status.env.get("READ_ONLY_MODE").map(String::as_str),
        Some("true")
    );
    assert!(rollout_progress(&status.rollout).is_done());

    // No revision given: the one below the newest (kubectl's rsForRevision).
    let choice = undo_choice(
        &status.revisions,
        &status.current.template_hash,
        status.paused,
        None,
    )
    .expect("choice");
    let UndoChoice::RollBack { to } = choice else {
        panic!("{choice:?}")
    };
    assert_eq!((to.revision, to.image.as_str()), (2, "muejam/api:1.5.0"));
    // --to-revision=3 is where it already is; an unknown one is refused.
    assert!(matches!(
        undo_choice(
            &status.revisions,
            &status.current.template_hash,
            false,
            Some(3)
        ),
        Ok(UndoChoice::AlreadyThere { revision: 3 })
    ));
    assert!(matches!(
        undo_choice(
            &status.revisions,
            &status.current.template_hash,
            false,
            Some(7)
        ),
        Err(DrError::InvalidInput(_))
    ));

    let now = k8s.roll_back(&muejam_api(), &to).await.expect("undo");
    assert_eq!(now, 4, "the template that comes back takes the next number");
    let c = shared.lock().expect("lock");
    let (method, _uri, content_type, auth, body) = c
        .requests
        .iter()
        .rev()
        .find(|r| r.0 == "PATCH")
        .cloned()
        .expect("a patch");
    assert_eq!(method, "PATCH");
    assert_eq!(content_type, "application/json-patch+json");
    assert_eq!(auth, "Bearer k8s-aws-v1.dGVzdA", "the token is sent");
    let ops = body.as_array().expect("a JSON patch");
    assert_eq!(ops[0]["op"], "replace");
    assert_eq!(ops[0]["path"], "/spec/template");
    let template = &ops[0]["value"];
    assert_eq!(
        template["spec"]["containers"][0]["image"],
        "muejam/api:1.5.0"
    );
    assert_eq!(
        template["metadata"]["labels"],
        json!({"app": "muejam-api"}),
        "the hash label is not patched back"
    );
    assert_eq!(
        template["spec"]["containers"][0]["env"],
        json!([{"name": "DJANGO_SETTINGS_MODULE", "value": "muejam.settings"}]),
        "the whole template is replaced: an env var the bad release added goes"
    );
    assert_eq!(ops[1]["path"], "/metadata/annotations");
    assert_eq!(
        ops[1]["value"],
        json!({
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "kubernetes.io/change-cause": "release 1.5.0"
        }),
        "kubectl's annotationsToSkip stay the deployment's; the rest come from the replica set"
    );
}

#[tokio::test]
async fn a_paused_deployment_is_refused_and_a_stale_status_is_never_done() {
    let (k8s, _) = serve(Cluster {
        paused: true,
        ..healthy()
    })
    .await;
    let s = k8s
        .describe_deployment(&muejam_api())
        .await
        .expect("describe");
    assert!(s.paused);
    assert!(matches!(
        undo_choice(&s.revisions, &s.current.template_hash, s.paused, None),
        Err(DrError::Unsafe(_))
    ));

    // The spec changed (generation 8) and the controller has not seen it:
    // all replicas "updated" is about the old spec, not done — even with a
    // deadline exceeded reported for the old one.
    for reason in [None, Some("ProgressDeadlineExceeded".to_owned())] {
        let (k8s, _) = serve(Cluster {
            generation: 8,
            observed: 7,
            progressing_reason: reason.clone(),
            ..healthy()
        })
        .await;
        let s = k8s
            .describe_deployment(&muejam_api())
            .await
            .expect("describe");
        assert!(
            matches!(
                rollout_progress(&s.rollout),
                RolloutProgress::Waiting { .. }
            ),
            "{reason:?}: {:?}",
            rollout_progress(&s.rollout)
        );
    }
    // Seen, and past its deadline: failed.
    let (k8s, _) = serve(Cluster {
        progressing_reason: Some("ProgressDeadlineExceeded".into()),
        ..healthy()
    })
    .await;
    let s = k8s
        .describe_deployment(&muejam_api())
        .await
        .expect("describe");
    assert!(matches!(
        rollout_progress(&s.rollout),
        RolloutProgress::Failed { .. }
    ));
}

#[tokio::test]
async fn a_migration_runs_as_a_job_of_the_revision_and_a_retry_joins_it() {
    let (k8s, shared) = serve(healthy()).await;
    let job = MigrationJob {
        name: "rollback-1".into(),
        revision: 3,
        app: "muejam".into(),
        target: "0002_story_views_source".into(),
    };
    k8s.run_migration(&muejam_api(), &job).await.expect("job");
    k8s.run_migration(&muejam_api(), &job)
        .await
        .expect("the same job again is joined (409 AlreadyExists)");
    let state = k8s
        .migration_state(&muejam_api(), "rollback-1")
        .await
        .expect("state");
    let JobState::Succeeded { output } = state else {
        panic!("{state:?}")
    };
    assert!(
        output.contains("Unapplying muejam.0003_featured_stories... OK"),
        "{output}"
    );
    let created: Vec<Value> = shared
        .lock()
        .expect("lock")
        .requests
        .iter()
        .filter(|r| r.0 == "POST")
        .map(|r| r.4.clone())
        .collect();
    assert_eq!(created.len(), 2);
    let pod = &created[0]["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["image"], "muejam/api:1.6.0",
        "the revision that has the file"
    );
    assert_eq!(
        container["command"],
        json!([
            "python",
            "manage.py",
            "migrate",
            "muejam",
            "0002_story_views_source",
            "--no-input"
        ])
    );
    assert!(container.get("readinessProbe").is_none() && container.get("ports").is_none());
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(created[0]["spec"]["backoffLimit"], 0);
    assert!(
        pod["metadata"]["labels"].get("app").is_none(),
        "the job's pod does not join the deployment's selector"
    );

    let history = k8s
        .migrations(&muejam_api(), 3, "muejam")
        .await
        .expect("showmigrations");
    assert_eq!(
        history.applied,
        ["0001_story_views", "0002_story_views_source"]
    );
    assert_eq!(history.known.len(), 3);

    // A revision not in the history, a bad target: refused before any job.
    let before = shared.lock().expect("lock").requests.len();
    for bad in [
        MigrationJob {
            revision: 8,
            ..job.clone()
        },
        MigrationJob {
            target: "0002; drop".into(),
            ..job.clone()
        },
        MigrationJob {
            name: "Bad_Name".into(),
            ..job.clone()
        },
    ] {
        assert!(matches!(
            k8s.run_migration(&muejam_api(), &bad).await,
            Err(DrError::InvalidInput(_))
        ));
    }
    let c = shared.lock().expect("lock");
    assert!(
        c.requests[before..].iter().all(|r| r.0 != "POST"),
        "no job created"
    );
}

#[tokio::test]
async fn restart_and_env_are_strategic_merge_patches_of_every_container() {
    let (k8s, shared) = serve(healthy()).await;
    k8s.rollout_restart(&muejam_api()).await.expect("restart");
    k8s.set_env(&muejam_api(), "READ_ONLY_MODE", Some("true"))
        .await
        .expect("set");
    k8s.set_env(&muejam_api(), "READ_ONLY_MODE", None)
        .await
        .expect("unset");
    let c = shared.lock().expect("lock");
    let patches: Vec<(&str, &Value)> = c
        .requests
        .iter()
        .filter(|r| r.0 == "PATCH")
        .map(|r| (r.2.as_str(), &r.4))
        .collect();
    assert_eq!(patches.len(), 3);
    assert!(patches
        .iter()
        .all(|(ct, _)| *ct == "application/strategic-merge-patch+json"));
    assert!(patches[0].1["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_string());
    assert_eq!(
        patches[1].1["spec"]["template"]["spec"]["containers"],
        json!([{"name": "api", "env": [{"name": "READ_ONLY_MODE", "value": "true"}]}])
    );
    assert_eq!(
        patches[2].1["spec"]["template"]["spec"]["containers"],
        json!([{"name": "api", "env": [{"name": "READ_ONLY_MODE", "$patch": "delete"}]}])
    );
}

#[tokio::test]
async fn api_errors_have_stable_names() {
    let (k8s, _) = serve(healthy()).await;
    let missing = DeploymentRef {
        namespace: "muejam".into(),
        name: "muejam-apo".into(),
    };
    assert!(matches!(
        k8s.describe_deployment(&missing).await,
        Err(DrError::NotFound(_))
    ));
    assert!(matches!(
        k8s.describe_deployment(&DeploymentRef {
            namespace: "Muejam".into(),
            name: "x".into()
        })
        .await,
        Err(DrError::InvalidInput(_))
    ));
    let (k8s, _) = serve(Cluster {
        forbidden: true,
        ..healthy()
    })
    .await;
    match k8s.describe_deployment(&muejam_api()).await {
        Err(DrError::Internal(m)) => assert!(m.contains("access entry"), "{m}"),
        other => panic!("{other:?}"),
    }
}
