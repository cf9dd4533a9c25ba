//! `auth:`: credentials each listener requires (bearer token and/or HTTP basic auth), with
//! the secrets read from files, never written in the config itself.
//!
//! ```yaml
//! auth:
//!   http:                                  # --web.listen-address
//!     bearer_token_file: /etc/promcast/token
//!     basic_auth: { username: prometheus, password_file: /etc/promcast/password }
//!     unauthenticated_paths: [/-/healthy, /-/ready]   # the default: kubelet probes
//!   grpc:                                  # --grpc.listen-address (KEDA external scaler)
//!     bearer_token_file: /etc/promcast/grpc-token
//! ```
//!
//! When both are set, either credential is accepted. Secrets are read once, at start-up (and
//! by `check-config`); a missing or empty file is a config error naming its key path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The section as written in the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub http: Option<ListenerAuthSection>,
    pub grpc: Option<ListenerAuthSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerAuthSection {
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSection>,
    /// HTTP only: paths served without credentials (exact matches). Default: the probes.
    #[serde(default)]
    pub unauthenticated_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSection {
    pub username: String,
    pub password_file: PathBuf,
}

/// A secret read from a file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// The secret's bytes, for a client that sends it.
    pub(super) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Compares in time independent of where the inputs differ.
    fn matches(&self, given: &[u8]) -> bool {
        let want = &self.0;
        let mut diff = (want.len() ^ given.len()) as u8 | (want.len() != given.len()) as u8;
        for (i, w) in want.iter().enumerate() {
            diff |= w ^ given.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

/// What one listener requires.
#[derive(Debug, Clone)]
pub struct ListenerAuth {
    bearer: Option<Secret>,
    /// `username:password`, as basic auth encodes it.
    basic: Option<Secret>,
    /// Paths served without credentials (HTTP).
    pub open_paths: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header.
    Missing,
    /// A header that is not an accepted credential.
    Wrong,
}

impl ListenerAuth {
    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let Some(h) = authorization else {
            return Err(Denied::Missing);
        };
        let (scheme, rest) = match h.iter().position(|b| *b == b' ') {
            Some(i) => (&h[..i], trim(&h[i + 1..])),
            None => return Err(Denied::Wrong),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            if let Some(t) = &self.bearer {
                if t.matches(rest) {
                    return Ok(());
                }
            }
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            if let Some(b) = &self.basic {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .unwrap_or_default();
                if b.matches(&decoded) {
                    return Ok(());
                }
            }
        }
        Err(Denied::Wrong)
    }

    /// The `WWW-Authenticate` challenge to send with a 401.
    pub fn challenge(&self) -> &'static str {
        if self.basic.is_some() && self.bearer.is_none() {
            "Basic realm=\"promcast\", charset=\"UTF-8\""
        } else {
            "Bearer realm=\"promcast\""
        }
    }

    /// Whether `path` is served without credentials.
    pub fn is_open(&self, path: &str) -> bool {
        self.open_paths.iter().any(|p| p == path)
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Validated auth of both listeners.
#[derive(Debug, Clone, Default)]
pub struct AuthSpec {
    pub http: Option<ListenerAuth>,
    pub grpc: Option<ListenerAuth>,
}

fn default_open_paths() -> Vec<String> {
    vec!["/-/healthy".into(), "/-/ready".into()]
}

/// Reads a secret file (relative paths from the config's directory); a trailing newline is
/// not part of the secret.
pub(super) fn read_secret(path: &Path, base_dir: Option<&Path>) -> Result<Secret, String> {
    let path = super::paths::resolve_path(path, base_dir);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let s = trim(&bytes);
    if s.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret(s.into()))
}

pub(super) fn validate(
    section: &AuthSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> AuthSpec {
    let mut one = |name: &str, s: &ListenerAuthSection| -> Option<ListenerAuth> {
        let at = |key: &str| format!("auth.{name}.{key}");
        let mut ok = true;
        if s.bearer_token_file.is_none() && s.basic_auth.is_none() {
            problem(
                format!("auth.{name}"),
                "set bearer_token_file, basic_auth or both (or leave the listener out)".into(),
            );
            return None;
        }
        let bearer = s.bearer_token_file.as_ref().and_then(|p| {
            read_secret(p, base_dir)
                .map_err(|e| {
                    problem(at("bearer_token_file"), e);
                    ok = false;
                })
                .ok()
        });
        let basic = s.basic_auth.as_ref().and_then(|b| {
            if b.username.is_empty() || b.username.contains(':') {
                problem(
                    at("basic_auth.username"),
                    "must be non-empty and contain no ':'".into(),
                );
                ok = false;
                return None;
            }
            let pw = read_secret(&b.password_file, base_dir)
                .map_err(|e| {
                    problem(at("basic_auth.password_file"), e);
                    ok = false;
                })
                .ok()?;
            let mut pair = b.username.as_bytes().to_vec();
            pair.push(b':');
            pair.extend_from_slice(&pw.0);
            Some(Secret(pair.into()))
        });
        let open_paths = match (&s.unauthenticated_paths, name) {
            (Some(_), "grpc") => {
                problem(
                    at("unauthenticated_paths"),
                    "applies to the HTTP listener only".into(),
                );
                ok = false;
                Vec::new()
            }
            (Some(p), _) => {
                if let Some(bad) = p.iter().find(|p| !p.starts_with('/')) {
                    problem(
                        at("unauthenticated_paths"),
                        format!("{bad:?} is not a path (must start with '/')"),
                    );
                    ok = false;
                }
                p.clone()
            }
            (None, "grpc") => Vec::new(),
            (None, _) => default_open_paths(),
        };
        ok.then_some(ListenerAuth {
            bearer,
            basic,
            open_paths,
        })
    };
    AuthSpec {
        http: section.http.as_ref().and_then(|s| one("http", s)),
        grpc: section.grpc.as_ref().and_then(|s| one("grpc", s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(dir: &Path, yaml: &str) -> Result<AuthSpec, Vec<(String, String)>> {
        let section: AuthSection = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let spec = validate(&section, Some(dir), &mut |p, m| problems.push((p, m)));
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn bearer_and_basic_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cr3t-token\n").unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let spec = auth(
            dir.path(),
            "http: { bearer_token_file: token, basic_auth: { username: prom, password_file: pw } }\n\
             grpc: { bearer_token_file: token }",
        )
        .unwrap();
        let http = spec.http.unwrap();
        assert_eq!(http.check(Some(b"Bearer s3cr3t-token")), Ok(()));
        assert_eq!(http.check(Some(b"bearer  s3cr3t-token ")), Ok(()));
        // "prom:hunter2"
        assert_eq!(http.check(Some(b"Basic cHJvbTpodW50ZXIy")), Ok(()));
        assert_eq!(
            http.check(Some(b"Basic cHJvbTpodW50ZXIz")),
            Err(Denied::Wrong)
        );
        assert_eq!(http.check(Some(b"Bearer s3cr3t-toke")), Err(Denied::Wrong));
        assert_eq!(
            http.check(Some(b"Bearer s3cr3t-token2")),
            Err(Denied::Wrong)
        );
        assert_eq!(http.check(Some(b"Basic !!!")), Err(Denied::Wrong));
        assert_eq!(http.check(Some(b"s3cr3t-token")), Err(Denied::Wrong));
        assert_eq!(http.check(None), Err(Denied::Missing));
        assert!(http.is_open("/-/ready") && !http.is_open("/api/v1/write"));
        let grpc = spec.grpc.unwrap();
        assert!(grpc.open_paths.is_empty());
        assert_eq!(
            grpc.check(Some(b"Basic cHJvbTpodW50ZXIy")),
            Err(Denied::Wrong)
        );
        // secrets never show in debug output
        assert!(!format!("{grpc:?}").contains("s3cr3t"));
    }

    #[test]
    fn problems_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let e = auth(
            dir.path(),
            "http: { bearer_token_file: missing }\ngrpc: { basic_auth: { username: a, password_file: empty }, unauthenticated_paths: [/x] }",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth.http.bearer_token_file",
                "auth.grpc.basic_auth.password_file",
                "auth.grpc.unauthenticated_paths"
            ],
            "{e:?}"
        );
        assert!(e[0].1.contains("missing"), "{e:?}");
        assert!(e[1].1.contains("empty"), "{e:?}");
        let e = auth(dir.path(), "http: {}").unwrap_err();
        assert_eq!(e[0].0, "auth.http");
    }
}
