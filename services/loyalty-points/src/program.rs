//! A program as the contract states it (`quanyu.points.v1.Program`) and as the rules use it.

use std::collections::BTreeSet;

use chrono::{FixedOffset, Weekday};
use quanyu_proto::common::v1::Channel;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::is_slug;
use quanyu_runtime::error::{FieldViolation, Violations};

use crate::domain::earning::{Condition, EarningRules, Multiplier, Rounding};
use crate::domain::expiry::ExpiryPolicy;
use crate::domain::tiers::{Tier, TierLadder};

pub const DEFAULT_HOLD_TTL_SECONDS: i32 = 900;

/// A validated program.
#[derive(Debug, Clone)]
pub struct ProgramRules {
    pub id: String,
    pub brand_id: String,
    pub earning: EarningRules,
    pub expiry: ExpiryPolicy,
    pub ladder: TierLadder,
    pub hold_ttl: chrono::Duration,
    pub auto_enroll: bool,
    pub offset: FixedOffset,
}

fn weekday(iso: i32) -> Option<Weekday> {
    let days = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    usize::try_from(iso - 1).ok().and_then(|index| days.get(index).copied())
}

fn condition(when: Option<&pb::multiplier::When>, field: &str) -> Result<Condition, FieldViolation> {
    use pb::multiplier::When;
    let violation = |why: &str| FieldViolation::new(field, why);
    match when {
        None => Err(violation("a multiplier needs a condition")),
        Some(When::Tier(tier)) if !tier.is_empty() => Ok(Condition::Tier(tier.clone())),
        Some(When::Channel(channel)) => match Channel::try_from(*channel) {
            Ok(channel) if channel != Channel::Unspecified => Ok(Condition::Channel(channel.as_str_name().to_owned())),
            _ => Err(violation("not a channel")),
        },
        Some(When::StoreId(store)) if !store.is_empty() => Ok(Condition::Store(store.clone())),
        Some(When::IsoWeekday(day)) => weekday(*day)
            .map(Condition::Weekday)
            .ok_or_else(|| violation("weekday must be 1-7")),
        Some(When::Between(range)) => {
            let time = |at: Option<&prost_types::Timestamp>| at.and_then(quanyu_runtime::clock::from_proto);
            match (time(range.from.as_ref()), time(range.until.as_ref())) {
                (Some(from), Some(until)) if from < until => Ok(Condition::Between(from, until)),
                _ => Err(violation("a date range needs from < until")),
            }
        }
        Some(_) => Err(violation("the condition is empty")),
    }
}

impl ProgramRules {
    /// Checks a program as given and builds its rules; `version` is the version it gets.
    pub fn from_pb(program: &pb::Program, version: u32) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Violations::default();
        if !is_slug(&program.program_id) {
            violations.add(
                "program.program_id",
                "must be 2-40 characters of [a-z0-9-], starting with a letter",
            );
        }
        if !program.brand_id.is_empty() && !is_slug(&program.brand_id) {
            violations.add("program.brand_id", "must be empty or a brand id");
        }
        let earning = program.earning.clone().unwrap_or_default();
        if earning.points_per_unit <= 0 || earning.unit_minor <= 0 {
            violations.add("program.earning", "points_per_unit and unit_minor must be positive");
        }
        if earning.cap_per_order < 0 || earning.cap_per_day < 0 {
            violations.add("program.earning", "caps must not be negative (0 means none)");
        }
        let offset = FixedOffset::east_opt(earning.utc_offset_minutes * 60);
        if offset.is_none() {
            violations.add("program.earning.utc_offset_minutes", "must be within ±24 hours");
        }
        let rounding = match pb::Rounding::try_from(earning.rounding) {
            Ok(pb::Rounding::Unspecified | pb::Rounding::Down) => Rounding::Down,
            Ok(pb::Rounding::HalfUp) => Rounding::HalfUp,
            Ok(pb::Rounding::Up) => Rounding::Up,
            Err(_) => {
                violations.add("program.earning.rounding", "not a rounding");
                Rounding::Down
            }
        };
        let multipliers: Vec<Multiplier> = earning
            .multipliers
            .iter()
            .enumerate()
            .filter_map(|(index, multiplier)| {
                let field = format!("program.earning.multipliers[{index}]");
                if multiplier.factor_bp == 0 {
                    violations.add(field.clone(), "factor_bp must be positive");
                }
                violations
                    .check(condition(multiplier.when.as_ref(), &field))
                    .map(|when| Multiplier {
                        when,
                        factor_bp: multiplier.factor_bp,
                    })
            })
            .collect();
        let expiry = match program.expiry.as_ref().and_then(|expiry| expiry.policy) {
            Some(pb::expiry_policy::Policy::RollingMonths(months)) if months > 0 => {
                Some(ExpiryPolicy::RollingMonths(months.unsigned_abs()))
            }
            Some(pb::expiry_policy::Policy::EndOfYearAfter(years)) if years >= 0 => {
                Some(ExpiryPolicy::EndOfYearAfter(years.unsigned_abs()))
            }
            _ => {
                violations.add(
                    "program.expiry",
                    "rolling_months > 0 or end_of_year_after >= 0 is required",
                );
                None
            }
        };
        let tiers: Vec<Tier> = program
            .tiers
            .iter()
            .map(|tier| Tier {
                code: tier.code.clone(),
                threshold: tier.growth_threshold,
                multiplier_bp: tier.multiplier_bp,
            })
            .collect();
        let codes: BTreeSet<&str> = tiers.iter().map(|tier| tier.code.as_str()).collect();
        if codes.len() != tiers.len() || codes.contains("") {
            violations.add("program.tiers", "tier codes must be distinct and non-empty");
        }
        let ladder = TierLadder::new(tiers)
            .map_err(|error| violations.add("program.tiers", error.to_string()))
            .ok();
        if program.hold_ttl_seconds < 0 || program.hold_ttl_seconds > 86_400 {
            violations.add("program.hold_ttl_seconds", "must be between 0 (default) and 86400");
        }
        if program.points_name.chars().count() > 40 {
            violations.add("program.points_name", "must be at most 40 characters");
        }
        violations.into_result()?;
        let (Some(expiry), Some(ladder), Some(offset)) = (expiry, ladder, offset) else {
            return Err(vec![FieldViolation::new("program", "incomplete")]);
        };
        let tier_multipliers = ladder
            .tiers()
            .iter()
            .filter(|tier| tier.multiplier_bp != 10_000)
            .map(|tier| Multiplier {
                when: Condition::Tier(tier.code.clone()),
                factor_bp: tier.multiplier_bp,
            });
        let ttl = if program.hold_ttl_seconds == 0 {
            DEFAULT_HOLD_TTL_SECONDS
        } else {
            program.hold_ttl_seconds
        };
        Ok(Self {
            id: program.program_id.clone(),
            brand_id: program.brand_id.clone(),
            earning: EarningRules {
                version,
                points_per_unit: earning.points_per_unit,
                unit_minor: earning.unit_minor,
                rounding,
                multipliers: multipliers.into_iter().chain(tier_multipliers).collect(),
                excluded_categories: earning.excluded_categories.iter().cloned().collect(),
                cap_per_order: (earning.cap_per_order > 0).then_some(earning.cap_per_order),
                cap_per_day: (earning.cap_per_day > 0).then_some(earning.cap_per_day),
                utc_offset: offset,
            },
            expiry,
            ladder,
            hold_ttl: chrono::Duration::seconds(i64::from(ttl)),
            auto_enroll: program.auto_enroll,
            offset,
        })
    }
}
