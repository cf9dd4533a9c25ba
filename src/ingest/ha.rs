//! Deduplication of Prometheus HA pairs (`ha:` in the config; `config::HaSpec`).
//!
//! Per cluster (the value of `ha.cluster_label`, "" where a series has none) one replica (the
//! value of `ha.replica_label`) is elected: the first one heard from. Its samples are kept,
//! with the replica label dropped so that every replica feeds the same series; the other
//! replicas' samples are dropped and their requests answered 2xx, so Prometheus has nothing
//! to retry. When the elected replica has sent nothing for `ha.failover_timeout`, the next
//! replica heard from is elected. Series without the replica label pass untouched.
//!
//! Time is the arrival time of requests (the local clock), not the samples' timestamps:
//! a replica that is alive but lagging behind keeps its election.

use std::sync::Mutex;

use hashbrown::HashMap;

use crate::config::HaSpec;
use crate::store::LabelRef;
use crate::telemetry::HaMetrics;

/// What becomes of a series' samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the elected replica (or a newly elected one): kept, without the replica label.
    Accept,
    /// From a replica that is not elected: dropped, answered 2xx.
    Duplicate,
    /// A new cluster while `ha.max_clusters` clusters are tracked and none is idle.
    TooManyClusters,
}

struct Elected {
    replica: Box<[u8]>,
    /// When the elected replica was last heard from (ms, local clock).
    last_ms: i64,
}

/// The elected replica of every cluster.
pub struct HaTracker {
    cluster_label: Box<[u8]>,
    replica_label: Box<[u8]>,
    failover_ms: i64,
    max_clusters: usize,
    clusters: Mutex<HashMap<Box<[u8]>, Elected>>,
    metrics: HaMetrics,
}

impl HaTracker {
    pub fn new(spec: &HaSpec, metrics: HaMetrics) -> Self {
        Self {
            cluster_label: spec.cluster_label.as_bytes().into(),
            replica_label: spec.replica_label.as_bytes().into(),
            failover_ms: spec.failover_timeout.as_millis() as i64,
            max_clusters: spec.max_clusters,
            clusters: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The label dropped from every kept series.
    pub fn replica_label(&self) -> &[u8] {
        &self.replica_label
    }

    /// The series' cluster and replica (label values), when it has a replica label.
    pub fn identify<'a>(&self, labels: &[LabelRef<'a>]) -> Option<(&'a [u8], &'a [u8])> {
        let (mut cluster, mut replica) = (&b""[..], None);
        for l in labels {
            if *l.name == *self.replica_label {
                replica = Some(l.value);
            } else if *l.name == *self.cluster_label {
                cluster = l.value;
            }
        }
        replica.map(|r| (cluster, r))
    }

    /// Whether samples from `replica` of `cluster` arriving at `now_ms` are kept, electing
    /// `replica` where the cluster has no live elected replica.
    pub fn check(&self, cluster: &[u8], replica: &[u8], now_ms: i64) -> Verdict {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = clusters.get_mut(cluster) {
            if *e.replica == *replica {
                e.last_ms = e.last_ms.max(now_ms);
                return Verdict::Accept;
            }
            if now_ms - e.last_ms <= self.failover_ms {
                return Verdict::Duplicate;
            }
            tracing::warn!(
                cluster = %String::from_utf8_lossy(cluster),
                from = %String::from_utf8_lossy(&e.replica),
                to = %String::from_utf8_lossy(replica),
                silent_ms = now_ms - e.last_ms,
                "ha: elected replica silent for longer than ha.failover_timeout, failing over"
            );
            self.metrics.failovers.inc();
            self.metrics.unelect(cluster, &e.replica);
            *e = Elected {
                replica: replica.into(),
                last_ms: now_ms,
            };
            self.metrics.elect(cluster, replica);
            return Verdict::Accept;
        }
        if clusters.len() >= self.max_clusters {
            // Make room by forgetting clusters whose replicas have all gone quiet.
            let before = clusters.len();
            clusters.retain(|c, e| {
                let live = now_ms - e.last_ms <= self.failover_ms;
                if !live {
                    self.metrics.unelect(c, &e.replica);
                }
                live
            });
            if clusters.len() == before {
                return Verdict::TooManyClusters;
            }
        }
        tracing::info!(
            cluster = %String::from_utf8_lossy(cluster),
            replica = %String::from_utf8_lossy(replica),
            "ha: replica elected"
        );
        clusters.insert(
            cluster.into(),
            Elected {
                replica: replica.into(),
                last_ms: now_ms,
            },
        );
        self.metrics.elect(cluster, replica);
        self.metrics.clusters.set(clusters.len() as i64);
        Verdict::Accept
    }

    pub fn max_clusters(&self) -> usize {
        self.max_clusters
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::telemetry::Telemetry;

    fn tracker(max_clusters: usize) -> (HaTracker, Telemetry) {
        let t = Telemetry::default();
        let spec = HaSpec {
            cluster_label: "cluster".into(),
            replica_label: "__replica__".into(),
            failover_timeout: Duration::from_secs(30),
            max_clusters,
        };
        (HaTracker::new(&spec, t.ha_metrics()), t)
    }

    #[test]
    fn elects_the_first_replica_and_fails_over_after_the_timeout() {
        let (ha, t) = tracker(10);
        assert_eq!(ha.check(b"a", b"r1", 1_000), Verdict::Accept);
        assert_eq!(ha.check(b"a", b"r2", 1_500), Verdict::Duplicate);
        assert_eq!(ha.check(b"a", b"r1", 20_000), Verdict::Accept);
        // r1 was last heard at 20 s: r2 is a duplicate up to 50 s, elected after.
        assert_eq!(ha.check(b"a", b"r2", 50_000), Verdict::Duplicate);
        assert_eq!(ha.check(b"a", b"r2", 50_001), Verdict::Accept);
        assert_eq!(ha.check(b"a", b"r1", 50_002), Verdict::Duplicate);
        // Another cluster elects its own.
        assert_eq!(ha.check(b"b", b"r1", 50_003), Verdict::Accept);
        let mut out = String::new();
        t.render(&mut out);
        assert!(
            out.contains("promcast_ha_elected_replica{cluster=\"a\",replica=\"r2\"} 1"),
            "{out}"
        );
        assert!(
            !out.contains("promcast_ha_elected_replica{cluster=\"a\",replica=\"r1\"}"),
            "{out}"
        );
        assert!(out.contains("promcast_ha_failovers_total 1"), "{out}");
        assert!(out.contains("promcast_ha_clusters 2"), "{out}");
    }

    #[test]
    fn clusters_are_bounded_and_idle_ones_make_room() {
        let (ha, _t) = tracker(2);
        assert_eq!(ha.check(b"a", b"r1", 0), Verdict::Accept);
        assert_eq!(ha.check(b"b", b"r1", 10_000), Verdict::Accept);
        assert_eq!(ha.check(b"c", b"r1", 20_000), Verdict::TooManyClusters);
        // `a` has been quiet for more than the timeout at 31 s: it is forgotten.
        assert_eq!(ha.check(b"c", b"r1", 31_000), Verdict::Accept);
        assert_eq!(ha.check(b"a", b"r2", 31_001), Verdict::TooManyClusters);
    }

    #[test]
    fn identifies_cluster_and_replica() {
        let (ha, _t) = tracker(2);
        let labels = [
            LabelRef::new("__name__", "up"),
            LabelRef::new("__replica__", "r2"),
            LabelRef::new("cluster", "a"),
        ];
        assert_eq!(ha.identify(&labels), Some((&b"a"[..], &b"r2"[..])));
        assert_eq!(ha.identify(&labels[..2]), Some((&b""[..], &b"r2"[..])));
        assert_eq!(ha.identify(&[labels[0], labels[2]]), None);
    }
}
