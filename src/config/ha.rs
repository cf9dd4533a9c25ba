//! `ha:`: Prometheus HA pairs. Two (or more) Prometheus replicas scrape the same targets and
//! remote-write the same series, each with its own replica label (prometheus-operator's
//! `prometheus_replica`). promcast keeps one replica per cluster, the elected one, drops the
//! replica label so every replica feeds one series, and fails over when the elected replica
//! has sent nothing for `failover_timeout` (the scheme of Mimir's HA tracker).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{valid_label_name, PromDuration};

/// The file form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaSection {
    /// The label that names the pair (external label; prometheus-operator: `prometheus`).
    /// Series without it belong to one unnamed cluster. Kept on the stored series.
    pub cluster_label: String,
    /// The label that names the replica (prometheus-operator: `prometheus_replica`). Series
    /// without it are not deduplicated. Dropped from the stored series.
    pub replica_label: String,
    /// How long the elected replica may send nothing before another replica of its cluster
    /// is elected.
    pub failover_timeout: PromDuration,
    /// Clusters tracked at once; samples of a cluster beyond it are refused (400) while no
    /// tracked cluster has been idle for `failover_timeout`.
    pub max_clusters: usize,
}

impl Default for HaSection {
    fn default() -> Self {
        Self {
            cluster_label: "cluster".into(),
            replica_label: "__replica__".into(),
            failover_timeout: PromDuration(Duration::from_secs(30)),
            max_clusters: 100,
        }
    }
}

/// The runtime form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSpec {
    pub cluster_label: String,
    pub replica_label: String,
    pub failover_timeout: Duration,
    pub max_clusters: usize,
}

pub(super) fn validate(
    section: &HaSection,
    problem: &mut impl FnMut(String, String),
) -> Option<HaSpec> {
    let mut ok = true;
    for (key, name) in [
        ("cluster_label", &section.cluster_label),
        ("replica_label", &section.replica_label),
    ] {
        if !valid_label_name(name.as_bytes()) {
            problem(
                format!("ha.{key}"),
                format!("{name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            );
            ok = false;
        } else if name == "__name__" {
            problem(format!("ha.{key}"), "must not be __name__".into());
            ok = false;
        }
    }
    if ok && section.cluster_label == section.replica_label {
        problem(
            "ha.replica_label".into(),
            format!(
                "must differ from ha.cluster_label ({:?})",
                section.cluster_label
            ),
        );
        ok = false;
    }
    if section.failover_timeout.0 < Duration::from_secs(1) {
        problem(
            "ha.failover_timeout".into(),
            format!(
                "must be at least 1s (a few of Prometheus' remote-write batch deadlines, 5s each, is typical), got {}",
                section.failover_timeout
            ),
        );
        ok = false;
    }
    if section.max_clusters == 0 {
        problem("ha.max_clusters".into(), "must be at least 1".into());
        ok = false;
    }
    ok.then(|| HaSpec {
        cluster_label: section.cluster_label.clone(),
        replica_label: section.replica_label.clone(),
        failover_timeout: section.failover_timeout.0,
        max_clusters: section.max_clusters,
    })
}
