//! Real data for unit tests: `../shared/data` beside the repository.

/// NASA HTTP requests per minute (July 1995), every value of the trace.
pub(crate) fn nasa_per_minute() -> Vec<f64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (../shared/data is needed for this test)"));
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .collect()
}

/// The values of one NAB file (`category/name.csv`, `timestamp,value`).
pub(crate) fn nab(file: &str) -> Vec<f32> {
    let path = format!(
        "{}/../shared/data/nab/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (../shared/data is needed for this test)"));
    text.lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next()?.trim().parse().ok())
        .collect()
}
