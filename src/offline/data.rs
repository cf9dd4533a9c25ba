//! Trace files for `backtest`, `train` and `simulate`: CSV (optionally gzipped) with a header
//! row, read into series of `(timestamp, value)` samples.
//!
//! - **Time**: the first column unless `time_column` names another. Each cell is unix seconds
//!   (integer or fractional, ≥ 10⁸), RFC 3339 (`2014-02-14T14:27:00Z`), `YYYY-MM-DD HH:MM:SS`
//!   (UTC, as NAB writes it), or a plain integer index (below 10⁸); with an index the spacing
//!   comes from `step` and the times carry no calendar meaning ([`Trace::calendar`] is false).
//! - **Values**: `columns` picks value columns by name; `["*"]` takes every column that is not
//!   the time or a key column (a wide file: one series per column); the default is the second
//!   column. An empty cell, `NaN` or anything unparsable is a gap: missing data, never zero.
//! - **Long format**: `keys` names columns whose values split the rows into series (e.g.
//!   Alibaba's `container_ip,request_type`); each key combination × value column is a series.
//! - A directory is read file by file (`*.csv`, `*.csv.gz`, sorted), with the same options.
//!
//! Samples keep their own timestamps; the consumer buckets them to its step exactly as the
//! agent's store does ([`Trace::bucketed`]: the last sample of a bucket wins).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How to read a trace file.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    pub time_column: Option<String>,
    /// Value columns; empty = the second column; `["*"]` = all non-time, non-key columns.
    pub columns: Vec<String>,
    /// Columns whose values split rows into series (long format).
    pub keys: Vec<String>,
    /// Spacing of index-timed rows (and the step traces are bucketed to when none is given).
    pub step: Option<Duration>,
    /// A column naming the members of a group (e.g. `container_ip`) whose values are summed
    /// into one series per group of the `keys`: each member's samples are bucketed to `step`
    /// (mean per bucket) and its last value carries over up to [`SUM_CARRY`] buckets, so a
    /// member that reports every few minutes counts once per bucket. Needs `step`.
    pub sum_over: Option<String>,
    /// Keep only rows whose column equals the value (`(column, value)` pairs, all must hold).
    pub filters: Vec<(String, String)>,
}

/// Buckets a member's last value stays in a sum (see [`CsvOptions::sum_over`]).
pub const SUM_CARRY: i64 = 2;

/// One series of a trace file.
#[derive(Debug, Clone)]
pub struct Trace {
    /// `file` or `file:column` or `file:column{key=value,...}`.
    pub name: String,
    /// Sample times, ms since the epoch (or index × step when not `calendar`), ascending.
    pub times_ms: Vec<i64>,
    /// NaN for gaps.
    pub values: Vec<f64>,
    /// True when the times are real calendar times (time-of-day features mean something).
    pub calendar: bool,
}

impl Trace {
    /// The median spacing of consecutive samples, if there are two.
    pub fn median_spacing_ms(&self) -> Option<i64> {
        let mut d: Vec<i64> = self
            .times_ms
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .collect();
        if d.is_empty() {
            return None;
        }
        let k = d.len() / 2;
        Some(*d.select_nth_unstable(k).1)
    }

    /// The trace on a regular grid of `step_ms`: `(first bucket, values)`, bucket = time /
    /// step, the last sample of a bucket wins (as in the agent's ring), empty buckets NaN.
    pub fn bucketed(&self, step_ms: i64) -> (i64, Vec<f32>) {
        let Some(&first) = self.times_ms.first() else {
            return (0, Vec::new());
        };
        let b0 = first.div_euclid(step_ms);
        let last = *self.times_ms.last().expect("non-empty");
        let n = (last.div_euclid(step_ms) - b0 + 1) as usize;
        let mut out = vec![f32::NAN; n];
        for (t, v) in self.times_ms.iter().zip(&self.values) {
            if v.is_finite() {
                out[(t.div_euclid(step_ms) - b0) as usize] = *v as f32;
            }
        }
        (b0, out)
    }

    /// Marks runs of at least `min_run` consecutive zeros as gaps (a monitoring outage
    /// recorded as zero load, e.g. NASA's 1-3 August 1995).
    pub fn zero_runs_as_gaps(&mut self, min_run: usize) {
        let n = self.values.len();
        let mut i = 0;
        while i < n {
            if self.values[i] == 0.0 {
                let j = (i..n).find(|&j| self.values[j] != 0.0).unwrap_or(n);
                if j - i >= min_run {
                    self.values[i..j].fill(f64::NAN);
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
}

/// Reads a file or every `*.csv` / `*.csv.gz` file of a directory.
pub fn read_traces(path: &Path, opts: &CsvOptions) -> Result<Vec<Trace>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_string());
                n.is_some_and(|n| n.ends_with(".csv") || n.ends_with(".csv.gz"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no *.csv or *.csv.gz files in {}", path.display());
        }
        let mut out = Vec::new();
        for f in files {
            out.extend(read_file(&f, opts)?);
        }
        return Ok(out);
    }
    read_file(path, opts)
}

/// Reads one CSV file (gzip is recognised by its magic bytes).
pub fn read_file(path: &Path, opts: &CsvOptions) -> Result<Vec<Trace>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .with_context(|| format!("decompressing {}", path.display()))?;
        s
    } else {
        String::from_utf8(raw).with_context(|| format!("{} is not UTF-8", path.display()))?
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    parse_csv(&text, &name, opts).with_context(|| format!("reading {}", path.display()))
}

fn split_row(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect()
}

/// Parses CSV text; `name` prefixes the series names.
pub fn parse_csv(text: &str, name: &str, opts: &CsvOptions) -> Result<Vec<Trace>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("empty file");
    };
    let cols = Layout::new(split_row(header.trim_start_matches('\u{feff}')), opts)?;
    // First pass: time cells, to decide index vs calendar.
    let rows: Vec<(usize, Vec<&str>)> = lines
        .map(|(i, l)| (i + 1, split_row(l)))
        .filter(|(_, cells)| {
            cols.filters
                .iter()
                .all(|(c, v)| cells.get(*c).is_some_and(|x| x == v))
        })
        .collect();
    let (parsed_times, calendar) = parse_times(&rows, cols.time_col)?;
    let step_ms = opts.step.map(|s| s.as_millis() as i64);
    if !calendar && step_ms.is_none() {
        bail!("the time column is a plain index: say its spacing with --step");
    }

    let series = collect_series(&rows, &parsed_times, &cols, step_ms);
    let series = match cols.member_col {
        Some(_) => sum_members(series, step_ms.expect("checked")),
        None => series,
    };
    Ok(into_traces(series, &cols, name, opts, calendar))
}

/// The columns of a CSV file that [`parse_csv`] reads, from its header and the options.
struct Layout<'a> {
    header: Vec<&'a str>,
    time_col: usize,
    /// Key columns, then the member column when summing over one.
    key_cols: Vec<usize>,
    member_col: Option<usize>,
    value_cols: Vec<usize>,
    /// `(column, value)` pairs a row must match.
    filters: Vec<(usize, &'a str)>,
}

impl<'a> Layout<'a> {
    /// Finds the columns `opts` names in `header`.
    fn new(header: Vec<&'a str>, opts: &'a CsvOptions) -> Result<Self> {
        let col = |n: &str| -> Result<usize> {
            header
                .iter()
                .position(|h| *h == n)
                .with_context(|| format!("no column {n:?} (columns: {})", header.join(", ")))
        };
        let time_col = match &opts.time_column {
            Some(n) => col(n)?,
            None => 0,
        };
        let mut key_cols: Vec<usize> = opts.keys.iter().map(|k| col(k)).collect::<Result<_>>()?;
        // The member column is the last key while reading; the groups drop it when summing.
        let member_col = match &opts.sum_over {
            Some(m) => {
                let c = col(m)?;
                if opts.step.is_none() {
                    bail!("summing over {m:?} needs a step to bucket to (--step)");
                }
                key_cols.retain(|k| *k != c);
                key_cols.push(c);
                Some(c)
            }
            None => None,
        };
        let value_cols: Vec<usize> = match opts.columns.as_slice() {
            [] => {
                let c = (0..header.len()).find(|c| *c != time_col && !key_cols.contains(c));
                vec![c.context("no value column besides the time and key columns")?]
            }
            [all] if all == "*" => (0..header.len())
                .filter(|c| *c != time_col && !key_cols.contains(c))
                .collect(),
            names => names.iter().map(|n| col(n)).collect::<Result<_>>()?,
        };
        if value_cols.is_empty() {
            bail!("no value column");
        }
        let filters: Vec<(usize, &str)> = opts
            .filters
            .iter()
            .map(|(c, v)| Ok((col(c)?, v.as_str())))
            .collect::<Result<_>>()?;
        Ok(Self {
            header,
            time_col,
            key_cols,
            member_col,
            value_cols,
            filters,
        })
    }

    /// The key columns that name a series (without the member column, which summing drops).
    fn series_keys(&self) -> &[usize] {
        if self.member_col.is_some() {
            &self.key_cols[..self.key_cols.len() - 1]
        } else {
            &self.key_cols[..]
        }
    }
}

/// The time cell of each row, and whether they are calendar times (rather than an index);
/// fails on an unreadable cell or a file that mixes both.
fn parse_times(rows: &[(usize, Vec<&str>)], time_col: usize) -> Result<(Vec<Time>, bool)> {
    let mut calendar = None;
    let mut parsed_times = Vec::with_capacity(rows.len());
    for (line, cells) in rows {
        let cell = cells.get(time_col).copied().unwrap_or("");
        let t =
            parse_time(cell).with_context(|| format!("line {line}: cannot read time {cell:?}"))?;
        match (calendar, t) {
            (None, Time::Index(_)) => calendar = Some(false),
            (None, Time::Ms(_)) => calendar = Some(true),
            (Some(true), Time::Index(_)) | (Some(false), Time::Ms(_)) => {
                bail!("line {line}: time {cell:?} mixes an index with calendar times")
            }
            _ => {}
        }
        parsed_times.push(t);
    }
    Ok((parsed_times, calendar.unwrap_or(true)))
}

/// Groups the rows' samples by (key values, value column); unparsable values are gaps.
fn collect_series(
    rows: &[(usize, Vec<&str>)],
    times: &[Time],
    cols: &Layout<'_>,
    step_ms: Option<i64>,
) -> Columns {
    let mut series: Columns = BTreeMap::new();
    for ((_, cells), t) in rows.iter().zip(times) {
        let ts = match *t {
            Time::Ms(ms) => ms,
            Time::Index(i) => i * step_ms.expect("checked"),
        };
        let key: Vec<String> = cols
            .key_cols
            .iter()
            .map(|&k| cells.get(k).copied().unwrap_or("").to_string())
            .collect();
        for &c in &cols.value_cols {
            let v = cells
                .get(c)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .unwrap_or(f64::NAN);
            let e = series.entry((key.clone(), c)).or_default();
            e.0.push(ts);
            e.1.push(v);
        }
    }
    series
}

/// The grouped samples as named traces in time order.
fn into_traces(
    series: Columns,
    cols: &Layout<'_>,
    name: &str,
    opts: &CsvOptions,
    calendar: bool,
) -> Vec<Trace> {
    let key_cols = cols.series_keys();
    let mut out = Vec::new();
    for ((key, c), (times, values)) in series {
        // Rows are usually in time order; sort (stably) when they are not.
        let mut idx: Vec<usize> = (0..times.len()).collect();
        if !times.is_sorted() {
            idx.sort_by_key(|&i| times[i]);
        }
        let mut label = name.to_string();
        if cols.value_cols.len() > 1 || opts.columns.len() == 1 {
            label.push(':');
            label.push_str(cols.header[c]);
        }
        if !key_cols.is_empty() {
            let kv: Vec<String> = key_cols
                .iter()
                .zip(&key)
                .map(|(&k, v)| format!("{}={v}", cols.header[k]))
                .collect();
            label.push_str(&format!("{{{}}}", kv.join(",")));
        }
        out.push(Trace {
            name: label,
            times_ms: idx.iter().map(|&i| times[i]).collect(),
            values: idx.iter().map(|&i| values[i]).collect(),
            calendar,
        });
    }
    out
}

/// Per (key values, value column): sample times and values.
type Columns = BTreeMap<(Vec<String>, usize), (Vec<i64>, Vec<f64>)>;

/// Sums the members (the last key) of each group; see [`CsvOptions::sum_over`].
fn sum_members(series: Columns, step_ms: i64) -> Columns {
    let mut groups: BTreeMap<(Vec<String>, usize), BTreeMap<i64, f64>> = BTreeMap::new();
    for ((mut key, c), (times, values)) in series {
        key.pop();
        // mean per bucket for this member
        let mut buckets: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
        for (t, v) in times.iter().zip(&values) {
            if v.is_finite() {
                let e = buckets.entry(t.div_euclid(step_ms)).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
        let sum = groups.entry((key, c)).or_default();
        let mut iter = buckets.iter().peekable();
        while let Some((&b, &(total, n))) = iter.next() {
            let value = total / n as f64;
            let until = iter
                .peek()
                .map_or(b + SUM_CARRY, |(&next, _)| (next - 1).min(b + SUM_CARRY));
            for k in b..=until {
                *sum.entry(k).or_default() += value;
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, sums)| {
            let first = *sums.keys().next().unwrap_or(&0);
            let last = *sums.keys().next_back().unwrap_or(&0);
            let times: Vec<i64> = (first..=last).map(|b| b * step_ms).collect();
            let values = (first..=last)
                .map(|b| sums.get(&b).copied().unwrap_or(f64::NAN))
                .collect();
            (k, (times, values))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Time {
    Ms(i64),
    Index(i64),
}

/// Unix seconds at or above this are calendar times; below, an index.
const MIN_UNIX_SECONDS: f64 = 1e8;

fn parse_time(s: &str) -> Option<Time> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(if (i as f64) >= MIN_UNIX_SECONDS {
            Time::Ms(i * 1000)
        } else {
            Time::Index(i)
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Some(if f >= MIN_UNIX_SECONDS {
                Time::Ms((f * 1000.0).round() as i64)
            } else {
                Time::Index(f.round() as i64)
            });
        }
    }
    parse_datetime(s).map(Time::Ms)
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|±HH:MM]` → ms since the epoch (UTC when no offset).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    // A date alone (daily traces): midnight UTC.
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return parse_datetime(&format!("{s} 00:00:00"));
    }
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm) = (num(11..13)?, num(14..16)?);
    if b[13] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mm > 59 {
        return None;
    }
    let mut i = 16;
    let mut ss = 0;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b':') {
        ss = num(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let digits = &s[start..j];
            let padded = format!("{digits:0<3}");
            frac_ms = padded[..3].parse().ok()?;
            i = j;
        }
    }
    let offset_s = match &s[i..] {
        "" | "Z" | "z" => 0,
        tz if (tz.starts_with('+') || tz.starts_with('-')) && tz.len() == 6 => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let h: i64 = tz[1..3].parse().ok()?;
            let m: i64 = tz[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss - offset_s) * 1000 + frac_ms)
}

/// The first `days` days of the real NASA requests-per-minute trace, for tests.
#[cfg(test)]
pub(crate) fn nasa_days(days: usize) -> Trace {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/nasa_http_1995/nasa_requests_per_minute.csv");
    let opts = CsvOptions {
        step: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut t = read_traces(&path, &opts).unwrap().remove(0);
    t.times_ms.truncate(days * 1440);
    t.values.truncate(days * 1440);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data")
            .join(rel)
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_datetime("2014-02-14 14:27:00"),
            Some(1_392_388_020_000)
        );
        assert_eq!(
            parse_datetime("2014-02-14T14:27:00.250Z"),
            Some(1_392_388_020_250)
        );
        assert_eq!(
            parse_datetime("2014-02-14T16:27:00+02:00"),
            Some(1_392_388_020_000)
        );
        assert_eq!(parse_datetime("2014-13-14 14:27:00"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn index_time_needs_a_step_and_gaps_stay_gaps() {
        let text = "minute,requests\n0,5\n1,\n2,NaN\n3,7\n";
        let err = parse_csv(text, "x", &CsvOptions::default()).unwrap_err();
        assert!(err.to_string().contains("--step"), "{err}");
        let opts = CsvOptions {
            step: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let t = &parse_csv(text, "x", &opts).unwrap()[0];
        assert!(!t.calendar);
        assert_eq!(t.times_ms, [0, 60_000, 120_000, 180_000]);
        assert_eq!(t.values[0], 5.0);
        assert!(t.values[1].is_nan() && t.values[2].is_nan());
        let (b0, v) = t.bucketed(60_000);
        assert_eq!(b0, 0);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn reads_the_real_traces() {
        // NASA: index minutes.
        let nasa = read_traces(
            &data("nasa_http_1995/nasa_requests_per_minute.csv"),
            &CsvOptions {
                step: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(nasa.len(), 1);
        assert_eq!(nasa[0].values.len(), 84_332);
        let mut n = nasa[0].clone();
        let before = n.values.iter().filter(|v| v.is_nan()).count();
        n.zero_runs_as_gaps(60);
        let after = n.values.iter().filter(|v| v.is_nan()).count();
        assert!(
            after > before + 2000,
            "the August outage: {before} -> {after}"
        );

        // Azure: a wide file, one series per VM column.
        let azure = read_traces(
            &data("azure_vm_v1_sample/microsoft_avg_100.csv.gz"),
            &CsvOptions {
                columns: vec!["*".into()],
                step: Some(Duration::from_secs(300)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(azure.len(), 100);
        assert!(azure[0].name.starts_with("microsoft_avg_100.csv.gz:"));

        // Alibaba QPS: long format keyed by container and request type, unix seconds.
        let qps = read_traces(
            &data("alibaba_gentd26/cluster-trace-v2026-GenAI/qps.csv.gz"),
            &CsvOptions {
                time_column: Some("timestamp_anon".into()),
                columns: vec!["value".into()],
                keys: vec!["container_ip".into(), "request_type".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(qps.len(), 108);
        assert!(qps.iter().all(|t| t.calendar && t.times_ms.is_sorted()));
        // most containers report every few minutes; a few only once or twice
        let regular = qps
            .iter()
            .filter(|t| t.median_spacing_ms().is_some_and(|s| s >= 10_000))
            .count();
        assert!(regular > 90, "{regular}");

        // Alibaba QPS summed over containers, per request type: two series on a 5m grid.
        let total = read_traces(
            &data("alibaba_gentd26/cluster-trace-v2026-GenAI/qps.csv.gz"),
            &CsvOptions {
                time_column: Some("timestamp_anon".into()),
                columns: vec!["value".into()],
                keys: vec!["request_type".into()],
                sum_over: Some("container_ip".into()),
                step: Some(Duration::from_secs(300)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(total.len(), 2);
        let api = read_traces(
            &data("alibaba_gentd26/cluster-trace-v2026-GenAI/qps.csv.gz"),
            &CsvOptions {
                time_column: Some("timestamp_anon".into()),
                columns: vec!["value".into()],
                sum_over: Some("container_ip".into()),
                step: Some(Duration::from_secs(300)),
                filters: vec![("request_type".into(), "API Requests".into())],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(api.len(), 1);
        let gen = total
            .iter()
            .find(|t| t.name.contains("Generative"))
            .unwrap();
        assert_eq!(gen.median_spacing_ms(), Some(300_000));
        // the sum is larger than any single container's value at the same time
        let one = qps.iter().find(|t| t.name.contains("Generative")).unwrap();
        let (i, v) = one
            .values
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_finite())
            .unwrap();
        let b = one.times_ms[i].div_euclid(300_000) * 300_000;
        let j = gen.times_ms.iter().position(|t| *t == b).unwrap();
        assert!(gen.values[j] > *v, "{} vs {v}", gen.values[j]);

        // NAB: datetime strings.
        let nab = read_traces(
            &data("nab/data/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"),
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(nab[0].median_spacing_ms(), Some(300_000));
    }
}
