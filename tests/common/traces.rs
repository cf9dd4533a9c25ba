//! The real traces tests and benches read from `../shared/data` (beside the checkout).
//! Benches include this file with `#[path]`, so it depends on nothing.

/// The NASA trace's CSV file (`minute_index,requests`).
pub const NASA_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
);

/// A shared trace file's text; panics saying where the traces must be.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; the shared traces must sit beside the checkout"))
}

/// NASA KSC web server requests per minute (July-August 1995), in order, gaps skipped.
pub fn nasa_requests_per_minute() -> Vec<f64> {
    read(NASA_CSV)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .collect()
}
