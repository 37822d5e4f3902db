//! The EKS bearer token, as `aws eks get-token` and aws-iam-authenticator
//! make it: an STS `GetCallerIdentity` request presigned (SigV4, query
//! parameters, 60 s) with the cluster's name in the signed header
//! `x-k8s-aws-id`, base64url-encoded without padding after `k8s-aws-v1.`.
//! The cluster's authenticator replays the request to STS to learn who
//! calls; the token is a credential and never logged.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use dr_core::{DrError, DrResult};
use secrecy::SecretString;

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// How long the presigned request is valid (aws-iam-authenticator's value;
/// EKS accepts the token for 15 minutes from its signing time).
pub const PRESIGN_SECONDS: u64 = 60;

/// The regional STS endpoint (the global one signs for us-east-1 only).
pub fn sts_url(region: &str) -> String {
    format!("https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15")
}

/// The presigned `GetCallerIdentity` URL for `cluster`.
pub fn presigned_url(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
) -> DrResult<String> {
    dr_core::validate_region(region)?;
    if cluster.is_empty()
        || cluster.len() > 100
        || !cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(DrError::InvalidInput(format!(
            "{cluster:?} is not an EKS cluster name (1-100 letters, digits, '-', '_')"
        )));
    }
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(PRESIGN_SECONDS));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| DrError::Internal(format!("EKS token signing parameters: {e}")))?
        .into();
    let url = sts_url(region);
    let host = format!("sts.{region}.amazonaws.com");
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        [("host", host.as_str()), (CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| DrError::Internal(format!("EKS token request: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| DrError::Internal(format!("signing the EKS token: {e}")))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(url.as_str())
        .body(())
        .map_err(|e| DrError::Internal(format!("EKS token request: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

/// The bearer token for `cluster`.
pub fn token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
) -> DrResult<SecretString> {
    let url = presigned_url(credentials, region, cluster, at)?;
    Ok(SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn credentials(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_owned),
            None,
            "test",
        )
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_naming_the_cluster() {
        let token = token(
            &credentials(Some("SESSION")),
            "us-east-1",
            "muejam-prod",
            at(),
        )
        .expect("token");
        let token = token.expose_secret();
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        assert!(!encoded.contains('='), "no padding");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .expect("base64url"),
        )
        .expect("utf-8");
        assert!(url.starts_with(
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Fus-east-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20261118T110640Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Security-Token=SESSION",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} not in {url}");
        }
        assert!(
            !url.contains("wJalrXUtnFEMI"),
            "the secret key never leaves"
        );
    }

    #[test]
    fn the_signature_covers_the_cluster_and_the_time() {
        let a = presigned_url(&credentials(None), "us-east-1", "a", at()).expect("a");
        let b = presigned_url(&credentials(None), "us-east-1", "b", at()).expect("b");
        let later = presigned_url(
            &credentials(None),
            "us-east-1",
            "a",
            at() + Duration::from_secs(1),
        )
        .expect("later");
        let signature = |u: &str| u.split("X-Amz-Signature=").nth(1).map(str::to_owned);
        assert_ne!(signature(&a), signature(&b));
        assert_ne!(signature(&a), signature(&later));
        assert_eq!(
            a,
            presigned_url(&credentials(None), "us-east-1", "a", at()).expect("again"),
            "deterministic for the same input"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for (region, cluster) in [("us-east-1", ""), ("us-east-1", "a/b"), ("nowhere", "a")] {
            assert!(
                presigned_url(&credentials(None), region, cluster, at()).is_err(),
                "{region} {cluster}"
            );
        }
    }
}
