//! Recorded history straight from Prometheus: one series over a lookback window, read with
//! the HTTP API's `query_range` in chunks of at most 10,000 points (Prometheus refuses more
//! than 11,000 per series and query), for `promcast tune --from-prometheus`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::data::Trace;

/// Points per `query_range` call.
const CHUNK: i64 = 10_000;

/// The series `selector` selects (exactly one) at `step` over the `lookback` before `end_ms`.
pub fn fetch(
    url: &str,
    selector: &str,
    lookback: Duration,
    step: Duration,
    end_ms: i64,
) -> Result<Trace> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the HTTP client")?;
    runtime.block_on(fetch_async(url, selector, lookback, step, end_ms))
}

async fn fetch_async(
    url: &str,
    selector: &str,
    lookback: Duration,
    step: Duration,
    end_ms: i64,
) -> Result<Trace> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let step_ms = (step.as_millis() as i64).max(1000);
    let end = end_ms.div_euclid(step_ms) * step_ms;
    let start = end - lookback.as_millis() as i64;
    let endpoint = format!("{}/api/v1/query_range", url.trim_end_matches('/'));
    let mut trace = Trace {
        name: format!("{url} {selector}"),
        times_ms: Vec::new(),
        values: Vec::new(),
        calendar: true,
    };
    let mut from = start;
    while from <= end {
        let to = (from + (CHUNK - 1) * step_ms).min(end);
        let body: serde_json::Value = client
            .get(&endpoint)
            .query(&[
                ("query", selector.to_string()),
                ("start", format!("{:.3}", from as f64 / 1e3)),
                ("end", format!("{:.3}", to as f64 / 1e3)),
                ("step", format!("{}", step_ms as f64 / 1e3)),
            ])
            .send()
            .await
            .with_context(|| format!("querying {endpoint}"))?
            .bytes()
            .await
            .with_context(|| format!("reading {endpoint}'s answer"))
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .with_context(|| format!("{endpoint} did not answer JSON"))
            })?;
        append(&body, selector, &mut trace)?;
        from = to + step_ms;
    }
    if trace.values.len() < 2 {
        bail!("{selector:?} has fewer than two samples in the last {lookback:?} at {url}");
    }
    Ok(trace)
}

/// Appends one `query_range` answer's samples; it must hold at most one series.
fn append(body: &serde_json::Value, selector: &str, trace: &mut Trace) -> Result<()> {
    if body["status"] != "success" {
        bail!("Prometheus answered {}", body);
    }
    let result = body["data"]["result"]
        .as_array()
        .context("no data.result in Prometheus' answer")?;
    match result.as_slice() {
        [] => Ok(()),
        [one] => {
            for p in one["values"].as_array().into_iter().flatten() {
                let t = p[0].as_f64().unwrap_or(f64::NAN);
                let v = p[1].as_str().and_then(|s| s.parse::<f64>().ok());
                if let (true, Some(v)) = (t.is_finite(), v) {
                    trace.times_ms.push((t * 1e3).round() as i64);
                    trace.values.push(v);
                }
            }
            Ok(())
        }
        many => bail!(
            "{selector:?} selects {} series; tune needs one (e.g. sum by () (...)): {}",
            many.len(),
            many.iter()
                .take(3)
                .map(|s| s["metric"].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_ambiguity_is_an_error() {
        let mut t = Trace {
            name: String::new(),
            times_ms: Vec::new(),
            values: Vec::new(),
            calendar: true,
        };
        let one = serde_json::json!({"status": "success", "data": {"result": [
            {"metric": {"__name__": "x"}, "values": [[60, "1.5"], [120, "NaN"], [180, "2"]]}
        ]}});
        append(&one, "x", &mut t).unwrap();
        assert_eq!(t.times_ms, [60_000, 120_000, 180_000]);
        assert_eq!(t.values[0], 1.5);
        assert!(t.values[1].is_nan());
        let two = serde_json::json!({"status": "success", "data": {"result": [
            {"metric": {"job": "a"}, "values": []}, {"metric": {"job": "b"}, "values": []}
        ]}});
        let e = append(&two, "x", &mut t).unwrap_err().to_string();
        assert!(e.contains("selects 2 series"), "{e}");
    }
}
