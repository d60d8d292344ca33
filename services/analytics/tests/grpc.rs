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
use tonic::Code;

quanyu_testkit::suite!(figures_match_a_brute_force_count, bad_requests_name_their_field);

const MEMBERS: usize = 12;
/// Every metric the contract names, in its order (the brute force answers them in this order).
fn all_metrics() -> Vec<i32> {
    (1..).take_while(|value| pb::Metric::try_from(*value).is_ok()).collect()
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
        store: ["sh-01", "bj-02"][n % 2],
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

/// Every third sale has a lipstick line of a quarter of its amount beside the serum; the others
/// are all serum.
fn lines_of(n: usize, amount: i64) -> Vec<(&'static str, &'static str, i64)> {
    if n.is_multiple_of(3) {
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
fn brute_force(sold: &[Sold], filter: &pb::Filter, window_days: i64) -> Vec<(i64, i64)> {
    let person = |buyer: usize| if buyer == 1 { 0 } else { buyer };
    let in_window: Vec<&Sold> = sold
        .iter()
        .filter(|sale| sale.days_ago < window_days && matches(filter, sale.place))
        .collect();
    let new_members = (0..MEMBERS).filter(|&n| n != 1 && matches(filter, place(n))).count();
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
    vec![
        (count(new_members), 1),
        (member_sales, all_sales),
        (count(repeaters), count(days.len())),
        (count(days.len()), count(MEMBERS - 1)),
        (buyers_spend.iter().take(top).sum(), buyers_spend.iter().sum()),
        (to_date, count(MEMBERS - 1)),
    ]
}

/// For each pair of channels (in order), the people who bought on both in the window.
fn brute_force_overlap(sold: &[Sold], filter: &pb::Filter, window_days: i64) -> Vec<(i32, i32, i64)> {
    let mut channels: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
    for sale in sold
        .iter()
        .filter(|sale| sale.days_ago < window_days && sale.amount > 0 && matches(filter, sale.place))
    {
        if let Some(buyer) = sale.buyer {
            let person = if buyer == 1 { 0 } else { buyer };
            channels.entry(person).or_default().insert(sale.place.channel as i32);
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

async fn figures(
    client: &mut AnalyticsClient,
    filter: &pb::Filter,
    first_day: &str,
    last_day: &str,
) -> Vec<(i64, i64)> {
    let answer = client
        .get_metrics(pb::GetMetricsRequest {
            metrics: all_metrics(),
            start_date: first_day.into(),
            end_date: last_day.into(),
            filter: Some(filter.clone()),
            top_percent: 0,
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
    let second = "identity_endpoint = \"http://{member-identity}\"\n\
                  points_endpoint = \"http://{loyalty-points}\"\n\
                  api_key = \"test-service\"\n";
    sandbox.start_another(&quanyu_analytics::SERVICE, second).await;
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
        members.push(enrol(&mut identity, &format!("1370000{n:04}"), enrollment).await);
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
    quanyu_testkit::merge(&mut identity, &members[0], &members[1]).await;

    let busiest = brute_force(&sold, &pb::Filter::default(), 9);
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
            let expected = brute_force(&sold, filter, window_days);
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
                top_percent: 0,
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
    // Another tenant sees nothing of acme's.
    let mut globex = sandbox.analytics(keys::GLOBEX_PLATFORM).await;
    let theirs = figures(&mut globex, &pb::Filter::default(), &day(8), &day(0)).await;
    assert_eq!(theirs, [(0, 1), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)]);
}

async fn bad_requests_name_their_field(sandbox: Suite) {
    let mut client = sandbox.analytics(keys::ACME_ANALYST).await;
    let refused = |request: pb::GetMetricsRequest| {
        let mut client = client.clone();
        async move {
            let status = client.get_metrics(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let details = tonic_types::StatusExt::get_error_details(&status);
            let violations = details.bad_request().unwrap().field_violations.clone();
            violations
                .into_iter()
                .map(|violation| violation.field)
                .collect::<Vec<_>>()
        }
    };
    let good = pb::GetMetricsRequest {
        metrics: vec![pb::Metric::NewMembers as i32],
        start_date: "2026-12-01".into(),
        end_date: "2026-12-02".into(),
        filter: None,
        top_percent: 0,
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
    let details = tonic_types::StatusExt::get_error_details(&overlap);
    let fields: Vec<String> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|violation| violation.field.clone())
        .collect();
    assert_eq!(fields, ["filter.channel", "filter.sku"]);
    assert!(client.get_metrics(good).await.is_ok());
    let mut pos = sandbox.analytics(keys::ACME_POS).await;
    let denied = pos
        .get_metrics(pb::GetMetricsRequest {
            metrics: vec![pb::Metric::NewMembers as i32],
            start_date: "2026-12-01".into(),
            end_date: "2026-12-02".into(),
            filter: None,
            top_percent: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}
