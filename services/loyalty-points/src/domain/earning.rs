//! Earning rules: how many points a sale earns.
//!
//! Points = eligible amount (lines whose category is not excluded) × base rate × every matching
//! multiplier, rounded once at the end as the rule set says; then capped per order and per day.
//! Multipliers that match together multiply (a gold member on member day at 2x earns 1.5 × 2).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, Utc, Weekday};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Down,
    HalfUp,
    Up,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Tier(String),
    Channel(String),
    Store(String),
    /// The weekday in the program's time zone (member day).
    Weekday(Weekday),
    /// From (inclusive) until (exclusive).
    Between(DateTime<Utc>, DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multiplier {
    pub when: Condition,
    /// 10,000 = 1x.
    pub factor_bp: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarningRules {
    /// Recorded on every entry the rules produce.
    pub version: u32,
    /// `points_per_unit` points for every `unit_minor` of eligible spend (1 point per 100 fen).
    pub points_per_unit: i64,
    pub unit_minor: i64,
    pub rounding: Rounding,
    pub multipliers: Vec<Multiplier>,
    pub excluded_categories: BTreeSet<String>,
    pub cap_per_order: Option<i64>,
    pub cap_per_day: Option<i64>,
    /// The program's time zone, for weekdays.
    pub utc_offset: FixedOffset,
    /// The ISO 4217 currency sales earn in; no other is converted.
    pub currency: String,
}

/// The largest amount a sale, or one of its lines, may have in minor units (10^13: a hundred
/// billion yuan): past any real receipt, and far from where sums and products of it could overflow.
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleLine {
    pub category: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleContext {
    pub tier: String,
    pub channel: String,
    pub store: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earned {
    pub points: i64,
    /// The spend the points were computed from, for proportional refunds.
    pub eligible_minor: i64,
    pub rules_version: u32,
}

impl Condition {
    fn holds(&self, sale: &SaleContext, offset: FixedOffset) -> bool {
        match self {
            Condition::Tier(tier) => &sale.tier == tier,
            Condition::Channel(channel) => &sale.channel == channel,
            Condition::Store(store) => &sale.store == store,
            Condition::Weekday(day) => sale.at.with_timezone(&offset).weekday() == *day,
            Condition::Between(from, until) => (*from..*until).contains(&sale.at),
        }
    }
}

fn divide(numerator: i128, denominator: i128, rounding: Rounding) -> i128 {
    let (quotient, remainder) = (numerator / denominator, numerator % denominator);
    match rounding {
        Rounding::Down => quotient,
        Rounding::Up if remainder > 0 => quotient + 1,
        Rounding::HalfUp if remainder * 2 >= denominator => quotient + 1,
        _ => quotient,
    }
}

impl EarningRules {
    /// The points a sale earns, given what the member already earned today.
    pub fn points_for(&self, lines: &[SaleLine], sale: &SaleContext, earned_today: i64) -> Earned {
        // Saturating: amounts are validated to MAX_AMOUNT_MINOR, and a saturated figure earns
        // more than a change may move, which the ledger refuses.
        let eligible_minor = lines
            .iter()
            .filter(|line| !self.excluded_categories.contains(&line.category))
            .fold(0i64, |sum, line| sum.saturating_add(line.amount_minor.max(0)));
        let factors: Vec<i128> = self
            .multipliers
            .iter()
            .filter(|multiplier| multiplier.when.holds(sale, self.utc_offset))
            .map(|multiplier| i128::from(multiplier.factor_bp))
            .collect();
        let numerator = factors.iter().try_fold(
            i128::from(eligible_minor) * i128::from(self.points_per_unit),
            |acc, f| acc.checked_mul(*f),
        );
        let denominator = factors
            .iter()
            .try_fold(i128::from(self.unit_minor.max(1)), |acc, _| acc.checked_mul(10_000));
        let raw = match (numerator, denominator) {
            (Some(numerator), Some(denominator)) => {
                i64::try_from(divide(numerator, denominator, self.rounding)).unwrap_or(i64::MAX)
            }
            _ => i64::MAX,
        };
        let per_order = self.cap_per_order.map_or(raw, |cap| raw.min(cap));
        let points = self
            .cap_per_day
            .map_or(per_order, |cap| per_order.min(cap.saturating_sub(earned_today).max(0)));
        Earned {
            points,
            eligible_minor,
            rules_version: self.version,
        }
    }
}

/// The points to take back for a refund, so that refunds of an order add up to exactly what it
/// earned: the share of the order refunded so far, less what earlier refunds already took.
pub fn points_to_reverse(
    earned: &Earned,
    refunded_before_minor: i64,
    refunding_minor: i64,
    reversed_before: i64,
) -> i64 {
    if earned.eligible_minor <= 0 {
        return 0;
    }
    let refunded = (refunded_before_minor + refunding_minor).clamp(0, earned.eligible_minor);
    let due = divide(
        i128::from(earned.points) * i128::from(refunded),
        i128::from(earned.eligible_minor),
        Rounding::Down,
    );
    let due = i64::try_from(due).unwrap_or(earned.points);
    if refunded == earned.eligible_minor {
        return earned.points - reversed_before;
    }
    (due - reversed_before).max(0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn rules() -> EarningRules {
        EarningRules {
            version: 3,
            points_per_unit: 1,
            unit_minor: 100,
            rounding: Rounding::Down,
            multipliers: vec![
                Multiplier {
                    when: Condition::Tier("gold".into()),
                    factor_bp: 15_000,
                },
                Multiplier {
                    when: Condition::Weekday(Weekday::Wed),
                    factor_bp: 20_000,
                },
            ],
            excluded_categories: BTreeSet::from(["gift-card".to_owned()]),
            cap_per_order: Some(10_000),
            cap_per_day: Some(12_000),
            utc_offset: FixedOffset::east_opt(8 * 3600).unwrap(),
            currency: "CNY".into(),
        }
    }

    fn sale(tier: &str, at: DateTime<Utc>) -> SaleContext {
        SaleContext {
            tier: tier.into(),
            channel: "store".into(),
            store: "sh-01".into(),
            at,
        }
    }

    fn line(category: &str, amount_minor: i64) -> SaleLine {
        SaleLine {
            category: category.into(),
            amount_minor,
        }
    }

    #[test]
    fn base_rate_multipliers_exclusions_and_caps() {
        // Tuesday 2026-11-24 20:00 UTC is Wednesday 04:00 in UTC+8: member day.
        let tuesday_utc = Utc.with_ymd_and_hms(2026, 11, 24, 20, 0, 0).unwrap();
        let monday = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let rules = rules();
        let lines = [line("skincare", 12_345), line("gift-card", 50_000)];
        assert_eq!(rules.points_for(&lines, &sale("member", monday), 0).points, 123);
        assert_eq!(rules.points_for(&lines, &sale("gold", monday), 0).points, 185);
        let earned = rules.points_for(&lines, &sale("gold", tuesday_utc), 0);
        assert_eq!(
            (earned.points, earned.eligible_minor, earned.rules_version),
            (370, 12_345, 3)
        );
        let big = [line("skincare", 10_000_000)];
        assert_eq!(
            rules.points_for(&big, &sale("member", monday), 0).points,
            10_000,
            "capped per order"
        );
        assert_eq!(
            rules.points_for(&big, &sale("member", monday), 11_000).points,
            1_000,
            "capped per day"
        );
        let up = EarningRules {
            rounding: Rounding::Up,
            ..rules.clone()
        };
        assert_eq!(up.points_for(&[line("x", 101)], &sale("member", monday), 0).points, 2);
        let half = EarningRules {
            rounding: Rounding::HalfUp,
            ..rules
        };
        assert_eq!(half.points_for(&[line("x", 150)], &sale("member", monday), 0).points, 2);
        assert_eq!(half.points_for(&[line("x", 149)], &sale("member", monday), 0).points, 1);
    }

    #[test]
    fn partial_refunds_reverse_proportionally() {
        let earned = Earned {
            points: 100,
            eligible_minor: 30_000,
            rules_version: 1,
        };
        assert_eq!(points_to_reverse(&earned, 0, 10_000, 0), 33);
        assert_eq!(points_to_reverse(&earned, 10_000, 10_000, 33), 33);
        assert_eq!(
            points_to_reverse(&earned, 20_000, 10_000, 66),
            34,
            "the last refund takes the rest"
        );
        assert_eq!(
            points_to_reverse(&earned, 30_000, 5_000, 100),
            0,
            "nothing beyond what was earned"
        );
    }

    proptest! {
        #[test]
        fn refunds_in_any_pieces_reverse_exactly_what_was_earned(
            points in 0i64..100_000,
            eligible in 1i64..10_000_000,
            cuts in proptest::collection::vec(1u32..100, 1..8),
        ) {
            let earned = Earned { points, eligible_minor: eligible, rules_version: 1 };
            let total: u32 = cuts.iter().sum();
            let (mut refunded, mut reversed) = (0i64, 0i64);
            for (index, cut) in cuts.iter().enumerate() {
                let piece = if index + 1 == cuts.len() {
                    eligible - refunded
                } else {
                    eligible * i64::from(*cut) / i64::from(total)
                };
                let taken = points_to_reverse(&earned, refunded, piece, reversed);
                prop_assert!(taken >= 0);
                refunded += piece;
                reversed += taken;
                prop_assert!(reversed <= points);
            }
            prop_assert_eq!(reversed, points);
        }
    }
}
