//! What can be wrong with a CA or certificate. Every variant names the
//! Secret and the key at fault and never includes key material.

use crate::score::InterpretError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("Secret {namespace}/{name} has no key {key}")]
    MissingKey {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error("Secret {namespace}/{name} key {key} does not hold {expected}")]
    Unreadable {
        namespace: String,
        name: String,
        key: &'static str,
        expected: &'static str,
    },
    #[error(
        "Secret {namespace}/{name}: the private key in tls.key does not belong to the certificate in tls.crt"
    )]
    KeyMismatch { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} key tls.crt is not a CA certificate (basicConstraints CA:TRUE is missing)"
    )]
    NotCa { namespace: String, name: String },
    #[error("Secret {namespace}/{name} key tls.crt expired at {not_after}")]
    Expired {
        namespace: String,
        name: String,
        not_after: String,
    },
    #[error("Secret {namespace}/{name} key tls.crt is not valid before {not_before}")]
    NotYetValid {
        namespace: String,
        name: String,
        not_before: String,
    },
    /// Certificate generation failed (rcgen); only our own input reaches
    /// it, so this is a bug or an unusable CA key type (reason says which).
    #[error("generating {what} for Secret {namespace}/{name}: {reason}")]
    Generate {
        namespace: String,
        name: String,
        what: &'static str,
        reason: String,
    },
}

impl TlsError {
    /// Short CamelCase label for condition reasons and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::MissingKey { .. } => "CaSecretKeyMissing",
            TlsError::Unreadable { .. } => "CaSecretUnreadable",
            TlsError::KeyMismatch { .. } => "CaKeyMismatch",
            TlsError::NotCa { .. } => "CaNotACa",
            TlsError::Expired { .. } => "CaExpired",
            TlsError::NotYetValid { .. } => "CaNotYetValid",
            TlsError::Generate { .. } => "CertificateGenerationFailed",
        }
    }
}

/// The Interpret reports a bad CA Secret as [`InterpretError::SecretInvalid`]
/// (reason `SecretInvalid`, which the reconciler reports as Stalled). The
/// `expected` text is the variant's static summary; the full message
/// (e.g. the expiry date) is [`TlsError`]'s Display.
impl From<TlsError> for InterpretError {
    fn from(e: TlsError) -> Self {
        let (namespace, name, key, expected) = match e {
            TlsError::MissingKey {
                namespace,
                name,
                key,
            } => (namespace, name, key, "value (the key is missing)"),
            TlsError::Unreadable {
                namespace,
                name,
                key,
                expected,
            } => (namespace, name, key, expected),
            TlsError::KeyMismatch { namespace, name } => (
                namespace,
                name,
                super::TLS_KEY,
                "private key matching tls.crt",
            ),
            TlsError::NotCa { namespace, name } => (
                namespace,
                name,
                super::TLS_CRT,
                "CA certificate (basicConstraints CA:TRUE)",
            ),
            TlsError::Expired {
                namespace, name, ..
            } => (
                namespace,
                name,
                super::TLS_CRT,
                "certificate that has not expired",
            ),
            TlsError::NotYetValid {
                namespace, name, ..
            } => (
                namespace,
                name,
                super::TLS_CRT,
                "certificate that is already valid",
            ),
            TlsError::Generate {
                namespace, name, ..
            } => (
                namespace,
                name,
                super::TLS_CRT,
                "certificate (generating it failed; see the reconciler log)",
            ),
        };
        InterpretError::SecretInvalid {
            namespace,
            name,
            key: key.to_string(),
            expected,
        }
    }
}
