//! [`HealthCheck`] over HTTP(S) with reqwest (rustls on aws-lc-rs, the
//! platform's certificate store): one GET, a timeout, an expected status.
//! No redirect is followed: a health URL that redirects is misconfigured,
//! and a 3xx is reported as the answer it is.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use dr_core::{validate_health_url, DrError, DrResult, HealthCheck, HealthObservation};

/// The most of a body kept in an observation (it goes into reports).
const DETAIL_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct HttpHealthCheck {
    client: reqwest::Client,
}

impl HttpHealthCheck {
    pub fn new() -> DrResult<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("muejam-dr-health/1")
            .build()
            .map_err(|e| DrError::Internal(format!("building the HTTP client: {e}")))?;
        Ok(HttpHealthCheck { client })
    }
}

/// The first characters of a body, on one line.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(DETAIL_CHARS)
        .collect();
    one_line.trim().to_owned()
}

#[async_trait]
impl HealthCheck for HttpHealthCheck {
    async fn check(
        &self,
        url: &str,
        timeout_ms: u64,
        expected_status: u16,
    ) -> DrResult<HealthObservation> {
        validate_health_url(url)?;
        let started = Instant::now();
        let answer = self
            .client
            .get(url)
            .timeout(Duration::from_millis(timeout_ms.clamp(100, 60_000)))
            .send()
            .await;
        let (status, healthy, detail) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                let healthy = status == expected_status;
                (
                    Some(status),
                    healthy,
                    (!healthy).then(|| format!("HTTP {status}: {}", excerpt(&body))),
                )
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {timeout_ms} ms")
                } else if e.is_connect() {
                    "the connection was refused or failed".to_owned()
                } else {
                    format!("the request failed: {}", excerpt(&e.to_string()))
                };
                (None, false, Some(why))
            }
        };
        Ok(HealthObservation {
            url: url.to_owned(),
            status,
            healthy,
            latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
            detail,
            checked_at: Utc::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server answering `reply` (or never, with `None`).
    async fn serve(reply: Option<&'static str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                match reply {
                    Some(r) => {
                        let _ = socket.write_all(r.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(5)).await,
                }
            }
        });
        format!("http://127.0.0.1:{port}/health")
    }

    #[tokio::test]
    async fn answers_are_classified() {
        let check = HttpHealthCheck::new().expect("client");
        let ok = serve(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        ))
        .await;
        let o = check.check(&ok, 2000, 200).await.expect("check");
        assert!(
            o.healthy && o.status == Some(200) && o.detail.is_none(),
            "{o:?}"
        );

        let down = serve(Some(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 16\r\nconnection: close\r\n\r\ndatabase\nis down",
        ))
        .await;
        let o = check.check(&down, 2000, 200).await.expect("check");
        assert!(!o.healthy && o.status == Some(503), "{o:?}");
        assert_eq!(o.detail.as_deref(), Some("HTTP 503: database is down"));

        let redirect = serve(Some(
            "HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ))
        .await;
        let o = check.check(&redirect, 2000, 200).await.expect("check");
        assert_eq!(o.status, Some(302), "a redirect is not followed");

        let silent = serve(None).await;
        let o = check.check(&silent, 300, 200).await.expect("check");
        assert!(!o.healthy && o.status.is_none(), "{o:?}");
        assert!(
            o.detail.as_deref().is_some_and(|d| d.contains("300 ms")),
            "{o:?}"
        );

        // Nothing listens there.
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            drop(l);
            format!("http://127.0.0.1:{port}/health")
        };
        let o = check.check(&refused, 1000, 200).await.expect("check");
        assert!(!o.healthy && o.status.is_none(), "{o:?}");

        assert_eq!(
            check
                .check("ftp://x/health", 1000, 200)
                .await
                .expect_err("bad url")
                .name(),
            "InvalidInput"
        );
    }
}
