//! PromQL series selectors (`name{label="v", other=~"re.*"}`), parsed with `promql-parser`.

use std::fmt;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};

/// A parsed instant-vector selector. Matching follows Prometheus: a missing label reads as
/// the empty string, regexes are fully anchored.
#[derive(Debug, Clone)]
pub struct Selector {
    source: String,
    /// Alternatives (`or` inside braces); a series matches when every matcher of any group does.
    groups: Vec<Vec<Matcher>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid selector {text:?}: {reason}")]
    Parse { text: String, reason: String },
    #[error("{text:?} is not a plain series selector (no functions, ranges or offsets)")]
    NotASelector { text: String },
}

impl Selector {
    pub fn parse(source: &str) -> Result<Self, SelectorError> {
        let expr = parser::parse(source).map_err(|reason| SelectorError::Parse {
            text: source.to_owned(),
            reason,
        })?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(SelectorError::NotASelector {
                text: source.to_owned(),
            });
        };
        if vs.offset.is_some() || vs.at.is_some() {
            return Err(SelectorError::NotASelector {
                text: source.to_owned(),
            });
        }
        let mut base = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            base.push(Matcher::new(MatchOp::Equal, "__name__", name));
        }
        let groups = if vs.matchers.or_matchers.is_empty() {
            vec![base]
        } else {
            vs.matchers
                .or_matchers
                .iter()
                .map(|g| {
                    let mut g = g.clone();
                    g.extend(base.iter().cloned());
                    g
                })
                .collect()
        };
        Ok(Self {
            source: source.to_owned(),
            groups,
        })
    }

    /// A selector that matches every series (used by the forecasts API when none is given).
    pub fn all() -> Self {
        Self {
            source: "{}".to_owned(),
            groups: vec![Vec::new()],
        }
    }

    /// `get(name)` returns the label's value, or `None` when the series lacks it.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.groups
            .iter()
            .any(|group| group.iter().all(|m| m.is_match(get(&m.name).unwrap_or(""))))
    }

    /// The metric name this selector requires, if it pins one with `=`: lets the store skip
    /// most series on a string compare before any regex runs.
    pub fn required_name(&self) -> Option<&str> {
        let mut name = None;
        for group in &self.groups {
            let g = group
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))?;
            match name {
                None => name = Some(g.value.as_str()),
                Some(n) if n == g.value => {}
                Some(_) => return None,
            }
        }
        name
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a Prometheus label name.
pub fn valid_label_name(n: &[u8]) -> bool {
    !n.is_empty()
        && !n[0].is_ascii_digit()
        && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: a Prometheus metric name.
pub fn valid_metric_name(n: &[u8]) -> bool {
    !n.is_empty()
        && !n[0].is_ascii_digit()
        && n.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn all_four_operators() {
        let s = Selector::parse(
            r#"{__name__="job:http_requests:rate5m", job=~"web.*", env!="dev", zone!~"eu-.*"}"#,
        )
        .unwrap();
        let ok = [
            ("__name__", "job:http_requests:rate5m"),
            ("job", "web-1"),
            ("env", "prod"),
            ("zone", "us-1"),
        ];
        assert!(s.matches(labels(&ok)));
        let mut bad = ok;
        bad[1].1 = "api";
        assert!(!s.matches(labels(&bad)), "job regex is anchored");
        let mut bad = ok;
        bad[2].1 = "dev";
        assert!(!s.matches(labels(&bad)));
        let mut bad = ok;
        bad[3].1 = "eu-west";
        assert!(!s.matches(labels(&bad)));
        assert_eq!(s.required_name(), Some("job:http_requests:rate5m"));
    }

    #[test]
    fn name_outside_braces_and_missing_labels() {
        let s = Selector::parse(r#"up{instance=""}"#).unwrap();
        assert!(
            s.matches(labels(&[("__name__", "up")])),
            "missing label reads as empty"
        );
        assert!(!s.matches(labels(&[("__name__", "up"), ("instance", "a")])));
        assert!(!s.matches(labels(&[("__name__", "upx")])));
    }

    #[test]
    fn recording_rule_regex() {
        let s = Selector::parse(r#"{__name__=~".+:.+"}"#).unwrap();
        assert!(s.matches(labels(&[("__name__", "job:http_requests:rate5m")])));
        assert!(!s.matches(labels(&[("__name__", "http_requests_total")])));
        assert_eq!(s.required_name(), None);
    }

    #[test]
    fn rejects_non_selectors() {
        assert!(Selector::parse("rate(x[5m])").is_err());
        assert!(Selector::parse("x offset 5m").is_err());
        assert!(Selector::parse("{job=~\"(\"}").is_err());
        assert!(Selector::parse("x[5m]").is_err());
    }
}
