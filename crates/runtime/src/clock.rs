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

/// A time as the contract carries it.
pub fn to_proto(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A time from the contract; `None` when it names no representable instant.
pub fn from_proto(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
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

    #[test]
    fn times_round_trip_through_the_contract() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(from_proto(&to_proto(at)), Some(at));
        assert_eq!(from_proto(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }
}
