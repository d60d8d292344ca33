//! Tiers driven by growth value (成长值).
//!
//! Rule: growth accrues from spend beside points and is never spent. A member's tier is the
//! highest whose threshold the growth of the current evaluation period reaches. Upgrades happen at
//! once, when a threshold is crossed; at the end of a period the tier becomes the one the period's
//! growth reached (the member keeps the tier by reaching it again, and otherwise steps down to
//! what was reached), and the period's growth starts again from zero. Lifetime growth is kept.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub code: String,
    /// Period growth needed for this tier.
    pub threshold: i64,
    /// Points earning multiplier in basis points (10,000 = 1x).
    pub multiplier_bp: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    #[error("a tier ladder needs at least one tier")]
    Empty,
    #[error("the first tier must start at growth 0")]
    FirstNotZero,
    #[error("tier {0:?} must need more growth than the tier below it")]
    NotIncreasing(String),
}

/// Tiers in increasing order of threshold, the first at 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierLadder {
    tiers: Vec<Tier>,
}

impl TierLadder {
    pub fn new(tiers: Vec<Tier>) -> Result<Self, LadderError> {
        let first = tiers.first().ok_or(LadderError::Empty)?;
        if first.threshold != 0 {
            return Err(LadderError::FirstNotZero);
        }
        if let Some(pair) = tiers.windows(2).find(|pair| pair[1].threshold <= pair[0].threshold) {
            return Err(LadderError::NotIncreasing(pair[1].code.clone()));
        }
        Ok(Self { tiers })
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The highest tier `growth` reaches.
    pub fn tier_for(&self, growth: i64) -> &Tier {
        self.tiers
            .iter()
            .rev()
            .find(|tier| growth >= tier.threshold)
            .unwrap_or(&self.tiers[0])
    }

    fn rank(&self, code: &str) -> usize {
        self.tiers.iter().position(|tier| tier.code == code).unwrap_or(0)
    }
}

/// Growth stops at this (10^15): it only ever selects a tier, so the largest threshold is all
/// that matters, and a stop is better than a wrap.
pub const MAX_GROWTH: i64 = 1_000_000_000_000_000;

/// `growth + change`, never below zero nor above [`MAX_GROWTH`].
fn bounded_growth(growth: i64, change: i64) -> i64 {
    growth.saturating_add(change).clamp(0, MAX_GROWTH)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierState {
    pub tier: String,
    pub period_growth: i64,
    pub lifetime_growth: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierChange {
    pub from: String,
    pub to: String,
}

impl TierState {
    pub fn new(ladder: &TierLadder) -> Self {
        Self {
            tier: ladder.tier_for(0).code.clone(),
            period_growth: 0,
            lifetime_growth: 0,
        }
    }

    /// Adds growth (negative for a refund); upgrades at once, never downgrades mid-period.
    pub fn accrue(&mut self, ladder: &TierLadder, growth: i64) -> Option<TierChange> {
        self.period_growth = bounded_growth(self.period_growth, growth);
        self.lifetime_growth = bounded_growth(self.lifetime_growth, growth);
        let reached = ladder.tier_for(self.period_growth);
        (ladder.rank(&reached.code) > ladder.rank(&self.tier)).then(|| self.change_to(&reached.code))
    }

    /// Ends the evaluation period: the tier becomes the one the period's growth reached.
    pub fn close_period(&mut self, ladder: &TierLadder) -> Option<TierChange> {
        let reached = ladder.tier_for(self.period_growth).code.clone();
        self.period_growth = 0;
        (reached != self.tier).then(|| self.change_to(&reached))
    }

    /// Folds a merged member's growth in: growth adds up, and the tier becomes the highest of
    /// the two members' tiers and what the combined period growth reaches (an upgrade only, as
    /// mid-period).
    pub fn absorb(&mut self, ladder: &TierLadder, loser: &TierState) -> Option<TierChange> {
        self.period_growth = bounded_growth(self.period_growth, loser.period_growth);
        self.lifetime_growth = bounded_growth(self.lifetime_growth, loser.lifetime_growth);
        let reached = ladder.rank(&ladder.tier_for(self.period_growth).code);
        let best = ladder.rank(&self.tier).max(ladder.rank(&loser.tier)).max(reached);
        let code = ladder.tiers[best].code.clone();
        (code != self.tier).then(|| self.change_to(&code))
    }

    fn change_to(&mut self, code: &str) -> TierChange {
        let change = TierChange {
            from: self.tier.clone(),
            to: code.to_owned(),
        };
        self.tier = code.to_owned();
        change
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ladder() -> TierLadder {
        let tier = |code: &str, threshold, multiplier_bp| Tier {
            code: code.into(),
            threshold,
            multiplier_bp,
        };
        TierLadder::new(vec![
            tier("member", 0, 10_000),
            tier("silver", 1_000, 12_000),
            tier("gold", 5_000, 15_000),
        ])
        .unwrap()
    }

    #[test]
    fn ladders_are_checked() {
        let tier = |code: &str, threshold| Tier {
            code: code.into(),
            threshold,
            multiplier_bp: 10_000,
        };
        assert_eq!(TierLadder::new(vec![]), Err(LadderError::Empty));
        assert_eq!(TierLadder::new(vec![tier("a", 5)]), Err(LadderError::FirstNotZero));
        assert_eq!(
            TierLadder::new(vec![tier("a", 0), tier("b", 0)]),
            Err(LadderError::NotIncreasing("b".into()))
        );
    }

    #[test]
    fn upgrade_at_once_downgrade_only_at_period_end() {
        let ladder = ladder();
        let mut state = TierState::new(&ladder);
        assert_eq!(state.accrue(&ladder, 999), None);
        let up = state.accrue(&ladder, 1).unwrap();
        assert_eq!((up.from.as_str(), up.to.as_str()), ("member", "silver"));
        assert_eq!(state.accrue(&ladder, 6_000).unwrap().to, "gold");
        assert_eq!(
            state.accrue(&ladder, -5_500),
            None,
            "a refund never downgrades mid-period"
        );
        assert_eq!(state.tier, "gold");
        let down = state.close_period(&ladder).unwrap();
        assert_eq!(
            (down.from.as_str(), down.to.as_str()),
            ("gold", "silver"),
            "kept what the period reached"
        );
        assert_eq!(state.period_growth, 0);
        assert_eq!(state.lifetime_growth, 1_500);
        assert_eq!(state.close_period(&ladder).unwrap().to, "member");
        assert_eq!(state.close_period(&ladder), None);
    }

    #[test]
    fn merging_adds_growth_and_keeps_the_higher_tier() {
        let ladder = ladder();
        let mut survivor = TierState::new(&ladder);
        survivor.accrue(&ladder, 600);
        let mut loser = TierState::new(&ladder);
        loser.accrue(&ladder, 700);
        let change = survivor.absorb(&ladder, &loser).unwrap();
        assert_eq!(change.to, "silver");
        assert_eq!((survivor.period_growth, survivor.lifetime_growth), (1_300, 1_300));
    }

    proptest! {
        #[test]
        fn mid_period_the_tier_never_falls(steps in proptest::collection::vec(-2_000i64..3_000, 1..40)) {
            let ladder = ladder();
            let mut state = TierState::new(&ladder);
            let mut best = 0;
            for growth in steps {
                state.accrue(&ladder, growth);
                let rank = ladder.rank(&state.tier);
                prop_assert!(rank >= best);
                best = rank;
                prop_assert!(rank >= ladder.rank(&ladder.tier_for(state.period_growth).code));
            }
            let reached = ladder.tier_for(state.period_growth).code.clone();
            state.close_period(&ladder);
            prop_assert_eq!(&state.tier, &reached, "a period ends on the tier its growth reached");
            prop_assert_eq!(state.period_growth, 0);
        }
    }
}
