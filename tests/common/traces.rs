//! The real traces tests and benches read from `../shared/data` (beside the checkout).
//! Benches include this file with `#[path]`, so it depends on nothing.

/// NASA KSC web server requests per minute (July-August 1995), in order, gaps skipped.
pub fn nasa_requests_per_minute() -> Vec<f64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
    );
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; the shared traces must sit beside the checkout"))
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .collect()
}
