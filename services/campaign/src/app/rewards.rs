//! Rewarding what happens (an enrolment, a purchase, a tier reached) once per member per
//! occurrence, within budget; taking back a refunded purchase's points; and sending points grants
//! to loyalty-points until each is applied.
//!
//! Rewards are given in the transaction of the event consumer that saw what happened, so each
//! event rewards once whatever is replayed. Points cannot be granted in that transaction (they
//! live in loyalty-points): the reward enqueues a grant under an idempotency key derived from
//! (campaign, occurrence, member), and the granter sends it until loyalty-points applies it, so a
//! grant sent twice is a duplicate there, not a second grant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::points::v1 as points_pb;
use quanyu_proto::points::v1::points_service_client::PointsServiceClient;
use quanyu_runtime::auth::BearerKey;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::audiences::AudienceSource;
use super::coupons::{Issue, issue_in};
use crate::domain::campaign::{Campaign, Kind, Place};
use crate::error::CampaignError;
use crate::store;
use crate::store::entity::{point_grants, rewards};

/// Something that happened that campaigns of `kinds` may reward.
pub struct Happening<'a> {
    pub kinds: &'static [&'static str],
    pub member_id: &'a str,
    pub at: DateTime<Utc>,
    /// Where it happened; `None` for what has no place (a tier reached).
    pub place: Option<Place<'a>>,
    /// What it is, once per member: `enrolment`, `tier:<program>:<code>`, `sale:<source>/<id>`.
    pub occurrence: String,
    /// A purchase's amount and currency.
    pub sale: Option<(i64, &'a str)>,
    /// The tier reached.
    pub tier: Option<&'a str>,
}

/// Rewards `happening` by every campaign that covers it (asking `audiences` whether the member
/// is in a campaign's audience, when it has one).
pub async fn reward(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (happening, audiences): (&Happening<'_>, &dyn AudienceSource),
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    for row in store::campaigns::rewarding(txn, tenant_id, happening.kinds, happening.at).await? {
        let campaign = super::campaigns::rules(&row)?;
        if happening
            .place
            .as_ref()
            .is_some_and(|place| !campaign.covers(happening.at, place))
        {
            continue;
        }
        if let Kind::TierGift(tier) = &campaign.kind
            && happening.tier != Some(tier.as_str())
        {
            continue;
        }
        let (points, day) = match (&campaign.kind, happening.sale) {
            (Kind::PurchaseBonus, Some((amount, currency))) => match campaign.purchase_points(amount, currency) {
                Some(points) => (points, String::new()),
                None => continue,
            },
            (Kind::MemberDay(_), Some((amount, currency))) => {
                let (Some(day), Some(points)) = (
                    campaign.member_day_of(happening.at),
                    campaign.purchase_points(amount, currency),
                ) else {
                    continue;
                };
                let given =
                    store::rewards::given_on_day(txn, tenant_id, &campaign.campaign_id, happening.member_id, &day)
                        .await?;
                if given >= u64::from(campaign.per_member_limit) {
                    continue;
                }
                (points, day)
            }
            // Referral and assist campaigns pay as their tasks complete (app::referrals,
            // app::assists), never by this path.
            (Kind::PurchaseBonus | Kind::MemberDay(_), None) | (Kind::Referral(_) | Kind::Assist(_), _) => continue,
            (Kind::EntryGift | Kind::TierGift(_) | Kind::BirthdayGift | Kind::CouponDrop, _) => {
                (campaign.points, String::new())
            }
        };
        if let Some(audience) = &campaign.audience {
            let member = [happening.member_id.to_owned()];
            if audiences.matching(tenant_id, audience, &member).await?.is_empty() {
                continue;
            }
        }
        let exists = store::rewards::exists(
            txn,
            tenant_id,
            &campaign.campaign_id,
            &happening.occurrence,
            happening.member_id,
        );
        if exists.await? {
            continue;
        }
        give(txn, tenant_id, (&campaign, happening), (points, day), now).await?;
    }
    Ok(())
}

/// The reference of the points a campaign grants for an occurrence to a member, also the grant's
/// idempotency key at loyalty-points: short whatever the occurrence's length.
fn grant_reference(campaign_id: &str, occurrence: &str, member_id: &str) -> String {
    let digest = Sha256::digest(format!("{occurrence}\0{member_id}"));
    format!("campaign:{campaign_id}:{}", hex::encode(&digest[..12]))
}

/// Gives one reward: spends the budget, issues the coupon, enqueues the points, all or nothing
/// (a savepoint): a reward the budget or the coupon's stock refuses is recorded as refused.
pub(super) async fn give(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (campaign, happening): (&Campaign, &Happening<'_>),
    (points, day): (i64, String),
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    let mut reward = rewards::Model {
        tenant_id: tenant_id.to_owned(),
        campaign_id: campaign.campaign_id.clone(),
        occurrence: happening.occurrence.clone(),
        member_id: happening.member_id.to_owned(),
        day,
        outcome: store::rewards::GIVEN.to_owned(),
        points,
        revoked: 0,
        coupon_id: String::new(),
        sale_amount_minor: happening.sale.map_or(0, |(amount, _)| amount),
        created_at: now,
    };
    let savepoint = txn.begin().await?;
    let gives_coupon = !campaign.coupon_template_id.is_empty();
    let face_value = if gives_coupon {
        let (_, template) = super::templates::load(&savepoint, tenant_id, &campaign.coupon_template_id).await?;
        Some(template.benefit.face_value().unwrap_or(0))
    } else {
        None
    };
    let cost = campaign.cost(points, face_value);
    let refusal = if !store::campaigns::spend(&savepoint, tenant_id, &campaign.campaign_id, cost).await? {
        Some("BUDGET_SPENT".to_owned())
    } else if gives_coupon {
        let issue = Issue {
            template_id: &campaign.coupon_template_id,
            member_id: happening.member_id,
            origin: pb::CouponOrigin::Campaign,
            channel: 0,
        };
        match issue_in(&savepoint, tenant_id, &issue, None, now).await {
            Ok(coupon) => {
                reward.coupon_id = coupon.coupon_id;
                None
            }
            Err(CampaignError::Refused { reason, .. }) => Some(reason.to_owned()),
            Err(error) => return Err(error),
        }
    } else {
        None
    };
    if let Some(refusal) = refusal {
        savepoint.rollback().await?;
        let refused = rewards::Model {
            outcome: refusal,
            points: 0,
            ..reward
        };
        return Ok(store::rewards::insert(txn, refused).await?);
    }
    let reference = grant_reference(&campaign.campaign_id, &reward.occurrence, &reward.member_id);
    if points > 0 {
        let grant = point_grants::Model {
            tenant_id: tenant_id.to_owned(),
            grant_key: reference.clone(),
            campaign_id: campaign.campaign_id.clone(),
            member_id: reward.member_id.clone(),
            program_id: campaign.program_id.clone(),
            points,
            reference,
            state: store::rewards::PENDING.to_owned(),
            attempts: 0,
            error: String::new(),
            created_at: now,
        };
        store::rewards::enqueue(&savepoint, grant).await?;
    }
    let granted = crate::events::reward_granted(&reward);
    store::rewards::insert(&savepoint, reward).await?;
    quanyu_outbox::append(&savepoint, vec![granted]).await?;
    savepoint.commit().await?;
    Ok(())
}

/// Takes back, from every campaign's points for the sale `occurrence`, the share `refunded`
/// is of the sale; `refund` names the refund (its key at loyalty-points).
pub async fn revoke_for_refund(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    occurrence: &str,
    (refund, refunded_minor): (&str, i64),
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    for reward in store::rewards::of_occurrence(txn, tenant_id, occurrence).await? {
        let share =
            i128::from(reward.points) * i128::from(refunded_minor.max(0)) / i128::from(reward.sale_amount_minor.max(1));
        let left = reward.points - reward.revoked;
        let points = i64::try_from(share).unwrap_or(i64::MAX).min(left);
        if points <= 0 {
            continue;
        }
        take_back(txn, tenant_id, (&reward, points), refund, now).await?;
    }
    Ok(())
}

/// Takes `points` of a reward back: counts them revoked, returns them to a points budget, and
/// enqueues their revocation at loyalty-points under a key derived from the grant and `why`
/// (what takes them back), so the same cause never takes them twice.
pub(super) async fn take_back(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (reward, points): (&rewards::Model, i64),
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    let reference = grant_reference(&reward.campaign_id, &reward.occurrence, &reward.member_id);
    let Some(granted) = store::rewards::grant(txn, tenant_id, &reference).await? else {
        return Ok(());
    };
    store::rewards::add_revoked(txn, reward, points).await?;
    // Points taken back are points the budget did not spend after all.
    let (_, campaign) = super::campaigns::load(txn, tenant_id, &reward.campaign_id).await?;
    store::campaigns::spend(txn, tenant_id, &reward.campaign_id, -campaign.cost(points, None)).await?;
    let revoke_key = Sha256::digest(format!("{reference}\0{why}"));
    let revocation = point_grants::Model {
        grant_key: format!("revoke:{}", hex::encode(&revoke_key[..16])),
        points: -points,
        state: store::rewards::PENDING.to_owned(),
        attempts: 0,
        error: String::new(),
        created_at: now,
        ..granted
    };
    store::rewards::enqueue(txn, revocation).await?;
    Ok(())
}

/// How many birthdays one transaction of the sweep rewards.
const BIRTHDAYS_PER_TRANSACTION: u64 = 500;

/// Gives every active birthday campaign's reward to the members whose birthday it is at `now`
/// (in the campaign's time zone) and who are in its audience, once a year each.
pub async fn celebrate_birthdays(
    db: &DatabaseConnection,
    audiences: &dyn AudienceSource,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    for row in store::campaigns::active_everywhere(db, Kind::BIRTHDAY_GIFT, now).await? {
        let campaign = super::campaigns::rules(&row)?;
        let (month_days, year) = campaign.birthdays_at(now);
        let occurrence = format!("birthday:{year}");
        // Members outside the audience stay due: the next batch starts after them.
        let mut after = String::new();
        loop {
            let txn = quanyu_runtime::db::begin_write(db).await?;
            let due = (campaign.campaign_id.as_str(), occurrence.as_str());
            let limit = BIRTHDAYS_PER_TRANSACTION;
            let page = (after.as_str(), limit);
            let members = store::members::birthdays_due(&txn, &row.tenant_id, &month_days, due, page).await?;
            let celebrated = match &campaign.audience {
                Some(audience) if !members.is_empty() => audiences.matching(&row.tenant_id, audience, &members).await?,
                _ => members.clone(),
            };
            for member_id in &celebrated {
                let birthday = Happening {
                    kinds: &[Kind::BIRTHDAY_GIFT],
                    member_id,
                    at: now,
                    place: None,
                    occurrence: occurrence.clone(),
                    sale: None,
                    tier: None,
                };
                give(
                    &txn,
                    &row.tenant_id,
                    (&campaign, &birthday),
                    (campaign.points, String::new()),
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            match members.last() {
                Some(last) if members.len() as u64 == limit => after.clone_from(last),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Sends pending points grants to loyalty-points, oldest first, until each is applied, from now
/// until `shutdown`.
pub fn spawn_granter(db: DatabaseConnection, points: Channel, service_key: String, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut pause = IDLE;
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = match send_pending(&db, &points, &service_key).await {
                Ok(0) => IDLE,
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    tracing::warn!(%error, "points grants wait for loyalty-points");
                    (pause * 2).clamp(IDLE, Duration::from_secs(5))
                }
            };
        }
    });
}

/// How long the granter waits when nothing is pending.
const IDLE: Duration = Duration::from_millis(200);

/// Sends a batch of pending grants; how many were settled. Stops at the first that loyalty-points
/// could not answer (it is down: the rest would fail too).
async fn send_pending(db: &DatabaseConnection, points: &Channel, service_key: &str) -> Result<usize, String> {
    let pending = store::rewards::pending(db, 100)
        .await
        .map_err(|error| error.to_string())?;
    let mut settled = 0;
    for grant in &pending {
        let bearer = BearerKey::new(service_key)
            .and_then(|bearer| bearer.for_tenant(&grant.tenant_id))
            .map_err(|error| format!("invalid service key: {error}"))?;
        let mut client = PointsServiceClient::with_interceptor(points.clone(), bearer);
        let account = Some(points_pb::AccountRef {
            member_id: grant.member_id.clone(),
            program_id: grant.program_id.clone(),
        });
        let answer = if grant.points > 0 {
            let request = points_pb::GrantPointsRequest {
                account,
                points: grant.points,
                reference: grant.reference.clone(),
                idempotency_key: grant.grant_key.clone(),
            };
            client.grant_points(request).await.map(drop)
        } else {
            let request = points_pb::RevokeGrantRequest {
                account,
                points: -grant.points,
                reference: grant.reference.clone(),
                idempotency_key: grant.grant_key.clone(),
            };
            client.revoke_grant(request).await.map(drop)
        };
        let (state, error) = match answer {
            Ok(()) => (store::rewards::DONE, String::new()),
            Err(status) if is_final(&status) => {
                tracing::error!(grant = grant.grant_key, %status, "loyalty-points refused a campaign's points");
                (store::rewards::FAILED, status.message().to_owned())
            }
            Err(status) => {
                let why = status.message().to_owned();
                store::rewards::settle(db, grant, store::rewards::PENDING, &why)
                    .await
                    .map_err(|e| e.to_string())?;
                return Err(format!("{:?}: {why}", status.code()));
            }
        };
        store::rewards::settle(db, grant, state, &error)
            .await
            .map_err(|e| e.to_string())?;
        settled += 1;
    }
    Ok(settled)
}

/// Whether loyalty-points refused a grant for good: sending it again would be refused again.
fn is_final(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::PermissionDenied
    )
}
