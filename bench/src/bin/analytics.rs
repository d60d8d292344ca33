//! analytics benchmark on PostgreSQL (TEST_DATABASE_URL, else the local server):
//! - catch-up: how fast analytics, started after a backlog of sales, reads the events;
//! - freshness: how long after RecordSales answers a sale shows in GetMetrics, sale after sale,
//!   while other sales are recorded at 1,000 a second;
//! - query latency at scale: GetMetrics (every metric, a 30-day window) and GetChannelOverlap over
//!   gRPC on 100,000 members and 1,000,000 sales' facts, beside the same member share of sales
//!   computed by PostgreSQL scanning the million raw sales, in the same run; both must agree.
//!
//! The facts are generated in the database as the ingest would have written them (the rollups
//! are GROUP BYs of the raw sales), so that the scale is reached in seconds, not hours.
//!
//! cargo run --release -p quanyu-bench --bin analytics

use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_bench::{ms, quantile};
use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::common::v1::Channel;
use quanyu_proto::points::v1 as points_pb;
use quanyu_testkit::{AnalyticsClient, Backend, Sandbox, Suite, keys};
use sea_orm::ConnectionTrait;

const FRESHNESS_SAMPLES: usize = 200;
/// The sales a second recorded while freshness is sampled (the load).
const LOAD_PER_SECOND: usize = 1_000;
/// How long a marker sale is waited for before freshness is reported as falling behind.
const FRESHNESS_GIVE_UP: Duration = Duration::from_secs(30);
/// The backlog analytics catches up on when it starts.
const CATCH_UP_SALES: usize = 20_000;
const QUERY_SAMPLES: usize = 100;
const MEMBERS: i64 = 100_000;
const SALES: i64 = 1_000_000;

fn metrics_request(metrics: &[pb::Metric], first_day: &str, last_day: &str) -> pb::GetMetricsRequest {
    pb::GetMetricsRequest {
        metrics: metrics.iter().map(|metric| *metric as i32).collect(),
        start_date: first_day.into(),
        end_date: last_day.into(),
        filter: None,
        ..Default::default()
    }
}

/// Sales of members `load-member-0..999` in brand `brand`, `count` of them numbered from `from`.
fn member_sales(brand: &str, from: usize, count: usize) -> Vec<points_pb::Sale> {
    (from..from + count)
        .map(|n| {
            let buyer = quanyu_testkit::points::member_buyer(&format!("load-member-{}", n % 1_000));
            let mut sale = quanyu_testkit::points::sale(&format!("{brand}-{n}"), buyer, 1_000);
            sale.brand_id = brand.into();
            sale.channel = Channel::Store.into();
            sale
        })
        .collect()
}

/// Sales of `brand` that GetMetrics counts today: the denominator of its member share.
async fn counted(analytics: &mut AnalyticsClient, brand: &str) -> anyhow::Result<i64> {
    let day = quanyu_testkit::analytics_day(0);
    let mut request = metrics_request(&[pb::Metric::MemberShareOfSales], &day, &day);
    request.filter = Some(pb::Filter {
        brand_id: brand.into(),
        ..Default::default()
    });
    let figures = analytics.get_metrics(request).await?.into_inner();
    Ok(figures.values[0].denominator / 1_000)
}

/// How fast analytics catches up on a backlog: `CATCH_UP_SALES` sales recorded before it starts,
/// then timed until it counts them all. Starts analytics in `sandbox`.
async fn catch_up(sandbox: &mut Sandbox) -> anyhow::Result<(usize, Duration)> {
    let mut pos = sandbox.points(keys::ACME_POS).await;
    for from in (0..CATCH_UP_SALES).step_by(1_000) {
        pos.record_sales(points_pb::RecordSalesRequest {
            sales: member_sales("backlog", from, 1_000),
        })
        .await?;
    }
    let events = sandbox.database("loyalty_points").await;
    let row = events
        .query_one_raw(sea_orm::Statement::from_string(
            events.get_database_backend(),
            // Events not yet sequenced wait in outbox_pending: they are backlog too.
            "SELECT (SELECT count(*) FROM outbox_events) + (SELECT count(*) FROM outbox_pending) AS events".to_owned(),
        ))
        .await?
        .context("a row")?;
    let backlog: i64 = row.try_get("", "events")?;
    let started = Instant::now();
    sandbox
        .start_another(&quanyu_analytics::SERVICE, quanyu_testkit::ANALYTICS_SETTINGS)
        .await;
    let mut analytics = sandbox.analytics(keys::ACME_ANALYST).await;
    while counted(&mut analytics, "backlog").await? < i64::try_from(CATCH_UP_SALES)? {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((usize::try_from(backlog)?, started.elapsed()))
}

/// Each marker sale's delay from RecordSales' answer to GetMetrics counting it, one after the
/// other, while another task records `LOAD_PER_SECOND` sales a second; and the load reached.
async fn freshness_under_load(suite: &Suite) -> anyhow::Result<(Vec<Duration>, f64)> {
    let mut loader = suite.points(keys::ACME_POS).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loading = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let sales = member_sales("load", sent, LOAD_PER_SECOND / 10);
                loader.record_sales(points_pb::RecordSalesRequest { sales }).await?;
                sent += LOAD_PER_SECOND / 10;
            }
            #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 53 bits
            Ok::<f64, anyhow::Error>(sent as f64 / started.elapsed().as_secs_f64())
        })
    };
    let mut pos = suite.points(keys::ACME_POS).await;
    let mut analytics = suite.analytics(keys::ACME_ANALYST).await;
    let mut delays = Vec::with_capacity(FRESHNESS_SAMPLES);
    for n in 0..FRESHNESS_SAMPLES {
        pos.record_sales(points_pb::RecordSalesRequest {
            sales: member_sales("fresh", n, 1),
        })
        .await?;
        let answered = Instant::now();
        while counted(&mut analytics, "fresh").await? < i64::try_from(n + 1)? {
            if answered.elapsed() > FRESHNESS_GIVE_UP {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delays.push(answered.elapsed());
        // Behind by this much, analytics is not keeping up with the load: say so, stop sampling.
        if answered.elapsed() > FRESHNESS_GIVE_UP {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = loading.await??;
    delays.sort_unstable();
    Ok((delays, load))
}

/// The resident memory of this process (the three services, in-process), in MiB.
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1_024.0)
}

/// A million raw sales of tenant `scale` (a fifth by no member) over a year, and the facts the
/// ingest would have made of them.
async fn generate(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    let statements = [
        "CREATE TABLE raw_sales AS SELECT 'scale'::text AS tenant_id, \
           CASE WHEN i % 5 = 0 THEN NULL ELSE 'm' || (i % 100000) END AS member_id, \
           to_char(date '2026-01-01' + (i % 365), 'YYYY-MM-DD') AS day, \
           'lumen'::text AS brand_id, (1 + (i % 3) * 2) AS channel, 's' || (i % 10) AS store_id, \
           (100 + (i * 37) % 10000)::bigint AS amount_minor \
         FROM generate_series(1, 1000000) AS i",
        "INSERT INTO members (tenant_id, member_id, enrolled_day, brand_id, channel, store_id) \
         SELECT 'scale', 'm' || i, to_char(date '2025-06-01' + (i % 200), 'YYYY-MM-DD'), 'lumen', 5, 's' || (i % 10) \
         FROM generate_series(0, 99999) AS i",
        "INSERT INTO daily_sales SELECT tenant_id, day, brand_id, channel, store_id, \
           coalesce(sum(amount_minor) FILTER (WHERE member_id IS NOT NULL), 0), \
           coalesce(sum(amount_minor) FILTER (WHERE member_id IS NULL), 0), \
           count(member_id), count(*) - count(member_id) \
         FROM raw_sales GROUP BY tenant_id, day, brand_id, channel, store_id",
        "INSERT INTO member_days SELECT tenant_id, member_id, day, brand_id, channel, store_id, count(*), sum(amount_minor) \
         FROM raw_sales WHERE member_id IS NOT NULL GROUP BY tenant_id, member_id, day, brand_id, channel, store_id",
        "ANALYZE",
    ];
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

async fn timed<F, Fut>(mut call: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(QUERY_SAMPLES);
    for _ in 0..QUERY_SAMPLES {
        let started = Instant::now();
        call().await?;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    Ok(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut suite = Sandbox::builder(Backend::Postgres)
        .service(&quanyu_member_identity::SERVICE, "")
        .service(&quanyu_loyalty_points::SERVICE, quanyu_testkit::POINTS_SETTINGS)
        .start()
        .await
        .context("needs PostgreSQL")?;
    suite
        .points(keys::ACME_PLATFORM)
        .await
        .upsert_program(points_pb::UpsertProgramRequest {
            program: Some(quanyu_testkit::points::program(0)),
        })
        .await?;
    let (backlog, caught_up) = catch_up(&mut suite).await?;
    #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 53 bits
    let rate = backlog as f64 / caught_up.as_secs_f64();
    println!(
        "catch-up: a backlog of {CATCH_UP_SALES} sales ({backlog} events) read in {:.1} s after analytics started: {rate:.0} events/s",
        caught_up.as_secs_f64()
    );
    let (delays, load) = freshness_under_load(&suite).await?;
    println!(
        "freshness under {load:.0} other sales/s: {} of {FRESHNESS_SAMPLES} marker sales sampled{}",
        delays.len(),
        if delays.len() < FRESHNESS_SAMPLES {
            ", then one was not counted within 30 s: the ingest falls behind"
        } else {
            ""
        }
    );

    let db = suite.database("analytics").await;
    let generating = Instant::now();
    generate(&db).await?;
    let generated = generating.elapsed();
    let (first_day, last_day) = ("2026-06-01", "2026-06-30");
    let all: Vec<pb::Metric> = (1..).map_while(|value| pb::Metric::try_from(value).ok()).collect();
    let scale_key = quanyu_runtime::auth::BearerKey::new(keys::SERVICE)?.for_tenant("scale")?;
    let channel = suite.channel("analytics").await;
    let mut analytics = pb::analytics_service_client::AnalyticsServiceClient::with_interceptor(channel, scale_key);
    let answer = analytics
        .get_metrics(metrics_request(&all, first_day, last_day))
        .await?
        .into_inner();
    let share = &answer.values[1];
    let scan = format!(
        "SELECT CAST(coalesce(sum(amount_minor) FILTER (WHERE member_id IS NOT NULL), 0) AS BIGINT) AS members, \
         CAST(sum(amount_minor) AS BIGINT) AS everyone FROM raw_sales \
         WHERE tenant_id = 'scale' AND day BETWEEN '{first_day}' AND '{last_day}'"
    );
    let scanned = db
        .query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), scan.clone()))
        .await?
        .context("a row")?;
    let by_scan: (i64, i64) = (scanned.try_get("", "members")?, scanned.try_get("", "everyone")?);
    anyhow::ensure!(
        (share.numerator, share.denominator) == by_scan,
        "the service says {:?}, the scan {by_scan:?}",
        (share.numerator, share.denominator)
    );

    let metrics = timed(|| {
        let mut client = analytics.clone();
        let request = metrics_request(&all, first_day, last_day);
        async move {
            client.get_metrics(request).await?;
            Ok(())
        }
    })
    .await?;
    let overlap = timed(|| {
        let mut client = analytics.clone();
        async move {
            client
                .get_channel_overlap(pb::GetChannelOverlapRequest {
                    start_date: first_day.into(),
                    end_date: last_day.into(),
                    filter: None,
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let stage_flow = timed(|| {
        let mut client = analytics.clone();
        async move {
            client
                .get_stage_flow(pb::GetStageFlowRequest {
                    start_date: first_day.into(),
                    end_date: last_day.into(),
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let audience = timed(|| {
        let mut client = analytics.clone();
        async move {
            let rule = "stage >= purchased and recency_days <= 30 and spend >= 100000";
            client
                .count_audience(pb::CountAudienceRequest {
                    audience: Some(pb::AudienceSelector {
                        audience: Some(pb::audience_selector::Audience::Rule(rule.into())),
                    }),
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let full_scan = timed(|| {
        let (db, scan) = (&db, scan.clone());
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), scan))
                .await?;
            Ok(())
        }
    })
    .await?;

    let mut alone = Vec::new();
    for metric in all.iter().copied() {
        let samples = timed(|| {
            let mut client = analytics.clone();
            async move {
                client
                    .get_metrics(metrics_request(&[metric], first_day, last_day))
                    .await?;
                Ok(())
            }
        })
        .await?;
        alone.push((metric, quantile(&samples, 0.5)));
    }

    println!("analytics benchmark (PostgreSQL)");
    println!("| measure | p50 | p99 | note |");
    println!("|---|---|---|---|");
    println!(
        "| freshness: RecordSales answered -> GetMetrics counts it | {:.1} ms | {:.1} ms | {} sales, one at a time, under {load:.0} other sales/s |",
        ms(quantile(&delays, 0.5)),
        ms(quantile(&delays, 0.99)),
        delays.len()
    );

    println!(
        "| GetMetrics, all {} metrics, 30 days | {:.1} ms | {:.1} ms | {MEMBERS} members, {SALES} sales' facts (generated in {:.1} s) |",
        all.len(),
        ms(quantile(&metrics, 0.5)),
        ms(quantile(&metrics, 0.99)),
        generated.as_secs_f64()
    );
    println!(
        "| GetChannelOverlap, 30 days | {:.1} ms | {:.1} ms | |",
        ms(quantile(&overlap, 0.5)),
        ms(quantile(&overlap, 0.99))
    );
    println!(
        "| GetStageFlow, 30 days apart | {:.1} ms | {:.1} ms | |",
        ms(quantile(&stage_flow, 0.5)),
        ms(quantile(&stage_flow, 0.99))
    );
    println!(
        "| CountAudience, stage, recency and spend | {:.1} ms | {:.1} ms | |",
        ms(quantile(&audience, 0.5)),
        ms(quantile(&audience, 0.99))
    );
    println!(
        "| baseline: member share by a scan of the raw sales, in PostgreSQL | {:.1} ms | {:.1} ms | same figure as the service's |",
        ms(quantile(&full_scan, 0.5)),
        ms(quantile(&full_scan, 0.99))
    );
    for (metric, p50) in alone {
        println!("| GetMetrics, {} alone | {:.1} ms | | |", metric.as_str_name(), ms(p50));
    }
    if let Some(mib) = resident_mib() {
        println!("resident memory of the process (the three services and the benchmark): {mib:.0} MiB");
    }
    Ok(())
}
