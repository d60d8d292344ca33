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

/// The months enrolment cohorts are followed over, as the window of their days.
pub fn month_window(start_month: &str, end_month: &str, violations: &mut Violations) -> Option<Window> {
    let start = violations.check(month("start_month", start_month));
    let end = violations.check(month("end_month", end_month));
    let (start, end) = (start?, end?);
    if end < start {
        violations.add("end_month", "must not be before start_month");
        return None;
    }
    let last_day = end.checked_add_months(chrono::Months::new(1))?.pred_opt()?;
    if (last_day - start).num_days() >= MAX_DAYS {
        violations.add("end_month", format!("a window is at most {MAX_DAYS} days"));
        return None;
    }
    Some(Window {
        first_day: start.format("%Y-%m-%d").to_string(),
        last_day: last_day.format("%Y-%m-%d").to_string(),
    })
}

/// The first day of a month named `YYYY-MM`.
fn month(field: &str, value: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
        .ok()
        .filter(|first| first.format("%Y-%m").to_string() == value)
        .ok_or_else(|| FieldViolation::new(field, format!("{} is not a month in the form YYYY-MM", quote(value))))
}

/// Whole months from the month of `from` to the month of `to` (days or months as windows name
/// them: "2026-01-31" to "2026-03" is 2); `None` when either is not one.
pub fn months_between(from: &str, to: &str) -> Option<i64> {
    let year_and_month = |value: &str| -> Option<i64> {
        let year: i64 = value.get(0..4)?.parse().ok()?;
        let month: i64 = value.get(5..7)?.parse().ok()?;
        Some(year * 12 + month)
    };
    Some(year_and_month(to)? - year_and_month(from)?)
}

/// The day `days` before `day`, both as a window names them (a day that is not one is returned
/// as it is: windows are checked before they are read).
pub fn days_before(day: &str, days: i64) -> String {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_or_else(
        |_| day.to_owned(),
        |date| (date - chrono::Duration::days(days)).format("%Y-%m-%d").to_string(),
    )
}

/// Days from `from` to `to` (as windows name days); 0 when either is not a day.
pub fn days_between(from: &str, to: &str) -> i64 {
    let day = |value: &str| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok();
    match (day(from), day(to)) {
        (Some(from), Some(to)) => (to - from).num_days(),
        _ => 0,
    }
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
        assert_eq!(months_between("2026-01-31", "2026-03"), Some(2));
        assert_eq!(days_between("2026-02-27", "2026-03-01"), 2);
        assert_eq!(months_between("2025-11", "2026-02-01"), Some(3));
        let mut violations = Violations::default();
        let months = month_window("2026-01", "2026-02", &mut violations).unwrap();
        assert_eq!(
            (months.first_day.as_str(), months.last_day.as_str()),
            ("2026-01-01", "2026-02-28")
        );
        assert_eq!(month_window("2026-1", "2025-12", &mut violations), None);
        assert_eq!(violations.into_result().unwrap_err()[0].field, "start_month");
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
