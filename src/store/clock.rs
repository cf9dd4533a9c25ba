//! The agent's time. Everything that asks "what time is it" (ingest's idle tracking, the
//! forecast loop's step boundaries, the freshness of a scaling recommendation) asks the
//! store's [`Clock`]: the wall clock when serving, a faster one for `promcast demo`, which
//! replays a recorded trace at `--speed` minutes per second.

use std::time::Duration;

use super::now_ms;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Wall-clock ms when the clock read `start_ms`.
    wall_start_ms: i64,
    start_ms: i64,
    /// Clock ms per wall-clock ms (1 for the wall clock).
    speed: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::wall()
    }
}

impl Clock {
    /// The wall clock.
    pub const fn wall() -> Self {
        Self {
            wall_start_ms: 0,
            start_ms: 0,
            speed: 1.0,
        }
    }

    /// A clock that reads the wall clock now and runs `speed` times faster from here.
    pub fn accelerated(speed: f64) -> Self {
        assert!(speed.is_finite() && speed >= 1.0, "clock speed {speed}");
        let now = now_ms();
        Self {
            wall_start_ms: now,
            start_ms: now,
            speed,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> i64 {
        self.at_wall(now_ms())
    }

    /// What the clock read (or will read) at wall-clock `wall_ms`.
    pub fn at_wall(&self, wall_ms: i64) -> i64 {
        if self.speed == 1.0 {
            return wall_ms - self.wall_start_ms + self.start_ms;
        }
        self.start_ms + ((wall_ms - self.wall_start_ms) as f64 * self.speed) as i64
    }

    /// Wall-clock time until the clock reads `at_ms` (zero when it already has).
    pub fn wall_until(&self, at_ms: i64) -> Duration {
        let ahead = (at_ms - self.now_ms()).max(0) as f64 / self.speed;
        Duration::from_micros((ahead * 1e3).ceil() as u64)
    }

    /// `d` of this clock's time in wall-clock time.
    pub fn to_wall(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_the_system_clock() {
        let c = Clock::wall();
        let (a, b, z) = (now_ms(), c.now_ms(), now_ms());
        assert!(a <= b && b <= z);
        assert_eq!(c.to_wall(Duration::from_secs(60)), Duration::from_secs(60));
    }

    #[test]
    fn accelerated_clock_runs_faster_from_now() {
        let c = Clock::accelerated(60.0);
        let w = c.wall_start_ms;
        assert_eq!(c.at_wall(w), w);
        assert_eq!(c.at_wall(w + 1_000), w + 60_000);
        assert_eq!(c.to_wall(Duration::from_secs(60)), Duration::from_secs(1));
        let until = c.wall_until(c.now_ms() + 60_000);
        assert!(until <= Duration::from_secs(1) && until > Duration::from_millis(900));
        assert_eq!(c.wall_until(0), Duration::ZERO);
    }
}
