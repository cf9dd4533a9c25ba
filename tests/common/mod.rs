//! Shared helpers for tests that run real processes: free ports, a dependency-free blocking
//! HTTP/1.1 client, remote-write requests, polling with a deadline, a guard that stops child
//! processes, and the real traces (`traces`).
#![allow(dead_code)] // each test binary uses a different subset

pub mod browser;
pub mod tls;
pub mod traces;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1 (bind to 0, read it, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// `PROGRAM` from `$PATH`, else `/usr/bin/PROGRAM`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let p = Path::new("/usr/bin").join(program);
        p.is_file().then_some(p)
    })
}

/// The Prometheus binary; panics with the install hint when it is missing (the tests fail
/// rather than skip: `./scripts/test.sh` installs Debian's `prometheus`).
pub fn prometheus_binary() -> PathBuf {
    find_program("prometheus").unwrap_or_else(|| {
        panic!(
            "Prometheus not found on PATH or at /usr/bin/prometheus: \
             install Debian package prometheus (./scripts/test.sh does it)"
        )
    })
}

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A response: status code and body (chunked transfer coding removed).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET http://{addr}{path_and_query}` with `Connection: close` and short timeouts.
pub fn http_get(addr: SocketAddr, path_and_query: &str) -> Result<Response, String> {
    http_get_with(addr, path_and_query, &[])
}

/// [`http_get`] with extra request headers.
pub fn http_get_with(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\
         User-Agent: promcast-e2e\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&raw).map_err(|e| format!("GET {path_and_query} from {addr}: {e}"))
}

/// `POST http://{addr}{path}` with `headers` and a binary body; `Connection: close`.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: promcast-e2e\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&raw).map_err(|e| format!("POST {path} to {addr}: {e}"))
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_str = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|e| format!("chunk size {size_str:?}: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Milliseconds since the Unix epoch, as Prometheus timestamps samples.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Calls `f` every `every` until it returns `Ok`, or panics with `what` and the last error
/// once `timeout` has passed. The only place these tests sleep.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last error: {e}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// The sum of the values of the /metrics lines at `at` that start with `prefix` (0 when
/// none match or the endpoint does not answer).
pub fn metric_total(at: SocketAddr, prefix: &str) -> f64 {
    let body = http_get(at, "/metrics").map(|r| r.body).unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A child process whose stdout and stderr go to one log file.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and both output streams appended to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    /// `Err` with the exit status if the process has already exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited early: {status}", self.name)),
            Err(e) => Err(format!("{}: try_wait: {e}", self.name)),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` when it is still running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return None,
            }
        }
    }

    /// The log's last `max_lines` lines.
    pub fn log_tail(&self, max_lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("({e})"));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

/// Stops its processes in reverse start order (SIGTERM, then SIGKILL after a grace period),
/// also when the test panics; on panic it prints each process' log.
#[derive(Default)]
pub struct Procs {
    pub procs: Vec<Proc>,
}

impl Procs {
    pub fn get(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Starts Prometheus (Debian's 2.42) as process `prometheus`: configuration
    /// `dir/prometheus.yml`, TSDB `dir/tsdb`, log `dir/prometheus.log`, listening at `at`,
    /// with `flags` besides.
    pub fn start_prometheus(&mut self, dir: &Path, at: SocketAddr, flags: &[&str]) {
        self.start_prometheus_named("prometheus", dir, at, flags);
    }

    /// [`Procs::start_prometheus`] as process `name`, for tests that run several.
    pub fn start_prometheus_named(
        &mut self,
        name: &'static str,
        dir: &Path,
        at: SocketAddr,
        flags: &[&str],
    ) {
        let mut cmd = Command::new(prometheus_binary());
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={at}"))
        .args(flags);
        self.procs
            .push(Proc::spawn(name, cmd, dir.join("prometheus.log")));
    }

    /// Starts the real binary as process `promcast`: `promcast serve` with
    /// `dir/promcast.yml`, HTTP at `web`, log `dir/promcast.log`.
    pub fn start_promcast(&mut self, dir: &Path, web: SocketAddr) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promcast"));
        cmd.arg("serve")
            .arg("--config")
            .arg(dir.join("promcast.yml"))
            .args(["--web.listen-address", &web.to_string()]);
        self.procs
            .push(Proc::spawn("promcast", cmd, dir.join("promcast.log")));
    }

    /// Polls until process `name` answers 200 on `http://{at}/-/ready` (60 s), failing at
    /// once if it exits.
    pub fn wait_ready(&mut self, name: &str, at: SocketAddr) {
        poll(
            &format!("{name} /-/ready"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                self.get(name).check_running()?;
                http_get(at, "/-/ready").and_then(|r| match r.status {
                    200 => Ok(()),
                    s => Err(format!("HTTP {s}")),
                })
            },
        );
    }

    /// Everything the processes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in &self.procs {
            s.push_str(&format!(
                "\n----- {} log ({}) -----\n{}\n",
                p.name,
                p.log.display(),
                p.log_tail(200)
            ));
        }
        s
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            if p.terminate(Duration::from_secs(10)).is_none() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Writes OpenMetrics text (`om`, ending in `# EOF`) as TSDB blocks into `dir/tsdb` with
/// `promtool tsdb create-blocks-from openmetrics`, for a Prometheus started on `dir`.
pub fn backfill_openmetrics(dir: &Path, om: &str) {
    let promtool = find_program("promtool").expect("promtool (Debian package prometheus)");
    let om_file = dir.join("backfill.om");
    std::fs::write(&om_file, om).expect("write the OpenMetrics file");
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_file)
        .arg(dir.join("tsdb"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A remote-write series with `labels` and `(timestamp ms, value)` samples.
pub fn series(
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
) -> promcast::proto::prometheus::TimeSeries {
    use promcast::proto::prometheus as pb;
    pb::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| pb::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| pb::Sample { value, timestamp })
            .collect(),
    }
}

/// The headers of a remote-write 1.0 request, as Prometheus sends them.
pub const WRITE_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// A remote-write 1.0 body (snappy-compressed `WriteRequest`) of `series`.
pub fn write_body(series: Vec<promcast::proto::prometheus::TimeSeries>) -> Vec<u8> {
    use prost::Message;
    snap::raw::Encoder::new()
        .compress_vec(
            &promcast::proto::prometheus::WriteRequest {
                timeseries: series,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .expect("snappy compresses any body")
}

/// A body of one series `job:requests:rate1m{job}` with ten samples, one a second, ending
/// ten seconds ago.
pub fn recent_body(job: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = now / 1000 * 1000 - 20_000;
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (t + i * 1000, i as f64)).collect();
    write_body(vec![series(
        &[("__name__", "job:requests:rate1m"), ("job", job)],
        &samples,
    )])
}

/// POSTs `series` to `http://{at}/api/v1/write` as Prometheus does (remote write 1.0,
/// snappy); `Err` unless the answer is 2xx.
pub fn remote_write(
    at: SocketAddr,
    series: Vec<promcast::proto::prometheus::TimeSeries>,
) -> Result<(), String> {
    let r = http_post(at, "/api/v1/write", &WRITE_HEADERS, &write_body(series))?;
    if r.status / 100 == 2 {
        Ok(())
    } else {
        Err(format!("remote write: HTTP {}: {}", r.status, r.body))
    }
}

/// A series' identity as the JSON APIs give it (`{"name": "value", ...}`): its labels, sorted.
pub type Labels = std::collections::BTreeSet<(String, String)>;

pub fn labels_of(v: &serde_json::Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The series a Prometheus at `prom` holds that match `selector` (`/api/v1/series`).
pub fn prom_series(
    prom: SocketAddr,
    selector: &str,
) -> Result<std::collections::BTreeSet<Labels>, String> {
    let body = http_get(
        prom,
        &format!("/api/v1/series?match[]={}", urlencode(selector)),
    )?
    .body;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]
        .as_array()
        .ok_or(body.clone())?
        .iter()
        .map(labels_of)
        .collect())
}
