//! analytics over real gRPC, fed by member-identity and loyalty-points, on SQLite and
//! PostgreSQL: each figure against a brute-force count of the same generated data.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::common::v1::Channel;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as points_pb;
use quanyu_testkit::points::{cny, member_buyer, record, sale, with_program};
use quanyu_testkit::{AnalyticsClient, Suite, enrol, keys};
use tonic::{Code, Status};

quanyu_testkit::suite!(
    figures_match_a_brute_force_count,
    interactions_are_recorded_once_each,
    audiences_select_members_by_their_facts,
    bad_requests_name_their_field
);

const MEMBERS: usize = 12;
/// Every metric the contract names, in its order (the brute force answers them in this order).
fn all_metrics() -> Vec<i32> {
    (1..).take_while(|value| pb::Metric::try_from(*value).is_ok()).collect()
}

/// Whether `filter` may ask `metric`: a cross-brand rate takes no brand, a cross-store no store.
fn askable(filter: &pb::Filter, metric: i32) -> bool {
    (filter.brand_id.is_empty() || metric != pb::Metric::CrossBrandPurchaseRate as i32)
        && (filter.store_id.is_empty() || metric != pb::Metric::CrossStorePurchaseRate as i32)
}

/// How many days ago member `n` enrolled.
fn enrolled_days_ago(n: usize) -> i64 {
    [0, 12, 30][n % 3]
}

/// Where a member enrolled or a sale was made, as the generator picks it.
#[derive(Clone, Copy)]
struct Place {
    brand: &'static str,
    channel: Channel,
    store: &'static str,
}

fn place(n: usize) -> Place {
    Place {
        brand: ["lumen", "aura"][n % 2],
        channel: [Channel::Store, Channel::Tmall, Channel::Douyin][n % 3],
        store: ["sh-01", "bj-02", "gz-03"][(n / 2) % 3],
    }
}

/// A generated sale: who bought (a member's index), where, how many days ago, how much.
struct Sold {
    buyer: Option<usize>,
    place: Place,
    days_ago: i64,
    amount: i64,
    /// (category, SKU, amount) of each line.
    lines: Vec<(&'static str, &'static str, i64)>,
}

/// Whom a generated interaction is by: a member (by index), or an identity no member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Person {
    Member(usize),
    Anonymous(usize),
}

/// A generated interaction: by whom, where, how many days ago, and whether an exposure.
struct Interacted {
    person: Person,
    place: Place,
    days_ago: i64,
    exposure: bool,
}

/// The member the generator's member `n` counts as: member 1 was merged into member 0.
fn person_of(n: usize) -> usize {
    if n == 1 { 0 } else { n }
}

/// What a person did, as the AIPL stages read it: the days ago of each exposure, engagement and
/// purchase.
#[derive(Debug, Default)]
struct Doings {
    exposed: BTreeSet<i64>,
    engaged: BTreeSet<i64>,
    bought: BTreeSet<i64>,
}

impl Doings {
    /// The AIPL stage (0 none … 4 loyal) as of `days_ago`, by the default windows.
    fn stage(&self, days_ago: i64) -> u8 {
        let within = |days: &BTreeSet<i64>, window: i64| {
            days.iter()
                .filter(|day| **day >= days_ago && **day < days_ago + window)
                .count()
        };
        if within(&self.bought, 365) >= 3 {
            4
        } else if within(&self.bought, 913) > 0 {
            3
        } else if within(&self.engaged, 15) > 0 {
            2
        } else {
            u8::from(within(&self.exposed, 15) > 0)
        }
    }
}

/// What each person did at the places the filter selects.
fn doings(sold: &[Sold], interacted: &[Interacted], filter: &pb::Filter) -> BTreeMap<Person, Doings> {
    let mut doings: BTreeMap<Person, Doings> = BTreeMap::new();
    for sale in sold
        .iter()
        .filter(|sale| sale.amount > 0 && matches(filter, sale.place))
    {
        if let Some(buyer) = sale.buyer {
            let person = Person::Member(person_of(buyer));
            doings.entry(person).or_default().bought.insert(sale.days_ago);
        }
    }
    for interaction in interacted
        .iter()
        .filter(|interaction| matches(filter, interaction.place))
    {
        let person = match interaction.person {
            Person::Member(n) => Person::Member(person_of(n)),
            anonymous => anonymous,
        };
        let doing = doings.entry(person).or_default();
        if interaction.exposure {
            doing.exposed.insert(interaction.days_ago);
        } else {
            doing.engaged.insert(interaction.days_ago);
        }
    }
    doings
}

/// FAST Fertility, Advancing, members, high-value members and Thriving, counted the slow way.
fn brute_force_fast(
    sold: &[Sold],
    interacted: &[Interacted],
    filter: &pb::Filter,
    window_days: i64,
) -> Vec<(i64, i64)> {
    let doings = doings(sold, interacted, filter);
    let count = |n: usize| i64::try_from(n).unwrap();
    let reached = doings.values().filter(|doing| doing.stage(0) > 0).count();
    let started = doings.values().filter(|doing| doing.stage(window_days) > 0);
    let advanced = started
        .clone()
        .filter(|doing| doing.stage(0) > doing.stage(window_days))
        .count();
    let members = (0..MEMBERS).filter(|&n| n != 1 && matches(filter, place(n))).count();
    let buyers = doings.values().filter(|doing| !doing.bought.is_empty()).count();
    let thriving = doings
        .iter()
        .filter(|(person, doing)| {
            let recent = |days: &BTreeSet<i64>| days.iter().any(|day| *day < window_days);
            matches!(person, Person::Member(_))
                && (recent(&doing.bought) || recent(&doing.exposed) || recent(&doing.engaged))
        })
        .count();
    vec![
        (count(reached), 1),
        (count(advanced), count(started.count())),
        (count(members), 1),
        (count((buyers * 20).div_ceil(100)), count(MEMBERS - 1)),
        (count(thriving), count(MEMBERS - 1)),
    ]
}

/// Each pair of AIPL stages (as numbers) a person was in `from_days_ago` and today, and how many.
fn brute_force_flow(sold: &[Sold], interacted: &[Interacted], from_days_ago: i64) -> BTreeMap<(i32, i32), i64> {
    let mut flows = BTreeMap::new();
    for doing in doings(sold, interacted, &pb::Filter::default()).values() {
        let pair = (i32::from(doing.stage(from_days_ago)), i32::from(doing.stage(0)));
        if pair != (0, 0) {
            *flows.entry(pair).or_default() += 1;
        }
    }
    flows
}

/// Every third sale has a lipstick line of a quarter of its amount beside the serum; the others
/// are all serum. Sale 3 is a basket of 900 lines, one minor unit each but the last, serum and
/// lipstick by turns: more lines than one statement carries, and many of the same SKU.
fn lines_of(n: usize, amount: i64) -> Vec<(&'static str, &'static str, i64)> {
    if n == 3 {
        let mut basket: Vec<_> = (0..899)
            .map(|unit| match unit % 2 {
                0 => ("skincare", "serum", 1),
                _ => ("makeup", "lipstick", 1),
            })
            .collect();
        basket.push(("skincare", "serum", amount - 899));
        basket
    } else if n.is_multiple_of(3) {
        let makeup = amount / 4;
        vec![("skincare", "serum", amount - makeup), ("makeup", "lipstick", makeup)]
    } else {
        vec![("skincare", "serum", amount)]
    }
}

/// Net sales of the lines a category or SKU filter selects, by members and by everyone.
fn brute_force_lines(sold: &[Sold], filter: &pb::Filter, window_days: i64) -> (i64, i64) {
    let mut shares = (0, 0);
    for sale in sold
        .iter()
        .filter(|sale| sale.days_ago < window_days && matches(filter, sale.place))
    {
        for (category, sku, amount) in &sale.lines {
            if (filter.category.is_empty() || filter.category == *category)
                && (filter.sku.is_empty() || filter.sku == *sku)
            {
                shares.1 += amount;
                if sale.buyer.is_some() {
                    shares.0 += amount;
                }
            }
        }
    }
    shares
}

fn matches(filter: &pb::Filter, place: Place) -> bool {
    (filter.brand_id.is_empty() || filter.brand_id == place.brand)
        && (filter.channel == 0 || filter.channel == place.channel as i32)
        && (filter.store_id.is_empty() || filter.store_id == place.store)
}

/// The figures, counted from the generated data the slow, obvious way. Member 1 was merged into
/// member 0, so it counts as member 0.
fn brute_force(sold: &[Sold], interacted: &[Interacted], filter: &pb::Filter, window_days: i64) -> Vec<(i64, i64)> {
    let person = person_of;
    let in_window: Vec<&Sold> = sold
        .iter()
        .filter(|sale| sale.days_ago < window_days && matches(filter, sale.place))
        .collect();
    let new: Vec<usize> = (0..MEMBERS)
        .filter(|&n| n != 1 && matches(filter, place(n)) && enrolled_days_ago(n) < window_days)
        .collect();
    let new_members = new.len();
    // Each person's purchases at the filter's places, by days ago.
    let mut bought: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    for sale in sold
        .iter()
        .filter(|sale| sale.amount > 0 && matches(filter, sale.place))
    {
        if let Some(buyer) = sale.buyer {
            bought.entry(person(buyer)).or_default().insert(sale.days_ago);
        }
    }
    let bought_between = |n: usize, from_ago: i64, to_ago: i64| {
        bought
            .get(&n)
            .is_some_and(|days| days.iter().any(|day| (to_ago..=from_ago).contains(day)))
    };
    let converted = new
        .iter()
        .filter(|&&n| bought_between(n, enrolled_days_ago(n), enrolled_days_ago(n) - 29))
        .count();
    let not_yet_buyers: Vec<usize> = (0..MEMBERS)
        .filter(|&n| n != 1 && enrolled_days_ago(n) >= window_days && !bought_between(n, i64::MAX, window_days))
        .collect();
    let first_buyers = not_yet_buyers
        .iter()
        .filter(|&&n| bought_between(n, window_days - 1, 0))
        .count();
    let several = |place_of: fn(&Place) -> &'static str| {
        let mut places: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for sale in in_window.iter().filter(|sale| sale.amount > 0) {
            if let Some(buyer) = sale.buyer {
                places.entry(person(buyer)).or_default().insert(place_of(&sale.place));
            }
        }
        let count = |n: usize| i64::try_from(n).unwrap();
        (
            count(places.values().filter(|places| places.len() >= 2).count()),
            count(places.len()),
        )
    };
    let member_sales: i64 = in_window
        .iter()
        .filter(|sale| sale.buyer.is_some())
        .map(|sale| sale.amount)
        .sum();
    let all_sales: i64 = in_window.iter().map(|sale| sale.amount).sum();
    let mut days: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    for sale in in_window.iter().filter(|sale| sale.amount > 0) {
        if let Some(buyer) = sale.buyer {
            days.entry(person(buyer)).or_default().insert(sale.days_ago);
        }
    }
    let repeaters = days.values().filter(|bought| bought.len() >= 2).count();
    let mut spend: BTreeMap<usize, i64> = BTreeMap::new();
    for sale in &in_window {
        if let Some(buyer) = sale.buyer {
            *spend.entry(person(buyer)).or_default() += sale.amount;
        }
    }
    let mut buyers_spend: Vec<i64> = spend
        .iter()
        .filter(|(buyer, _)| days.contains_key(buyer))
        .map(|(_, spent)| *spent)
        .collect();
    buyers_spend.sort_unstable_by(|a, b| b.cmp(a));
    let top = (buyers_spend.len() * 20).div_ceil(100);
    let to_date: i64 = sold
        .iter()
        .filter(|sale| sale.buyer.is_some() && matches(filter, sale.place))
        .map(|sale| sale.amount)
        .sum();
    let count = |n: usize| i64::try_from(n).unwrap();
    let mut figures = vec![
        (count(new_members), 1),
        (member_sales, all_sales),
        (count(repeaters), count(days.len())),
        (count(days.len()), count(MEMBERS - 1)),
        (buyers_spend.iter().take(top).sum(), buyers_spend.iter().sum()),
        (to_date, count(MEMBERS - 1)),
    ];
    figures.extend(brute_force_fast(sold, interacted, filter, window_days));
    figures.extend([
        (count(converted), count(new_members)),
        (count(first_buyers), count(not_yet_buyers.len())),
        several(|place| place.brand),
        several(|place| place.store),
    ]);
    all_metrics()
        .into_iter()
        .zip(figures)
        .filter(|(metric, _)| askable(filter, *metric))
        .map(|(_, figure)| figure)
        .collect()
}

/// For each pair of channels (in order), the people who bought on both in the window.
fn brute_force_overlap(sold: &[Sold], filter: &pb::Filter, window_days: i64) -> Vec<(i32, i32, i64)> {
    let mut channels: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
    for sale in sold
        .iter()
        .filter(|sale| sale.days_ago < window_days && sale.amount > 0 && matches(filter, sale.place))
    {
        if let Some(buyer) = sale.buyer {
            channels
                .entry(person_of(buyer))
                .or_default()
                .insert(sale.place.channel as i32);
        }
    }
    let mut pairs: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    for bought in channels.values() {
        for a in bought {
            for b in bought.iter().filter(|b| *b >= a) {
                *pairs.entry((*a, *b)).or_default() += 1;
            }
        }
    }
    pairs.into_iter().map(|((a, b), members)| (a, b, members)).collect()
}

/// Enrols a member with one WeChat openid; the member's id.
async fn enrol_by_openid(identity: &mut quanyu_testkit::IdentityClient, value: &str) -> String {
    identity
        .enroll_member(identity_pb::EnrollMemberRequest {
            identities: vec![openid(value)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .member_id
}

fn openid(value: &str) -> identity_pb::Identity {
    identity_pb::Identity {
        kind: identity_pb::IdentityKind::WechatOpenid.into(),
        value: value.into(),
        namespace: "wx-app".into(),
    }
}

/// The SHA-256 digest of an E.164 phone number, as platforms send it.
fn phone_hash(e164: &str) -> identity_pb::Identity {
    use sha2::Digest as _;
    identity_pb::Identity {
        kind: identity_pb::IdentityKind::PhoneHash.into(),
        value: hex::encode(sha2::Sha256::digest(e164.as_bytes())),
        namespace: String::new(),
    }
}

fn generated_interaction(n: usize, identity: identity_pb::Identity, interaction: &Interacted) -> pb::Interaction {
    let at = Utc::now() - chrono::Duration::days(interaction.days_ago);
    pb::Interaction {
        source: "databank".into(),
        event_id: format!("i-{n}"),
        identity: Some(identity),
        kind: if interaction.exposure {
            pb::InteractionKind::Exposure
        } else {
            pb::InteractionKind::AddToCart
        }
        .into(),
        channel: interaction.place.channel.into(),
        brand_id: interaction.place.brand.into(),
        store_id: interaction.place.store.into(),
        occurred_at: Some(quanyu_runtime::clock::to_proto(at)),
    }
}

async fn record_interactions(
    client: &mut AnalyticsClient,
    interactions: Vec<pb::Interaction>,
) -> Vec<pb::InteractionResult> {
    client
        .record_interactions(pb::RecordInteractionsRequest { interactions })
        .await
        .unwrap()
        .into_inner()
        .results
}

async fn figures(
    client: &mut AnalyticsClient,
    filter: &pb::Filter,
    first_day: &str,
    last_day: &str,
) -> Vec<(i64, i64)> {
    let answer = client
        .get_metrics(pb::GetMetricsRequest {
            metrics: all_metrics()
                .into_iter()
                .filter(|metric| askable(filter, *metric))
                .collect(),
            start_date: first_day.into(),
            end_date: last_day.into(),
            filter: Some(filter.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    answer
        .values
        .iter()
        .map(|value| (value.numerator, value.denominator))
        .collect()
}

/// Also with a second analytics instance reading the same streams into the same database (a pod
/// beside its replacement, say): each event still counts once.
async fn figures_match_a_brute_force_count(mut sandbox: Suite) {
    sandbox
        .start_another(&quanyu_analytics::SERVICE, quanyu_testkit::ANALYTICS_SETTINGS)
        .await;
    with_program(&sandbox, 0).await;
    let mut identity = sandbox.identity(keys::ACME_PLATFORM).await;
    for brand in ["lumen", "aura"] {
        identity
            .create_brand(identity_pb::CreateBrandRequest {
                brand_id: brand.into(),
                display_name: brand.into(),
            })
            .await
            .unwrap();
    }
    let mut members = Vec::new();
    for n in 0..MEMBERS {
        let enrollment = identity_pb::Enrollment {
            channel: place(n).channel.into(),
            brand_id: place(n).brand.into(),
            store_id: place(n).store.into(),
            ..Default::default()
        };
        let clock = &sandbox.context.clock;
        clock.set(Utc::now() - chrono::Duration::days(enrolled_days_ago(n)));
        members.push(enrol(&mut identity, &format!("1370000{n:04}"), enrollment).await);
        clock.set(Utc::now());
    }
    let sold: Vec<Sold> = (0..48)
        .map(|n| {
            let amount = i64::try_from(1_000 + n * 37).unwrap();
            Sold {
                buyer: (n % 4 != 3).then_some((n * 7) % MEMBERS),
                place: place(n / 5),
                days_ago: i64::try_from(n % 9).unwrap(),
                amount,
                lines: lines_of(n, amount),
            }
        })
        .collect();
    let mut pos = sandbox.points(keys::ACME_POS).await;
    let mut sales = Vec::new();
    for (n, generated) in sold.iter().enumerate() {
        let buyer = generated.buyer.map(|index| members[index].as_str());
        let mut sent = sale(&format!("a-{n}"), buyer.and_then(member_buyer), generated.amount);
        sent.brand_id = generated.place.brand.into();
        sent.channel = generated.place.channel.into();
        sent.store_id = generated.place.store.into();
        let at = Utc::now() - chrono::Duration::days(generated.days_ago);
        sent.occurred_at = Some(quanyu_runtime::clock::to_proto(at));
        let serum = sent.lines[0].clone();
        sent.lines = generated
            .lines
            .iter()
            .map(|(category, sku, amount)| points_pb::SaleLine {
                category: (*category).into(),
                sku: (*sku).into(),
                amount: cny(*amount),
                ..serum.clone()
            })
            .collect();
        sales.push(sent);
    }
    // A refund of part of the first sale, made today where it was bought.
    let mut refunded = sales[0].clone();
    refunded.transaction_id = "a-refund".into();
    refunded.kind = points_pb::SaleKind::Refund.into();
    refunded.original_transaction_id = "a-0".into();
    refunded.buyer = None;
    refunded.lines.clear();
    refunded.amount = cny(400);
    refunded.occurred_at = quanyu_testkit::points::now();
    sales.push(refunded);
    let results = record(&mut pos, sales).await;
    assert!(
        results
            .iter()
            .all(|result| result.outcome == points_pb::SaleOutcome::Applied as i32),
        "{results:?}"
    );
    let mut sold = sold;
    // Sale 0 (1,000: serum 750, lipstick 250) refunded by 400 gives back 300 and 100.
    sold.push(Sold {
        buyer: sold[0].buyer,
        place: sold[0].place,
        days_ago: 0,
        amount: -400,
        lines: vec![("skincare", "serum", -300), ("makeup", "lipstick", -100)],
    });
    // Interactions by members (keyed by their phone's digest), by consumers no member holds, and
    // by one whose openid a member links afterwards: member 5.
    let interacted: Vec<Interacted> = (0..60)
        .map(|n| Interacted {
            person: match n % 4 {
                0 | 1 => Person::Member((n * 5) % MEMBERS),
                2 => Person::Anonymous(n % 5),
                _ => Person::Member(5),
            },
            place: place(n / 3),
            days_ago: i64::try_from(n % 20).unwrap(),
            exposure: n % 3 != 0,
        })
        .collect();
    let mut analytics = sandbox.analytics(keys::ACME_PLATFORM).await;
    let sent: Vec<pb::Interaction> = interacted
        .iter()
        .enumerate()
        .map(|(n, interaction)| {
            let identity = match interaction.person {
                Person::Member(5) if n % 4 == 3 => openid("o-late-0000000000"),
                Person::Member(member) => phone_hash(&format!("+861370000{member:04}")),
                Person::Anonymous(k) => openid(&format!("o-anon-{k:010}")),
            };
            generated_interaction(n, identity, interaction)
        })
        .collect();
    let results = record_interactions(&mut analytics, sent.clone()).await;
    assert!(
        results
            .iter()
            .all(|result| result.outcome == pb::InteractionOutcome::Applied as i32),
        "{results:?}"
    );
    identity
        .link_identity(identity_pb::LinkIdentityRequest {
            member_id: members[5].clone(),
            identity: Some(openid("o-late-0000000000")),
        })
        .await
        .unwrap();
    quanyu_testkit::merge(&mut identity, &members[0], &members[1]).await;

    let busiest = brute_force(&sold, &interacted, &pb::Filter::default(), 9);
    assert!(
        busiest.iter().all(|(n, d)| *n > 0 && *d > 0),
        "the data moves every figure: {busiest:?}"
    );
    let day = quanyu_testkit::analytics_day;
    let mut client = sandbox.analytics(keys::ACME_ANALYST).await;
    let filters = [
        pb::Filter::default(),
        pb::Filter {
            channel: Channel::Store.into(),
            ..Default::default()
        },
        pb::Filter {
            brand_id: "lumen".into(),
            store_id: "sh-01".into(),
            ..Default::default()
        },
    ];
    for filter in &filters {
        for window_days in [1, 4, 9] {
            let expected = brute_force(&sold, &interacted, filter, window_days);
            let mut answered = Vec::new();
            for _ in 0..100 {
                answered = figures(&mut client, filter, &day(window_days - 1), &day(0)).await;
                if answered == expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(answered, expected, "{filter:?} over {window_days} days");
        }
    }
    let by_line = [
        pb::Filter {
            category: "makeup".into(),
            ..Default::default()
        },
        pb::Filter {
            sku: "serum".into(),
            channel: Channel::Store.into(),
            ..Default::default()
        },
    ];
    for filter in &by_line {
        let expected = brute_force_lines(&sold, filter, 9);
        assert!(expected.0 > 0 && expected.1 > expected.0, "{filter:?}: {expected:?}");
        let answer = client
            .get_metrics(pb::GetMetricsRequest {
                metrics: vec![pb::Metric::MemberShareOfSales as i32],
                start_date: day(8),
                end_date: day(0),
                filter: Some(filter.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let share = &answer.values[0];
        assert_eq!((share.numerator, share.denominator), expected, "{filter:?}");
    }
    for filter in [
        pb::Filter::default(),
        pb::Filter {
            brand_id: "lumen".into(),
            ..Default::default()
        },
    ] {
        let expected = brute_force_overlap(&sold, &filter, 9);
        if filter.brand_id.is_empty() {
            assert!(
                expected.iter().any(|(a, b, _)| a != b),
                "people buy on several channels: {expected:?}"
            );
        }
        let answer = client
            .get_channel_overlap(pb::GetChannelOverlapRequest {
                start_date: day(8),
                end_date: day(0),
                filter: Some(filter.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        let overlaps: Vec<(i32, i32, i64)> = answer
            .overlaps
            .iter()
            .map(|overlap| (overlap.channel, overlap.other_channel, overlap.members))
            .collect();
        assert_eq!(overlaps, expected, "{filter:?}");
    }
    let expected = brute_force_flow(&sold, &interacted, 9);
    assert!(
        expected.keys().any(|(from, to)| to > from) && expected.keys().any(|(from, to)| to < from),
        "{expected:?}"
    );
    let flow = client
        .get_stage_flow(pb::GetStageFlowRequest {
            start_date: day(9),
            end_date: day(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let flows: BTreeMap<(i32, i32), i64> = flow
        .flows
        .iter()
        .map(|flow| ((flow.from_stage, flow.to_stage), flow.consumers))
        .collect();
    assert_eq!(flows, expected);
    let started: i64 = expected.iter().filter(|((from, _), _)| *from > 0).map(|(_, n)| n).sum();
    assert_eq!(flow.stayed + flow.advanced + flow.churned, started);
    let loyal = flow
        .end
        .iter()
        .find(|count| count.stage == pb::AiplStage::Loyal as i32)
        .unwrap();
    assert_eq!(
        loyal.consumers,
        expected
            .iter()
            .filter(|((_, to), _)| *to == 4)
            .map(|(_, n)| n)
            .sum::<i64>()
    );

    // Cohorts by month of enrolment, against the same data.
    let month_of = |days_ago: i64| day(days_ago)[..7].to_owned();
    let mut expected: BTreeMap<String, (i64, BTreeMap<usize, BTreeSet<usize>>)> = BTreeMap::new();
    for n in (0..MEMBERS).filter(|&n| n != 1) {
        expected.entry(month_of(enrolled_days_ago(n))).or_default().0 += 1;
    }
    for sale in sold.iter().filter(|sale| sale.amount > 0) {
        let Some(buyer) = sale.buyer.map(person_of) else {
            continue;
        };
        if sale.days_ago <= enrolled_days_ago(buyer) {
            let cohort = month_of(enrolled_days_ago(buyer));
            let since = if month_of(sale.days_ago) == cohort { 0 } else { 1 };
            expected
                .get_mut(&cohort)
                .unwrap()
                .1
                .entry(since)
                .or_default()
                .insert(buyer);
        }
    }
    let cohorts = client
        .get_cohorts(pb::GetCohortsRequest {
            start_month: month_of(40),
            end_month: month_of(0),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .cohorts;
    let answered: Vec<(String, i64, Vec<i64>)> = cohorts
        .into_iter()
        .map(|cohort| (cohort.month, cohort.members, cohort.retained))
        .collect();
    let current = month_of(0);
    let expected: Vec<(String, i64, Vec<i64>)> = expected
        .into_iter()
        .map(|(month, (members, buyers))| {
            let followed = if month == current { 1 } else { 2 };
            let retained = (0..followed)
                .map(|since| {
                    buyers
                        .get(&since)
                        .map_or(0, |buyers| i64::try_from(buyers.len()).unwrap())
                })
                .collect();
            (month, members, retained)
        })
        .collect();
    assert!(
        expected.iter().any(|(_, _, retained)| retained.iter().any(|n| *n > 0)),
        "{expected:?}"
    );
    assert_eq!(answered, expected);

    // RFM segments at given thresholds.
    let mut buyers: BTreeMap<usize, (i64, i64, i64)> = BTreeMap::new();
    for sale in &sold {
        let Some(buyer) = sale.buyer.map(person_of) else {
            continue;
        };
        let entry = buyers.entry(buyer).or_insert((i64::MAX, 0, 0));
        if sale.amount > 0 {
            entry.0 = entry.0.min(sale.days_ago);
            entry.1 += 1;
        }
        entry.2 += sale.amount;
    }
    let thresholds = pb::RfmThresholds {
        recency_days: 1,
        purchases: 4,
        spend_minor: 7_400,
    };
    let mut segments: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for (recency, purchases, spend) in buyers.values().filter(|(_, purchases, _)| *purchases > 0) {
        let segment = match (*spend >= 7_400, *recency <= 1, *purchases >= 4) {
            (true, true, true) => pb::RfmSegment::ImportantValue,
            (true, true, false) => pb::RfmSegment::ImportantDevelopment,
            (true, false, true) => pb::RfmSegment::ImportantRetention,
            (true, false, false) => pb::RfmSegment::ImportantWinback,
            (false, true, true) => pb::RfmSegment::GeneralValue,
            (false, true, false) => pb::RfmSegment::GeneralDevelopment,
            (false, false, true) => pb::RfmSegment::GeneralRetention,
            (false, false, false) => pb::RfmSegment::GeneralWinback,
        };
        let count = segments.entry(segment as i32).or_default();
        count.0 += 1;
        count.1 += spend;
    }
    assert!(segments.len() >= 3, "the thresholds split the buyers: {segments:?}");
    let rfm = client
        .get_rfm_segments(pb::GetRfmSegmentsRequest {
            end_date: day(0),
            filter: None,
            thresholds: Some(thresholds),
        })
        .await
        .unwrap()
        .into_inner();
    let answered: BTreeMap<i32, (i64, i64)> = rfm
        .segments
        .iter()
        .filter(|count| count.members > 0)
        .map(|count| (count.segment, (count.members, count.spend_minor)))
        .collect();
    assert_eq!(answered, segments);
    assert_eq!(rfm.segments.len(), 8);

    // Field efficiency per store, counting the store sales only.
    let stores_only = pb::Filter {
        channel: Channel::Store.into(),
        ..Default::default()
    };
    let mut fields: BTreeMap<&str, (i64, BTreeSet<usize>, i64)> = BTreeMap::new();
    for n in (0..MEMBERS).filter(|&n| n != 1) {
        fields.entry(place(n).store).or_default().0 += 1;
    }
    for sale in sold
        .iter()
        .filter(|sale| sale.days_ago < 9 && matches(&stores_only, sale.place))
    {
        let Some(buyer) = sale.buyer.map(person_of) else {
            continue;
        };
        let field = fields.get_mut(place(buyer).store).unwrap();
        if sale.amount > 0 {
            field.1.insert(buyer);
        }
        field.2 += sale.amount;
    }
    let expected: Vec<(String, i64, i64, i64)> = fields
        .into_iter()
        .map(|(store, (bound, active, spend))| (store.to_owned(), bound, i64::try_from(active.len()).unwrap(), spend))
        .collect();
    let answered: Vec<(String, i64, i64, i64)> = client
        .get_field_efficiency(pb::GetFieldEfficiencyRequest {
            start_date: day(8),
            end_date: day(0),
            by: pb::Field::Store.into(),
            filter: Some(stores_only),
        })
        .await
        .unwrap()
        .into_inner()
        .fields
        .into_iter()
        .map(|field| {
            (
                field.store_id,
                field.bound_members,
                field.active_members,
                field.spend_minor,
            )
        })
        .collect();
    assert_eq!(answered, expected);

    // An erased member's counts stay; their identities no longer lead to them. (The probe names
    // another brand, so that it moves none of lumen's figures whoever it counts for.)
    let lumen = pb::Filter {
        brand_id: "lumen".into(),
        ..Default::default()
    };
    let before = figures(&mut client, &lumen, &day(8), &day(0)).await;
    let probe = pb::Interaction {
        brand_id: "probe".into(),
        ..generated_interaction(0, phone_hash("+8613700000004"), &interacted[0])
    };
    let before_erasure = pb::Interaction {
        event_id: "probe-before".into(),
        ..probe.clone()
    };
    let answered = record_interactions(&mut analytics, vec![before_erasure]).await;
    assert_eq!(
        answered[0].member_id, members[4],
        "a phone's digest leads to its member"
    );
    identity
        .erase_member(identity_pb::EraseMemberRequest {
            member_id: members[4].clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let mut answered_by = members[4].clone();
    for attempt in 0..100 {
        let event_id = format!("probe-{attempt}");
        let sent = pb::Interaction {
            event_id,
            ..probe.clone()
        };
        answered_by.clone_from(&record_interactions(&mut analytics, vec![sent]).await[0].member_id);
        if answered_by.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered_by, "", "an erased member's identities lead to no one");
    assert_eq!(figures(&mut client, &lumen, &day(8), &day(0)).await, before);

    // Another tenant sees nothing of acme's.
    let mut globex = sandbox.analytics(keys::GLOBEX_PLATFORM).await;
    let theirs = figures(&mut globex, &pb::Filter::default(), &day(8), &day(0)).await;
    assert_eq!(theirs.len(), all_metrics().len());
    assert!(theirs.iter().all(|(numerator, _)| *numerator == 0), "{theirs:?}");
}

async fn interactions_are_recorded_once_each(sandbox: Suite) {
    let mut identity = sandbox.identity(keys::ACME_PLATFORM).await;
    let member = enrol_by_openid(&mut identity, "o-member-00000001").await;
    let mut client = sandbox.analytics(keys::ACME_PLATFORM).await;
    let seen = Interacted {
        person: Person::Member(0),
        place: place(0),
        days_ago: 0,
        exposure: true,
    };
    // The member's link arrives with the enrolment's events: until then the openid is a consumer
    // of its own, folded into the member when it does.
    let by_member = generated_interaction(0, openid("o-member-00000001"), &seen);
    let mut answered_by = String::new();
    for attempt in 0..100 {
        let sent = pb::Interaction {
            event_id: format!("wait-{attempt}"),
            ..by_member.clone()
        };
        answered_by.clone_from(&record_interactions(&mut client, vec![sent]).await[0].member_id);
        if !answered_by.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered_by, member, "a linked identity's interactions are its member's");

    let anonymous = generated_interaction(1, openid("o-stranger-000001"), &seen);
    let mut phone = generated_interaction(2, openid("x"), &seen);
    phone.identity = Some(identity_pb::Identity {
        kind: identity_pb::IdentityKind::Phone.into(),
        value: "13800138000".into(),
        namespace: String::new(),
    });
    let batch = vec![by_member.clone(), anonymous.clone(), by_member.clone(), phone];
    let first = record_interactions(&mut client, batch.clone()).await;
    let outcomes = |results: &[pb::InteractionResult]| -> Vec<(i32, String)> {
        results
            .iter()
            .map(|result| (result.outcome, result.member_id.clone()))
            .collect()
    };
    use pb::InteractionOutcome::{Applied, Duplicate, Rejected};
    assert_eq!(
        outcomes(&first),
        [
            (Applied as i32, member.clone()),
            (Applied as i32, String::new()),
            (Duplicate as i32, member.clone()),
            (Rejected as i32, String::new()),
        ],
        "the same event twice in one batch is applied once"
    );
    assert_eq!(first[3].violations[0].field, "identity.kind");
    assert_eq!(
        first.iter().map(|result| result.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let again = record_interactions(&mut client, batch).await;
    assert_eq!(
        outcomes(&again)[..3],
        [
            (Duplicate as i32, member.clone()),
            (Duplicate as i32, String::new()),
            (Duplicate as i32, member.clone()),
        ]
    );
    let conflicting = pb::Interaction {
        kind: pb::InteractionKind::Click.into(),
        ..anonymous
    };
    let refused = record_interactions(&mut client, vec![conflicting]).await;
    assert_eq!(refused[0].outcome, Rejected as i32);
    assert_eq!(refused[0].violations[0].field, "event_id");
    assert!(refused[0].violations[0].description.contains("kind"), "{refused:?}");

    // Each was counted once: the member and the stranger are Aware today (the waits above were
    // the member's too).
    let day = quanyu_testkit::analytics_day;
    let flow = client
        .get_stage_flow(pb::GetStageFlowRequest {
            start_date: day(0),
            end_date: day(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let aware = flow
        .end
        .iter()
        .find(|count| count.stage == pb::AiplStage::Aware as i32)
        .unwrap();
    assert_eq!(aware.consumers, 2);

    let too_many = vec![by_member; 1_001];
    let status = client
        .record_interactions(pb::RecordInteractionsRequest { interactions: too_many })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut analyst = sandbox.analytics(keys::ACME_ANALYST).await;
    let denied = analyst
        .record_interactions(pb::RecordInteractionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// The fields an INVALID_ARGUMENT status names, in order.
fn fields_of(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    tonic_types::StatusExt::get_error_details(status)
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|violation| violation.field.clone())
        .collect()
}

fn by_rule(rule: &str) -> Option<pb::AudienceSelector> {
    Some(pb::AudienceSelector {
        audience: Some(pb::audience_selector::Audience::Rule(rule.into())),
    })
}

/// The members an audience lists, in batches of `batch_size`, from after `after`.
async fn listed(
    client: &mut AnalyticsClient,
    audience: Option<pb::AudienceSelector>,
    after: &str,
    batch_size: i32,
) -> Vec<pb::ListAudienceMembersResponse> {
    let mut stream = client
        .list_audience_members(pb::ListAudienceMembersRequest {
            audience,
            after_member_id: after.into(),
            batch_size,
        })
        .await
        .unwrap()
        .into_inner();
    let mut batches = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        batches.push(batch);
    }
    batches
}

/// Waits until `rule` selects exactly `expected` (the facts follow the events within a second).
async fn assert_selects(client: &mut AnalyticsClient, rule: &str, expected: &[&String]) {
    let mut expected: Vec<String> = expected.iter().map(|id| (*id).clone()).collect();
    expected.sort();
    let mut selected = Vec::new();
    for _ in 0..100 {
        selected = listed(client, by_rule(rule), "", 0)
            .await
            .into_iter()
            .flat_map(|batch| batch.member_ids)
            .collect();
        if selected == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(selected, expected, "{rule}");
    let counted = client
        .count_audience(pb::CountAudienceRequest {
            audience: by_rule(rule),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counted.members, i64::try_from(expected.len()).unwrap(), "{rule}");
    assert_eq!(counted.as_of_date, quanyu_testkit::analytics_day(0));
    // Asked about one by one (as campaign asks of a member who buys), in another order.
    let mut asked: Vec<String> = expected.iter().rev().cloned().collect();
    asked.push("nobody".into());
    let matched = client
        .match_audience(pb::MatchAudienceRequest {
            audience: by_rule(rule),
            member_ids: asked,
        })
        .await
        .unwrap()
        .into_inner();
    let reversed: Vec<String> = expected.into_iter().rev().collect();
    assert_eq!(matched.member_ids, reversed, "{rule}");
}

async fn audiences_select_members_by_their_facts(sandbox: Suite) {
    with_program(&sandbox, 0).await;
    let mut identity = sandbox.identity(keys::ACME_PLATFORM).await;
    let at_store = identity_pb::Enrollment {
        channel: Channel::Store.into(),
        store_id: "sh-01".into(),
        guide_id: "g-1".into(),
        ..Default::default()
    };
    let on_tmall = identity_pb::Enrollment {
        channel: Channel::Tmall.into(),
        ..Default::default()
    };
    let a = enrol(&mut identity, "13700001001", at_store).await;
    let b = enrol(&mut identity, "13700001002", on_tmall.clone()).await;
    let c = enrol_by_openid(&mut identity, "o-audience-c-00001").await;
    let erased = enrol(&mut identity, "13700001004", on_tmall.clone()).await;
    let merged = enrol(&mut identity, "13700001005", on_tmall).await;
    let today = chrono::NaiveDate::parse_from_str(&quanyu_testkit::analytics_day(0), "%Y-%m-%d").unwrap();
    let thirty_years_ago = today.checked_sub_months(chrono::Months::new(360)).unwrap();
    for (member, city, birthday) in [
        (&a, "Hangzhou", thirty_years_ago.to_string()),
        (&b, "Shanghai", String::new()),
    ] {
        identity
            .update_profile(identity_pb::UpdateProfileRequest {
                member_id: member.clone(),
                city: Some(city.into()),
                birthday: (!birthday.is_empty()).then_some(birthday),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for (tag, value, member) in [("koc", "", &a), ("vip", "2", &c), ("early", "", &merged)] {
        identity
            .define_tag(identity_pb::DefineTagRequest {
                name: tag.into(),
                kind: if value.is_empty() {
                    identity_pb::TagKind::Label
                } else {
                    identity_pb::TagKind::Number
                }
                .into(),
                ..Default::default()
            })
            .await
            .unwrap();
        identity
            .set_tags(identity_pb::SetTagsRequest {
                member_ids: vec![member.clone()],
                tags: vec![identity_pb::TagValue {
                    name: tag.into(),
                    value: value.into(),
                }],
            })
            .await
            .unwrap();
    }
    // A buys on Tmall on three days (Loyal, gold: 1,500 points); B once in a store 100 days ago.
    let mut pos = sandbox.points(keys::ACME_POS).await;
    let mut sales = Vec::new();
    for (n, (member, channel, days_ago, amount)) in [
        (&a, Channel::Tmall, 0, 50_000),
        (&a, Channel::Tmall, 10, 50_000),
        (&a, Channel::Tmall, 40, 50_000),
        (&b, Channel::Store, 100, 20_000),
    ]
    .into_iter()
    .enumerate()
    {
        let mut sent = sale(&format!("aud-{n}"), member_buyer(member), amount);
        sent.channel = channel.into();
        sent.occurred_at = Some(quanyu_runtime::clock::to_proto(
            Utc::now() - chrono::Duration::days(days_ago),
        ));
        sales.push(sent);
    }
    let results = record(&mut pos, sales).await;
    assert!(
        results
            .iter()
            .all(|result| result.outcome == points_pb::SaleOutcome::Applied as i32),
        "{results:?}"
    );
    // C clicked today: Interested.
    let mut client = sandbox.analytics(keys::ACME_PLATFORM).await;
    let click = Interacted {
        person: Person::Member(2),
        place: place(0),
        days_ago: 0,
        exposure: false,
    };
    record_interactions(
        &mut client,
        vec![generated_interaction(0, openid("o-audience-c-00001"), &click)],
    )
    .await;
    identity
        .erase_member(identity_pb::EraseMemberRequest {
            member_id: erased.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    quanyu_testkit::merge(&mut identity, &a, &merged).await;

    let cases: [(&str, Vec<&String>); 22] = [
        ("stage >= purchased", vec![&a, &b]),
        ("stage = loyal", vec![&a]),
        ("stage = interested", vec![&c]),
        ("tag = \"koc\" or tag = \"vip\"", vec![&a, &c]),
        ("tag = 'early'", vec![&a]),
        ("not tag = \"koc\"", vec![&b, &c]),
        ("tier = \"gold\"", vec![&a]),
        ("points >= 1000", vec![&a]),
        ("points < 1000", vec![&b, &c]),
        ("recency_days <= 30", vec![&a]),
        ("recency_days > 30", vec![&b]),
        ("not recency_days <= 30", vec![&b, &c]),
        ("frequency >= 3", vec![&a]),
        ("spend >= 150000 and spend < 150001", vec![&a]),
        ("city = \"Hangzhou\"", vec![&a]),
        ("city != \"Hangzhou\"", vec![&b]),
        ("age = 30 and age >= 18 and not age < 30", vec![&a]),
        ("store = \"sh-01\" and guide = \"g-1\"", vec![&a]),
        ("channel = tmall", vec![&a]),
        ("channel = store or channel = jd", vec![&b]),
        (&format!("enrolled <= {today}"), vec![&a, &b, &c]),
        (
            "(stage >= interested and not city = \"Hangzhou\")\n  or (tier = \"gold\" and tag = \"early\")",
            vec![&a, &b, &c],
        ),
    ];
    for (rule, expected) in &cases {
        assert_selects(&mut client, rule, expected).await;
    }

    // Listed in batches, and resumed after the last member received.
    let everyone = "enrolled >= 2000-01-01";
    let batches = listed(&mut client, by_rule(everyone), "", 2).await;
    let sizes: Vec<(usize, i64)> = batches
        .iter()
        .map(|batch| (batch.member_ids.len(), batch.listed))
        .collect();
    assert_eq!(sizes, [(2, 2), (1, 3)]);
    let first_two = &batches[0].member_ids;
    let rest = listed(&mut client, by_rule(everyone), &first_two[1], 0).await;
    assert_eq!(rest[0].member_ids, batches[1].member_ids);

    // Saved by name, listed by page, deleted.
    let saved = client
        .save_audience(pb::SaveAudienceRequest {
            name: "loyal-hz".into(),
            rule: "stage = loyal and city = \"Hangzhou\"".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(saved.created);
    let replaced = client
        .save_audience(pb::SaveAudienceRequest {
            name: "loyal-hz".into(),
            rule: "stage = loyal".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!replaced.created);
    assert_eq!(
        replaced.audience.as_ref().unwrap().created_at,
        saved.audience.as_ref().unwrap().created_at
    );
    client
        .save_audience(pb::SaveAudienceRequest {
            name: "buyers".into(),
            rule: "stage >= purchased".into(),
        })
        .await
        .unwrap();
    let by_name = |name: &str| {
        Some(pb::AudienceSelector {
            audience: Some(pb::audience_selector::Audience::Name(name.into())),
        })
    };
    let counted = client
        .count_audience(pb::CountAudienceRequest {
            audience: by_name("loyal-hz"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counted.members, 1);
    let first_page = client
        .list_audiences(pb::ListAudiencesRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_page.audiences[0].name, "buyers");
    let second_page = client
        .list_audiences(pb::ListAudiencesRequest {
            page_size: 1,
            page_token: first_page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second_page.audiences[0].rule, "stage = loyal");
    client
        .delete_audience(pb::DeleteAudienceRequest {
            name: "loyal-hz".into(),
        })
        .await
        .unwrap();
    let gone = client
        .count_audience(pb::CountAudienceRequest {
            audience: by_name("loyal-hz"),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // A rule at fault names its line and column; another tenant counts none of acme's members.
    let bad = client
        .count_audience(pb::CountAudienceRequest {
            audience: by_rule("stage >= purchased and\n  spnd > 3"),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let violation = tonic_types::StatusExt::get_error_details(&bad)
        .bad_request()
        .unwrap()
        .field_violations[0]
        .clone();
    assert_eq!(violation.field, "audience.rule");
    assert!(
        violation.description.starts_with("line 2, column 3: unknown field"),
        "{violation:?}"
    );
    let refused = client
        .save_audience(pb::SaveAudienceRequest {
            name: "no spaces".into(),
            rule: "tag =".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&refused), ["name", "rule"]);
    let mut globex = sandbox.analytics(keys::GLOBEX_PLATFORM).await;
    let theirs = globex
        .count_audience(pb::CountAudienceRequest {
            audience: by_rule(everyone),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.members, 0);
}

async fn bad_requests_name_their_field(sandbox: Suite) {
    let mut client = sandbox.analytics(keys::ACME_ANALYST).await;
    let refused = |request: pb::GetMetricsRequest| {
        let mut client = client.clone();
        async move { fields_of(&client.get_metrics(request).await.unwrap_err()) }
    };
    let good = pb::GetMetricsRequest {
        metrics: vec![pb::Metric::NewMembers as i32],
        start_date: "2026-12-01".into(),
        end_date: "2026-12-02".into(),
        filter: None,
        ..Default::default()
    };
    assert_eq!(
        refused(pb::GetMetricsRequest {
            metrics: vec![0, 99, 1, 1],
            ..good.clone()
        })
        .await,
        ["metrics[0]", "metrics[1]", "metrics[3]"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            metrics: Vec::new(),
            ..good.clone()
        })
        .await,
        ["metrics"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            end_date: "2026-11-30".into(),
            ..good.clone()
        })
        .await,
        ["end_date"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            start_date: "12/01/2026".into(),
            filter: Some(pb::Filter {
                channel: 42,
                ..Default::default()
            }),
            ..good.clone()
        })
        .await,
        ["start_date", "filter.channel"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            filter: Some(pb::Filter {
                category: "makeup".into(),
                ..Default::default()
            }),
            ..good.clone()
        })
        .await,
        ["filter.category"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            top_percent: 101,
            ..good.clone()
        })
        .await,
        ["top_percent"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            aipl: Some(pb::AiplWindows {
                purchase_days: 5_000,
                ..Default::default()
            }),
            high_value_min_spend_minor: -1,
            ..good.clone()
        })
        .await,
        ["high_value_min_spend_minor", "aipl.purchase_days"]
    );
    assert_eq!(
        refused(pb::GetMetricsRequest {
            metrics: vec![pb::Metric::CrossBrandPurchaseRate as i32],
            filter: Some(pb::Filter {
                brand_id: "lumen".into(),
                ..Default::default()
            }),
            first_purchase_days: 400,
            ..good.clone()
        })
        .await,
        ["first_purchase_days", "filter.brand_id"]
    );
    let overlap = client
        .get_channel_overlap(pb::GetChannelOverlapRequest {
            start_date: "2026-12-01".into(),
            end_date: "2026-12-02".into(),
            filter: Some(pb::Filter {
                channel: Channel::Store.into(),
                sku: "serum".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&overlap), ["filter.channel", "filter.sku"]);
    let flow = client
        .clone()
        .get_stage_flow(pb::GetStageFlowRequest {
            start_date: "2026-12-02".into(),
            end_date: "2026-12-01".into(),
            windows: Some(pb::AiplWindows {
                loyal_days: -3,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&flow), ["end_date", "windows.loyal_days"]);
    let cohorts = client
        .clone()
        .get_cohorts(pb::GetCohortsRequest {
            start_month: "2026-13".into(),
            end_month: "2026-01".into(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&cohorts), ["start_month"]);
    let fields = client
        .clone()
        .get_field_efficiency(pb::GetFieldEfficiencyRequest {
            start_date: "2026-12-01".into(),
            end_date: "2026-12-02".into(),
            by: pb::Field::Unspecified.into(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&fields), ["by"]);
    let rfm = client
        .clone()
        .get_rfm_segments(pb::GetRfmSegmentsRequest {
            end_date: "2026-12-01".into(),
            filter: None,
            thresholds: Some(pb::RfmThresholds {
                purchases: -1,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&rfm), ["thresholds.purchases"]);
    let unasked = client
        .clone()
        .match_audience(pb::MatchAudienceRequest {
            audience: by_rule("tier = \"gold\""),
            member_ids: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&unasked), ["member_ids"]);
    let too_many = client
        .clone()
        .get_campaign_results(pb::GetCampaignResultsRequest {
            campaign_ids: (0..101).map(|n| n.to_string()).collect(),
            coupon_template_ids: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields_of(&too_many), ["campaign_ids"]);
    assert!(client.get_metrics(good).await.is_ok());
    let mut pos = sandbox.analytics(keys::ACME_POS).await;
    let denied = pos
        .get_metrics(pb::GetMetricsRequest {
            metrics: vec![pb::Metric::NewMembers as i32],
            start_date: "2026-12-01".into(),
            end_date: "2026-12-02".into(),
            filter: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}
