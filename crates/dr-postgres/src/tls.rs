//! TLS for SQL connections, on rustls (the provider the AWS SDK already
//! builds, aws-lc-rs, named explicitly): `verify-full` checks the chain
//! against the configured CA bundle and the host name, `verify-ca` only the
//! chain, `require` encrypts without checking. A failed handshake is
//! recorded, so that a TLS problem is told apart from a database that does
//! not answer.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dr_core::{DatabaseTls, TlsMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate of a PEM bundle.
pub fn load_bundle(path: &Path) -> Result<RootCertStore, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("CA bundle {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!(
            "CA bundle {} holds no usable certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// The client configuration of a policy. `Disable` has none.
pub fn client_config(policy: &DatabaseTls) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifier = verifier(policy, &provider)?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// What checks the server's certificate under a policy.
fn verifier(
    policy: &DatabaseTls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    Ok(match policy.mode {
        TlsMode::Disable => return Err("TLS is disabled".to_owned()),
        TlsMode::Require => Arc::new(NoVerification {
            provider: Arc::clone(provider),
        }),
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let path = policy.ca_file.as_deref().ok_or_else(|| {
                format!(
                    "TLS mode {} needs a CA bundle ({} is not set)",
                    policy.mode,
                    DatabaseTls::CA_FILE_ENV
                )
            })?;
            let roots = load_bundle(path)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
            if policy.mode == TlsMode::VerifyCa {
                Arc::new(ChainOnly { inner: webpki })
            } else {
                webpki
            }
        }
    })
}

/// A connector for one connection attempt; it remembers whether the TLS
/// handshake failed.
#[derive(Clone)]
pub struct RecordingConnector {
    inner: MakeRustlsConnect,
    failed: Arc<AtomicBool>,
}

/// Whether the handshake of a [`RecordingConnector`] failed.
#[derive(Clone)]
pub struct FailureFlag(Arc<AtomicBool>);

impl FailureFlag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl RecordingConnector {
    pub fn failure_flag(&self) -> FailureFlag {
        FailureFlag(Arc::clone(&self.failed))
    }
}

/// The connector of a TLS policy (not `Disable`).
pub fn connector(policy: &DatabaseTls) -> Result<RecordingConnector, String> {
    Ok(RecordingConnector {
        inner: MakeRustlsConnect::new(client_config(policy)?),
        failed: Arc::new(AtomicBool::new(false)),
    })
}

impl<S> MakeTlsConnect<S> for RecordingConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = RecordingConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        match <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(&mut self.inner, domain) {
            Ok(inner) => Ok(RecordingConnect {
                inner,
                failed: Arc::clone(&self.failed),
            }),
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

pub struct RecordingConnect<T> {
    inner: T,
    failed: Arc<AtomicBool>,
}

impl<S, T> TlsConnect<S> for RecordingConnect<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let failed = self.failed;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let result = handshake.await;
            if result.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            result
        })
    }
}

/// `verify-ca`: the chain must reach the bundle; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the
        // chain was good.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `require`: encrypted, nothing about the certificate is checked (the
/// handshake's signatures still are).
#[derive(Debug)]
struct NoVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA in a PEM file and a leaf it signed for `name`.
    fn ca_and_leaf(dir: &Path, file: &str, name: &str) -> CertificateDer<'static> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        std::fs::write(dir.join(file), ca_cert.pem()).expect("write");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &Issuer::new(ca, &ca_key))
            .expect("leaf");
        leaf.der().clone()
    }

    fn verdict(mode: TlsMode, bundle: &Path, leaf: &CertificateDer<'_>, name: &str) -> bool {
        verifier(
            &DatabaseTls {
                mode,
                ca_file: Some(bundle.to_owned()),
            },
            &provider(),
        )
        .expect("verifier")
        .verify_server_cert(
            leaf,
            &[],
            &ServerName::try_from(name.to_owned()).expect("name"),
            &[],
            UnixTime::now(),
        )
        .is_ok()
    }

    #[test]
    fn each_mode_checks_what_libpq_checks() {
        let dir = tempfile::tempdir().expect("tmp");
        let leaf = ca_and_leaf(dir.path(), "ours.pem", "db-1.example");
        let _ = ca_and_leaf(dir.path(), "theirs.pem", "db-1.example");
        let ours = dir.path().join("ours.pem");
        let theirs = dir.path().join("theirs.pem");
        // (mode, bundle, name we connected to) -> accepted?
        let table = [
            (TlsMode::VerifyFull, &ours, "db-1.example", true),
            (TlsMode::VerifyFull, &ours, "db.muejam.internal", false),
            (TlsMode::VerifyFull, &theirs, "db-1.example", false),
            (TlsMode::VerifyCa, &ours, "db.muejam.internal", true),
            (TlsMode::VerifyCa, &theirs, "db-1.example", false),
            (TlsMode::Require, &theirs, "anything.example", true),
        ];
        for (mode, bundle, name, accepted) in table {
            assert_eq!(
                verdict(mode, bundle, &leaf, name),
                accepted,
                "{mode} with {} for {name}",
                bundle.display()
            );
        }
    }

    #[test]
    fn verifying_modes_need_a_bundle_and_a_bundle_needs_certificates() {
        let missing = client_config(&DatabaseTls {
            mode: TlsMode::VerifyFull,
            ca_file: None,
        })
        .expect_err("no bundle");
        assert!(missing.contains("DB_TLS_CA_FILE"), "{missing}");
        let dir = tempfile::tempdir().expect("tmp");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"not a certificate\n").expect("write");
        let bad = client_config(&DatabaseTls {
            mode: TlsMode::VerifyCa,
            ca_file: Some(empty),
        })
        .expect_err("no certificate");
        assert!(bad.contains("no usable certificate"), "{bad}");
        assert!(client_config(&DatabaseTls {
            mode: TlsMode::Require,
            ca_file: None
        })
        .is_ok());
    }
}
