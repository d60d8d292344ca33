//! `quanyu demo`: an omnichannel group generated through the real APIs — brands, stores and
//! guides, members on every channel (some enrolled twice and merged), a year of sales with
//! refunds, channel interactions, a member day, a referral ladder and a coupon drop — ending
//! with the FAST report once analytics has counted every sale.

mod plan;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;
use quanyu_proto::analytics::v1 as analytics_pb;
use quanyu_proto::campaign::v1 as campaign_pb;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as points_pb;
use tonic::Code;

use crate::call;
use crate::client::{ClientArgs, Clients};
use plan::{Member, Plan, cny, timestamp};

/// Calls at once while enrolling (one member a call); sales and interactions go in batches.
const ENROLLING_WORKERS: u64 = 16;
const BATCH_WORKERS: u64 = 4;
const SALES_PER_CALL: usize = 500;
const INTERACTIONS_PER_CALL: usize = 1_000;
const WELCOME_COUPON: &str = "demo-welcome-30";
const REFERRAL: &str = "demo-bring-friends";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Members to enrol (friends brought by invite codes come on top).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    members: u64,
    /// Days of sales, ending the day before --until.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=900))]
    days: u32,
    /// The same seed makes the same group.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The day the generated history ends (sales happen before it); default today (UTC). Give
    /// the same day to resume a demo started on an earlier day.
    #[arg(long)]
    until: Option<NaiveDate>,
}

/// Ends a phase's bar with a line that stays: what it did, in how long, at what rate.
fn finished(bar: &indicatif::ProgressBar, phase: &str) {
    bar.finish_and_clear();
    let elapsed = bar.elapsed();
    eprintln!(
        "{phase:<13} of {} members in {} ({:.0} members/s)",
        bar.position(),
        indicatif::HumanDuration(elapsed),
        bar.position() as f64 / elapsed.as_secs_f64().max(0.001)
    );
}

fn progress(phase: &str, length: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length);
    let template = format!("{phase:<13} {{bar:40}} {{pos}}/{{len}}  {{per_sec}}  eta {{eta}}");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `work(worker)` for `workers` workers at once; the first failure fails the phase.
async fn in_parallel<Work, Done>(workers: u64, work: Work) -> anyhow::Result<()>
where
    Work: Fn(u64) -> Done,
    Done: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for worker in 0..workers {
        running.spawn(work(worker));
    }
    while let Some(done) = running.join_next().await {
        done.context("a demo task stopped")??;
    }
    Ok(())
}

/// The members a worker of `workers` takes: every `workers`-th, from its own number.
fn share(plan: &Plan, worker: u64, workers: u64) -> impl Iterator<Item = (u64, Member)> + '_ {
    (worker..plan.members)
        .step_by(usize::try_from(workers).unwrap_or(1))
        .map(|index| (index, plan.member(index)))
}

/// A call that may already have been made by an interrupted run: ALREADY_EXISTS is done.
fn done_before<T>(result: Result<tonic::Response<T>, tonic::Status>, call: &str) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::AlreadyExists => Ok(()),
        Err(status) => Err(crate::client::refused(call, status)),
    }
}

pub async fn run(client: &ClientArgs, args: DemoArgs) -> anyhow::Result<()> {
    let clients = Arc::new(client.connect()?);
    let plan = Arc::new(Plan {
        seed: args.seed,
        members: args.members,
        days: args.days,
        until: args.until.unwrap_or_else(|| chrono::Utc::now().date_naive()),
    });
    eprintln!(
        "Generating {} members and {} days of sales up to {} (seed {}). Ctrl-C stops; the same command resumes:\n  \
         quanyu demo --members {} --days {} --seed {} --until {}",
        plan.members, plan.days, plan.until, plan.seed, plan.members, plan.days, plan.seed, plan.until
    );
    set_up(&clients, &plan).await?;
    enrol(&clients, &plan).await?;
    let net_sales = record_sales(&clients, &plan).await?;
    record_interactions(&clients, &plan).await?;
    start_coupon_drop(&clients).await?;
    await_analytics(&clients, &plan, net_sales).await?;

    let mut analytics = clients.analytics().await?;
    let from = plan.until - chrono::Duration::days(84);
    let until = plan.until - chrono::Duration::days(1);
    let (report, _) = crate::report::fast(
        &mut analytics,
        (
            from.max(plan.until - chrono::Duration::days(i64::from(plan.days))),
            until,
        ),
        7,
        None,
    )
    .await?;
    eprintln!("FAST, week by week (quanyu report fast --from {from} --to {until} --chart fast.svg draws it):");
    report.print(client.format)
}

/// Brands, the points program, the welcome coupon, the member day and the referral ladder.
async fn set_up(clients: &Clients, plan: &Plan) -> anyhow::Result<()> {
    let mut identity = clients.identity().await?;
    for (brand_id, display_name) in plan::BRANDS {
        let brand = identity_pb::CreateBrandRequest {
            brand_id: brand_id.to_owned(),
            display_name: display_name.to_owned(),
        };
        done_before(identity.create_brand(brand).await, "create_brand")?;
    }
    let mut points = clients.points().await?;
    let program = points_pb::Program {
        program_id: "demo-club".to_owned(),
        points_name: "points".to_owned(),
        earning: Some(points_pb::EarningRules {
            points_per_unit: 1,
            unit_minor: 100,
            utc_offset_minutes: 480,
            ..Default::default()
        }),
        expiry: Some(points_pb::ExpiryPolicy {
            policy: Some(points_pb::expiry_policy::Policy::RollingMonths(24)),
        }),
        tiers: [
            ("member", 0, 10_000),
            ("silver", 2_000, 12_000),
            ("gold", 8_000, 15_000),
        ]
        .map(|(code, growth_threshold, multiplier_bp)| points_pb::Tier {
            code: code.to_owned(),
            growth_threshold,
            multiplier_bp,
        })
        .to_vec(),
        auto_enroll: true,
        ..Default::default()
    };
    call!(
        points,
        upsert_program,
        points_pb::UpsertProgramRequest { program: Some(program) }
    )?;

    let mut campaign = clients.campaign().await?;
    let welcome = campaign_pb::CouponTemplate {
        template_id: WELCOME_COUPON.to_owned(),
        name: "30 off 199".to_owned(),
        kind: campaign_pb::CouponKind::AmountOff.into(),
        amount_off: cny(3_000),
        min_spend: cny(19_900),
        valid_days: 30,
        per_member_limit: 1,
        ..Default::default()
    };
    done_before(
        campaign
            .create_coupon_template(campaign_pb::CreateCouponTemplateRequest {
                template: Some(welcome),
            })
            .await,
        "create_coupon_template",
    )?;
    let window_start = plan.until - chrono::Duration::days(i64::from(plan.days) + 1);
    let starts_at = timestamp(window_start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let ends_at = timestamp(chrono::Utc::now() + chrono::Duration::days(90));
    let member_day = campaign_pb::Campaign {
        campaign_id: "demo-member-day".to_owned(),
        name: "Wednesday member day: double points".to_owned(),
        kind: campaign_pb::CampaignKind::MemberDay.into(),
        starts_at,
        ends_at,
        member_day: Some(campaign_pb::MemberDay {
            day: Some(campaign_pb::member_day::Day::Weekday(3)),
        }),
        bonus: Some(campaign_pb::PurchaseBonus {
            points_per_unit: 1,
            unit: cny(100),
            min_spend: cny(10_000),
        }),
        ..Default::default()
    };
    let rung = |invitees, points| campaign_pb::Rung {
        invitees,
        reward: Some(campaign_pb::Reward {
            points,
            ..Default::default()
        }),
    };
    let referral = campaign_pb::Campaign {
        campaign_id: REFERRAL.to_owned(),
        name: "Bring friends: 100 points for the first, 300 for three".to_owned(),
        kind: campaign_pb::CampaignKind::Referral.into(),
        starts_at,
        ends_at,
        referral: Some(campaign_pb::ReferralRules {
            rungs: vec![rung(1, 100), rung(3, 300)],
            qualify_within_days: 30,
            ..Default::default()
        }),
        ..Default::default()
    };
    for planned in [member_day, referral] {
        schedule(&mut campaign, planned).await?;
    }
    // Invite codes are given while the ladder is ACTIVE: the runner activates it within a sweep.
    for _ in 0..100 {
        if state_of(&mut campaign, REFERRAL).await? == campaign_pb::CampaignState::Active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the referral campaign {REFERRAL} did not become ACTIVE within 20 s")
}

async fn state_of(
    campaign: &mut crate::client::CampaignClient,
    campaign_id: &str,
) -> anyhow::Result<campaign_pb::CampaignState> {
    let asked = campaign_pb::GetCampaignRequest {
        campaign_id: campaign_id.to_owned(),
    };
    let found = call!(campaign, get_campaign, asked)?.campaign;
    Ok(found.map_or(campaign_pb::CampaignState::Unspecified, |found| found.state()))
}

/// Creates a campaign and schedules it, unless an earlier run did.
async fn schedule(campaign: &mut crate::client::CampaignClient, planned: campaign_pb::Campaign) -> anyhow::Result<()> {
    let campaign_id = planned.campaign_id.clone();
    done_before(
        campaign
            .create_campaign(campaign_pb::CreateCampaignRequest {
                campaign: Some(planned),
            })
            .await,
        "create_campaign",
    )?;
    if state_of(campaign, &campaign_id).await? == campaign_pb::CampaignState::Draft {
        let scheduled = campaign_pb::ChangeCampaignStateRequest {
            campaign_id,
            state: campaign_pb::CampaignState::Scheduled.into(),
        };
        call!(campaign, change_campaign_state, scheduled)?;
    }
    Ok(())
}

/// Every member: enrolled, enrolled again elsewhere and merged, their friends brought by code,
/// the welcome coupon claimed.
async fn enrol(clients: &Arc<Clients>, plan: &Arc<Plan>) -> anyhow::Result<()> {
    let bar = progress("members", plan.members);
    in_parallel(ENROLLING_WORKERS, |worker| {
        let (clients, plan, bar) = (clients.clone(), plan.clone(), bar.clone());
        async move {
            let mut identity = clients.identity().await?;
            let mut campaign = clients.campaign().await?;
            for (index, member) in share(&plan, worker, ENROLLING_WORKERS) {
                let enrolled = call!(identity, enroll_member, member.enrol.clone())?;
                let member_id = enrolled.member.map(|member| member.member_id).unwrap_or_default();
                if let Some(second) = member.second_enrolment {
                    let twin = call!(identity, enroll_member, second)?;
                    let twin_id = twin.member.map(|member| member.member_id).unwrap_or_default();
                    if twin_id != member_id {
                        let merge = identity_pb::MergeMembersRequest {
                            member_id: member_id.clone(),
                            other_member_id: twin_id,
                            survivor_id: member_id.clone(),
                        };
                        call!(identity, merge_members, merge)?;
                    }
                }
                if member.claims_coupon {
                    let claim = campaign_pb::ClaimCouponRequest {
                        template_id: WELCOME_COUPON.to_owned(),
                        member_id: member_id.clone(),
                        channel: member
                            .enrol
                            .enrollment
                            .as_ref()
                            .map_or(0, |enrollment| enrollment.channel),
                        idempotency_key: format!("demo-claim-{index}"),
                    };
                    call!(campaign, claim_coupon, claim)?;
                }
                if !member.friends.is_empty() {
                    let asked = campaign_pb::GetInviteCodeRequest {
                        campaign_id: REFERRAL.to_owned(),
                        member_id: member_id.clone(),
                    };
                    let code = call!(campaign, get_invite_code, asked)?.code;
                    for mut friend in member.friends {
                        if let Some(enrollment) = friend.enrollment.as_mut() {
                            enrollment.referral_code = code.clone();
                        }
                        call!(identity, enroll_member, friend)?;
                    }
                }
                bar.inc(1);
            }
            Ok(())
        }
    })
    .await?;
    finished(&bar, "members");
    Ok(())
}

/// Sends `sales` in one RecordSales call; any sale refused fails the demo (it is a bug in it).
async fn send_sales(points: &mut crate::client::PointsClient, sales: Vec<points_pb::Sale>) -> anyhow::Result<()> {
    if sales.is_empty() {
        return Ok(());
    }
    let results = call!(points, record_sales, points_pb::RecordSalesRequest { sales })?.results;
    match results
        .iter()
        .find(|result| result.outcome() == points_pb::SaleOutcome::Rejected)
    {
        Some(rejected) => anyhow::bail!("a demo sale was rejected: {:?}", rejected.violations),
        None => Ok(()),
    }
}

/// Every sale, then every refund (a refund needs its sale recorded); the net amount sold.
async fn record_sales(clients: &Arc<Clients>, plan: &Arc<Plan>) -> anyhow::Result<i64> {
    let net = Arc::new(AtomicI64::new(0));
    for (phase, refunds) in [("sales", false), ("refunds", true)] {
        let bar = progress(phase, plan.members);
        in_parallel(BATCH_WORKERS, |worker| {
            let (clients, plan, bar, net) = (clients.clone(), plan.clone(), bar.clone(), net.clone());
            async move {
                let mut points = clients.points().await?;
                let mut batch = Vec::with_capacity(SALES_PER_CALL);
                for (_, member) in share(&plan, worker, BATCH_WORKERS) {
                    let sales = if refunds { member.refunds } else { member.sales };
                    for sale in sales {
                        let amount = sale.amount.as_ref().map_or(0, |money| money.amount_minor);
                        net.fetch_add(if refunds { -amount } else { amount }, Ordering::Relaxed);
                        batch.push(sale);
                    }
                    if batch.len() >= SALES_PER_CALL {
                        send_sales(&mut points, std::mem::take(&mut batch)).await?;
                    }
                    bar.inc(1);
                }
                send_sales(&mut points, batch).await
            }
        })
        .await?;
        finished(&bar, phase);
    }
    Ok(net.load(Ordering::Relaxed))
}

async fn send_interactions(
    analytics: &mut crate::client::AnalyticsClient,
    interactions: Vec<analytics_pb::Interaction>,
) -> anyhow::Result<()> {
    if interactions.is_empty() {
        return Ok(());
    }
    let results = call!(
        analytics,
        record_interactions,
        analytics_pb::RecordInteractionsRequest { interactions }
    )?
    .results;
    match results.iter().find(|result| !result.violations.is_empty()) {
        Some(rejected) => anyhow::bail!("a demo interaction was rejected: {:?}", rejected.violations),
        None => Ok(()),
    }
}

async fn record_interactions(clients: &Arc<Clients>, plan: &Arc<Plan>) -> anyhow::Result<()> {
    let bar = progress("interactions", plan.members);
    in_parallel(BATCH_WORKERS, |worker| {
        let (clients, plan, bar) = (clients.clone(), plan.clone(), bar.clone());
        async move {
            let mut analytics = clients.analytics().await?;
            let mut batch = Vec::with_capacity(INTERACTIONS_PER_CALL);
            for (_, member) in share(&plan, worker, BATCH_WORKERS) {
                for interaction in member.interactions {
                    if batch.len() == INTERACTIONS_PER_CALL {
                        send_interactions(&mut analytics, std::mem::take(&mut batch)).await?;
                    }
                    batch.push(interaction);
                }
                bar.inc(1);
            }
            send_interactions(&mut analytics, batch).await
        }
    })
    .await?;
    finished(&bar, "interactions");
    Ok(())
}

/// A win-back coupon for members who bought but not lately, dropped by campaign in batches.
async fn start_coupon_drop(clients: &Clients) -> anyhow::Result<()> {
    let mut campaign = clients.campaign().await?;
    let now = chrono::Utc::now();
    let winback = campaign_pb::Campaign {
        campaign_id: "demo-winback".to_owned(),
        name: "We miss you: 30 off 199".to_owned(),
        kind: campaign_pb::CampaignKind::CouponDrop.into(),
        starts_at: timestamp(now),
        ends_at: timestamp(now + chrono::Duration::days(30)),
        reward: Some(campaign_pb::Reward {
            coupon_template_id: WELCOME_COUPON.to_owned(),
            ..Default::default()
        }),
        audience: Some(analytics_pb::AudienceSelector {
            audience: Some(analytics_pb::audience_selector::Audience::Rule(
                "stage >= purchased and recency_days > 90".to_owned(),
            )),
        }),
        ..Default::default()
    };
    schedule(&mut campaign, winback).await
}

/// Waits until analytics has counted every sale and every member the demo made: the streams of
/// sales and of enrolments are consumed apart, and the report reads both.
async fn await_analytics(clients: &Clients, plan: &Plan, net_sales: i64) -> anyhow::Result<()> {
    let mut analytics = clients.analytics().await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("analytics is counting the sales and members");
    // Friends enrol today, which may be after --until.
    let today = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    let asked = analytics_pb::GetMetricsRequest {
        metrics: vec![
            analytics_pb::Metric::MemberShareOfSales.into(),
            analytics_pb::Metric::FastMembers.into(),
        ],
        start_date: (plan.until - chrono::Duration::days(i64::from(plan.days) + 1)).to_string(),
        end_date: plan.until.max(today).to_string(),
        ..Default::default()
    };
    // Each person once: twins are merged, and friends are members of their own.
    let people: i64 = (0..plan.members)
        .map(|index| 1 + plan.member(index).friends.len() as i64)
        .sum();
    let started = std::time::Instant::now();
    loop {
        let values = call!(analytics, get_metrics, asked.clone())?.values;
        let value = |metric: analytics_pb::Metric| {
            values
                .iter()
                .find(|value| value.metric == i32::from(metric))
                .cloned()
                .unwrap_or_default()
        };
        // Net sales by everyone, and members not merged into another.
        let sales = value(analytics_pb::Metric::MemberShareOfSales).denominator;
        let members = value(analytics_pb::Metric::FastMembers).numerator;
        // At least: sales imported into the same days (a POS file) count too.
        if sales >= net_sales && members >= people {
            bar.finish_and_clear();
            eprintln!(
                "analytics     caught up {} after the last sale",
                indicatif::HumanDuration(started.elapsed())
            );
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "after ten minutes analytics counted {sales} of {net_sales} in net sales and {members} of {people} members"
        );
        bar.tick();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
