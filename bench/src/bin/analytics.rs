//! analytics benchmark on PostgreSQL (TEST_DATABASE_URL, else the local server):
//! - catch-up: how fast analytics, started after a backlog of sales, reads the events;
//! - freshness: how long after RecordSales answers a sale shows in GetMetrics, sale after sale,
//!   while other sales are recorded at 1,000 a second;
//! - query latency at scale, on 1,000,000 members and 10,000,000 sales' facts (a 30-day window):
//!   each FAST figure and the channel overlap over gRPC, beside DuckDB computing the same figures
//!   by full scans of the same raw sales (both must agree); every other metric, the stage flow
//!   and an audience's count; the member share of sales beside PostgreSQL scanning the raw sales;
//!   the time the service takes to read the facts into memory, and its resident memory.
//!
//! The facts are generated in the database as the ingest would have written them (the rollups
//! are GROUP BYs of the raw sales), so that the scale is reached in minutes, not hours.
//!
//! DuckDB runs in Python (`QUANYU_BENCH_PYTHON`, else `python3`), which must import `duckdb`:
//! `python3 -m venv /tmp/duckdb && /tmp/duckdb/bin/pip install -r bench/duckdb/requirements.txt`,
//! then `QUANYU_BENCH_PYTHON=/tmp/duckdb/bin/python cargo run --release -p quanyu-bench --bin analytics`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_analytics::app::metrics::FAST;
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
/// Samples of each figure the issue sets a latency goal for, in the service.
const QUERY_SAMPLES: usize = 100;
/// Samples of each figure SQL still answers by grouping members' days (no goal at this scale),
/// and of the PostgreSQL scan.
const SLOW_SAMPLES: usize = 5;
/// Samples of each figure in DuckDB.
const DUCKDB_SAMPLES: usize = 10;
const MEMBERS: i64 = 1_000_000;
const SALES: i64 = 10_000_000;

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

/// `SALES` raw sales of tenant `scale` (a fifth by no member) over a year, by `MEMBERS` members,
/// and the facts the ingest would have made of them; then every member is logged as changed,
/// so that the service reads them all into memory.
async fn generate(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    let statements = [
        format!(
            "CREATE TABLE raw_sales AS SELECT 'scale'::text AS tenant_id, \
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'm' || (i % {MEMBERS}) END AS member_id, \
               to_char(date '2026-01-01' + (i % 365), 'YYYY-MM-DD') AS day, \
               'lumen'::text AS brand_id, (1 + (i % 3) * 2) AS channel, 's' || (i % 10) AS store_id, \
               (100 + (i * 37) % 10000)::bigint AS amount_minor \
             FROM generate_series(1, {SALES}) AS i"
        ),
        format!(
            "INSERT INTO members (tenant_id, member_id, enrolled_day, brand_id, channel, store_id) \
             SELECT 'scale', 'm' || i, to_char(date '2025-06-01' + (i % 200), 'YYYY-MM-DD'), 'lumen', 5, 's' || (i % 10) \
             FROM generate_series(0, {MEMBERS} - 1) AS i"
        ),
        "INSERT INTO daily_sales SELECT tenant_id, day, brand_id, channel, store_id, \
           coalesce(sum(amount_minor) FILTER (WHERE member_id IS NOT NULL), 0), \
           coalesce(sum(amount_minor) FILTER (WHERE member_id IS NULL), 0), \
           count(member_id), count(*) - count(member_id) \
         FROM raw_sales GROUP BY tenant_id, day, brand_id, channel, store_id"
            .to_owned(),
        "INSERT INTO member_days SELECT tenant_id, member_id, day, brand_id, channel, store_id, count(*), sum(amount_minor) \
         FROM raw_sales WHERE member_id IS NOT NULL GROUP BY tenant_id, member_id, day, brand_id, channel, store_id"
            .to_owned(),
        "INSERT INTO consumer_changes (tenant_id, consumer_id) SELECT tenant_id, member_id FROM members \
         WHERE tenant_id = 'scale'"
            .to_owned(),
        "ANALYZE".to_owned(),
    ];
    for statement in statements {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

/// Writes the raw sales and the members as CSV into `dir`, for DuckDB.
async fn export_csv(db: &sea_orm::DatabaseConnection, dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use tokio_stream::StreamExt as _;
    let tables = [
        (
            "sales.csv",
            "member_id,day,channel,amount_minor",
            "SELECT coalesce(member_id, '') || ',' || day || ',' || channel || ',' || amount_minor AS line \
             FROM raw_sales",
        ),
        (
            "members.csv",
            "member_id,enrolled_day",
            "SELECT member_id || ',' || enrolled_day AS line FROM members WHERE tenant_id = 'scale'",
        ),
    ];
    for (file, header, sql) in tables {
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(file))?);
        writeln!(out, "{header}")?;
        let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql.to_owned());
        let mut rows = sea_orm::StreamTrait::stream_raw(db, statement).await?;
        while let Some(row) = rows.next().await {
            let line: String = row?.try_get("", "line")?;
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(())
}

/// One figure as DuckDB computed it: its rows, and its p50 and p99 in milliseconds.
#[derive(serde::Deserialize)]
struct DuckDbFigure {
    rows: Vec<Vec<i64>>,
    p50_ms: f64,
    p99_ms: f64,
}

/// The FAST figures and the channel overlap computed by DuckDB from the CSV in `dir`, by name.
fn duckdb_figures(
    dir: &std::path::Path,
    (first_day, last_day): (&str, &str),
) -> anyhow::Result<std::collections::HashMap<String, DuckDbFigure>> {
    let python = std::env::var("QUANYU_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/duckdb/fast.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(dir)
        .args([first_day, last_day, &DUCKDB_SAMPLES.to_string()])
        .output()
        .with_context(|| format!("running {python}"))?;
    anyhow::ensure!(
        output.status.success(),
        "DuckDB's figures failed (a Python with duckdb is needed: see bench/README): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn timed<F, Fut>(samples: usize, mut call: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut timings = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call().await?;
        timings.push(started.elapsed());
    }
    timings.sort_unstable();
    Ok(timings)
}

/// GetMetrics of `metrics`, `samples` times.
async fn timed_metrics(
    analytics: &AnalyticsClient,
    metrics: &[pb::Metric],
    samples: usize,
    (first_day, last_day): (&str, &str),
) -> anyhow::Result<Vec<Duration>> {
    timed(samples, || {
        let mut client = analytics.clone();
        let request = metrics_request(metrics, first_day, last_day);
        async move {
            client.get_metrics(request).await?;
            Ok(())
        }
    })
    .await
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
    println!(
        "generated {MEMBERS} members and {SALES} sales' facts in {:.1} s",
        generated.as_secs_f64()
    );
    let window = ("2026-06-01", "2026-06-30");
    let scale_key = quanyu_runtime::auth::BearerKey::new(keys::SERVICE)?.for_tenant("scale")?;
    let channel = suite.channel("analytics").await;
    let mut analytics = pb::analytics_service_client::AnalyticsServiceClient::with_interceptor(channel, scale_key);
    // The first call waits for the service to read every member's facts into memory.
    let reading = Instant::now();
    let fast = analytics
        .get_metrics(metrics_request(&FAST, window.0, window.1))
        .await?
        .into_inner();
    let read_into_memory = reading.elapsed();
    println!(
        "the service read the facts into memory in {:.1} s",
        read_into_memory.as_secs_f64()
    );
    let overlap = analytics
        .get_channel_overlap(pb::GetChannelOverlapRequest {
            start_date: window.0.into(),
            end_date: window.1.into(),
            filter: None,
        })
        .await?
        .into_inner();

    let csv = std::env::temp_dir().join(format!("quanyu-analytics-bench-{}", std::process::id()));
    std::fs::create_dir_all(&csv)?;
    let exporting = Instant::now();
    export_csv(&db, &csv).await?;
    println!(
        "exported the raw sales for DuckDB in {:.1} s",
        exporting.elapsed().as_secs_f64()
    );
    let duckdb = duckdb_figures(&csv, window);
    std::fs::remove_dir_all(&csv)?;
    let duckdb = duckdb?;
    // Same numbers, or the benchmark fails.
    for value in &fast.values {
        let name = pb::Metric::try_from(value.metric)?
            .as_str_name()
            .trim_start_matches("METRIC_")
            .to_owned();
        let theirs = duckdb
            .get(&name)
            .with_context(|| format!("DuckDB computed no {name}"))?;
        anyhow::ensure!(
            theirs.rows == [vec![value.numerator, value.denominator]],
            "{name}: the service says {}/{}, DuckDB {:?}",
            value.numerator,
            value.denominator,
            theirs.rows
        );
    }
    let ours: Vec<Vec<i64>> = overlap
        .overlaps
        .iter()
        .map(|pair| vec![i64::from(pair.channel), i64::from(pair.other_channel), pair.members])
        .collect();
    let theirs = &duckdb.get("CHANNEL_OVERLAP").context("DuckDB computed no overlap")?;
    anyhow::ensure!(
        theirs.rows == ours,
        "overlap: the service says {ours:?}, DuckDB {:?}",
        theirs.rows
    );

    let mut goals = Vec::new();
    for metric in FAST {
        let name = metric.as_str_name().trim_start_matches("METRIC_").to_owned();
        goals.push((name, timed_metrics(&analytics, &[metric], QUERY_SAMPLES, window).await?));
    }
    let overlaps = timed(QUERY_SAMPLES, || {
        let mut client = analytics.clone();
        async move {
            client
                .get_channel_overlap(pb::GetChannelOverlapRequest {
                    start_date: window.0.into(),
                    end_date: window.1.into(),
                    filter: None,
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    goals.push(("CHANNEL_OVERLAP".to_owned(), overlaps));
    let all_fast = timed_metrics(&analytics, &FAST, QUERY_SAMPLES, window).await?;
    let stage_flow = timed(QUERY_SAMPLES, || {
        let mut client = analytics.clone();
        async move {
            client
                .get_stage_flow(pb::GetStageFlowRequest {
                    start_date: window.0.into(),
                    end_date: window.1.into(),
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let resident = resident_mib();

    println!("analytics benchmark (PostgreSQL), {MEMBERS} members, {SALES} sales' facts, a 30-day window");
    println!("| figure | service p50 | service p99 | DuckDB p50 | DuckDB p99 | same numbers |");
    println!("|---|---|---|---|---|---|");
    for (name, samples) in &goals {
        let theirs = &duckdb[name];
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | yes |",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.99)),
            theirs.p50_ms,
            theirs.p99_ms
        );
    }
    println!();
    if let Some(mib) = resident {
        println!(
            "resident memory of the process (the three services and the benchmark) with the facts in memory: {mib:.0} MiB"
        );
    }
    println!("| measure | p50 | p99 | note |");
    println!("|---|---|---|---|");
    println!(
        "| freshness: RecordSales answered -> GetMetrics counts it | {:.1} ms | {:.1} ms | {} sales, one at a time, under {load:.0} other sales/s |",
        ms(quantile(&delays, 0.5)),
        ms(quantile(&delays, 0.99)),
        delays.len()
    );
    print_row("GetMetrics, the five FAST metrics together", Ok(all_fast));
    print_row("GetStageFlow, 30 days apart", Ok(stage_flow));
    // Each row as it is measured: the figures SQL answers by grouping may pass the server's
    // deadline at this scale, which is reported, not fatal.
    let (share, full_scan) = member_share_beside_a_scan(&db, &analytics, window).await?;
    print_row("GetMetrics, member share of sales", Ok(share));
    print_row(
        "baseline: member share by a scan of the raw sales, in PostgreSQL",
        Ok(full_scan),
    );
    let audience = timed(SLOW_SAMPLES, || {
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
    .await;
    print_row("CountAudience, stage, recency and spend", audience);
    let all: Vec<pb::Metric> = (1..).map_while(|value| pb::Metric::try_from(value).ok()).collect();
    for metric in all.iter().copied().filter(|metric| !FAST.contains(metric)) {
        let samples = timed_metrics(&analytics, &[metric], SLOW_SAMPLES, window).await;
        print_row(&format!("GetMetrics, {} alone", metric.as_str_name()), samples);
    }
    Ok(())
}

/// A row of the table: the p50 and p99 of the samples, or why there are none.
fn print_row(name: &str, samples: anyhow::Result<Vec<Duration>>) {
    match samples {
        Ok(samples) => println!(
            "| {name} | {:.1} ms | {:.1} ms | {} samples |",
            ms(quantile(&samples, 0.5)),
            ms(quantile(&samples, 0.99)),
            samples.len()
        ),
        Err(error) => println!("| {name} | | | failed: {error} |"),
    }
}

/// The member share of sales from the service and by PostgreSQL scanning the raw sales, timed;
/// fails unless both say the same.
async fn member_share_beside_a_scan(
    db: &sea_orm::DatabaseConnection,
    analytics: &AnalyticsClient,
    (first_day, last_day): (&str, &str),
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let answer = analytics
        .clone()
        .get_metrics(metrics_request(&[pb::Metric::MemberShareOfSales], first_day, last_day))
        .await?
        .into_inner();
    let share = &answer.values[0];
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
    let service = timed_metrics(
        analytics,
        &[pb::Metric::MemberShareOfSales],
        SLOW_SAMPLES,
        (first_day, last_day),
    )
    .await?;
    let full_scan = timed(SLOW_SAMPLES, || {
        let (db, scan) = (db, scan.clone());
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), scan))
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok((service, full_scan))
}
