//! The window a metric is asked over, and the day a moment falls on.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use quanyu_runtime::error::{FieldViolation, Violations, quote};

/// Days, both included, as `YYYY-MM-DD` (which compares as the dates do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub first_day: String,
    pub last_day: String,
}

/// The longest window a call may ask for: ten years of days.
const MAX_DAYS: i64 = 3_660;

impl Window {
    /// Checks `start_date` and `end_date`; each at fault is added to `violations`.
    pub fn parse(start_date: &str, end_date: &str, violations: &mut Violations) -> Option<Self> {
        let start = violations.check(date("start_date", start_date));
        let end = violations.check(date("end_date", end_date));
        let (start, end) = (start?, end?);
        if end < start {
            violations.add("end_date", "must not be before start_date");
            return None;
        }
        if (end - start).num_days() >= MAX_DAYS {
            violations.add("end_date", format!("a window is at most {MAX_DAYS} days"));
            return None;
        }
        Some(Self {
            first_day: start_date.to_owned(),
            last_day: end_date.to_owned(),
        })
    }
}

fn date(field: &str, value: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|parsed| parsed.format("%Y-%m-%d").to_string() == value)
        .ok_or_else(|| FieldViolation::new(field, format!("{} is not a date in the form YYYY-MM-DD", quote(value))))
}

/// The day `days` before `day`, both as a window names them (a day that is not one is returned
/// as it is: windows are checked before they are read).
pub fn days_before(day: &str, days: i64) -> String {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_or_else(
        |_| day.to_owned(),
        |date| (date - chrono::Duration::days(days)).format("%Y-%m-%d").to_string(),
    )
}

/// The day `at` falls on in `offset`, as a window names days.
pub fn day_of(at: DateTime<Utc>, offset: FixedOffset) -> String {
    at.with_timezone(&offset).format("%Y-%m-%d").to_string()
}

/// The Pareto contribution of the top `percent` of buyers: their spend, and everyone's, from
/// spends sorted largest first. The top is rounded up to whole buyers.
pub fn top_share(spends_largest_first: &[i64], percent: u32) -> (i64, i64) {
    let top = top_count(spends_largest_first.len(), percent);
    let top_spend = spends_largest_first.iter().take(top).sum();
    (top_spend, spends_largest_first.iter().sum())
}

/// How many of `buyers` the top `percent` are, rounded up to whole buyers.
pub fn top_count(buyers: usize, percent: u32) -> usize {
    (buyers * percent as usize).div_ceil(100)
}

/// `numerator ÷ denominator`, or 0 when there is nothing to divide by.
#[allow(clippy::cast_precision_loss)] // a share needs no more than f64's 53 bits
pub fn ratio(numerator: i64, denominator: i64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn a_window_names_each_bad_date_and_an_end_before_its_start() {
        assert_eq!(
            Window::parse("2026-12-01", "2026-12-03", &mut Violations::default()),
            Some(Window {
                first_day: "2026-12-01".into(),
                last_day: "2026-12-03".into()
            })
        );
        let fields = |start, end| -> Vec<String> {
            let mut violations = Violations::default();
            assert_eq!(Window::parse(start, end, &mut violations), None);
            violations
                .into_result()
                .unwrap_err()
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        assert_eq!(fields("2026-12-03", "2026-12-01"), ["end_date"]);
        assert_eq!(fields("2026-2-1", "yesterday"), ["start_date", "end_date"]);
        assert_eq!(fields("2026-02-30", "2026-03-01"), ["start_date"]);
        assert_eq!(fields("2000-01-01", "2026-01-01"), ["end_date"]);
    }

    #[test]
    fn a_moment_falls_on_the_day_of_the_time_zone() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let late = Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap();
        assert_eq!(day_of(late, offset), "2026-12-01");
        assert_eq!(days_before("2026-03-01", 1), "2026-02-28");
        assert_eq!(days_before("2026-03-01", 0), "2026-03-01");
        assert!((ratio(1, 4) - 0.25).abs() < f64::EPSILON);
        assert!(ratio(5, 0).abs() < f64::EPSILON);
        assert_eq!(top_share(&[50, 30, 10, 5, 5], 20), (50, 100));
        assert_eq!(
            top_share(&[50, 30, 10, 5, 5], 21),
            (80, 100),
            "rounded up to whole buyers"
        );
        assert_eq!(top_share(&[], 20), (0, 0));
    }
}
