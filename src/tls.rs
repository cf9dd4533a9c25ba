//! TLS on the HTTP and gRPC listeners (rustls with the ring provider).
//!
//! - Certificates and keys come from PEM files ([`crate::config::ListenerTls`]), checked
//!   every [`RELOAD_CHECK`] and re-read when they change (cert-manager and the kubelet rotate
//!   a Secret's files in place); a pair that fails to load keeps the previous one serving.
//! - With `client_ca_file`, a client must present a certificate signed by that CA (KEDA's
//!   `tlsClientCert`, Prometheus' `tls_config.cert_file`); without one the handshake fails
//!   and no request is read.
//! - Handshakes run in their own tasks with a deadline ([`HANDSHAKE_TIMEOUT`]), at most
//!   [`MAX_HANDSHAKES`] at once, so a client that connects and stays silent holds neither the
//!   accept loop nor memory. Finished connections reach the server through a bounded
//!   channel: [`TlsListener`] is an `axum::serve::Listener` and a stream for tonic.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

use crate::config::{server_config, ListenerTls, TlsError};
pub use crate::telemetry::Listener;
use crate::telemetry::Telemetry;

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(10);
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 512;

/// ALPN of the HTTP listener (axum serves HTTP/1.1).
pub const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];
/// ALPN of the gRPC listener: gRPC over TLS is HTTP/2, negotiated by ALPN.
pub const GRPC_ALPN: &[&[u8]] = &[b"h2"];

/// What identifies a version of the files: modification time and length of each.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &ListenerTls) -> Stamp {
    [
        Some(&files.cert_file),
        Some(&files.key_file),
        files.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// A listener's current server configuration, re-read when its files change.
pub struct Acceptor {
    current: ArcSwap<ServerConfig>,
    files: ListenerTls,
    alpn: &'static [&'static [u8]],
    listener: Listener,
    telemetry: Arc<Telemetry>,
}

impl Acceptor {
    pub fn new(
        files: ListenerTls,
        alpn: &'static [&'static [u8]],
        listener: Listener,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Self>, TlsError> {
        let config = server_config(&files, alpn)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(config),
            files,
            alpn,
            listener,
            telemetry,
        }))
    }

    /// Re-reads the files; on failure the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let result = server_config(&self.files, self.alpn);
        match result {
            Ok(c) => {
                self.current.store(Arc::new(c));
                self.telemetry.tls_reloaded(self.listener, true);
                tracing::info!(listener = self.listener.as_str(), cert_file = %self.files.cert_file.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                self.telemetry.tls_reloaded(self.listener, false);
                tracing::error!(listener = self.listener.as_str(), error = %e, "TLS files changed but do not load; still serving the previous certificate");
                Err(e)
            }
        }
    }

    /// Checks the files every [`RELOAD_CHECK`] until the acceptor is dropped elsewhere.
    async fn watch(self: Arc<Self>) {
        let mut seen = stamp(&self.files);
        let mut tick = tokio::time::interval(RELOAD_CHECK);
        tick.tick().await;
        loop {
            tick.tick().await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            let now = stamp(&self.files);
            // A failed load keeps `seen`, so a half-written rotation is retried next time.
            if now != seen && self.reload().is_ok() {
                seen = now;
            }
        }
    }
}

/// A TCP listener whose connections come out TLS-terminated.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    /// Starts accepting on `tcp` (and watching the acceptor's files).
    pub fn new(tcp: TcpListener, acceptor: Arc<Acceptor>) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(acceptor.clone().watch());
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(Self {
            rx,
            local_addr,
            accept_task,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Arc<Acceptor>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(listener = acceptor.listener.as_str(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let tls = tokio_rustls::TlsAcceptor::from(acceptor.current.load_full());
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
            drop(permit);
            match result {
                Ok(Ok(s)) => {
                    let _ = tx.send((s, peer)).await;
                }
                Ok(Err(e)) => {
                    acceptor.telemetry.tls_handshake_failed(acceptor.listener);
                    tracing::debug!(listener = acceptor.listener.as_str(), %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    acceptor.telemetry.tls_handshake_failed(acceptor.listener);
                    tracing::debug!(listener = acceptor.listener.as_str(), %peer, "TLS handshake timed out");
                }
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Connections for tonic's `serve_with_incoming`.
impl tokio_stream::Stream for TlsListener {
    type Item = io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(|(s, _)| Ok(s)))
    }
}
