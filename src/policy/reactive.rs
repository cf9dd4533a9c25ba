//! `reactive`: only the observed load, what an HPA on the metric does.

use super::spec::PolicyType;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reactive;

impl PolicyType for Reactive {
    const NAME: &'static str = "reactive";
    const PREDICTIVE: bool = false;
}
