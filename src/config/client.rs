//! How promcast's outgoing requests (remote write out, backfill's remote read) reach a
//! target that wants TLS and credentials: the keys Prometheus' own `remote_write` and
//! `remote_read` use, so a block can be copied from a Prometheus config.
//!
//! ```yaml
//! remote_write:
//!   - url: https://mimir.example/api/v1/push
//!     authorization: { credentials_file: /etc/promcast/mimir-token }   # type: Bearer
//!     # or basic_auth: { username: tenant-1, password_file: /etc/promcast/password }
//!     headers: { X-Scope-OrgID: tenant-1 }
//!     tls_config: { ca_file: ca.crt, cert_file: client.crt, key_file: client.key }
//! ```
//!
//! Secrets and certificates are read once, at start-up (and by `check-config`), relative
//! paths from the config's directory; a file that is missing, empty or not PEM is a config
//! error naming its key. The system's trust store (`/etc/ssl/certs`) is trusted as well as
//! `ca_file`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use super::auth::{read_secret, BasicAuthSection};

/// `authorization:`: sent as `Authorization: <type> <credentials>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSection {
    #[serde(rename = "type", default = "default_auth_type")]
    pub kind: String,
    pub credentials_file: PathBuf,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

/// `tls_config:` of an outgoing connection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsSection {
    /// CA certificates (PEM) trusted for the target, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for targets that require one; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accepts any server certificate. For tests only: it gives up what TLS is for.
    pub insecure_skip_verify: bool,
}

/// The client keys of one section, borrowed from it (remote write and backfill both have
/// them).
pub(super) struct ClientFields<'a> {
    pub url: &'a str,
    pub authorization: Option<&'a AuthorizationSection>,
    pub basic_auth: Option<&'a BasicAuthSection>,
    pub headers: &'a BTreeMap<String, String>,
    pub tls_config: Option<&'a ClientTlsSection>,
    pub timeout: Duration,
}

/// A validated outgoing HTTP client: built once, at validation, with its credentials and
/// headers as default headers (`Authorization` marked sensitive), its CA certificates and
/// client identity, and its timeout.
#[derive(Clone)]
pub struct ClientSpec {
    client: reqwest::Client,
    insecure: bool,
}

impl fmt::Debug for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpec")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl ClientSpec {
    /// `tls_config.insecure_skip_verify`: the server's certificate is not checked.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// The client (cheap to clone: clones share its connection pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Headers promcast sets itself (or that `authorization`/`basic_auth` set).
const RESERVED: [&str; 6] = [
    "authorization",
    "content-encoding",
    "content-type",
    "content-length",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
];

/// A PEM file named in the config.
fn read_pem(path: &Path, base_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let path = super::paths::resolve_path(path, base_dir);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(bytes)
}

/// Validates one section's client keys and builds its client; problems are reported under
/// `at` (e.g. `remote_write[0]`). `None` when the client does not build (reported).
pub(super) fn validate(
    fields: ClientFields<'_>,
    at: &str,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<ClientSpec> {
    let key = |k: &str| format!("{at}.{k}");
    match reqwest::Url::parse(fields.url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if !u.username().is_empty() || u.password().is_some() {
                problem(
                    key("url"),
                    "credentials in the URL are not used: set basic_auth with a password_file"
                        .into(),
                );
            }
        }
        Ok(u) => problem(key("url"), format!("unsupported scheme {:?}", u.scheme())),
        Err(e) => problem(key("url"), format!("invalid URL {:?}: {e}", fields.url)),
    }
    let mut headers = HeaderMap::new();
    if let Some(v) = credentials(&fields, at, base_dir, problem) {
        headers.insert(AUTHORIZATION, v);
    }
    for (name, value) in fields.headers {
        let k = key(&format!("headers.{name}"));
        let parsed = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        );
        match parsed {
            (Ok(n), _) if RESERVED.contains(&n.as_str()) => problem(
                k,
                "set by promcast (credentials go in authorization or basic_auth)".into(),
            ),
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            (Err(_), _) => problem(k, "not a valid header name".into()),
            (_, Err(_)) => problem(k, "holds characters a header cannot carry".into()),
        }
    }
    let builder = reqwest::Client::builder()
        .user_agent(concat!("promcast/", env!("CARGO_PKG_VERSION")))
        .timeout(fields.timeout);
    let builder = with_tls(builder, &fields, at, base_dir, problem);
    let insecure = fields.tls_config.is_some_and(|t| t.insecure_skip_verify);
    // What only the build checks (a key that does not match its certificate).
    match builder
        .default_headers(headers)
        .danger_accept_invalid_certs(insecure)
        .build()
    {
        Ok(client) => Some(ClientSpec { client, insecure }),
        Err(e) => {
            problem(
                key("tls_config"),
                format!("the HTTP client does not build: {e}"),
            );
            None
        }
    }
}

/// The `Authorization` header `authorization` or `basic_auth` ask for (marked sensitive),
/// with their secrets read from their files.
fn credentials(
    fields: &ClientFields<'_>,
    at: &str,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<HeaderValue> {
    let key = |k: &str| format!("{at}.{k}");
    let (value, file_key) = match (fields.authorization, fields.basic_auth) {
        (Some(_), Some(_)) => {
            problem(
                at.to_owned(),
                "set authorization or basic_auth, not both".into(),
            );
            return None;
        }
        (Some(a), None) => {
            if a.kind.is_empty() || !a.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                problem(
                    key("authorization.type"),
                    format!("{:?} is not a scheme", a.kind),
                );
            }
            let file_key = key("authorization.credentials_file");
            let secret = read_secret(&a.credentials_file, base_dir)
                .map_err(|e| problem(file_key.clone(), e))
                .ok()?;
            let mut v = format!("{} ", a.kind).into_bytes();
            v.extend_from_slice(secret.expose());
            (v, file_key)
        }
        (None, Some(b)) => {
            if b.username.is_empty() || b.username.contains(':') {
                problem(
                    key("basic_auth.username"),
                    "must be non-empty and without ':'".into(),
                );
            }
            let file_key = key("basic_auth.password_file");
            let password = read_secret(&b.password_file, base_dir)
                .map_err(|e| problem(file_key.clone(), e))
                .ok()?;
            use base64::Engine as _;
            let mut plain = format!("{}:", b.username).into_bytes();
            plain.extend_from_slice(password.expose());
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&plain)
            );
            (v.into_bytes(), file_key)
        }
        (None, None) => return None,
    };
    match HeaderValue::from_bytes(&value) {
        Ok(mut v) => {
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            problem(file_key, "holds characters a header cannot carry".into());
            None
        }
    }
}

/// `tls_config`: extra trusted CAs and the client identity.
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    fields: &ClientFields<'_>,
    at: &str,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> reqwest::ClientBuilder {
    let key = |k: &str| format!("{at}.{k}");
    let Some(t) = fields.tls_config else {
        return builder;
    };
    if let Some(ca) = &t.ca_file {
        match read_pem(ca, base_dir)
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) if certs.is_empty() => {
                problem(key("tls_config.ca_file"), "holds no PEM certificate".into())
            }
            Ok(certs) => {
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
            Err(e) => problem(key("tls_config.ca_file"), e),
        }
    }
    match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(k)) => {
            let pem = read_pem(cert, base_dir).and_then(|mut c| {
                c.push(b'\n');
                c.extend(read_pem(k, base_dir)?);
                Ok(c)
            });
            match pem.and_then(|p| reqwest::Identity::from_pem(&p).map_err(|e| e.to_string())) {
                Ok(i) => builder = builder.identity(i),
                Err(e) => problem(key("tls_config.cert_file"), e),
            }
        }
        (Some(_), None) => problem(key("tls_config.key_file"), "cert_file needs it".into()),
        (None, Some(_)) => problem(key("tls_config.cert_file"), "key_file needs it".into()),
        (None, None) => {}
    }
    builder
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(yaml: &str, dir: &std::path::Path) -> Vec<(String, String)> {
        match Config::from_yaml(yaml, "test", Some(dir)) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .iter()
                .map(|p| (p.path.clone(), p.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn credentials_headers_and_ca_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let ok = r#"
forecast: [{ selector: up }]
remote_write:
  - url: https://mimir.example/api/v1/push
    authorization: { credentials_file: token }
    headers: { X-Scope-OrgID: tenant-1 }
backfill:
  url: https://prometheus.example/api/v1/read
  basic_auth: { username: promcast, password_file: token }
"#;
        assert_eq!(problems(ok, dir.path()), Vec::new());
        let bad = r#"
forecast: [{ selector: up }]
remote_write:
  - url: https://user:pw@mimir.example/api/v1/push
    authorization: { credentials_file: missing }
    basic_auth: { username: a, password_file: token }
  - url: http://x/
    basic_auth: { username: 'a:b', password_file: empty }
    headers: { Content-Type: text/plain, 'bad name': x }
    tls_config: { ca_file: ca.crt, cert_file: token }
backfill:
  url: http://prometheus.example/api/v1/read
  authorization: { type: 'Bear er', credentials_file: missing }
"#;
        let got = problems(bad, dir.path());
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        for want in [
            "remote_write[0].url",
            "remote_write[0]",
            "remote_write[1].basic_auth.username",
            "remote_write[1].basic_auth.password_file",
            "remote_write[1].headers.Content-Type",
            "remote_write[1].headers.bad name",
            "remote_write[1].tls_config.ca_file",
            "remote_write[1].tls_config.key_file",
            "backfill.authorization.type",
            "backfill.authorization.credentials_file",
        ] {
            assert!(paths.contains(&want), "missing {want} in {got:#?}");
        }
        let missing = got
            .iter()
            .find(|(p, _)| p == "backfill.authorization.credentials_file")
            .unwrap();
        assert!(
            missing
                .1
                .contains(&dir.path().join("missing").display().to_string()),
            "a missing file names where it looked: {}",
            missing.1
        );
    }
}
