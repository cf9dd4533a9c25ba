//! `ceiling`: `ceil(yhat / capacity)`.

use super::spec::PolicyType;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ceiling;

impl PolicyType for Ceiling {
    const NAME: &'static str = "ceiling";
}
