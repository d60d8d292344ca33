//! A coupon drop to 100,000 members of an analytics audience, with campaign in a process of its
//! own (the `quanyu` binary) beside the in-process member-identity, loyalty-points and analytics,
//! all on the same PostgreSQL as pgbench in the same run (TEST_DATABASE_URL, else the local
//! server):
//! - the drop's rate, in members per second, against pgbench running from one client (a drop has
//!   one runner) the statements one member's coupon takes — the stock, the coupon, the reward
//!   and its two events — one transaction each;
//! - a second drop, its campaign process killed (SIGKILL) part-way and started again: it goes on
//!   after the last batch it committed, and every member holds exactly one coupon of it.
//!
//! cargo build --release -p quanyu && cargo run --release -p quanyu-bench --bin drop
//!
//! BENCH_DROP_MEMBERS sets the audience's size (100,000 by default).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use quanyu_bench::{Workload, pgbench};
use quanyu_proto::analytics::v1::{AudienceSelector, audience_selector};
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::campaign::v1::campaign_service_client::CampaignServiceClient;
use quanyu_proto::common::v1::Money;
use quanyu_runtime::auth::BearerKey;
use quanyu_testkit::{Backend, Sandbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The tenant of the development configuration's demo keys, which the campaign process runs with.
const TENANT: &str = "demo";
const PLATFORM_KEY: &str = "dev-demo-platform";

/// One member's coupon in a drop, as plain SQL: the template's count, the coupon, the reward,
/// and the two events (CouponIssued, RewardGranted).
const ISSUE_SETUP: &str = "CREATE TABLE stock (id int PRIMARY KEY, issued bigint NOT NULL); \
    INSERT INTO stock VALUES (1, 0); \
    CREATE TABLE coupons (coupon_id text PRIMARY KEY, member_id text, code text, issued_at timestamptz); \
    CREATE TABLE rewards (member_id text PRIMARY KEY, coupon_id text); \
    CREATE TABLE outbox (id bigserial PRIMARY KEY, payload bytea);";
const ISSUE_SCRIPT: &str = "\\set m random(1, 1000000000)\n\
    BEGIN;\n\
    UPDATE stock SET issued = issued + 1 WHERE id = 1;\n\
    INSERT INTO coupons VALUES (md5(random()::text), :m, md5(random()::text), now());\n\
    INSERT INTO rewards VALUES (:m, 'c') ON CONFLICT DO NOTHING;\n\
    INSERT INTO outbox (payload) VALUES ('\\x00');\n\
    INSERT INTO outbox (payload) VALUES ('\\x00');\n\
    END;\n";

type Client = CampaignServiceClient<InterceptedService<Channel, BearerKey>>;

/// campaign in a process of its own, on the sandbox's database and calling its services.
struct CampaignProcess {
    binary: PathBuf,
    environment: Vec<(String, String)>,
    address: std::net::SocketAddr,
    child: Option<Child>,
}

impl CampaignProcess {
    fn new(suite: &Sandbox, address: std::net::SocketAddr) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("quanyu");
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: cargo build --release -p quanyu",
            binary.display()
        );
        let environment = [
            ("QUANYU_DATABASE__URL", suite.context.database.url.expose().to_owned()),
            ("QUANYU_TELEMETRY__METRICS_LISTEN", "127.0.0.1:0".into()),
            ("QUANYU_CAMPAIGN__LISTEN", address.to_string()),
            (
                "QUANYU_CAMPAIGN__IDENTITY_ENDPOINT",
                format!("http://{}", suite.address("member-identity")),
            ),
            (
                "QUANYU_CAMPAIGN__POINTS_ENDPOINT",
                format!("http://{}", suite.address("loyalty-points")),
            ),
            (
                "QUANYU_CAMPAIGN__ANALYTICS_ENDPOINT",
                format!("http://{}", suite.address("analytics")),
            ),
            ("QUANYU_CAMPAIGN__API_KEY", quanyu_testkit::keys::SERVICE.into()),
            ("QUANYU_CAMPAIGN__SWEEP_INTERVAL_SECS", "1".into()),
        ];
        Ok(Self {
            binary,
            environment: environment.map(|(name, value)| (name.to_owned(), value)).into(),
            address,
            child: None,
        })
    }

    /// Starts the process and waits until it answers.
    async fn start(&mut self) -> anyhow::Result<Client> {
        let log = std::env::temp_dir().join("quanyu-bench-drop-campaign.log");
        let output = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(&self.binary)
            .args(["serve", "--only", "campaign"])
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .context("start campaign")?;
        self.child = Some(child);
        let channel = Channel::from_shared(format!("http://{}", self.address))?;
        for _ in 0..200 {
            if let Ok(connected) = channel.connect().await {
                return Ok(CampaignServiceClient::with_interceptor(
                    connected,
                    BearerKey::new(PLATFORM_KEY)?,
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("campaign never answered at {}: see {}", self.address, log.display())
    }

    /// SIGKILL: no drain, no commit of the batch in flight.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for CampaignProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `members` members in analytics, all bound to the store "drop", in one statement.
async fn seed_audience(analytics: &DatabaseConnection, members: i64) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO members (tenant_id, member_id, enrolled_day, brand_id, channel, store_id, bound_store_id) \
         SELECT '{TENANT}', 'm-' || lpad(n::text, 8, '0'), '2026-01-01', '', 1, 'drop', 'drop' \
         FROM generate_series(1, {members}) AS n"
    );
    analytics.execute_unprepared(&sql).await?;
    Ok(())
}

async fn create_drop(client: &mut Client, id: &str) -> anyhow::Result<()> {
    let template = pb::CouponTemplate {
        template_id: id.into(),
        name: "Drop 10 off".into(),
        kind: pb::CouponKind::AmountOff.into(),
        amount_off: Some(Money {
            amount_minor: 1_000,
            currency: "CNY".into(),
        }),
        valid_days: 30,
        ..Default::default()
    };
    client
        .create_coupon_template(pb::CreateCouponTemplateRequest {
            template: Some(template),
        })
        .await?;
    let now = chrono::Utc::now();
    let drop = pb::Campaign {
        campaign_id: id.into(),
        name: "Drop".into(),
        kind: pb::CampaignKind::CouponDrop.into(),
        starts_at: Some(quanyu_runtime::clock::to_proto(now - chrono::Duration::days(1))),
        ends_at: Some(quanyu_runtime::clock::to_proto(now + chrono::Duration::days(30))),
        reward: Some(pb::Reward {
            coupon_template_id: id.into(),
            ..Default::default()
        }),
        audience: Some(AudienceSelector {
            audience: Some(audience_selector::Audience::Rule("store = \"drop\"".into())),
        }),
        ..Default::default()
    };
    client
        .create_campaign(pb::CreateCampaignRequest { campaign: Some(drop) })
        .await?;
    client
        .change_campaign_state(pb::ChangeCampaignStateRequest {
            campaign_id: id.into(),
            state: pb::CampaignState::Scheduled.into(),
        })
        .await?;
    Ok(())
}

/// Polls the drop until `check` holds of its progress.
async fn progress_until(
    client: &mut Client,
    id: &str,
    check: impl Fn(&pb::DropProgress) -> bool,
) -> anyhow::Result<pb::DropProgress> {
    loop {
        let run = client
            .get_campaign_run(pb::GetCampaignRunRequest { campaign_id: id.into() })
            .await?
            .into_inner();
        if let Some(progress) = run.drop
            && check(&progress)
        {
            return Ok(progress);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The coupons of template `id`, and the distinct members holding them.
async fn coupons_of(campaign: &DatabaseConnection, id: &str) -> anyhow::Result<(i64, i64)> {
    let row = campaign
        .query_one_raw(Statement::from_string(
            campaign.get_database_backend(),
            format!("SELECT count(*) AS coupons, count(DISTINCT member_id) AS members FROM coupons WHERE template_id = '{id}'"),
        ))
        .await?
        .context("a count")?;
    Ok((row.try_get("", "coupons")?, row.try_get("", "members")?))
}

/// How far a drop had committed: where a restart goes on from.
async fn committed_listed(campaign: &DatabaseConnection, id: &str) -> anyhow::Result<i64> {
    let row = campaign
        .query_one_raw(Statement::from_string(
            campaign.get_database_backend(),
            format!("SELECT listed FROM drops WHERE campaign_id = '{id}'"),
        ))
        .await?
        .context("a drop")?;
    Ok(row.try_get("", "listed")?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members: i64 = std::env::var("BENCH_DROP_MEMBERS")
        .ok()
        .map(|members| members.parse())
        .transpose()?
        .unwrap_or(100_000);
    let script = Workload::Script {
        setup: ISSUE_SETUP,
        script: ISSUE_SCRIPT,
    };
    let baseline = pgbench(1, script, Duration::from_secs(10)).await?;

    let campaign_address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let analytics_settings = format!(
        "identity_endpoint = \"http://{{member-identity}}\"\n\
         points_endpoint = \"http://{{loyalty-points}}\"\n\
         campaign_endpoint = \"http://{campaign_address}\"\n\
         api_key = \"test-service\"\n"
    );
    let suite = Sandbox::builder(Backend::Postgres)
        .service(&quanyu_member_identity::SERVICE, "")
        .service(&quanyu_loyalty_points::SERVICE, quanyu_testkit::POINTS_SETTINGS)
        // Settings live as long as the sandbox's services: leaking one string is fine for a run.
        .service(
            &quanyu_analytics::SERVICE,
            Box::leak(analytics_settings.into_boxed_str()),
        )
        .start()
        .await
        .context("needs PostgreSQL")?;
    seed_audience(&suite.database("analytics").await, members).await?;
    let mut process = CampaignProcess::new(&suite, campaign_address)?;
    let mut client = process.start().await?;
    let campaign_db = suite.database("campaign").await;

    let started = Instant::now();
    create_drop(&mut client, "drop-a").await?;
    progress_until(&mut client, "drop-a", |progress| progress.done).await?;
    let elapsed = started.elapsed();
    let rate = members as f64 / elapsed.as_secs_f64();
    let (coupons, holders) = coupons_of(&campaign_db, "drop-a").await?;
    anyhow::ensure!(
        coupons == members && holders == members,
        "drop-a: {coupons} coupons to {holders} members"
    );

    create_drop(&mut client, "drop-b").await?;
    let at_kill = progress_until(&mut client, "drop-b", |progress| progress.listed >= members * 2 / 5).await?;
    process.kill()?;
    let committed = committed_listed(&campaign_db, "drop-b").await?;
    let restarted = Instant::now();
    let mut client = process.start().await?;
    progress_until(&mut client, "drop-b", |progress| progress.done).await?;
    let resume_elapsed = restarted.elapsed();
    let (coupons_b, holders_b) = coupons_of(&campaign_db, "drop-b").await?;
    anyhow::ensure!(
        coupons_b == members && holders_b == members,
        "drop-b after the kill: {coupons_b} coupons to {holders_b} members"
    );

    println!("coupon-drop benchmark (PostgreSQL, campaign as its own process, same server as pgbench)");
    println!("| measure | value | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| a drop to {members} members | {rate:.0} members/s ({:.1} s from scheduling to done) | one member's coupon, reward and events per transaction, 1 client: {baseline:.0} tps | {:.2}x |",
        elapsed.as_secs_f64(),
        rate / baseline
    );
    println!(
        "| a drop killed (SIGKILL) after {} members were seen listed, {committed} committed, and started again | done {:.1} s after the restart; {coupons_b} coupons, to {holders_b} distinct members | exactly {members} | |",
        at_kill.listed,
        resume_elapsed.as_secs_f64()
    );
    drop(process);
    suite.stop().await;
    Ok(())
}
