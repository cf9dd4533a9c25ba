//! The onnxruntime side of the LSTM backend (Cargo feature `gpu`): a batch worker.
//!
//! One OS thread owns the `Session` (`Session::run` needs `&mut`, and a mutex around it would
//! serialise callers anyway). Callers send requests on a bounded channel, each with its own
//! reply channel; the worker gathers requests into one batch until it holds `max_batch` rows,
//! `max_wait` has passed since the first, or every caller in flight is in it, runs it once, and answers each caller with its
//! rows (or the error). With CUDA asked for, the provider is registered with
//! `error_on_failure`, because onnxruntime otherwise falls back to the CPU silently; if that
//! fails the worker says so and runs the CPU provider, and [`OrtWorker::provider`] tells which
//! one runs. Every ort type stays in this file.
//!
//! The library is loaded dynamically (ort's `load-dynamic`): `inference.ort_library`, else
//! `ORT_DYLIB_PATH`; the PyPI `onnxruntime` wheel ships one as
//! `onnxruntime/capi/libonnxruntime.so.<version>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use super::contract::PlanShape;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct OrtOptions {
    /// The onnxruntime shared library; `None`: `ORT_DYLIB_PATH`.
    pub library: Option<PathBuf>,
    /// Ask for the CUDA execution provider.
    pub cuda: bool,
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Requests waiting for the worker; senders block beyond it.
    pub queue: usize,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            library: None,
            cuda: false,
            max_batch: 4096,
            max_wait: Duration::from_millis(5),
            queue: 1024,
        }
    }
}

/// The library path the options name (`ORT_DYLIB_PATH` when unset).
pub fn library_path(opts: &OrtOptions) -> Option<PathBuf> {
    opts.library
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
}

/// The process' one onnxruntime environment (onnxruntime allows one per process, and ort
/// ignores a second library path): the first library that loads is kept; another path later
/// is an error rather than silently the first library.
fn environment(path: &Path) -> Result<Environment, String> {
    static ENV: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);
    if !path.is_file() {
        return Err(format!(
            "onnxruntime library not found at {} (set inference.ort_library or ORT_DYLIB_PATH; \
             the PyPI wheel `onnxruntime` ships onnxruntime/capi/libonnxruntime.so.<version>)",
            path.display()
        ));
    }
    let mut env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((loaded, e)) = env.as_ref() {
        return if loaded == path {
            Ok(e.clone())
        } else {
            Err(format!(
                "onnxruntime is already loaded from {}; one library per process",
                loaded.display()
            ))
        };
    }
    let e = ort::init_from(path)
        .map_err(|e| format!("loading onnxruntime from {}: {e}", path.display()))?
        .with_name("promcast")
        .build()
        .map_err(|e| format!("onnxruntime environment: {e}"))?;
    *env = Some((path.to_owned(), e.clone()));
    Ok(e)
}

struct Request {
    rows: usize,
    input: Vec<f32>,
    reply: SyncSender<Result<Vec<f32>, String>>,
}

/// A running batch worker; dropping it stops the thread.
pub struct OrtWorker {
    tx: Option<SyncSender<Request>>,
    /// Callers between sending a request and receiving its answer: the worker stops waiting
    /// for company once every one of them is in the batch.
    in_flight: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
    provider: &'static str,
    shape: PlanShape,
}

impl std::fmt::Debug for OrtWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtWorker")
            .field("provider", &self.provider)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

fn session(env: &Environment, bytes: &[u8], cuda: bool) -> Result<Session, String> {
    let builder = Session::builder(env).map_err(|e| e.to_string())?;
    let builder = builder.with_intra_threads(1).map_err(|e| e.to_string())?;
    let mut builder = if cuda {
        builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| format!("CUDA execution provider: {e}"))?
    } else {
        builder
    };
    builder
        .commit_from_memory(bytes)
        .map_err(|e| format!("onnxruntime cannot load the model: {e}"))
}

impl OrtWorker {
    /// Loads the library, builds a session for `bytes` (CUDA when asked for and available,
    /// else CPU) and starts the worker thread.
    pub(super) fn start(bytes: &[u8], shape: PlanShape, opts: &OrtOptions) -> Result<Self, String> {
        let path = library_path(opts).ok_or_else(|| {
            "no onnxruntime library: set inference.ort_library or ORT_DYLIB_PATH".to_string()
        })?;
        let env = environment(&path)?;
        let (sess, provider) = if opts.cuda {
            match session(&env, bytes, true) {
                Ok(s) => (s, "cuda"),
                Err(e) => {
                    tracing::warn!(error = %e, "CUDA unavailable; onnxruntime runs on the CPU");
                    (session(&env, bytes, false)?, "cpu")
                }
            }
        } else {
            (session(&env, bytes, false)?, "cpu")
        };
        let (tx, rx) = sync_channel::<Request>(opts.queue.max(1));
        let (max_batch, max_wait) = (opts.max_batch.max(1), opts.max_wait);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let waiting = in_flight.clone();
        let handle = std::thread::Builder::new()
            .name("promcast-ort".into())
            .spawn(move || serve(sess, shape, rx, max_batch, max_wait, &waiting))
            .map_err(|e| format!("starting the onnxruntime worker: {e}"))?;
        tracing::info!(
            provider,
            max_batch,
            ?max_wait,
            "onnxruntime batch worker started"
        );
        Ok(Self {
            tx: Some(tx),
            in_flight,
            handle: Some(handle),
            provider,
            shape,
        })
    }

    /// `"cuda"` or `"cpu"`: the execution provider that really runs.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Runs `rows` rows (`[rows, window, features]`), batched with other callers' rows.
    pub(super) fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.shape.check_input(rows, input)?;
        let (reply, answer) = sync_channel(1);
        let tx = self
            .tx
            .as_ref()
            .ok_or("the onnxruntime worker is stopped")?;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = tx.send(Request {
            rows,
            input: input.to_vec(),
            reply,
        });
        let v = match sent {
            Ok(()) => answer.recv(),
            Err(_) => Ok(Err("the onnxruntime worker is gone".to_string())),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let v = v.map_err(|_| "the onnxruntime worker dropped the request".to_string())??;
        *out = v;
        Ok(())
    }
}

impl Drop for OrtWorker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    mut session: Session,
    shape: PlanShape,
    rx: Receiver<Request>,
    max_batch: usize,
    max_wait: Duration,
    in_flight: &AtomicUsize,
) {
    let per_out = shape.out_len();
    let mut batch: Vec<Request> = Vec::new();
    let mut input: Vec<f32> = Vec::new();
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + max_wait;
        let mut rows = first.rows;
        batch.push(first);
        // Wait for more rows only while some caller is still on its way: a lone caller
        // does not pay `max_wait`.
        while rows < max_batch && in_flight.load(Ordering::SeqCst) > batch.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => {
                    rows += r.rows;
                    batch.push(r);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        input.clear();
        for r in &batch {
            input.extend_from_slice(&r.input);
        }
        let result = run_once(&mut session, shape, rows, &input);
        match result {
            Ok(out) if out.len() == rows * per_out => {
                let mut at = 0;
                for r in batch.drain(..) {
                    let n = r.rows * per_out;
                    let _ = r.reply.send(Ok(out[at..at + n].to_vec()));
                    at += n;
                }
            }
            Ok(out) => {
                let e = format!(
                    "onnxruntime returned {} values for {rows} rows, expected {}",
                    out.len(),
                    rows * per_out
                );
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn run_once(
    session: &mut Session,
    shape: PlanShape,
    rows: usize,
    input: &[f32],
) -> Result<Vec<f32>, String> {
    shape.check_input(rows, input)?;
    let tensor = Tensor::<f32>::from_array(([rows, shape.window, shape.features], input.to_vec()))
        .map_err(|e| format!("building the input tensor: {e}"))?;
    let outputs = session
        .run(ort::inputs!["input" => tensor])
        .map_err(|e| format!("onnxruntime: {e}"))?;
    let (dims, values) = outputs[shape.output_index]
        .try_extract_tensor::<f32>()
        .map_err(|e| format!("reading the output: {e}"))?;
    let dims: Vec<usize> = dims.iter().map(|d| (*d).max(0) as usize).collect();
    shape.check_output(rows, &dims)?;
    Ok(values.to_vec())
}
