//! TLS for every backend and the health URLs, decided in one place: which roots are trusted (the
//! system's CA certificates plus a configured CA file) and which client certificate is shown,
//! read and checked here and handed to each library in the form it takes (a rustls
//! `ClientConfig` for hyper, PEM for tonic and the redis crate, checked paths for sqlx, which
//! reads the system's roots through the same rustls-native-certs).
//!
//! A file that cannot be used is an error naming the setting it came from, read before any
//! connection is tried.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Settings, key};

/// CA certificates from a configured file, with the setting they came from.
#[derive(Clone, Debug)]
pub struct CaFile {
    pub certs: Vec<CertificateDer<'static>>,
    /// The file as it was read (PEM), for the libraries that take PEM.
    pub pem: Vec<u8>,
}

/// A client certificate (chain) and its key, for servers that ask for one.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Both files as they were read (PEM).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

/// The system's CA certificates, read once a run.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system CA certificates: {e}");
        }
        found.certs
    })
}

fn read(path: &Path, what: &str, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        // "No such file or directory", without "(os error 2)".
        let e = e.to_string();
        let e = e.split(" (os error").next().unwrap_or_default();
        format!("cannot read the {what} {} ({setting}): {e}", path.display())
    })
}

/// The CA certificates of `path`, the file `setting` names: at least one, each usable as a CA.
pub fn ca_file(setting: &str, path: &Path) -> Result<CaFile, String> {
    let shown = path.display();
    let pem = read(path, "CA file", setting)?;
    let certs = certificates(&pem)
        .map_err(|e| format!("the CA file {shown} ({setting}) is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file {shown} ({setting}) holds no PEM certificate"
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    let (_, bad) = store.add_parsable_certificates(certs.iter().cloned());
    if bad > 0 {
        return Err(format!(
            "the CA file {shown} ({setting}): {bad} certificate(s) could not be used as a CA"
        ));
    }
    Ok(CaFile { certs, pem })
}

/// A client certificate from `cert` and its private key from `key` (PEM), each named by its
/// setting; both or neither.
pub fn identity(cert: (&str, &Path), key: (&str, &Path)) -> Result<Identity, String> {
    let (cert_setting, cert_path) = cert;
    let (key_setting, key_path) = key;
    let cert_pem = read(cert_path, "certificate file", cert_setting)?;
    let certs = certificates(&cert_pem).map_err(|e| {
        format!(
            "the certificate file {} ({cert_setting}) is not PEM: {e}",
            cert_path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "the certificate file {} ({cert_setting}) holds no PEM certificate",
            cert_path.display()
        ));
    }
    let key_pem = read(key_path, "key file", key_setting)?;
    // Never the key's text in an error, only where it is.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "the key file {} ({key_setting}) holds no PEM private key",
            key_path.display()
        )
    })?;
    Ok(Identity {
        certs,
        key,
        cert_pem,
        key_pem,
    })
}

/// The CA file a setting names, or None when it is empty.
pub fn configured_ca(settings: &Settings, setting: key::Text) -> Result<Option<CaFile>, String> {
    if settings.text(setting).is_empty() {
        return Ok(None);
    }
    ca_file(setting.name(), &settings.path(setting)).map(Some)
}

/// The client certificate and key two settings name: both, or neither.
pub fn configured_identity(
    settings: &Settings,
    cert: key::Text,
    key: key::Text,
) -> Result<Option<Identity>, String> {
    match (
        settings.text(cert).is_empty(),
        settings.text(key).is_empty(),
    ) {
        (true, true) => Ok(None),
        (false, false) => identity(
            (cert.name(), &settings.path(cert)),
            (key.name(), &settings.path(key)),
        )
        .map(Some),
        (false, true) => Err(format!("{} is set without {}", cert.name(), key.name())),
        (true, false) => Err(format!("{} is set without {}", key.name(), cert.name())),
    }
}

/// Every certificate of a PEM text (other sections, such as a key, are skipped).
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The system's roots plus those of `ca`.
pub fn roots(ca: Option<&CaFile>) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(ca) = ca {
        roots.add_parsable_certificates(ca.certs.iter().cloned());
    }
    roots
}

/// The system's roots plus those of `ca` as one PEM text, for the libraries that take a PEM
/// bundle in place of the system's roots (the redis crate, tonic).
pub fn roots_pem(ca: Option<&CaFile>) -> Vec<u8> {
    use base64::Engine;
    let mut out = Vec::new();
    for cert in system_roots() {
        let text = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in text.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    if let Some(ca) = ca {
        out.extend_from_slice(&ca.pem);
        out.push(b'\n');
    }
    out
}

/// rustls (ring, the provider everywhere in opsh) trusting [`roots`], showing `identity` to a
/// server that asks for a client certificate, offering `alpn` (e.g. `h2`).
pub fn client_config(
    ca: Option<&CaFile>,
    identity: Option<&Identity>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots(ca));
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| format!("the client certificate and key do not fit together: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Makes ring the process's default rustls provider, for the libraries that build their
/// configuration with `ClientConfig::builder()` (the redis crate). Harmless when called again.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_pem_file_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = ca_file("redis.ca_file", &missing).unwrap_err();
        assert!(e.starts_with("cannot read the CA file "), "{e}");
        assert!(e.contains("(redis.ca_file)"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = ca_file("qdrant.ca_file", &junk).unwrap_err();
        assert!(
            e.contains("(qdrant.ca_file) holds no PEM certificate"),
            "{e}"
        );
        let e = identity(("redis.cert_file", &junk), ("redis.key_file", &junk)).unwrap_err();
        assert!(
            e.contains("(redis.cert_file) holds no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn the_pem_bundle_holds_the_system_roots_and_the_ca_file() {
        let ca = ca_file(
            "qdrant.ca_file",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem"),
        )
        .unwrap();
        let bundle = roots_pem(Some(&ca));
        let back = certificates(&bundle).unwrap();
        assert_eq!(back.len(), system_roots().len() + 1);
        assert_eq!(back.last(), ca.certs.last());
    }
}
