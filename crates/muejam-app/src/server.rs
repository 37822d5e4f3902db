//! One instance of the MueJam API: `/health` (200 only when a query through
//! the database record succeeds), `/version`, a read (`GET /stories`) and a
//! write (`POST /stories`) that `READ_ONLY_MODE` turns away with a
//! maintenance answer.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dr_core::DrError;
use serde::Deserialize;
use serde_json::json;

use crate::db::DatabaseAccess;

/// What one process is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub instance_id: String,
    pub revision: u64,
    pub image: String,
    /// A broken release: its health check answers 500.
    pub broken: bool,
    pub read_only: bool,
}

pub struct App {
    pub identity: Identity,
    pub db: DatabaseAccess,
}

/// `READ_ONLY_MODE` as Django settings read it (the rule the DR workflows
/// use too).
pub use dr_core::read_only_mode_on as read_only_from;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/stories", get(list_stories).post(create_story))
        .with_state(app)
}

fn answer(app: &App, status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = app.identity.instance_id.parse() {
        headers.insert("x-muejam-instance", v);
    }
    if let Ok(v) = app.identity.revision.to_string().parse() {
        headers.insert("x-muejam-revision", v);
    }
    response
}

fn failure(app: &App, e: &DrError) -> Response {
    answer(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "error": e.to_string(), "instance": app.identity.instance_id}),
    )
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.identity.broken {
        return answer(
            &app,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"status": "error", "error": format!("revision {} fails to start its workers", app.identity.revision)}),
        );
    }
    let probe = app
        .db
        .run(|client| async move {
            let row = client
                .query_one("SELECT pg_is_in_recovery(), inet_server_addr()::text", &[])
                .await?;
            Ok((row.get::<_, bool>(0), row.get::<_, Option<String>>(1)))
        })
        .await;
    match probe {
        Ok(((in_recovery, _), endpoint)) => answer(
            &app,
            StatusCode::OK,
            json!({
                "status": "ok",
                "instance": app.identity.instance_id,
                "revision": app.identity.revision,
                "database": format!("{}:{}", endpoint.address, endpoint.port),
                "database_read_only": in_recovery,
                "read_only_mode": app.identity.read_only,
            }),
        ),
        Err(e) => failure(&app, &e),
    }
}

async fn version(State(app): State<Arc<App>>) -> Response {
    answer(
        &app,
        StatusCode::OK,
        json!({
            "instance": app.identity.instance_id,
            "revision": app.identity.revision,
            "image": app.identity.image,
            "read_only_mode": app.identity.read_only,
        }),
    )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list_stories(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let rows = app
        .db
        .run(|client| async move {
            client
                .query(
                    "SELECT id, title, status FROM stories ORDER BY id DESC LIMIT $1",
                    &[&limit],
                )
                .await
        })
        .await;
    match rows {
        Ok((rows, _)) => {
            let stories: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({"id": r.get::<_, i64>(0), "title": r.get::<_, String>(1), "status": r.get::<_, String>(2)})
                })
                .collect();
            answer(&app, StatusCode::OK, json!({ "stories": stories }))
        }
        Err(e) => failure(&app, &e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStory {
    author_id: i64,
    title: String,
}

async fn create_story(State(app): State<Arc<App>>, body: Option<Json<NewStory>>) -> Response {
    if app.identity.read_only {
        return answer(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "MueJam is in maintenance: reading works, writing is paused for now"}),
        );
    }
    let Some(Json(story)) = body else {
        return answer(
            &app,
            StatusCode::BAD_REQUEST,
            json!({"error": "expected {\"author_id\": <id>, \"title\": <text>}"}),
        );
    };
    if story.title.trim().is_empty() || story.title.len() > 200 {
        return answer(
            &app,
            StatusCode::BAD_REQUEST,
            json!({"error": "a title is 1 to 200 characters"}),
        );
    }
    let written = app
        .db
        .run(|client| async move {
            let row = client
                .query_one(
                    "INSERT INTO stories (author_id, title) VALUES ($1, $2) RETURNING id",
                    &[&story.author_id, &story.title],
                )
                .await?;
            Ok(row.get::<_, i64>(0))
        })
        .await;
    match written {
        Ok((id, endpoint)) => answer(
            &app,
            StatusCode::CREATED,
            json!({"id": id, "database": format!("{}:{}", endpoint.address, endpoint.port)}),
        ),
        // The database refused the statement (a foreign key, a revoked grant).
        Err(DrError::Unsafe(message)) => {
            answer(&app, StatusCode::CONFLICT, json!({"error": message}))
        }
        Err(e) => failure(&app, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_mode_is_read_as_django_settings_do() {
        for on in ["true", "TRUE", "1", "yes", " on "] {
            assert!(read_only_from(Some(on)), "{on}");
        }
        for off in ["false", "0", "", "no", "maybe"] {
            assert!(!read_only_from(Some(off)), "{off}");
        }
        assert!(!read_only_from(None));
    }
}
