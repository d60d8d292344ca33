//! The rules of a sale on its buyer's account: a purchase redeems what it spends at the till and
//! earns on what is eligible, growth accrues beside it, and a refund takes back its share of both,
//! so that the refunds of an order add up to exactly what the order earned.

use super::account::Account;
use super::earning::{Earned, MAX_AMOUNT_MINOR, SaleContext, SaleLine, points_to_reverse};
use super::expiry::expires_at;
use super::ledger::{Credit, LedgerError, Timestamp};
use super::program::ProgramRules;

/// What a validated sale asks for.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A member's purchase.
    Purchase { member_id: String, purchase: Purchase },
    /// A refund of `refund_minor` of the sale recorded under `original_key` (same source).
    Refund { original_key: String, refund_minor: i64 },
    /// A sale by nobody known: kept for analytics, earns nothing.
    NonMember,
}

/// A member's purchase: earn on `lines`, spend `redeem` points at the till.
#[derive(Debug, Clone)]
pub struct Purchase {
    pub program_id: String,
    pub lines: Vec<SaleLine>,
    pub redeem: i64,
    /// Where and when it was made; the tier is the account's when it is applied.
    pub context: SaleContext,
}

/// What is kept of a recorded sale for the refunds that follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleRecord {
    /// A refund, which no refund may name.
    pub is_refund: bool,
    /// The account it went to; none for a non-member's sale.
    pub member_id: Option<String>,
    pub program_id: Option<String>,
    /// The spend the points were earned on, and what refunds have taken back of it.
    pub eligible_minor: i64,
    pub points_earned: i64,
    pub growth: i64,
    pub refunded_minor: i64,
    pub points_reversed: i64,
}

/// What a sale did to its account, as the till is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleEffect {
    pub member_id: String,
    pub program_id: String,
    pub points_earned: i64,
    pub points_redeemed: i64,
    pub points_reversed: i64,
    pub balance_after: i64,
    pub rules_version: u32,
}

/// Why a sale was refused: the field at fault, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub field: &'static str,
    pub description: String,
}

impl Rejection {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Growth is one per 100 minor units of eligible spend.
const MINOR_PER_GROWTH: i64 = 100;

/// Applies a purchase to the buyer's account: the points it redeems first (refused when fewer
/// are available), then what it earns at the account's tier within the program's caps, expiring
/// by the program's policy; growth accrues on the eligible spend. `key` names the sale on the
/// entries and lots it makes.
pub fn apply_purchase(
    account: &mut Account,
    program: &ProgramRules,
    rules_version: u32,
    purchase: &Purchase,
    key: &str,
    at: Timestamp,
) -> Result<(SaleEffect, SaleRecord), Rejection> {
    let context = SaleContext {
        tier: account.tier.tier.clone(),
        ..purchase.context.clone()
    };
    let earned = program
        .earning
        .points_for(&purchase.lines, &context, account.earned_today);
    let expiry = expires_at(program.expiry, at, program.offset);
    let refused = |error: LedgerError| match error {
        LedgerError::ExpiryNotAfterEarning => Rejection::new("occurred_at", error.to_string()),
        _ => Rejection::new("amount", format!("earns {} points: {error}", earned.points)),
    };
    // Checked before anything moves, so that a refused sale leaves the account as it was.
    if earned.points > 0 {
        account
            .ledger
            .check_credit(earned.points, at, expiry)
            .map_err(refused)?;
    }
    if purchase.redeem > 0 {
        account
            .ledger
            .redeem(purchase.redeem, at, key)
            .map_err(|error| match error {
                LedgerError::InsufficientPoints { available, .. } => {
                    Rejection::new("points_redeemed", format!("only {available} points are available"))
                }
                other => Rejection::new("points_redeemed", other.to_string()),
            })?;
    }
    if earned.points > 0 {
        account
            .ledger
            .credit(Credit::Earn, earned.points, at, expiry, key)
            .map_err(refused)?;
        account.earned_today = account.earned_today.saturating_add(earned.points);
    }
    let growth = earned.eligible_minor / MINOR_PER_GROWTH;
    account.tier.accrue(&program.ladder, growth);
    let effect = SaleEffect {
        member_id: account.member_id.clone(),
        program_id: account.program_id.clone(),
        points_earned: earned.points,
        points_redeemed: purchase.redeem,
        points_reversed: 0,
        balance_after: account.ledger.balance(),
        rules_version,
    };
    let record = SaleRecord {
        is_refund: false,
        member_id: Some(account.member_id.clone()),
        program_id: Some(account.program_id.clone()),
        eligible_minor: earned.eligible_minor,
        points_earned: earned.points,
        growth,
        refunded_minor: 0,
        points_reversed: 0,
    };
    Ok((effect, record))
}

/// Refuses a refund of `original` when that is itself a refund.
pub fn refundable(original: &SaleRecord) -> Result<(), Rejection> {
    if original.is_refund {
        return Err(Rejection::new("original_transaction_id", "names a refund, not a sale"));
    }
    Ok(())
}

/// Applies a refund of `refund_minor` of `original` (recorded under `original_key`) to the account
/// it credited: takes back the refunded share of its points and of its growth, less what earlier
/// refunds took, and records the refunded share on `original`.
pub fn apply_refund(
    account: &mut Account,
    program: &ProgramRules,
    rules_version: u32,
    original: &mut SaleRecord,
    original_key: &str,
    refund_minor: i64,
    at: Timestamp,
) -> Result<SaleEffect, Rejection> {
    let earned = Earned {
        points: original.points_earned,
        eligible_minor: original.eligible_minor,
        rules_version,
    };
    let refunded_after = original
        .refunded_minor
        .checked_add(refund_minor)
        .filter(|refunded| *refunded <= MAX_AMOUNT_MINOR)
        .ok_or_else(|| {
            Rejection::new(
                "amount",
                format!("refunds of one sale may add up to at most {MAX_AMOUNT_MINOR}"),
            )
        })?;
    let reversed = points_to_reverse(&earned, original.refunded_minor, refund_minor, original.points_reversed);
    if reversed > 0 {
        account
            .ledger
            .reverse(reversed, at, original_key)
            .map_err(|error| Rejection::new("amount", error.to_string()))?;
    }

    let growth_back = growth_share(original, refunded_after) - growth_share(original, original.refunded_minor);
    account.tier.accrue(&program.ladder, -growth_back);
    original.refunded_minor = refunded_after;
    original.points_reversed += reversed;
    Ok(SaleEffect {
        member_id: account.member_id.clone(),
        program_id: account.program_id.clone(),
        points_reversed: reversed,
        balance_after: account.ledger.balance(),
        rules_version,
        ..SaleEffect::default()
    })
}

/// The growth that `refunded` of an order's eligible spend accounts for, rounded as points are,
/// so that refunding the whole order takes back exactly the growth it gave.
fn growth_share(original: &SaleRecord, refunded: i64) -> i64 {
    let growth = Earned {
        points: original.growth,
        eligible_minor: original.eligible_minor,
        rules_version: 0,
    };
    points_to_reverse(&growth, 0, refunded, 0)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, FixedOffset, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::domain::earning::{EarningRules, Rounding};
    use crate::domain::expiry::ExpiryPolicy;
    use crate::domain::tiers::{Tier, TierLadder};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn program(cap_per_day: Option<i64>) -> ProgramRules {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let tier = |code: &str, threshold, multiplier_bp| Tier {
            code: code.into(),
            threshold,
            multiplier_bp,
        };
        ProgramRules {
            id: "club".into(),
            brand_id: String::new(),
            earning: EarningRules {
                version: 1,
                points_per_unit: 1,
                unit_minor: 100,
                rounding: Rounding::Down,
                multipliers: Vec::new(),
                excluded_categories: ["tobacco".to_owned()].into(),
                cap_per_order: None,
                cap_per_day,
                utc_offset: offset,
                currency: "CNY".into(),
            },
            expiry: ExpiryPolicy::RollingMonths(12),
            ladder: TierLadder::new(vec![tier("member", 0, 10_000), tier("gold", 1_000, 15_000)]).unwrap(),
            hold_ttl: chrono::Duration::minutes(15),
            auto_enroll: true,
            offset,
        }
    }

    fn purchase(amount_minor: i64, redeem: i64) -> Purchase {
        Purchase {
            program_id: "club".into(),
            lines: vec![SaleLine {
                category: String::new(),
                amount_minor,
            }],
            redeem,
            context: SaleContext {
                tier: String::new(),
                channel: "CHANNEL_POS".into(),
                store: "s1".into(),
                at: at(),
            },
        }
    }

    #[test]
    fn a_purchase_earns_and_grows_and_records_what_a_refund_needs() {
        let program = program(None);
        let mut account = Account::open(&program, "m1".into(), at());
        let (effect, record) = apply_purchase(&mut account, &program, 3, &purchase(12_800, 0), "t-1", at()).unwrap();
        assert_eq!(
            (effect.points_earned, effect.balance_after, effect.rules_version),
            (128, 128, 3)
        );
        assert_eq!(
            (record.eligible_minor, record.points_earned, record.growth),
            (12_800, 128, 128)
        );
        assert_eq!(account.tier.lifetime_growth, 128);
    }

    #[test]
    fn a_purchase_redeeming_more_than_is_available_is_refused_whole() {
        let program = program(None);
        let mut account = Account::open(&program, "m1".into(), at());
        let refused = apply_purchase(&mut account, &program, 1, &purchase(10_000, 5), "t-1", at()).unwrap_err();
        assert_eq!(refused.field, "points_redeemed");
        assert_eq!(account.ledger.balance(), 0, "nothing was earned either");
    }

    #[test]
    fn the_daily_cap_holds_across_a_batch() {
        let program = program(Some(150));
        let mut account = Account::open(&program, "m1".into(), at());
        let earned: Vec<i64> = ["t-1", "t-2", "t-3"]
            .iter()
            .map(|key| {
                apply_purchase(&mut account, &program, 1, &purchase(10_000, 0), key, at())
                    .unwrap()
                    .0
                    .points_earned
            })
            .collect();
        assert_eq!(earned, [100, 50, 0]);
    }

    #[test]
    fn a_purchase_that_reaches_a_threshold_upgrades_at_once() {
        let program = program(None);
        let mut account = Account::open(&program, "m1".into(), at());
        apply_purchase(&mut account, &program, 1, &purchase(100_000, 0), "t-1", at()).unwrap();
        assert_eq!(account.tier_change(), Some(("member", "gold")));
    }

    proptest! {
        /// Whatever the partial refunds, refunding an order whole takes back exactly the points and
        /// growth it earned, and the balance returns to what it was.
        #[test]
        fn refunds_of_an_order_add_up_to_what_it_earned(
            amount in 1i64..10_000_000,
            cuts in proptest::collection::vec(0.0f64..1.0, 0..5),
        ) {
            let program = program(None);
            let mut account = Account::open(&program, "m1".into(), at());
            let (_, mut record) = apply_purchase(&mut account, &program, 1, &purchase(amount, 0), "t-1", at()).unwrap();
            let mut refunded = 0;
            for cut in cuts {
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let part = ((amount - refunded) as f64 * cut) as i64;
                apply_refund(&mut account, &program, 1, &mut record, "t-1", part, at()).unwrap();
                refunded += part;
            }
            apply_refund(&mut account, &program, 1, &mut record, "t-1", amount - refunded, at()).unwrap();
            prop_assert_eq!(record.points_reversed, record.points_earned);
            prop_assert_eq!(account.ledger.balance(), 0);
            prop_assert_eq!(account.tier.lifetime_growth, 0);
        }
    }
}
