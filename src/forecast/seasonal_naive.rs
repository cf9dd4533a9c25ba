//! `seasonal_naive`: the value one season before, with a band from the errors the same rule
//! made on the series' own recent past ([`super::naive::lagged_forecast`]).

use super::model::{Ask, AtOrigin, Entry, Fit, Listed, ModelError, Window};
use super::naive::{lagged_fit, needed_for_lag};

/// `seasonal_naive`: the value one season before, with a band from past seasonal errors.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    ask: Ask,
    /// A fixed season in steps; `None`: the longest of the entry's seasons the history
    /// covers.
    season: Option<usize>,
}

impl SeasonalNaive {
    pub fn new(ask: Ask) -> Self {
        Self { ask, season: None }
    }

    /// With one fixed season (steps).
    pub fn with_season(ask: Ask, season: usize) -> Self {
        Self {
            ask,
            season: Some(season),
        }
    }

    /// The season used with `n` points of history, if the history covers one.
    pub fn season_for(&self, n: usize) -> Option<usize> {
        let covered = |p: &usize| n >= needed_for_lag(&self.ask, *p);
        match self.season {
            Some(p) => Some(p).filter(covered),
            None => self.ask.seasons.iter().rev().copied().find(covered),
        }
    }
}

impl Fit for SeasonalNaive {
    type Fitted = AtOrigin;

    fn points_needed(&self, w: &Window<'_>) -> usize {
        let n = w.values.len();
        if self.season_for(n).is_some() {
            return 0;
        }
        // Never 0 here: without a season the history covers, it is not ready.
        let p = self
            .season
            .or(self.ask.seasons.first().copied())
            .unwrap_or(1);
        needed_for_lag(&self.ask, p).saturating_sub(n).max(1)
    }

    fn fit(&self, w: &Window<'_>) -> Result<AtOrigin, ModelError> {
        let Some(season) = self.season_for(w.values.len()) else {
            return Err(ModelError::WarmingUp {
                points_needed: self.points_needed(w),
            });
        };
        lagged_fit(w.values, w.origin, season, &self.ask)
    }
}

impl Listed for SeasonalNaive {
    const RANK: u8 = 30;
    const FALLBACK: bool = true;

    fn for_entry(entry: &Entry<'_>) -> Result<Self, String> {
        Ok(Self::new(entry.ask.clone()))
    }

    /// The longest season the oldest origin's history covers, fixed for the backtest.
    fn candidate(&self, history: usize, _refit_every: usize) -> Option<Self> {
        let p = self
            .ask
            .seasons
            .iter()
            .rev()
            .copied()
            .find(|&p| history >= needed_for_lag(&self.ask, p))?;
        Some(Self::with_season(self.ask.clone(), p))
    }
}
