//! Event-stream benchmark, on PostgreSQL (TEST_DATABASE_URL, else the local server):
//! - commit-to-subscriber latency (p50, p99) of member-identity's stream while 8 clients enrol;
//! - catch-up throughput of a subscriber reading a 100,000-event backlog, beside the baseline of
//!   reading the same rows straight from PostgreSQL with the same batched query, in the same run
//!   (and how fast the sequencer numbers that backlog first).
//!
//! cargo run --release -p quanyu-bench --bin outbox

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use quanyu_bench::ms;
use quanyu_outbox::NewEvent;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
use quanyu_proto::events::v1::{SubscribeRequest, subscribe_response};
use quanyu_proto::identity::v1 as pb;
use quanyu_runtime::auth::BearerKey;
use quanyu_runtime::service::Service as _;
use quanyu_testkit::{Backend, Suite, keys};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use tokio_stream::StreamExt as _;

const WRITERS: usize = 8;
const WRITE_FOR: Duration = Duration::from_secs(10);
const BACKLOG: u64 = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let suite = Suite::suite(Backend::Postgres)
        .await
        .context("needs PostgreSQL: set TEST_DATABASE_URL or run one at 127.0.0.1:5432")?;
    let db = quanyu_runtime::db::connect::<quanyu_member_identity::migration::Migrator>(
        &suite.context.database,
        quanyu_member_identity::MemberIdentity::SCHEMA,
    )
    .await?;

    let (latencies, writes) = latency_under_writes(&suite).await?;
    let p50 = quanyu_bench::quantile(&latencies, 0.50);
    let p99 = quanyu_bench::quantile(&latencies, 0.99);

    let from = head(&db).await?;
    append_backlog(&db).await?;
    // Number the backlog first, as the replicas' sequencers do while it is written.
    let started = Instant::now();
    let numbered = quanyu_outbox::sequencer::sequence(&db).await?;
    let sequence_rate = numbered as f64 / started.elapsed().as_secs_f64();
    let stream_rate = catch_up(&suite, from).await?;
    let baseline_rate = read_directly(&db, from).await?;

    println!("event stream benchmark (PostgreSQL, {WRITERS} enrolling clients for {WRITE_FOR:?})");
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| enrolments committed | {writes} ({:.0}/s) | |",
        writes as f64 / WRITE_FOR.as_secs_f64()
    );
    println!("| commit-to-subscriber latency p50 | {:.1} ms | |", ms(p50));
    println!("| commit-to-subscriber latency p99 | {:.1} ms | <= 500 ms |", ms(p99));
    println!("| numbering the backlog (sequencer) | {sequence_rate:.0} events/s | |");
    println!("| catch-up, Subscribe over gRPC | {stream_rate:.0} events/s | >= 20,000 events/s |");
    println!("| baseline: same rows read straight from PostgreSQL | {baseline_rate:.0} events/s | |");
    println!("| ratio Subscribe / baseline | {:.2} | |", stream_rate / baseline_rate);
    suite.stop().await;
    Ok(())
}

async fn head(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(position), 0) AS head FROM outbox_events",
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get::<i64>("", "head")?.unsigned_abs())
}

/// Enrols from `WRITERS` clients while one subscriber measures how long each event took to
/// arrive after it was written (its `occurred_at`, stamped just before commit).
async fn latency_under_writes(suite: &Suite) -> anyhow::Result<(Vec<Duration>, usize)> {
    let bearer = BearerKey::new(keys::ACME_PLATFORM)?;
    let mut events = EventStreamServiceClient::with_interceptor(suite.identity_channel().await, bearer);
    let mut stream = events.subscribe(SubscribeRequest::default()).await?.into_inner();
    let deadline = Instant::now() + WRITE_FOR;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = suite.identity(keys::ACME_PLATFORM).await;
        writers.push(tokio::spawn(async move {
            let mut written = 0usize;
            while Instant::now() < deadline {
                let request = pb::EnrollMemberRequest {
                    identities: vec![pb::Identity {
                        kind: pb::IdentityKind::External.into(),
                        namespace: "bench".into(),
                        value: format!("w{writer}-{written}"),
                    }],
                    ..Default::default()
                };
                client.enroll_member(request).await?;
                written += 1;
            }
            Ok::<_, tonic::Status>(written)
        }));
    }
    let mut latencies = Vec::new();
    let collect_until = deadline + Duration::from_secs(2);
    while let Ok(Some(item)) = tokio::time::timeout_at(collect_until.into(), stream.next()).await {
        if let Some(subscribe_response::Item::Event(event)) = item?.item {
            let occurred = event.occurred_at.context("event without time")?;
            let occurred_ms = occurred.seconds * 1000 + i64::from(occurred.nanos / 1_000_000);
            let waited = (Utc::now().timestamp_millis() - occurred_ms).max(0);
            latencies.push(Duration::from_millis(waited.unsigned_abs()));
        }
    }
    let mut writes = 0;
    for writer in writers {
        writes += writer.await??;
    }
    latencies.sort();
    anyhow::ensure!(
        latencies.len() == writes,
        "received {} of {writes} events",
        latencies.len()
    );
    Ok((latencies, writes))
}

async fn append_backlog(db: &DatabaseConnection) -> anyhow::Result<()> {
    for batch in 0..BACKLOG / 1000 {
        let txn = db.begin().await?;
        let events = (0..1000)
            .map(|n| NewEvent {
                tenant_id: "acme".into(),
                aggregate_type: "member",
                aggregate_id: format!("backlog-{batch}-{n}"),
                payload: Payload::MemberErased(pb::MemberErased {
                    member_id: format!("backlog-{batch}-{n}"),
                }),
            })
            .collect();
        quanyu_outbox::append(&txn, events).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Events per second for a subscriber reading the backlog after `from`.
async fn catch_up(suite: &Suite, from: u64) -> anyhow::Result<f64> {
    let bearer = BearerKey::new(keys::SERVICE)?;
    let mut events = EventStreamServiceClient::with_interceptor(suite.identity_channel().await, bearer);
    let started = Instant::now();
    let mut stream = events
        .subscribe(SubscribeRequest {
            after_position: from,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut received = 0u64;
    while received < BACKLOG {
        if let Some(subscribe_response::Item::Event(_)) = stream.next().await.context("stream ended")??.item {
            received += 1;
        }
    }
    Ok(BACKLOG as f64 / started.elapsed().as_secs_f64())
}

/// Events per second reading the same rows with the same batched query, without gRPC.
async fn read_directly(db: &DatabaseConnection, from: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut after = i64::try_from(from)?;
    let mut read = 0u64;
    while read < BACKLOG {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT position, event_id, tenant_id, aggregate_type, aggregate_id, event_type, occurred_at, payload \
                 FROM outbox_events WHERE position > $1 ORDER BY position LIMIT 1000",
                [after.into()],
            ))
            .await?;
        let last = rows.last().context("backlog shorter than expected")?;
        after = last.try_get("", "position")?;
        read += rows.len() as u64;
    }
    Ok(BACKLOG as f64 / started.elapsed().as_secs_f64())
}
