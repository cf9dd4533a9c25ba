//! KEDA external scaler (gRPC, `proto/externalscaler.proto`) on `--grpc.listen-address`.
//!
//! A ScaledObject trigger of type `external` (or `external-push`) names promcast's address
//! and a `target` from the `scaling:` config in its metadata. promcast answers from the latest
//! snapshot:
//! - `GetMetricSpec`: metric `promcast-<target>` with a per-replica target of 1, so that the
//!   HPA's `ceil(value / target)` is promcast's recommendation;
//! - `GetMetrics`: the recommended replicas (`metricValueFloat`, and the deprecated integer);
//! - `IsActive`: whether the recommendation is above 0 (with `min_replicas` 0 KEDA may then
//!   scale the workload to zero);
//! - `StreamIsActive`: the same, sent at once and again whenever it changes.
//!
//! When there is no usable recommendation (no series, no forecast yet, a stale snapshot, or a
//! target in `observe` mode) every call fails with a status that says why. It never answers 0
//! for "unknown": a 0 would scale production down (kedacore/keda#3065); an error makes KEDA
//! keep the current replica count (or apply the ScaledObject's `fallback`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::{Config, Denied, ScalingMode};
use crate::proto::externalscaler as pb;
use crate::proto::externalscaler::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use crate::snapshot::SnapshotCell;
use crate::store::Clock;
use crate::telemetry::{Listener, Telemetry};

/// The metadata key of a trigger that names the scaling target.
pub const TARGET_KEY: &str = "target";

/// How often `StreamIsActive` looks at the newest snapshot.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// The service; cheap to clone.
#[derive(Clone)]
pub struct Scaler {
    config: Arc<Config>,
    snapshots: Arc<SnapshotCell>,
    /// The agent's clock (recommendations' freshness is judged on it).
    clock: Clock,
}

impl Scaler {
    pub fn new(config: Arc<Config>, snapshots: Arc<SnapshotCell>, clock: Clock) -> Self {
        Self {
            config,
            snapshots,
            clock,
        }
    }

    /// Metric name KEDA registers with the HPA for a target.
    pub fn metric_name(target: &str) -> String {
        format!("promcast-{target}")
    }

    fn target_of(&self, r: &pb::ScaledObjectRef) -> Result<Arc<str>, Status> {
        let names = || {
            self.config
                .scaling
                .iter()
                .map(|s| &*s.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(name) = r.scaler_metadata.get(TARGET_KEY) else {
            return Err(Status::invalid_argument(format!(
                "the trigger's metadata must name a scaling target: `{TARGET_KEY}: <name>` (configured: {})",
                names()
            )));
        };
        match self.config.scaling.iter().find(|s| &*s.name == name) {
            Some(s) if s.mode == ScalingMode::Observe => Err(Status::failed_precondition(format!(
                "scaling target {name:?} is in observe mode: promcast computes and exports it but does not serve it to KEDA"
            ))),
            Some(s) => Ok(s.name.clone()),
            None => Err(Status::not_found(format!(
                "no scaling target {name:?} (configured: {})",
                names()
            ))),
        }
    }

    /// The target's current recommendation, or why there is none.
    fn desired(&self, target: &str) -> Result<u32, Status> {
        self.snapshots
            .load()
            .desired(target, self.clock.now_ms())
            .map_err(|e| Status::unavailable(format!("{target:?}: {e}")))
    }

    /// `IsActive`'s answer: whether the recommendation is above 0.
    fn active(&self, target: &str) -> Result<pb::IsActiveResponse, Status> {
        Ok(pb::IsActiveResponse {
            result: self.desired(target)? > 0,
        })
    }

    /// Serves until `shutdown` resolves. With `auth.grpc` configured, every call must carry
    /// the credentials in its `authorization` metadata, or it fails with `UNAUTHENTICATED`.
    /// Serves the connections of `incoming` (plain TCP, or TLS-terminated by
    /// [`crate::tls::TlsListener`]) until `shutdown` resolves.
    pub async fn serve<IO, IE>(
        self,
        incoming: impl tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
        telemetry: Arc<Telemetry>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error>
    where
        IO: tonic::transport::server::Connected
            + tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + Unpin
            + Send
            + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let auth = self.config.auth.grpc.clone();
        let check = move |req: Request<()>| -> Result<Request<()>, Status> {
            let Some(auth) = &auth else { return Ok(req) };
            let given = req.metadata().get("authorization").map(|v| v.as_bytes());
            match auth.check(given) {
                Ok(()) => Ok(req),
                Err(why) => {
                    telemetry.unauthorized(Listener::Grpc);
                    Err(Status::unauthenticated(match why {
                        Denied::Missing => "credentials required (authorization metadata)",
                        Denied::Wrong => "wrong credentials",
                    }))
                }
            }
        };
        tonic::transport::Server::builder()
            .add_service(ExternalScalerServer::with_interceptor(self, check))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

type ActiveStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    async fn is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::IsActiveResponse>, Status> {
        let target = self.target_of(request.get_ref())?;
        Ok(Response::new(self.active(&target)?))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let target = self.target_of(request.get_ref())?;
        // Fail the call itself when nothing is known yet.
        let first = self.active(&target)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STREAM_POLL);
            let (mut answer, mut last) = (Ok(first), None);
            loop {
                match answer {
                    Ok(now) if Some(now.result) != last => {
                        last = Some(now.result);
                        if tx.send(Ok(now)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(status) => {
                        // End the stream with the reason; KEDA reconnects.
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tx.closed() => return,
                }
                answer = this.active(&target);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_metric_spec(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::GetMetricSpecResponse>, Status> {
        let target = self.target_of(request.get_ref())?;
        #[allow(deprecated)]
        let spec = pb::MetricSpec {
            metric_name: Self::metric_name(&target),
            target_size: 1,
            target_size_float: 1.0,
        };
        Ok(Response::new(pb::GetMetricSpecResponse {
            metric_specs: vec![spec],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let r = request.get_ref();
        let object = r
            .scaled_object_ref
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("scaledObjectRef is missing"))?;
        let target = self.target_of(object)?;
        let d = self.desired(&target)?;
        let metric_name = if r.metric_name.is_empty() {
            Self::metric_name(&target)
        } else {
            r.metric_name.clone()
        };
        #[allow(deprecated)]
        let value = pb::MetricValue {
            metric_name,
            metric_value: d as i64,
            metric_value_float: d as f64,
        };
        Ok(Response::new(pb::GetMetricsResponse {
            metric_values: vec![value],
        }))
    }
}
