//! Sales-sync benchmark, side by side with PostgreSQL's own pgbench (TPC-B) on the same server
//! in the same run (TEST_DATABASE_URL, else the local server):
//! - single-sale RecordSales throughput at 8 and 32 concurrent clients, against TPC-B tps at the
//!   same concurrency (goal >= 1.0x);
//! - 1,000-sale batches in sales/s, from one client and from four at once (goal >= 10x TPC-B tps
//!   at 8 clients);
//! - replaying an applied batch (goal >= 10x faster than applying it);
//! - one hot member credited from 8 tills at once.
//!
//! A history of 10,000 sales is recorded before the first measure.
//!
//! cargo run --release -p quanyu-bench --bin points

use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_bench::{Workload, pgbench};
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::service::Service as _;
use quanyu_testkit::{Backend, PointsClient, Suite, keys};
use sea_orm::ConnectionTrait;

const RUN_FOR: Duration = Duration::from_secs(10);
const BATCHES: usize = 10;
/// Uploaders sending batches at once in the concurrent measure.
const BATCH_CLIENTS: usize = 4;
/// Batches of the concurrent measure: ten took ~0.4 s, too short for a steady figure.
const CONCURRENT_BATCHES: usize = 40;
/// Replaying 10 batches takes ~80 ms: they are replayed this many times, for a steadier figure.
const REPLAY_PASSES: usize = 5;

fn cny(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: "CNY".into(),
    })
}

fn sale(key: &str, member_id: &str) -> pb::Sale {
    pb::Sale {
        source: "bench".into(),
        transaction_id: key.into(),
        kind: pb::SaleKind::Sale.into(),
        channel: Channel::Store.into(),
        store_id: "sh-01".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
        buyer: Some(pb::Buyer {
            who: Some(pb::buyer::Who::MemberId(member_id.into())),
        }),
        amount: cny(12_800),
        lines: vec![pb::SaleLine {
            sku: "serum".into(),
            category: "skincare".into(),
            quantity: 1,
            amount: cny(12_800),
        }],
        ..Default::default()
    }
}

async fn program(suite: &Suite) -> anyhow::Result<()> {
    let mut client = suite.points(keys::ACME_PLATFORM).await;
    let program = pb::Program {
        program_id: "bench".into(),
        points_name: "points".into(),
        earning: Some(pb::EarningRules {
            points_per_unit: 1,
            unit_minor: 100,
            utc_offset_minutes: 480,
            ..Default::default()
        }),
        expiry: Some(pb::ExpiryPolicy {
            policy: Some(pb::expiry_policy::Policy::RollingMonths(12)),
        }),
        tiers: vec![pb::Tier {
            code: "member".into(),
            growth_threshold: 0,
            multiplier_bp: 10_000,
        }],
        ..Default::default()
    };
    client
        .upsert_program(pb::UpsertProgramRequest { program: Some(program) })
        .await?;
    Ok(())
}

/// Starts each measure from a quiet database, as pgbench does (it vacuums before it runs): the
/// events of the previous measure numbered and the tables vacuumed and analysed, so that one
/// measure's background work is not charged to the next.
async fn settle(suite: &Suite) -> anyhow::Result<()> {
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    quanyu_outbox::sequencer::sequence(&db).await?;
    db.execute_unprepared("VACUUM (ANALYZE)").await?;
    db.close().await?;
    Ok(())
}

/// `count` batches of 1,000 sales keyed `{tag}-…`, over 5,000 members `{members}-…`.
fn batches(tag: &str, members: &str, count: usize) -> Vec<pb::RecordSalesRequest> {
    (0..count)
        .map(|b| pb::RecordSalesRequest {
            sales: (0..1_000)
                .map(|n| {
                    sale(
                        &format!("{tag}-{b}-{n}"),
                        &format!("{members}-{}", (b * 1_000 + n) % 5_000),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Records a history first, as pgbench measures on the accounts it initialised: on empty tables
/// PostgreSQL's first plans are scans, which it keeps while the tables fill until they are
/// analysed again.
async fn seed(suite: &Suite) -> anyhow::Result<()> {
    let mut client = suite.points(keys::ACME_POS).await;
    for batch in batches("seed", "sm", BATCHES) {
        client.record_sales(batch).await?;
    }
    Ok(())
}

/// Batches in sales/s from `BATCH_CLIENTS` clients at once, each sending its share.
async fn concurrent_batches(suite: &Suite) -> anyhow::Result<f64> {
    settle(suite).await?;
    let mut shares = vec![Vec::new(); BATCH_CLIENTS];
    for (index, batch) in batches("c", "cm", CONCURRENT_BATCHES).into_iter().enumerate() {
        shares[index % BATCH_CLIENTS].push(batch);
    }
    let mut clients = Vec::new();
    for _ in 0..BATCH_CLIENTS {
        clients.push(suite.points(keys::ACME_POS).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(shares)
        .map(|(mut client, share)| {
            tokio::spawn(async move {
                for batch in share {
                    client.record_sales(batch).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok((CONCURRENT_BATCHES * 1_000) as f64 / started.elapsed().as_secs_f64())
}

/// Single-sale calls per second from `clients` concurrent clients; `member` picks the buyer.
async fn single_sales(
    suite: &Suite,
    clients: usize,
    tag: &str,
    member: fn(usize, usize) -> String,
) -> anyhow::Result<f64> {
    settle(suite).await?;
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let mut client: PointsClient = suite.points(keys::ACME_POS).await;
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let key = format!("{tag}-{client_index}-{done}");
                let sales = vec![sale(&key, &member(client_index, done))];
                let results = client
                    .record_sales(pb::RecordSalesRequest { sales })
                    .await?
                    .into_inner()
                    .results;
                anyhow::ensure!(
                    results[0].outcome == pb::SaleOutcome::Applied as i32,
                    "{:?}",
                    results[0]
                );
                done += 1;
            }
            Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / RUN_FOR.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tpcb_8 = pgbench(8, Workload::TpcB, RUN_FOR).await?;
    let tpcb_32 = pgbench(32, Workload::TpcB, RUN_FOR).await?;
    let suite = Suite::suite(Backend::Postgres).await.context("needs PostgreSQL")?;
    program(&suite).await?;
    seed(&suite).await?;

    let distinct = |client: usize, n: usize| format!("m-{client}-{}", n % 500);
    let single_8 = single_sales(&suite, 8, "s8", distinct).await?;
    let single_32 = single_sales(&suite, 32, "s32", distinct).await?;
    let hot = single_sales(&suite, 8, "hot", |_, _| "hot-member".to_owned()).await?;

    let mut client = suite.points(keys::ACME_POS).await;
    let batches = batches("b", "bm", BATCHES);
    settle(&suite).await?;
    let started = Instant::now();
    for batch in &batches {
        client.record_sales(batch.clone()).await?;
    }
    let apply_rate = (BATCHES * 1_000) as f64 / started.elapsed().as_secs_f64();
    let concurrent_rate = concurrent_batches(&suite).await?;
    settle(&suite).await?;
    let started = Instant::now();
    for batch in std::iter::repeat_n(&batches, REPLAY_PASSES).flatten() {
        let results = client.record_sales(batch.clone()).await?.into_inner().results;
        anyhow::ensure!(
            results.iter().all(|r| r.outcome == pb::SaleOutcome::Duplicate as i32),
            "replay applied"
        );
    }
    let replay_rate = (REPLAY_PASSES * BATCHES * 1_000) as f64 / started.elapsed().as_secs_f64();

    println!("sales-sync benchmark (PostgreSQL, {RUN_FOR:?} per measure, same server as pgbench)");
    println!("| measure | value | baseline | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| single-sale RecordSales, 8 clients | {single_8:.0} sales/s | TPC-B {tpcb_8:.0} tps | {:.2}x | >= 1.0x |",
        single_8 / tpcb_8
    );
    println!(
        "| single-sale RecordSales, 32 clients | {single_32:.0} sales/s | TPC-B {tpcb_32:.0} tps | {:.2}x | >= 1.0x |",
        single_32 / tpcb_32
    );
    println!(
        "| 1,000-sale batches, 1 client | {apply_rate:.0} sales/s | TPC-B {tpcb_8:.0} tps | {:.2}x | >= 10x |",
        apply_rate / tpcb_8
    );
    println!(
        "| 1,000-sale batches, {BATCH_CLIENTS} clients | {concurrent_rate:.0} sales/s | TPC-B {tpcb_8:.0} tps | {:.2}x | >= 10x |",
        concurrent_rate / tpcb_8
    );
    println!(
        "| replay of applied batches | {replay_rate:.0} sales/s | applying them {apply_rate:.0} sales/s | {:.2}x | >= 10x |",
        replay_rate / apply_rate
    );
    println!(
        "| one hot member, 8 tills | {hot:.0} sales/s | TPC-B {tpcb_8:.0} tps | {:.2}x | |",
        hot / tpcb_8
    );
    suite.stop().await;
    Ok(())
}
