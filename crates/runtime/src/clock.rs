//! The time services use for business rules (expiry, holds, tier periods), which tests can move.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound, Utc};

/// The wall clock, plus an offset that tests set; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// Now, to the microsecond (as PostgreSQL keeps timestamps).
    pub fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed));
        (Utc::now() + offset).trunc_subsecs(6)
    }

    /// Moves this clock (and its clones) so that it reads `at` now.
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(0);
        self.offset_micros.store(offset, Ordering::Relaxed);
    }

    /// Moves this clock (and its clones) forward.
    pub fn advance(&self, by: chrono::Duration) {
        let by = by.num_microseconds().unwrap_or(0);
        self.offset_micros.fetch_add(by, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::default();
        let shared = clock.clone();
        let year_end = DateTime::parse_from_rfc3339("2026-12-31T23:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(year_end);
        assert!((shared.now() - year_end).num_seconds().abs() <= 1);
        shared.advance(chrono::Duration::minutes(2));
        assert!(clock.now() > year_end + chrono::Duration::minutes(1));
    }
}
