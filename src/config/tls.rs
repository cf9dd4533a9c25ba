//! `tls:`: certificates each listener serves, and optionally the CA whose client
//! certificates it requires (mutual TLS).
//!
//! ```yaml
//! tls:
//!   http:                                  # --web.listen-address
//!     cert_file: /etc/promcast/tls/tls.crt   # PEM, the leaf first, then intermediates
//!     key_file: /etc/promcast/tls/tls.key    # PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
//!     client_ca_file: /etc/promcast/tls/ca.crt   # optional: clients must present a
//!                                                # certificate signed by it
//!   grpc:                                  # --grpc.listen-address (KEDA external scaler)
//!     cert_file: ...
//!     key_file: ...
//!     client_ca_file: ...                  # KEDA's `tlsClientCert`/`tlsClientKey`
//! ```
//!
//! The files are read and checked at start-up (and by `check-config`): a missing file, a file
//! without a certificate or key, or a key that does not belong to the certificate is a config
//! error naming its key path. While running they are re-read when they change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// The section as written in the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub http: Option<ListenerTlsSection>,
    pub grpc: Option<ListenerTlsSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsSection {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// One listener's TLS files, paths resolved against the config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

/// Validated TLS of both listeners.
#[derive(Debug, Clone, Default)]
pub struct TlsSpec {
    pub http: Option<ListenerTls>,
    pub grpc: Option<ListenerTls>,
}

pub(super) fn validate(
    section: &TlsSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> TlsSpec {
    let resolve = |p: &Path| super::paths::resolve_path(p, base_dir);
    let mut one = |name: &str, s: &ListenerTlsSection| -> Option<ListenerTls> {
        let files = ListenerTls {
            cert_file: resolve(&s.cert_file),
            key_file: resolve(&s.key_file),
            client_ca_file: s.client_ca_file.as_deref().map(resolve),
        };
        // Build it once now, so every problem shows at start-up with its key path.
        match server_config(&files, &[]) {
            Ok(_) => Some(files),
            Err(e) => {
                problem(format!("tls.{name}.{}", e.key()), e.to_string());
                None
            }
        }
    };
    TlsSpec {
        http: section.http.as_ref().and_then(|s| one("http", s)),
        grpc: section.grpc.as_ref().and_then(|s| one("grpc", s)),
    }
}

/// Why a listener's TLS files do not make a server configuration. `key()` is the config key
/// of the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error("{path}: {source}")]
    Rustls {
        key: &'static str,
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{path}: {what}")]
    ClientCa { path: PathBuf, what: String },
}

impl TlsError {
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. }
            | TlsError::Pem { key, .. }
            | TlsError::Rustls { key, .. } => key,
            TlsError::ClientCa { .. } => "client_ca_file",
        }
    }
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            key,
            path: path.to_owned(),
            what: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key,
            path: path.to_owned(),
            what: "no certificate (PEM `CERTIFICATE` block) in it".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "key_file")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        key: "key_file",
        path: path.to_owned(),
        what: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key (PEM PKCS#8, PKCS#1 or SEC1 block) in it".into()
            }
            e => format!("not a PEM private key: {e}"),
        },
    })
}

/// Builds a listener's server configuration from its files, advertising `alpn`.
pub fn server_config(files: &ListenerTls, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert_file, "cert_file")?;
    let key = private_key(&files.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            key: "cert_file",
            path: files.cert_file.clone(),
            source,
        })?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(path, "client_ca_file")? {
                roots.add(c).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    what: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    what: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rustls {
            key: "key_file",
            path: files.key_file.clone(),
            source,
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(dir: &Path, yaml: &str) -> Result<TlsSpec, Vec<(String, String)>> {
        let section: TlsSection = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let spec = validate(&section, Some(dir), &mut |p, m| problems.push((p, m)));
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn files_are_checked_and_problems_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        write("a.crt", &a.cert.pem());
        write("a.key", &a.signing_key.serialize_pem());
        write("b.key", &b.signing_key.serialize_pem());
        write("junk", "not PEM at all\n");

        let spec = tls(
            dir.path(),
            "http: { cert_file: a.crt, key_file: a.key }\n\
             grpc: { cert_file: a.crt, key_file: a.key, client_ca_file: a.crt }",
        )
        .unwrap();
        let http = spec.http.unwrap();
        assert_eq!(http.cert_file, dir.path().join("a.crt"), "resolved path");
        assert_eq!(
            spec.grpc.unwrap().client_ca_file,
            Some(dir.path().join("a.crt"))
        );

        let e = tls(
            dir.path(),
            "http: { cert_file: missing.crt, key_file: a.key }\n\
             grpc: { cert_file: a.crt, key_file: b.key }",
        )
        .unwrap_err();
        assert_eq!(e[0].0, "tls.http.cert_file", "{e:?}");
        assert!(e[0].1.contains("missing.crt"), "{e:?}");
        assert_eq!(
            e[1].0, "tls.grpc.key_file",
            "a key of another certificate: {e:?}"
        );

        let e = tls(
            dir.path(),
            "http: { cert_file: junk, key_file: a.key }\n\
             grpc: { cert_file: a.crt, key_file: junk, client_ca_file: junk }",
        )
        .unwrap_err();
        assert_eq!(e[0].0, "tls.http.cert_file", "{e:?}");
        assert!(e[0].1.contains("no certificate"), "{e:?}");
        assert_eq!(e[1].0, "tls.grpc.key_file", "{e:?}");
        assert!(e[1].1.contains("no private key"), "{e:?}");

        let e = tls(
            dir.path(),
            "grpc: { cert_file: a.crt, key_file: a.key, client_ca_file: junk }",
        )
        .unwrap_err();
        assert_eq!(e[0].0, "tls.grpc.client_ca_file", "{e:?}");
    }
}
