//! The contract's forms of loyalty-points' domain values (`quanyu.points.v1`), both ways: a
//! program as given and stored, balances, entries and sale results as answered.

use std::collections::BTreeSet;

use chrono::{FixedOffset, Weekday};
use quanyu_proto::common::v1::Channel;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::is_slug;
use quanyu_runtime::error::{FieldViolation, Violations, quote};

use quanyu_runtime::clock::to_proto;

use crate::domain::account::Account;
use crate::domain::earning::{Condition, EarningRules, Multiplier, Rounding};
use crate::domain::expiry::ExpiryPolicy;
use crate::domain::ledger::EntryKind;
use crate::domain::ledger::HoldEnd;
use crate::domain::program::{DEFAULT_HOLD_TTL_SECONDS, ProgramRules};
use crate::domain::sale::SaleEffect;
use crate::domain::tiers::{Tier, TierLadder};

/// The currency of a program that names none.
const DEFAULT_CURRENCY: &str = "CNY";

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
        let currency = if earning.currency.is_empty() {
            DEFAULT_CURRENCY.to_owned()
        } else {
            earning.currency.clone()
        };
        if !quanyu_runtime::money::is_currency(&currency) {
            violations.add(
                "program.earning.currency",
                format!("{} is not an ISO 4217 currency", quote(&currency)),
            );
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
                currency,
            },
            expiry,
            ladder,
            hold_ttl: chrono::Duration::seconds(i64::from(ttl)),
            auto_enroll: program.auto_enroll,
            offset,
        })
    }
}

pub fn entry_kind_to_pb(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Earn => pb::EntryKind::Earn,
        EntryKind::Redeem => pb::EntryKind::Redeem,
        EntryKind::Expire => pb::EntryKind::Expire,
        EntryKind::Reverse => pb::EntryKind::Reverse,
        EntryKind::Adjust => pb::EntryKind::Adjust,
        EntryKind::Grant => pb::EntryKind::Grant,
        EntryKind::MergeIn => pb::EntryKind::MergeIn,
        EntryKind::MergeOut => pb::EntryKind::MergeOut,
    }
}

/// An entry kind asked for in a request; `None` for every kind.
pub fn entry_kind_from_pb(kind: pb::EntryKind) -> Option<EntryKind> {
    match kind {
        pb::EntryKind::Unspecified => None,
        pb::EntryKind::Earn => Some(EntryKind::Earn),
        pb::EntryKind::Redeem => Some(EntryKind::Redeem),
        pb::EntryKind::Expire => Some(EntryKind::Expire),
        pb::EntryKind::Reverse => Some(EntryKind::Reverse),
        pb::EntryKind::Adjust => Some(EntryKind::Adjust),
        pb::EntryKind::Grant => Some(EntryKind::Grant),
        pb::EntryKind::MergeIn => Some(EntryKind::MergeIn),
        pb::EntryKind::MergeOut => Some(EntryKind::MergeOut),
    }
}

pub fn hold_end_to_pb(end: HoldEnd) -> pb::HoldEnd {
    match end {
        HoldEnd::Confirmed => pb::HoldEnd::Confirmed,
        HoldEnd::Released => pb::HoldEnd::Released,
        HoldEnd::Expired => pb::HoldEnd::Expired,
    }
}

/// An account's balance as the contract shows it, with what expires when.
pub fn balance_to_pb(account: &Account) -> pb::Balance {
    let mut expiring: Vec<pb::ExpiringPoints> = Vec::new();
    let mut lots: Vec<_> = account.ledger.lots().iter().filter(|lot| lot.remaining > 0).collect();
    lots.sort_by_key(|lot| lot.expires_at);
    for lot in lots {
        match expiring.last_mut() {
            Some(last) if last.expires_at == Some(to_proto(lot.expires_at)) => last.points += lot.remaining,
            _ => expiring.push(pb::ExpiringPoints {
                expires_at: Some(to_proto(lot.expires_at)),
                points: lot.remaining,
            }),
        }
    }
    pb::Balance {
        member_id: account.member_id.clone(),
        program_id: account.program_id.clone(),
        balance: account.ledger.balance(),
        available: account.ledger.available(),
        held: account.ledger.held(),
        growth_this_period: account.tier.period_growth,
        growth_lifetime: account.tier.lifetime_growth,
        tier: account.tier.tier.clone(),
        expiring,
    }
}

/// The answer to a sale applied.
pub fn applied_to_pb(index: i32, effect: SaleEffect) -> pb::SaleResult {
    pb::SaleResult {
        index,
        outcome: pb::SaleOutcome::Applied.into(),
        member_id: effect.member_id,
        program_id: effect.program_id,
        points_earned: effect.points_earned,
        points_redeemed: effect.points_redeemed,
        points_reversed: effect.points_reversed,
        balance_after: effect.balance_after,
        rules_version: effect.rules_version,
        ..Default::default()
    }
}

/// The answer to a sale refused for `violations`.
pub fn rejected_to_pb(index: i32, violations: Vec<FieldViolation>) -> pb::SaleResult {
    pb::SaleResult {
        index,
        outcome: pb::SaleOutcome::Rejected.into(),
        violations: violations
            .into_iter()
            .map(|violation| pb::FieldViolation {
                field: violation.field,
                description: violation.description,
            })
            .collect(),
        ..Default::default()
    }
}
