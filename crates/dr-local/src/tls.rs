//! The local stack's certificate authority: every cluster serves TLS with a
//! certificate it signs for the cluster's own address, and every local
//! caller verifies against it (`verify-full`), so the path production needs
//! against RDS is the path every local test takes.
//!
//! ```text
//! tls/ca.pem    the CA certificate (world-readable: libpq as the postgres user reads it)
//! tls/ca.key    its key, mode 0600, never leaves the home
//! ```

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dr_core::{DatabaseTls, DrError, DrResult};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const CA_NAME: &str = "MueJam DR local CA";

/// A certificate and its private key, PEM-encoded.
pub struct IssuedCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

/// The CA of one home.
pub struct LocalCa {
    dir: PathBuf,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("dir", &self.dir).finish()
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DrError {
    DrError::Internal(format!("{what} {}: {e}", path.display()))
}

fn tls_error(what: &str, e: rcgen::Error) -> DrError {
    DrError::Internal(format!("{what}: {e}"))
}

/// The CA's parameters: always the same, so that a reloaded key signs
/// certificates that chain to the stored CA certificate.
fn ca_params() -> DrResult<CertificateParams> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error("CA parameters", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl LocalCa {
    /// Loads the CA in `dir`, creating it first when there is none. Two
    /// processes creating it at once both end with the same CA: each writes
    /// into a directory of its own and only one rename wins.
    pub fn load_or_create(dir: &Path) -> DrResult<Self> {
        if !dir.join(CA_KEY_FILE).exists() {
            let parent = dir
                .parent()
                .ok_or_else(|| DrError::Internal(format!("{} has no parent", dir.display())))?;
            let staging = tempfile::Builder::new()
                .prefix(".tls-")
                .tempdir_in(parent)
                .map_err(|e| io_error("making", parent, e))?;
            let key = KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
            let certificate = ca_params()?
                .self_signed(&key)
                .map_err(|e| tls_error("CA certificate", e))?;
            write_file(
                &staging.path().join(CA_KEY_FILE),
                &key.serialize_pem(),
                0o600,
            )?;
            write_file(&staging.path().join(CA_FILE), &certificate.pem(), 0o644)?;
            fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
                .map_err(|e| io_error("securing", staging.path(), e))?;
            let staged = staging.keep();
            if fs::rename(&staged, dir).is_err() {
                // Another process made it first: use theirs.
                let _ = fs::remove_dir_all(&staged);
            }
        }
        let key_path = dir.join(CA_KEY_FILE);
        let pem = fs::read_to_string(&key_path).map_err(|e| io_error("reading", &key_path, e))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| tls_error("reading the CA key", e))?;
        Ok(LocalCa {
            dir: dir.to_owned(),
            key,
        })
    }

    /// The CA certificate every local caller trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// The TLS policy of local callers: verify-full against this CA.
    pub fn policy(&self) -> DatabaseTls {
        DatabaseTls::verify_full(self.ca_file())
    }

    /// A server certificate for `names` (IP addresses or DNS names).
    pub fn issue_server(&self, names: &[String]) -> DrResult<IssuedCertificate> {
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| tls_error("server certificate names", e))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(|e| tls_error("server key", e))?;
        let issuer = Issuer::new(ca_params()?, &self.key);
        let certificate = params
            .signed_by(&key, &issuer)
            .map_err(|e| tls_error("signing a server certificate", e))?;
        Ok(IssuedCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes a file with a mode, replacing it atomically.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> DrResult<()> {
    let tmp = path.with_extension("tmp");
    (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    })()
    .map_err(|e| io_error("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reloaded_ca_signs_certificates_that_chain_to_its_stored_certificate() {
        let home = tempfile::tempdir().expect("tmp");
        let dir = home.path().join("tls");
        let first = LocalCa::load_or_create(&dir).expect("create");
        let again = LocalCa::load_or_create(&dir).expect("reload");
        assert_eq!(first.ca_file(), again.ca_file());
        let issued = again
            .issue_server(&["127.0.0.9".to_owned(), "localhost".to_owned()])
            .expect("issue");
        let roots = dr_postgres::tls::load_bundle(&again.ca_file()).expect("bundle");
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .expect("verifier");
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        let leaf =
            rustls::pki_types::CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes())
                .expect("pem");
        let ip = rustls::pki_types::ServerName::try_from("127.0.0.9").expect("name");
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_server_cert(&leaf, &[], &ip, &[], now)
            .expect("chains and names the address");
        let other = rustls::pki_types::ServerName::try_from("127.0.0.10").expect("name");
        assert!(verifier
            .verify_server_cert(&leaf, &[], &other, &[], now)
            .is_err());
        let key_mode = fs::metadata(dir.join(CA_KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
    }
}
