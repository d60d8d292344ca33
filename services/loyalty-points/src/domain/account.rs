//! A member's account in one program, loaded for a change: its ledger and tier, settled to the
//! time of the change, and what the change did to them.

use chrono::{DateTime, Datelike, Utc};

use super::ledger::{EndedHold, Hold, HoldEnd, Ledger, Lot};
use super::program::ProgramRules;
use super::tiers::TierState;

/// An account as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredAccount {
    pub balance: i64,
    pub lots: Vec<Lot>,
    pub holds: Vec<Hold>,
    /// The latest holds that ended.
    pub ended_holds: Vec<EndedHold>,
    /// The last lot or hold id handed out.
    pub last_id: u64,
    pub tier: String,
    pub period_growth: i64,
    pub lifetime_growth: i64,
    /// The calendar year, in the program's time zone, that `period_growth` belongs to.
    pub growth_year: i32,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub program_id: String,
    pub member_id: String,
    pub ledger: Ledger,
    pub tier: TierState,
    /// The calendar year, in the program's time zone, that the tier's period growth belongs to.
    pub growth_year: i32,
    /// Points earned today before this change, for the daily cap; kept current as a batch earns.
    pub earned_today: i64,
    /// Holds that ended in this change, and how.
    pub ended_holds: Vec<(Hold, HoldEnd)>,
    /// The tier and holds as loaded, to tell what the change did.
    loaded_tier: String,
    loaded_holds: Vec<u64>,
}

impl Account {
    /// A member's first account in `program`: empty, in the first tier.
    pub fn open(program: &ProgramRules, member_id: String, at: DateTime<Utc>) -> Self {
        let stored = StoredAccount {
            tier: program.ladder.tier_for(0).code.clone(),
            growth_year: at.with_timezone(&program.offset).year(),
            ..StoredAccount::default()
        };
        Self::settle(program, member_id, stored, 0, at)
    }

    /// An account as stored, settled to `at`: holds past their TTL end, due lots expire, and each
    /// calendar year that ended since it last changed closes a tier period (downgrades happen only
    /// then).
    pub fn settle(
        program: &ProgramRules,
        member_id: String,
        stored: StoredAccount,
        earned_today: i64,
        at: DateTime<Utc>,
    ) -> Self {
        let year = at.with_timezone(&program.offset).year();
        let mut ledger = Ledger::restore(
            stored.balance,
            stored.lots,
            stored.holds,
            stored.ended_holds,
            stored.last_id,
        );
        let loaded_holds = ledger.holds().iter().map(|hold| hold.id).collect();
        let ended_holds = ledger
            .release_expired_holds(at)
            .into_iter()
            .map(|hold| (hold, HoldEnd::Expired))
            .collect();
        ledger.expire(at);
        let mut tier = TierState {
            tier: stored.tier.clone(),
            period_growth: stored.period_growth,
            lifetime_growth: stored.lifetime_growth,
        };
        // Two closings settle any number of years: the second starts from an empty period.
        for _ in stored.growth_year..year.min(stored.growth_year + 2) {
            tier.close_period(&program.ladder);
        }
        Self {
            program_id: program.id.clone(),
            member_id,
            ledger,
            tier,
            growth_year: year.max(stored.growth_year),
            earned_today,
            ended_holds,
            loaded_tier: stored.tier,
            loaded_holds,
        }
    }

    /// The tier before and after the change, if it moved.
    pub fn tier_change(&self) -> Option<(&str, &str)> {
        (self.tier.tier != self.loaded_tier).then_some((self.loaded_tier.as_str(), self.tier.tier.as_str()))
    }

    /// The holds the change placed.
    pub fn placed_holds(&self) -> impl Iterator<Item = &Hold> {
        self.ledger
            .holds()
            .iter()
            .filter(|hold| !self.loaded_holds.contains(&hold.id))
    }
}
