//! When earned points expire.

use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate, TimeZone, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// N months after the day of earning.
    RollingMonths(u32),
    /// The end of the Nth calendar year after the year of earning (0: the same year), in the
    /// program's time zone.
    EndOfYearAfter(u32),
}

/// The moment points earned at `earned_at` expire.
pub fn expires_at(policy: ExpiryPolicy, earned_at: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let local = earned_at.with_timezone(&offset);
    match policy {
        ExpiryPolicy::RollingMonths(months) => local
            .checked_add_months(Months::new(months))
            .map_or(DateTime::<Utc>::MAX_UTC, |at| at.with_timezone(&Utc)),
        ExpiryPolicy::EndOfYearAfter(years) => {
            let year = local
                .year()
                .saturating_add(i32::try_from(years).unwrap_or(i32::MAX - 1))
                .saturating_add(1);
            NaiveDate::from_ymd_opt(year, 1, 1)
                .and_then(|new_year| new_year.and_hms_opt(0, 0, 0))
                .and_then(|midnight| offset.from_local_datetime(&midnight).single())
                .map_or(DateTime::<Utc>::MAX_UTC, |at| {
                    (at - chrono::Duration::seconds(1)).with_timezone(&Utc)
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_and_year_end_expiry() {
        let china = FixedOffset::east_opt(8 * 3600).unwrap();
        // 2026-12-31 17:00 UTC is already 2027-01-01 01:00 in China.
        let earned = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
        let year_end = expires_at(ExpiryPolicy::EndOfYearAfter(0), earned, china);
        assert_eq!(year_end.with_timezone(&china).to_rfc3339(), "2027-12-31T23:59:59+08:00");
        let next = expires_at(ExpiryPolicy::EndOfYearAfter(1), earned, china);
        assert_eq!(next.with_timezone(&china).to_rfc3339(), "2028-12-31T23:59:59+08:00");
        let rolling = expires_at(ExpiryPolicy::RollingMonths(12), earned, china);
        assert_eq!(rolling.with_timezone(&china).to_rfc3339(), "2028-01-01T01:00:00+08:00");
    }
}
