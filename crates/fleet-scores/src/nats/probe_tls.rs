//! TLS for a probe that dials a server's pod address but verifies the
//! certificate against the Service's DNS name.
//!
//! The first probes of a new stack go to a ready endpoint of the client
//! Service (the pod IP) because the Service's name and cluster IP need
//! cluster DNS and kube-proxy to catch up first (issue 18). The server
//! certificate names the Services, not pod IPs (those change with every
//! restart), so the check is the full one — chain to the stack's CA,
//! validity, and a name the certificate covers — only the name is the
//! Service's instead of the dialed address. async-nats would verify the
//! dialed host, so this hands it a rustls configuration whose verifier
//! substitutes the name.

use std::path::Path;
use std::sync::Arc;

use async_nats::rustls;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProbeTlsError {
    #[error("reading the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("{0:?} is not a DNS name a certificate can carry")]
    Name(String),
    #[error("building the TLS verifier: {0}")]
    Verifier(String),
}

/// A client configuration trusting only the CA in `ca_file` and
/// verifying every server certificate against `name`.
pub fn verifying_name(ca_file: &Path, name: &str) -> Result<rustls::ClientConfig, ProbeTlsError> {
    let ca_err = |reason: String| ProbeTlsError::Ca {
        path: ca_file.display().to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| ca_err(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| ca_err(e.to_string()))?;
        roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ProbeTlsError::Verifier(e.to_string()))?;
    let name =
        ServerName::try_from(name.to_string()).map_err(|_| ProbeTlsError::Name(name.into()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeTlsError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FixedName { inner, name }))
        .with_no_client_auth();
    Ok(config)
}

/// WebPKI verification against a fixed name (see the module doc).
#[derive(Debug)]
struct FixedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialed: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
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
