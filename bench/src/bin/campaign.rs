//! Coupon claims on one hot template, side by side with pgbench on the same PostgreSQL in the
//! same run (TEST_DATABASE_URL, else the local server):
//! - claims per second from 32 clients, each claim by another member, against pgbench running a
//!   script that decrements one stock row with a check from 32 clients (goal >= 0.5x);
//! - a stock of 1,000 claimed 10,000 times at once issues exactly 1,000 coupons (zero oversell).
//!
//! cargo run --release -p quanyu-bench --bin campaign

use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_bench::{Workload, ms, pgbench, quantile};
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_testkit::{Backend, CampaignClient, Sandbox, keys};
use sea_orm::ConnectionTrait;

const RUN_FOR: Duration = Duration::from_secs(10);
const CLIENTS: usize = 32;
/// The stock of the oversell check, and how many claims are made on it.
const SMALL_STOCK: usize = 1_000;
const OVERSELL_CLAIMS: usize = 10_000;

/// The baseline: one stock row, decremented while positive, one statement per transaction.
const STOCK_SETUP: &str = "CREATE TABLE stock (id int PRIMARY KEY, remaining bigint NOT NULL); \
                           INSERT INTO stock VALUES (1, 1000000000);";
const STOCK_SCRIPT: &str = "UPDATE stock SET remaining = remaining - 1 WHERE id = 1 AND remaining > 0;\n";

async fn template(client: &mut CampaignClient, template_id: &str, stock: i64) -> anyhow::Result<()> {
    let template = pb::CouponTemplate {
        template_id: template_id.into(),
        name: "Bench 50 off".into(),
        kind: pb::CouponKind::AmountOff.into(),
        amount_off: Some(Money {
            amount_minor: 5_000,
            currency: "CNY".into(),
        }),
        valid_days: 30,
        stock,
        per_member_limit: 1,
        ..Default::default()
    };
    client
        .create_coupon_template(pb::CreateCouponTemplateRequest {
            template: Some(template),
        })
        .await?;
    Ok(())
}

fn claim(template_id: &str, member_id: String) -> pb::ClaimCouponRequest {
    pb::ClaimCouponRequest {
        template_id: template_id.into(),
        idempotency_key: format!("{template_id}/{member_id}"),
        member_id,
        channel: Channel::WechatMall.into(),
    }
}

/// Claims on `template_id` from [`CLIENTS`] clients until `deadline` or until each made
/// `per_client` claims: the latencies of the claims issued, and how many were refused.
async fn claims(
    suite: &Sandbox,
    template_id: &'static str,
    deadline: Instant,
    per_client: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let mut client = suite.campaign(keys::ACME_PLATFORM).await;
        tasks.push(tokio::spawn(async move {
            let (mut issued, mut refused) = (Vec::new(), 0);
            for n in 0..per_client {
                if Instant::now() >= deadline {
                    break;
                }
                let started = Instant::now();
                match client
                    .claim_coupon(claim(template_id, format!("m-{client_index}-{n}")))
                    .await
                {
                    Ok(_) => issued.push(started.elapsed()),
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => refused += 1,
                    Err(status) => return Err(anyhow::anyhow!("a claim failed: {status:?}")),
                }
            }
            Ok::<_, anyhow::Error>((issued, refused))
        }));
    }
    let (mut issued, mut refused) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, refusals) = task.await??;
        issued.extend(latencies);
        refused += refusals;
    }
    issued.sort_unstable();
    Ok((issued, refused))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = u32::try_from(CLIENTS)?;
    let script = Workload::Script {
        setup: STOCK_SETUP,
        script: STOCK_SCRIPT,
    };
    let baseline = pgbench(clients, script, RUN_FOR).await?;
    let suite = Sandbox::builder(Backend::Postgres)
        .service(&quanyu_member_identity::SERVICE, "")
        .service(&quanyu_loyalty_points::SERVICE, quanyu_testkit::POINTS_SETTINGS)
        .service(&quanyu_campaign::SERVICE, quanyu_testkit::CAMPAIGN_SETTINGS)
        .start()
        .await
        .context("needs PostgreSQL")?;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    template(&mut client, "hot", 0).await?;
    template(&mut client, "thousand", SMALL_STOCK as i64).await?;

    let started = Instant::now();
    let (latencies, _) = claims(&suite, "hot", started + RUN_FOR, usize::MAX).await?;
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();

    let far = Instant::now() + Duration::from_secs(3_600);
    let (issued, refused) = claims(&suite, "thousand", far, OVERSELL_CLAIMS.div_ceil(CLIENTS)).await?;
    let db = suite.database("campaign").await;
    let stored = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS coupons FROM coupons WHERE template_id = 'thousand'",
        ))
        .await?
        .context("a count")?
        .try_get::<i64>("", "coupons")?;
    anyhow::ensure!(
        issued.len() == SMALL_STOCK && stored == SMALL_STOCK as i64,
        "oversold: {} answered, {stored} stored",
        issued.len()
    );

    println!("coupon-claim benchmark (PostgreSQL, {RUN_FOR:?}, {CLIENTS} clients, same server as pgbench)");
    println!("| measure | value | baseline | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| claims on one hot template | {rate:.0} claims/s (p50 {:.1} ms, p99 {:.1} ms) | one stock row decremented with a check: {baseline:.0} tps | {:.2}x | >= 0.5x |",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        rate / baseline
    );
    println!(
        "| {OVERSELL_CLAIMS} claims at once on a stock of {SMALL_STOCK} | {} issued, {refused} refused, {stored} stored | | | exactly {SMALL_STOCK} |",
        issued.len()
    );
    suite.stop().await;
    Ok(())
}
