//! Rate windows the emulators can enforce, as the real platforms do: off
//! by default (every existing test and `demo` run unchanged), turned on per
//! platform by a test or the control API (`POST /_sandbox/rate_limits`).
//! An exact sliding log per window: the limits tests set are small.
//! A refused call is not counted (the platforms' counts of refused calls
//! are not documented; Meta's are, and `facebook` counts them itself).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `limit` calls in any interval of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Calls allowed.
    pub limit: u32,
    /// In any interval this long.
    pub per: Duration,
}

impl RateWindow {
    /// `limit` calls per `per`.
    pub fn new(limit: u32, per: Duration) -> RateWindow {
        RateWindow { limit, per }
    }
}

/// Windows and the calls each has seen.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: Vec<(RateWindow, VecDeque<Instant>)>,
    refused: u64,
}

impl Limiter {
    /// Replaces the windows (none: no limit) and forgets the calls seen.
    pub(crate) fn set(&mut self, windows: &[RateWindow]) {
        self.windows = windows.iter().map(|&w| (w, VecDeque::new())).collect();
    }

    /// The windows enforced.
    pub(crate) fn windows(&self) -> Vec<RateWindow> {
        self.windows.iter().map(|(w, _)| *w).collect()
    }

    /// Counts a call at `now`, unless a window is full: then the first
    /// full window, and the call is not counted.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), RateWindow> {
        for (window, calls) in &mut self.windows {
            while calls
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= window.per)
            {
                calls.pop_front();
            }
        }
        if let Some((full, _)) = self
            .windows
            .iter()
            .find(|(w, calls)| calls.len() >= w.limit as usize)
        {
            self.refused += 1;
            return Err(*full);
        }
        for (_, calls) in &mut self.windows {
            calls.push_back(now);
        }
        Ok(())
    }

    /// Calls refused because a window was full, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_until_the_oldest_call_leaves_it() {
        let mut limiter = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0), Ok(()), "no window: no limit");
        let second = RateWindow::new(2, Duration::from_secs(1));
        limiter.set(&[second, RateWindow::new(3, Duration::from_secs(60))]);
        assert_eq!(limiter.admit(t0), Ok(()));
        assert_eq!(limiter.admit(t0 + Duration::from_millis(100)), Ok(()));
        assert_eq!(limiter.admit(t0 + Duration::from_millis(200)), Err(second));
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Ok(()));
        // The minute window is full now (3), whatever the second says.
        assert_eq!(
            limiter.admit(t0 + Duration::from_secs(5)),
            Err(RateWindow::new(3, Duration::from_secs(60)))
        );
        assert_eq!(limiter.refused(), 2);
        limiter.set(&[]);
        assert_eq!(limiter.admit(t0 + Duration::from_secs(5)), Ok(()));
    }
}
