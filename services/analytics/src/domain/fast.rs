//! FAST and the channel overlap, over each consumer's facts held in memory: one pass over a
//! tenant's consumers answers them, where SQL grouped every purchase in the windows by consumer.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::aipl::{Flow, Signals, Stage, Windows};

/// A day as a number: days since 1970-01-01.
pub type DayNumber = i32;

/// The number of a day as windows name it (`YYYY-MM-DD`).
pub fn day_number(day: &str) -> Option<DayNumber> {
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    i32::try_from((date - NaiveDate::default()).num_days()).ok()
}

/// A place's number among its tenant's places. Sixteen bits keep a purchase in 16 bytes.
pub type PlaceNumber = u16;

/// What a member bought on a day at a place: a row of `member_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// Net of refunds.
    pub spend_minor: i64,
    pub day: DayNumber,
    pub place: PlaceNumber,
    /// At least one order: a day with only refunds is not a purchase. Orders never go below
    /// zero (a refund adds none), so a member bought in a window if any of its days did.
    pub bought: bool,
}

/// What a consumer did on a day at a place: a row of `interaction_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction {
    pub day: DayNumber,
    pub place: PlaceNumber,
    pub exposed: bool,
    pub engaged: bool,
}

/// Where and when a member (not merged into another) enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolment {
    pub day: DayNumber,
    pub place: PlaceNumber,
}

/// One consumer's facts: a member's, or an identity's not (yet) linked to one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumer<'a> {
    /// An identity's own consumer (`identity:<key>`), not a member.
    pub anonymous: bool,
    /// None for a merged member, an identity, or a buyer whose enrolment has not arrived.
    pub enrolment: Option<Enrolment>,
    /// By day, earliest first.
    pub purchases: &'a [Purchase],
    /// By day, earliest first.
    pub interactions: &'a [Interaction],
}

/// What the figures are asked of: the window's days and the places the filter selects.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub first_day: DayNumber,
    pub last_day: DayNumber,
    /// By place number: whether the filter selects it.
    pub places: &'a [bool],
}

impl Ask<'_> {
    fn selects(&self, place: PlaceNumber) -> bool {
        self.places.get(usize::from(place)).copied().unwrap_or(false)
    }
}

/// The FAST figures of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fast {
    /// Stages on the day before the window and on its last day: Fertility and Advancing.
    pub flow: Flow,
    /// Members who bought in the 365 days to the window's last day.
    pub buyers_of_the_year: i64,
    /// Of them, those whose net spend there reached the high-value threshold.
    pub spent_enough: i64,
    /// Members who bought or interacted in the window: Thriving's numerator.
    pub thriving: i64,
}

impl Fast {
    /// The figures of two sets of consumers, together.
    #[must_use]
    pub fn merge(self, other: Self) -> Self {
        Self {
            flow: self.flow.merge(other.flow),
            buyers_of_the_year: self.buyers_of_the_year + other.buyers_of_the_year,
            spent_enough: self.spent_enough + other.spent_enough,
            thriving: self.thriving + other.thriving,
        }
    }
}

/// The rules the FAST figures are read by.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub windows: Windows,
    /// The least 365-day net spend of a high-value member.
    pub high_value_min_spend: i64,
}

/// Which of the FAST figures that read purchases a call asks for: the others stay 0, uncomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The stages on the day before the window and on its last: Fertility and Advancing.
    pub flow: bool,
    /// The year's buyers, and those who spent enough: high-value members.
    pub year: bool,
    pub thriving: bool,
}

/// The FAST figures of `consumers` that `wanted` asks for (members are counted by
/// [`Enrolments`]).
pub fn fast<'a>(
    consumers: impl IntoIterator<Item = Consumer<'a>>,
    ask: &Ask<'_>,
    rules: &Rules,
    wanted: Wanted,
) -> Fast {
    let mut fast = Fast::default();
    if !(wanted.flow || wanted.year || wanted.thriving) {
        return fast;
    }
    let start_day = ask.first_day - 1;
    let mut moves = Moves::default();
    for consumer in consumers {
        // Each range of purchases by one binary search of the consumer's few.
        let purchases = consumer.purchases;
        let (to_start, to_end) = (upto(purchases, start_day), upto(purchases, ask.last_day));
        let to_end_purchases = &purchases[..to_end];
        if wanted.year {
            let year_from = to_end_purchases.partition_point(|purchase| purchase.day <= ask.last_day - 365);
            let (bought, spend) = spend_of(&to_end_purchases[year_from..], ask);
            if bought {
                fast.buyers_of_the_year += 1;
                fast.spent_enough += i64::from(spend >= rules.high_value_min_spend);
            }
        }
        if wanted.thriving && !consumer.anonymous {
            let (bought, _) = spend_of(&to_end_purchases[to_start..], ask);
            fast.thriving += i64::from(bought || interacted_in(&consumer, ask));
        }
        if wanted.flow {
            let from = stage_on(&consumer, &purchases[..to_start], (ask, start_day), &rules.windows);
            let to = stage_on(&consumer, to_end_purchases, (ask, ask.last_day), &rules.windows);
            moves.add(from, to);
        }
    }
    fast.flow = moves.into_flow();
    fast
}

/// Members (enrolled, not merged into another) by place and day of enrolment, kept as consumers
/// change: FAST's members are counted from a few thousand of these, not from every consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrolments(BTreeMap<(PlaceNumber, DayNumber), i64>);

impl Enrolments {
    /// Adds `members` (or takes them away, when negative) enrolled as `enrolment`.
    pub fn add(&mut self, enrolment: Enrolment, members: i64) {
        let key = (enrolment.place, enrolment.day);
        let count = self.0.entry(key).or_default();
        *count += members;
        if *count == 0 {
            self.0.remove(&key);
        }
    }

    /// Members enrolled by the window's last day: at any place, and at the places `ask` selects.
    pub fn by_last_day(&self, ask: &Ask<'_>) -> (i64, i64) {
        let (mut members, mut at_place) = (0, 0);
        for ((place, day), count) in &self.0 {
            if *day <= ask.last_day {
                members += count;
                if ask.selects(*place) {
                    at_place += count;
                }
            }
        }
        (members, at_place)
    }
}

/// How consumers moved between the AIPL stages from `ask`'s first day to its last.
pub fn stage_flow<'a>(consumers: impl IntoIterator<Item = Consumer<'a>>, ask: &Ask<'_>, windows: &Windows) -> Flow {
    let mut moves = Moves::default();
    for consumer in consumers {
        let purchases = consumer.purchases;
        let (to_start, to_end) = (upto(purchases, ask.first_day), upto(purchases, ask.last_day));
        let from = stage_on(&consumer, &purchases[..to_start], (ask, ask.first_day), windows);
        let to = stage_on(&consumer, &purchases[..to_end], (ask, ask.last_day), windows);
        moves.add(from, to);
    }
    moves.into_flow()
}

/// How many of `purchases` (sorted by day) fall on or before `day`.
fn upto(purchases: &[Purchase], day: DayNumber) -> usize {
    purchases.partition_point(|purchase| purchase.day <= day)
}

/// Consumers by their stage on a start day and an end day, counted in an array: a map's insert
/// per consumer would cost more than the rest of its figures.
#[derive(Default)]
struct Moves([[i64; 5]; 5]);

impl Moves {
    const STAGES: [Stage; 5] = [
        Stage::None,
        Stage::Aware,
        Stage::Interested,
        Stage::Purchased,
        Stage::Loyal,
    ];

    fn add(&mut self, from: Stage, to: Stage) {
        self.0[from as usize][to as usize] += 1;
    }

    fn into_flow(self) -> Flow {
        let mut flow = Flow::default();
        for (from, row) in Self::STAGES.iter().zip(self.0) {
            for (to, consumers) in Self::STAGES.iter().zip(row) {
                if consumers > 0 {
                    flow.add(*from, *to, consumers);
                }
            }
        }
        flow
    }
}

/// For each pair of channels (each pair once, lower first, a channel with itself included), the
/// members who bought on both in the window. `channels` lists the tenant's channels in order;
/// `channel_of` gives each place's index among them.
pub fn channel_overlap<'a>(
    consumers: impl IntoIterator<Item = Consumer<'a>>,
    ask: &Ask<'_>,
    (channels, channel_of): (&[i32], &[usize]),
) -> Vec<(i32, i32, i64)> {
    let count = channels.len();
    let mut members = vec![0i64; count * count];
    let mut seen = vec![false; count];
    let mut bought_on: Vec<usize> = Vec::new();
    for consumer in consumers {
        for purchase in purchases_in(&consumer, ask) {
            if !purchase.bought || !ask.selects(purchase.place) {
                continue;
            }
            if let Some(&channel) = channel_of.get(usize::from(purchase.place))
                && !seen[channel]
            {
                seen[channel] = true;
                bought_on.push(channel);
            }
        }
        bought_on.sort_unstable();
        for (index, channel) in bought_on.iter().enumerate() {
            for other in &bought_on[index..] {
                members[channel * count + other] += 1;
            }
            seen[*channel] = false;
        }
        bought_on.clear();
    }
    let mut pairs = Vec::new();
    for (index, channel) in channels.iter().enumerate() {
        for (other_index, other) in channels.iter().enumerate().skip(index) {
            let both = members[index * count + other_index];
            if both > 0 {
                pairs.push((*channel, *other, both));
            }
        }
    }
    pairs
}

/// What a consumer did on the days `first..=last`: its rows there (each kind sorted by day).
fn between<T>(rows: &[T], day_of: impl Fn(&T) -> DayNumber, (first, last): (DayNumber, DayNumber)) -> &[T] {
    let start = rows.partition_point(|row| day_of(row) < first);
    let end = rows.partition_point(|row| day_of(row) <= last);
    rows.get(start..end).unwrap_or_default()
}

fn purchases_in<'a>(consumer: &Consumer<'a>, ask: &Ask<'_>) -> &'a [Purchase] {
    between(
        consumer.purchases,
        |purchase| purchase.day,
        (ask.first_day, ask.last_day),
    )
}

/// The overlaps of two sets of consumers, together (each as [`channel_overlap`] answers them).
pub fn merge_overlaps(one: Vec<(i32, i32, i64)>, other: Vec<(i32, i32, i64)>) -> Vec<(i32, i32, i64)> {
    let mut pairs: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    for (channel, other_channel, members) in one.into_iter().chain(other) {
        *pairs.entry((channel, other_channel)).or_default() += members;
    }
    pairs
        .into_iter()
        .map(|((channel, other_channel), members)| (channel, other_channel, members))
        .collect()
}

/// Whether there is a purchase among `purchases` at a selected place, and their net spend there.
fn spend_of(purchases: &[Purchase], ask: &Ask<'_>) -> (bool, i64) {
    purchases
        .iter()
        .filter(|purchase| ask.selects(purchase.place))
        .fold((false, 0), |(bought, spend), purchase| {
            (bought || purchase.bought, spend + purchase.spend_minor)
        })
}

fn interacted_in(consumer: &Consumer<'_>, ask: &Ask<'_>) -> bool {
    between(consumer.interactions, |seen| seen.day, (ask.first_day, ask.last_day))
        .iter()
        .any(|interaction| ask.selects(interaction.place))
}

/// The consumer's stage on `day`, given its purchases up to that day.
fn stage_on(
    consumer: &Consumer<'_>,
    purchases: &[Purchase],
    (ask, day): (&Ask<'_>, DayNumber),
    windows: &Windows,
) -> Stage {
    Stage::of(signals(consumer, purchases, (ask, day), windows))
}

/// The signals the consumer shows on `day`, among what it did at the places `ask` selects, given
/// its purchases up to that day. They are read from `day` back, and no further than the signals
/// still undecided need.
fn signals(
    consumer: &Consumer<'_>,
    purchases: &[Purchase],
    (ask, day): (&Ask<'_>, DayNumber),
    windows: &Windows,
) -> Signals {
    // Windows are at most ten years: their days fit an i32.
    let since = |days: i64| day - i32::try_from(days - 1).unwrap_or(i32::MAX);
    let (purchased_since, loyal_since) = (since(windows.purchase_days), since(windows.loyal_days));
    let mut signals = Signals::default();
    let mut loyal_days = 0;
    let mut last_loyal_day = None;
    for purchase in purchases.iter().rev() {
        let purchased_decided = signals.purchased || purchase.day < purchased_since;
        let loyal_decided = signals.bought_on_enough_days || purchase.day < loyal_since;
        if purchased_decided && loyal_decided {
            break;
        }
        if !purchase.bought || !ask.selects(purchase.place) {
            continue;
        }
        signals.purchased |= purchase.day >= purchased_since;
        if purchase.day >= loyal_since && last_loyal_day != Some(purchase.day) {
            loyal_days += 1;
            last_loyal_day = Some(purchase.day);
            signals.bought_on_enough_days = loyal_days >= windows.loyal_min_purchase_days;
        }
    }
    let (aware_since, interest_since) = (since(windows.aware_days), since(windows.interest_days));
    let interactions = between(
        consumer.interactions,
        |seen| seen.day,
        (aware_since.min(interest_since), day),
    );
    for interaction in interactions {
        if ask.selects(interaction.place) {
            signals.exposed |= interaction.exposed && interaction.day >= aware_since;
            signals.engaged |= interaction.engaged && interaction.day >= interest_since;
        }
    }
    signals
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const TODAY: DayNumber = 20_000;
    const ALL: Wanted = Wanted {
        flow: true,
        year: true,
        thriving: true,
    };

    fn purchase(day: DayNumber, place: PlaceNumber) -> Purchase {
        Purchase {
            spend_minor: 1_000,
            day,
            place,
            bought: true,
        }
    }

    fn buyer(purchases: Vec<Purchase>) -> Consumer<'static> {
        Consumer {
            enrolment: Some(Enrolment { day: 0, place: 0 }),
            purchases: purchases.leak(),
            ..Consumer::default()
        }
    }

    /// The 30 days to `TODAY`, at the places `places` selects.
    fn thirty_days(places: &[bool]) -> Ask<'_> {
        Ask {
            first_day: TODAY - 29,
            last_day: TODAY,
            places,
        }
    }

    fn rules() -> Rules {
        Rules {
            windows: Windows::default(),
            high_value_min_spend: 2_000,
        }
    }

    #[test]
    fn a_day_bought_at_two_places_is_one_purchase_day() {
        let places = [true, true];
        let ask = thirty_days(&places);
        let two_days = buyer(vec![
            purchase(TODAY - 40, 0),
            purchase(TODAY - 40, 1),
            purchase(TODAY - 5, 0),
        ]);
        let three_days = buyer(vec![
            purchase(TODAY - 300, 0),
            purchase(TODAY - 40, 1),
            purchase(TODAY - 5, 0),
        ]);
        let fast = fast([two_days, three_days], &ask, &rules(), ALL);
        assert_eq!(fast.flow.at_end(Stage::Purchased), 1);
        assert_eq!(fast.flow.at_end(Stage::Loyal), 1);
        // Both were Purchased the day before the window; the second reached Loyal in it.
        assert_eq!((fast.flow.advanced(), fast.flow.started()), (1, 2));
        assert_eq!((fast.thriving, fast.buyers_of_the_year), (2, 2));
        assert_eq!(fast.spent_enough, 2);
        let nothing = Wanted {
            flow: false,
            year: false,
            thriving: false,
        };
        let uncounted = super::fast([two_days, three_days], &ask, &rules(), nothing);
        assert_eq!(uncounted, Fast::default(), "what is not wanted is not counted");
    }

    #[test]
    fn places_the_filter_leaves_out_count_for_nothing() {
        let places = [true, false];
        let ask = thirty_days(&places);
        let elsewhere = Consumer {
            enrolment: Some(Enrolment { day: 0, place: 1 }),
            ..buyer(vec![purchase(TODAY, 1)])
        };
        let fast = fast([elsewhere], &ask, &rules(), ALL);
        let mut enrolments = Enrolments::default();
        enrolments.add(Enrolment { day: 0, place: 1 }, 1);
        assert_eq!(enrolments.by_last_day(&ask), (1, 0));
        assert_eq!((fast.thriving, fast.buyers_of_the_year, fast.flow.reached()), (0, 0, 0));
    }

    #[test]
    fn members_count_by_their_enrolment_until_they_leave() {
        let places = [true, false];
        let ask = |last_day| Ask {
            first_day: 0,
            last_day,
            places: &places,
        };
        let mut enrolments = Enrolments::default();
        enrolments.add(Enrolment { day: 10, place: 0 }, 1);
        enrolments.add(Enrolment { day: 10, place: 0 }, 1);
        enrolments.add(Enrolment { day: 20, place: 1 }, 1);
        assert_eq!(enrolments.by_last_day(&ask(9)), (0, 0));
        assert_eq!(enrolments.by_last_day(&ask(10)), (2, 2));
        assert_eq!(enrolments.by_last_day(&ask(20)), (3, 2));
        enrolments.add(Enrolment { day: 10, place: 0 }, -2);
        assert_eq!(enrolments.by_last_day(&ask(20)), (1, 0));
        enrolments.add(Enrolment { day: 20, place: 1 }, -1);
        assert_eq!(enrolments, Enrolments::default(), "no count of zero is kept");
    }

    #[test]
    fn the_overlap_counts_each_pair_of_channels_a_member_bought_on_once() {
        let places = [true, true, true];
        let ask = thirty_days(&places);
        // Places 0 and 1 are both on channel 1 (index 0); place 2 is channel 5 (index 1).
        let (channels, channel_of) = (&[1, 5][..], &[0, 0, 1][..]);
        let both = buyer(vec![purchase(TODAY - 3, 0), purchase(TODAY - 2, 1), purchase(TODAY, 2)]);
        let one = buyer(vec![purchase(TODAY - 100, 0), purchase(TODAY, 2)]);
        let pairs = channel_overlap([both, one], &ask, (channels, channel_of));
        assert_eq!(pairs, [(1, 1, 1), (1, 5, 1), (5, 5, 2)]);
    }

    /// The stage a consumer is in on `day` by the definitions, from sets of days.
    fn stage_by_definition(consumer: &Consumer<'_>, day: DayNumber, windows: &Windows) -> Stage {
        let within = |from: DayNumber, days: i64| from <= day && i64::from(day - from) < days;
        let interacted = |kind: fn(&Interaction) -> bool, days: i64| {
            consumer
                .interactions
                .iter()
                .any(|seen| kind(seen) && within(seen.day, days))
        };
        let bought: BTreeSet<DayNumber> = consumer
            .purchases
            .iter()
            .filter(|purchase| purchase.bought && within(purchase.day, windows.loyal_days))
            .map(|purchase| purchase.day)
            .collect();
        if i64::try_from(bought.len()).unwrap() >= windows.loyal_min_purchase_days {
            Stage::Loyal
        } else if consumer
            .purchases
            .iter()
            .any(|purchase| purchase.bought && within(purchase.day, windows.purchase_days))
        {
            Stage::Purchased
        } else if interacted(|seen| seen.engaged, windows.interest_days) {
            Stage::Interested
        } else if interacted(|seen| seen.exposed, windows.aware_days) {
            Stage::Aware
        } else {
            Stage::None
        }
    }

    /// Consumers' purchases and interactions, each sorted by day.
    fn consumers() -> impl Strategy<Value = Vec<(Vec<Purchase>, Vec<Interaction>)>> {
        let purchase = (0i32..400, any::<bool>()).prop_map(|(ago, bought)| Purchase {
            bought,
            ..purchase(TODAY - ago, 0)
        });
        let interaction = (0i32..40, any::<bool>()).prop_map(|(ago, exposed)| Interaction {
            day: TODAY - ago,
            place: 0,
            exposed,
            engaged: !exposed,
        });
        let consumer = (
            proptest::collection::vec(purchase, 0..8),
            proptest::collection::vec(interaction, 0..4),
        )
            .prop_map(|(mut purchases, mut interactions)| {
                purchases.sort_by_key(|purchase| purchase.day);
                interactions.sort_by_key(|interaction| interaction.day);
                (purchases, interactions)
            });
        proptest::collection::vec(consumer, 0..30)
    }

    proptest! {
        /// The one-pass flow counts each consumer between the stages the definitions give them.
        #[test]
        fn the_flow_follows_the_definitions(consumers in consumers(), days_apart in 1i32..60) {
            let windows = Windows { purchase_days: 200, ..Windows::default() };
            let places = [true];
            let ask = Ask { first_day: TODAY - days_apart, last_day: TODAY, places: &places };
            let consumers: Vec<Consumer<'_>> = consumers
                .iter()
                .map(|(purchases, interactions)| Consumer { purchases, interactions, ..Consumer::default() })
                .collect();
            let mut expected = Flow::default();
            for consumer in &consumers {
                let from = stage_by_definition(consumer, ask.first_day, &windows);
                expected.add(from, stage_by_definition(consumer, TODAY, &windows), 1);
            }
            let flow = stage_flow(consumers.iter().copied(), &ask, &windows);
            prop_assert_eq!(flow.pairs().collect::<Vec<_>>(), expected.pairs().collect::<Vec<_>>());
        }
    }
}
