//! NAB's files: the `timestamp,value` series of each category, the labelled windows of
//! `combined_windows.json`, the `anomaly_score` column of a results file, and [`Series`],
//! one file loaded with its feature rows and naive bands.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::options::NabEvalOptions;
use super::score::nab_probation;
use crate::anomaly::{features, naive_band, FeatureVec};

/// Seconds since 1970 of `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub fn parse_ts(s: &str) -> Option<i64> {
    crate::offline::data::parse_datetime(s).map(|ms| ms.div_euclid(1000))
}

pub(super) struct Series {
    pub(super) category: String,
    pub(super) name: String,
    pub(super) key: String,
    pub(super) stamps: Vec<String>,
    /// The value column as written in the file.
    pub(super) value_text: Vec<String>,
    pub(super) values: Vec<f32>,
    pub(super) windows: Vec<(usize, usize)>,
    pub(super) probation: usize,
    pub(super) season: Option<usize>,
    pub(super) rows: Vec<Option<FeatureVec>>,
    pub(super) bands: Vec<Option<(f64, f64, f64)>>,
}

/// `timestamp,value` file: stamps and values as written, seconds, values.
pub(super) type RawSeries = (Vec<String>, Vec<String>, Vec<i64>, Vec<f32>);

pub(super) fn read_series(path: &Path) -> Result<RawSeries> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if !header.starts_with("timestamp") {
        bail!("{}: expected a timestamp,value header", path.display());
    }
    let (mut stamps, mut texts, mut ts, mut vals) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (a, b) = line
            .split_once(',')
            .with_context(|| format!("{}:{}: no comma", path.display(), i + 2))?;
        let t =
            parse_ts(a).with_context(|| format!("{}:{}: bad timestamp", path.display(), i + 2))?;
        let v: f64 = b.trim().parse().unwrap_or(f64::NAN);
        stamps.push(a.trim().to_string());
        texts.push(b.trim().to_string());
        ts.push(t);
        vals.push(v as f32);
    }
    Ok((stamps, texts, ts, vals))
}

/// The `anomaly_score` column of a NAB results file (`timestamp,value,anomaly_score,...`).
pub fn read_results(path: &Path) -> Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Some(col) = header.iter().position(|h| h.trim() == "anomaly_score") else {
        bail!("{}: no anomaly_score column", path.display());
    };
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v = line
            .split(',')
            .nth(col)
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("{}:{}: bad anomaly_score", path.display(), i + 2))?;
        out.push(v);
    }
    Ok(out)
}

fn season_of(ts: &[i64]) -> Option<usize> {
    if ts.len() < 3 {
        return None;
    }
    let mut d: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    let k = d.len() / 2;
    let step = *d.select_nth_unstable(k).1;
    (step > 0 && 86400 % step == 0 && 86400 / step >= 3).then(|| (86400 / step) as usize)
}

/// NAB's `combined_windows.json`: `{"<category>/<name>.csv": [[start, end], ...]}`.
pub type NabLabels = HashMap<String, Vec<Vec<String>>>;

/// Reads a labels file; errors name the path.
pub fn read_labels(path: &Path) -> Result<NabLabels> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected NAB's labels JSON, {{\"<category>/<name>.csv\": [[start, end], ...]}}",
            path.display()
        )
    })
}

/// Point indices `(first, last)` of `key`'s labelled windows (points with `start ≤ t ≤ end`,
/// as NAB's labeler marks them); windows without points are dropped.
pub fn window_indices(labels: &NabLabels, key: &str, ts: &[i64]) -> Result<Vec<(usize, usize)>> {
    let mut windows = Vec::new();
    for w in labels.get(key).map(|v| v.as_slice()).unwrap_or(&[]) {
        let (Some(a), Some(b)) = (
            w.first().and_then(|s| parse_ts(s)),
            w.get(1).and_then(|s| parse_ts(s)),
        ) else {
            bail!("labels of {key}: bad window {w:?}");
        };
        let l = ts.partition_point(|&t| t < a);
        let r = ts.partition_point(|&t| t <= b);
        if r > l {
            windows.push((l, r - 1));
        }
    }
    Ok(windows)
}

/// The categories to run: the given ones, else every sub-folder of `nab_dir` (sorted).
pub(super) fn categories(opts: &NabEvalOptions) -> Result<Vec<String>> {
    if let Some(c) = &opts.categories {
        return Ok(c.clone());
    }
    let dir = &opts.nab_dir;
    let mut cats: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    cats.sort();
    Ok(cats)
}

pub(super) fn load(opts: &NabEvalOptions) -> Result<Vec<Series>> {
    let labels = read_labels(&opts.labels)?;
    let cats = categories(opts)?;
    let mut out = Vec::new();
    for cat in &cats {
        let dir = opts.nab_dir.join(cat);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".csv"))
            .collect();
        names.sort();
        for name in names {
            let key = format!("{cat}/{name}");
            let (stamps, value_text, ts, values) = read_series(&dir.join(&name))?;
            let windows = window_indices(&labels, &key, &ts)
                .with_context(|| format!("in {}", opts.labels.display()))?;
            let season = season_of(&ts);
            let n = values.len();
            let mut rows = Vec::with_capacity(n);
            let mut bands = Vec::with_capacity(n);
            for t in 0..n {
                let band = naive_band(&values[..t]);
                bands.push(band);
                rows.push(features(&values[..=t], band, season));
            }
            out.push(Series {
                category: cat.clone(),
                name: name.trim_end_matches(".csv").to_string(),
                key,
                stamps,
                value_text,
                values,
                windows,
                probation: nab_probation(n),
                season,
                rows,
                bands,
            });
        }
    }
    Ok(out)
}
