//! Checks the sections' validation shares: counts that must be positive, durations in steps.

use std::time::Duration;

/// Reports `SECTION.KEY: must be at least 1` for each zero value.
pub(super) fn at_least_one(
    section: &str,
    values: &[(&str, usize)],
    problem: &mut impl FnMut(String, String),
) {
    for (key, v) in values {
        if *v == 0 {
            problem(format!("{section}.{key}"), "must be at least 1".into());
        }
    }
}

/// Whole steps of `step_ms` in `d`, rounded down; 0 when the step is 0.
pub(super) fn whole_steps(d: Duration, step_ms: u64) -> usize {
    (d.as_millis() as u64).checked_div(step_ms).unwrap_or(0) as usize
}
