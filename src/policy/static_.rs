//! `static`: a fixed count, the baseline every team starts from; simulation only.

use super::spec::{PolicyType, Settings};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Static {
    /// The count it keeps (`simulate`: `--static-replicas`, or enough for the mean demand).
    pub replicas: u32,
}

impl Default for Static {
    fn default() -> Self {
        Static { replicas: 1 }
    }
}

impl PolicyType for Static {
    const NAME: &'static str = "static";
    const PREDICTIVE: bool = false;
    const AGENT: bool = false;

    fn from_settings(get: Settings<'_>) -> Self {
        get("static_replicas").map_or_else(Self::default, |n| Static {
            replicas: n as u32,
        })
    }

    fn fixed(&self) -> Option<u32> {
        Some(self.replicas)
    }
}
