//! member-identity at the database's speed, side by side with pgbench on the same PostgreSQL in
//! the same run (TEST_DATABASE_URL, else the local server), with MEMBERS members (default
//! 1,000,000) of three identities each loaded into the tenant:
//! - ResolveIdentities of one known phone a call from 8 clients, against `pgbench -S` from 8
//!   clients (goal >= 1.0x), and its p99 at half that peak rate (goal <= 2 ms);
//! - 1,000-identity calls from 8 clients, in identities a second (goal >= 10x `pgbench -S`);
//! - a call that needs no database (an invalid phone) against the health Check (goal >= 0.8x);
//! - enrolment from 8 clients at 10,000 members and at MEMBERS, without a manual ANALYZE (goal:
//!   within 20%).
//!
//! cargo run --release -p quanyu-bench --bin identity [-- MEMBERS]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_bench::{Workload, ms, pgbench, quantile};
use quanyu_proto::identity::v1 as pb;
use quanyu_runtime::service::Service as _;
use quanyu_testkit::{Backend, IdentityClient, Sandbox, keys};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const CLIENTS: u64 = 8;
const RUN_FOR: Duration = Duration::from_secs(10);
const ENROLMENTS: u64 = 2_000;
const SMALL: u64 = 10_000;
const PER_CALL: u64 = 1_000;

/// One call of a client: its number among that client's calls.
type Call = Arc<dyn Fn(u64, u64) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// Runs `call` from [`CLIENTS`] clients until `until` says stop, each as fast as its answers come
/// or, with `pace`, one call per `pace`: the latencies of every call, sorted, and the time taken.
async fn hammer(call: Call, until: Until, pace: Option<Duration>) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let call = call.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = Instant::now();
            for n in 0.. {
                match until {
                    Until::Elapsed(limit) if started.elapsed() >= limit => break,
                    Until::Calls(calls) if n >= calls => break,
                    _ => {}
                }
                let began = Instant::now();
                call(client, n).await?;
                latencies.push(began.elapsed());
                if let Some(pace) = pace {
                    next += pace;
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok((all, elapsed))
}

#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    /// Calls per client.
    Calls(u64),
}

fn rate(latencies: &[Duration], elapsed: Duration) -> f64 {
    latencies.len() as f64 / elapsed.as_secs_f64()
}

fn phone(n: u64) -> pb::Identity {
    pb::Identity {
        kind: pb::IdentityKind::Phone.into(),
        value: format!("139{n:08}"),
        namespace: String::new(),
    }
}

/// A number that spreads calls over the loaded members.
fn spread(client: u64, n: u64, members: u64) -> u64 {
    (client * 7_919 + n * 104_729) % members
}

/// Adds members `from..to` (a phone, a WeChat openid and a Tmall ouid each) by SQL, copying the
/// other columns of `template`, a member enrolled through the API.
async fn load(db: &DatabaseConnection, template: &str, from: u64, to: u64) -> anyhow::Result<()> {
    let chunk = 250_000;
    let mut start = from;
    while start < to {
        let end = (start + chunk).min(to);
        let range = format!("generate_series({start}, {}) AS n", end - 1);
        db.execute_unprepared(&format!(
            "INSERT INTO members (tenant_id, id, status, merged_into, name, gender, birthday, province, city, \
             life_stage, attributes, channel, brand_id, store_id, guide_id, referral_code, enrolled_at, updated_at) \
             SELECT tenant_id, 'bench-' || n, status, merged_into, name, gender, birthday, province, city, \
             life_stage, attributes, channel, brand_id, store_id, guide_id, referral_code, enrolled_at, updated_at \
             FROM members, {range} WHERE id = '{template}'"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO identities (tenant_id, kind, namespace, value, member_id, derived_from, linked_at) \
             SELECT 'acme', kind, namespace, prefix || lpad(n::text, 8, '0'), 'bench-' || n, NULL, now() \
             FROM (VALUES ('phone', '', '+86139'), ('wechat_openid', 'wx-bench', 'o-'), ('tmall_ouid', '', 'ouid-')) \
             AS kinds (kind, namespace, prefix), {range}"
        ))
        .await?;
        start = end;
        eprint!("\rloaded {end} members");
    }
    eprintln!();
    Ok(())
}

/// Enrolments a second from [`CLIENTS`] clients, [`ENROLMENTS`] in all, of phones `first..`.
async fn enrolment_rate(client: &IdentityClient, first: u64) -> anyhow::Result<f64> {
    let client = client.clone();
    let call: Call = Arc::new(move |worker, n| {
        let mut client = client.clone();
        Box::pin(async move {
            let identities = vec![phone(first + worker * ENROLMENTS + n)];
            let request = pb::EnrollMemberRequest {
                identities,
                ..Default::default()
            };
            client.enroll_member(request).await?;
            Ok(())
        })
    });
    let (latencies, elapsed) = hammer(call, Until::Calls(ENROLMENTS / CLIENTS), None).await?;
    Ok(rate(&latencies, elapsed))
}

fn resolve_call(client: &IdentityClient, members: u64, per_call: u64) -> Call {
    let client = client.clone();
    Arc::new(move |worker, n| {
        let mut client = client.clone();
        Box::pin(async move {
            let identities = (0..per_call)
                .map(|k| phone(spread(worker, n * per_call + k, members)))
                .collect();
            let answer = client
                .resolve_identities(pb::ResolveIdentitiesRequest { identities })
                .await?
                .into_inner();
            let found = answer
                .resolutions
                .iter()
                .filter(|resolution| resolution.outcome() == pb::ResolveOutcome::Found)
                .count();
            anyhow::ensure!(found as u64 == per_call, "{found} of {per_call} loaded phones found");
            Ok(())
        })
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members: u64 = match std::env::args().nth(1) {
        Some(members) => members.parse().context("MEMBERS is a number")?,
        None => 1_000_000,
    };
    anyhow::ensure!(members > SMALL, "MEMBERS must be above {SMALL}");
    let suite = Sandbox::start(Backend::Postgres, &[&quanyu_member_identity::SERVICE])
        .await
        .context("needs PostgreSQL")?;
    let db = suite.database(quanyu_member_identity::MemberIdentity::SCHEMA).await;
    let client = suite.identity(keys::ACME_POS).await;
    let template = client
        .clone()
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone(99_999_999)],
            ..Default::default()
        })
        .await?
        .into_inner()
        .member
        .context("an enrolled member")?
        .member_id;

    load(&db, &template, 0, SMALL).await?;
    eprintln!("enrolling {ENROLMENTS} at {SMALL} members");
    let enrol_small = enrolment_rate(&client, 50_000_000).await?;
    load(&db, &template, SMALL, members).await?;
    eprintln!("enrolling {ENROLMENTS} at {members} members");
    let enrol_large = enrolment_rate(&client, 60_000_000).await?;

    eprintln!("pgbench -S, then resolves");
    let select_only = pgbench(CLIENTS as u32, Workload::SelectOnly, RUN_FOR).await?;
    let one = resolve_call(&client, members, 1);
    let (peak, elapsed) = hammer(one.clone(), Until::Elapsed(RUN_FOR), None).await?;
    let peak_rate = rate(&peak, elapsed);
    let pace = Duration::from_secs_f64(2.0 * CLIENTS as f64 / peak_rate);
    let (half, half_elapsed) = hammer(one, Until::Elapsed(RUN_FOR), Some(pace)).await?;
    let (batches, batches_elapsed) =
        hammer(resolve_call(&client, members, PER_CALL), Until::Elapsed(RUN_FOR), None).await?;
    let identities_rate = rate(&batches, batches_elapsed) * PER_CALL as f64;

    let invalid: Call = {
        let client = client.clone();
        Arc::new(move |_, _| {
            let mut client = client.clone();
            Box::pin(async move {
                let identities = vec![pb::Identity {
                    kind: pb::IdentityKind::Phone.into(),
                    value: "not-a-phone".into(),
                    namespace: String::new(),
                }];
                client
                    .resolve_identities(pb::ResolveIdentitiesRequest { identities })
                    .await?;
                Ok(())
            })
        })
    };
    eprintln!("calls without database work, then health checks");
    let (no_db, no_db_elapsed) = hammer(invalid, Until::Elapsed(RUN_FOR), None).await?;
    let health = HealthClient::new(suite.identity_channel().await);
    let check: Call = Arc::new(move |_, _| {
        let mut health = health.clone();
        Box::pin(async move {
            health.check(HealthCheckRequest { service: String::new() }).await?;
            Ok(())
        })
    });
    let (checks, checks_elapsed) = hammer(check, Until::Elapsed(RUN_FOR), None).await?;

    println!(
        "member-identity with {members} members ({} identities), {CLIENTS} clients",
        members * 3
    );
    println!("| measure | figure | baseline | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| resolve 1 phone a call | {peak_rate:.0} calls/s (p50 {:.2} ms, p99 {:.2} ms) | pgbench -S {select_only:.0} tps | {:.2}x | >= 1.0x |",
        ms(quantile(&peak, 0.5)),
        ms(quantile(&peak, 0.99)),
        peak_rate / select_only
    );
    println!(
        "| the same at half that rate | {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms | | | p99 <= 2 ms |",
        rate(&half, half_elapsed),
        ms(quantile(&half, 0.5)),
        ms(quantile(&half, 0.99))
    );
    println!(
        "| resolve {PER_CALL} phones a call | {identities_rate:.0} identities/s (p99 {:.1} ms a call) | pgbench -S {select_only:.0} tps | {:.1}x | >= 10x |",
        ms(quantile(&batches, 0.99)),
        identities_rate / select_only
    );
    let no_db_rate = rate(&no_db, no_db_elapsed);
    let checks_rate = rate(&checks, checks_elapsed);
    println!(
        "| a call with no database work (invalid phone) | {no_db_rate:.0} calls/s | health Check {checks_rate:.0} calls/s | {:.2}x | >= 0.8x |",
        no_db_rate / checks_rate
    );
    println!(
        "| enrolment at {members} members | {enrol_large:.0} enrolments/s | at {SMALL} members: {enrol_small:.0}/s | {:.2}x | >= 0.8x |",
        enrol_large / enrol_small
    );
    Ok(())
}
