//! AIPL stages: which stage a consumer is in on a day, and how consumers moved between two days.

use std::collections::BTreeMap;

use quanyu_proto::analytics::v1 as pb;
use quanyu_runtime::error::Violations;

/// The windows of the stages, in days ending on the day asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub aware_days: i64,
    pub interest_days: i64,
    pub purchase_days: i64,
    pub loyal_days: i64,
    /// Distinct purchase days within `loyal_days` that make a consumer Loyal.
    pub loyal_min_purchase_days: i64,
}

/// The longest window a stage may have: ten years.
const MAX_WINDOW_DAYS: i32 = 3_660;

impl Default for Windows {
    /// The public Data Bank rules: exposed or engaged in 15 days, bought in two and a half years,
    /// bought on more than two distinct days in the last year.
    fn default() -> Self {
        Self {
            aware_days: 15,
            interest_days: 15,
            purchase_days: 913,
            loyal_days: 365,
            loyal_min_purchase_days: 3,
        }
    }
}

impl Windows {
    /// The windows a request asks for (0 takes the default); each field at fault is added to
    /// `violations` under `field`.
    pub fn from_pb(asked: Option<&pb::AiplWindows>, field: &str, violations: &mut Violations) -> Self {
        let asked = asked.cloned().unwrap_or_default();
        let defaults = Self::default();
        let mut days = |name: &str, value: i32, default: i64, max: i32| match value {
            0 => default,
            1.. if value <= max => i64::from(value),
            _ => {
                violations.add(
                    format!("{field}.{name}"),
                    format!("must be 1-{max} (or 0 for {default})"),
                );
                default
            }
        };
        let windows = Self {
            aware_days: days("aware_days", asked.aware_days, defaults.aware_days, MAX_WINDOW_DAYS),
            interest_days: days(
                "interest_days",
                asked.interest_days,
                defaults.interest_days,
                MAX_WINDOW_DAYS,
            ),
            purchase_days: days(
                "purchase_days",
                asked.purchase_days,
                defaults.purchase_days,
                MAX_WINDOW_DAYS,
            ),
            loyal_days: days("loyal_days", asked.loyal_days, defaults.loyal_days, MAX_WINDOW_DAYS),
            loyal_min_purchase_days: days(
                "loyal_min_purchase_days",
                asked.loyal_min_purchase_days,
                defaults.loyal_min_purchase_days,
                MAX_WINDOW_DAYS,
            ),
        };
        if windows.loyal_min_purchase_days > windows.loyal_days {
            violations.add(
                format!("{field}.loyal_min_purchase_days"),
                "must not exceed loyal_days: no one buys on more days than the window has",
            );
        }
        windows
    }
}

/// A consumer's stage, shallowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    None,
    Aware,
    Interested,
    Purchased,
    Loyal,
}

impl Stage {
    /// Every stage a consumer can be in, shallowest first.
    pub const REACHED: [Stage; 4] = [Self::Aware, Self::Interested, Self::Purchased, Self::Loyal];

    /// Each stage reached with the signal that reaches it, deepest first: a consumer is in the
    /// first whose signal they show.
    pub const DEEPEST_FIRST: [(Stage, Signal); 4] = [
        (Self::Loyal, Signal::BoughtOnEnoughDays),
        (Self::Purchased, Signal::Purchased),
        (Self::Interested, Signal::Engaged),
        (Self::Aware, Signal::Exposed),
    ];

    /// The deepest stage a consumer's signals on a day meet.
    pub fn of(signals: Signals) -> Self {
        Self::DEEPEST_FIRST
            .iter()
            .find(|(_, signal)| signals.shows(*signal))
            .map_or(Self::None, |(stage, _)| *stage)
    }

    pub fn to_pb(self) -> pb::AiplStage {
        match self {
            Self::None => pb::AiplStage::Unspecified,
            Self::Aware => pb::AiplStage::Aware,
            Self::Interested => pb::AiplStage::Interested,
            Self::Purchased => pb::AiplStage::Purchased,
            Self::Loyal => pb::AiplStage::Loyal,
        }
    }
}

/// What puts a consumer in a stage on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An exposure within `aware_days`.
    Exposed,
    /// Another interaction within `interest_days`.
    Engaged,
    /// A purchase within `purchase_days`.
    Purchased,
    /// Purchases on `loyal_min_purchase_days` distinct days within `loyal_days`.
    BoughtOnEnoughDays,
}

/// The signals a consumer shows on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub exposed: bool,
    pub engaged: bool,
    pub purchased: bool,
    pub bought_on_enough_days: bool,
}

impl Signals {
    pub fn shows(self, signal: Signal) -> bool {
        match signal {
            Signal::Exposed => self.exposed,
            Signal::Engaged => self.engaged,
            Signal::Purchased => self.purchased,
            Signal::BoughtOnEnoughDays => self.bought_on_enough_days,
        }
    }
}

/// Consumers by their stage on a start day and an end day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    consumers: BTreeMap<(Stage, Stage), i64>,
}

impl Flow {
    /// Counts `consumers` who were in `from` on the start day and in `to` on the end day.
    pub fn add(&mut self, from: Stage, to: Stage, consumers: i64) {
        if (from, to) != (Stage::None, Stage::None) {
            *self.consumers.entry((from, to)).or_default() += consumers;
        }
    }

    /// The consumers of both flows.
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        for (from, to, consumers) in other.pairs() {
            self.add(from, to, consumers);
        }
        self
    }

    /// Each pair of stages with at least one consumer, in stage order.
    pub fn pairs(&self) -> impl Iterator<Item = (Stage, Stage, i64)> + '_ {
        self.consumers
            .iter()
            .filter(|(_, consumers)| **consumers != 0)
            .map(|((from, to), consumers)| (*from, *to, *consumers))
    }

    fn sum(&self, wanted: impl Fn(Stage, Stage) -> bool) -> i64 {
        self.pairs()
            .filter(|(from, to, _)| wanted(*from, *to))
            .map(|(_, _, consumers)| consumers)
            .sum()
    }

    /// Consumers in `stage` on the start day.
    pub fn at_start(&self, stage: Stage) -> i64 {
        self.sum(|from, _| from == stage)
    }

    /// Consumers in `stage` on the end day.
    pub fn at_end(&self, stage: Stage) -> i64 {
        self.sum(|_, to| to == stage)
    }

    /// Consumers in any stage on the start day.
    pub fn started(&self) -> i64 {
        self.sum(|from, _| from != Stage::None)
    }

    /// Consumers in any stage on the end day: FAST Fertility.
    pub fn reached(&self) -> i64 {
        self.sum(|_, to| to != Stage::None)
    }

    pub fn stayed(&self) -> i64 {
        self.sum(|from, to| from != Stage::None && to == from)
    }

    /// Consumers in a stage on the start day and in a deeper one on the end day: FAST Advancing's
    /// numerator (over [`started`](Self::started)).
    pub fn advanced(&self) -> i64 {
        self.sum(|from, to| from != Stage::None && to > from)
    }

    pub fn churned(&self) -> i64 {
        self.sum(|from, to| to < from)
    }

    /// Consumers in no stage on the start day and in one on the end day.
    pub fn arrived(&self) -> i64 {
        self.sum(|from, to| from == Stage::None && to != Stage::None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stage(index: usize) -> Stage {
        [
            Stage::None,
            Stage::Aware,
            Stage::Interested,
            Stage::Purchased,
            Stage::Loyal,
        ][index]
    }

    #[test]
    fn the_deepest_stage_met_wins() {
        let signals = |exposed, engaged, purchased, bought_on_enough_days| Signals {
            exposed,
            engaged,
            purchased,
            bought_on_enough_days,
        };
        assert_eq!(Stage::of(signals(false, false, false, false)), Stage::None);
        assert_eq!(Stage::of(signals(true, false, false, false)), Stage::Aware);
        assert_eq!(Stage::of(signals(true, true, false, false)), Stage::Interested);
        assert_eq!(Stage::of(signals(true, true, true, false)), Stage::Purchased);
        assert_eq!(Stage::of(signals(false, false, true, true)), Stage::Loyal);
        assert_eq!(Stage::of(signals(true, false, false, true)), Stage::Loyal);
    }

    #[test]
    fn windows_default_to_the_data_bank_rules_and_name_each_bad_one() {
        let mut violations = Violations::default();
        assert_eq!(Windows::from_pb(None, "aipl", &mut violations), Windows::default());
        let asked = pb::AiplWindows {
            aware_days: 7,
            interest_days: -1,
            purchase_days: 0,
            loyal_days: 2,
            loyal_min_purchase_days: 3,
        };
        let windows = Windows::from_pb(Some(&asked), "aipl", &mut violations);
        assert_eq!((windows.aware_days, windows.purchase_days), (7, 913));
        let fields: Vec<String> = violations
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["aipl.interest_days", "aipl.loyal_min_purchase_days"]);
    }

    proptest! {
        /// Everyone in a stage on the start day stayed, advanced or churned, and everyone in one on
        /// the end day was there at the start or arrived.
        #[test]
        fn every_consumer_is_counted_once_each_way(
            moves in proptest::collection::vec((0usize..5, 0usize..5, 0i64..1_000), 0..40),
        ) {
            let mut flow = Flow::default();
            for (from, to, consumers) in &moves {
                flow.add(stage(*from), stage(*to), *consumers);
            }
            prop_assert_eq!(flow.stayed() + flow.advanced() + flow.churned(), flow.started());
            prop_assert_eq!(flow.reached(), flow.started() - flow.sum(|from, to| from != Stage::None && to == Stage::None) + flow.arrived());
            let by_stage: i64 = Stage::REACHED.iter().map(|stage| flow.at_end(*stage)).sum();
            prop_assert_eq!(by_stage, flow.reached());
        }
    }
}
