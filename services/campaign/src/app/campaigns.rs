//! Creating campaigns, moving them through their states, and reporting what they rewarded.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use prost::Message as _;
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::to_proto;
use quanyu_runtime::db::{begin_write, with_retries};
use quanyu_runtime::error::{FieldViolation, quote};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::audiences::AudienceSource;
use super::{templates, undecodable};
use crate::domain::campaign::{self, Campaign, Stored, state_at};
use crate::error::CampaignError;
use crate::store;
use crate::store::entity::campaigns;

/// Creates a campaign in DRAFT, or answers the same one created before under its id. Analytics
/// checks its audience first.
pub async fn create(
    (db, audiences): (&DatabaseConnection, &dyn AudienceSource),
    tenant_id: &str,
    definition: pb::Campaign,
    now: DateTime<Utc>,
) -> Result<pb::Campaign, CampaignError> {
    // Read-only fields are the service's to fill: a campaign read back and sent again is the same.
    let definition = pb::Campaign {
        state: 0,
        spent: 0,
        created_at: None,
        ..definition
    };
    let campaign = campaign::check(&definition)?;
    let face_value = if campaign.coupon_template_id.is_empty() {
        None
    } else {
        let (_, template) = templates::load(db, tenant_id, &campaign.coupon_template_id)
            .await
            .map_err(|_| {
                FieldViolation::new(
                    "campaign.reward.coupon_template_id",
                    format!("names no coupon template: {}", quote(&campaign.coupon_template_id)),
                )
            })?;
        template.benefit.face_value()
    };
    if matches!(campaign.budget, Some((campaign::BudgetKind::Money, _))) && face_value.is_none_or(|value| value == 0) {
        let why = "counts coupons' face value: the reward needs an amount-off coupon, or a percent-off one with a cap";
        return Err(FieldViolation::new("campaign.budget.kind", why).into());
    }
    if let Some(audience) = &campaign.audience {
        audiences.count(tenant_id, audience).await?;
    }
    let encoded = definition.encode_to_vec();
    with_retries(|| async {
        let txn = begin_write(db).await?;
        if let Some(existing) = store::campaigns::find(&txn, tenant_id, &campaign.campaign_id).await? {
            super::unchanged(&existing.definition, &definition, ("campaign", &campaign.campaign_id))?;
            return campaign_to_pb(&existing, now);
        }
        let row = campaigns::Model {
            tenant_id: tenant_id.to_owned(),
            campaign_id: campaign.campaign_id.clone(),
            definition: encoded.clone(),
            kind: campaign.kind.as_str().to_owned(),
            state: Stored::Draft.as_str().to_owned(),
            starts_at: campaign.starts_at,
            ends_at: campaign.ends_at,
            budget_limit: campaign.budget.map_or(0, |(_, limit)| limit),
            spent: 0,
            created_at: now,
            started_at: None,
        };
        store::campaigns::insert(&txn, row.clone()).await?;
        txn.commit().await?;
        campaign_to_pb(&row, now)
    })
    .await
}

/// A campaign as stored and as the rules read it; NOT_FOUND when there is none.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<(campaigns::Model, Campaign), CampaignError> {
    let row = store::campaigns::find(db, tenant_id, campaign_id)
        .await?
        .ok_or_else(|| CampaignError::NotFound(format!("campaign {} not found", quote(campaign_id))))?;
    let campaign = rules(&row)?;
    Ok((row, campaign))
}

/// A campaign whose kind `rules_of` reads, with those rules; INVALID_ARGUMENT naming
/// `campaign_id` when it is of another kind (`kind` names the one wanted).
pub(super) async fn load_of_kind<C: ConnectionTrait, T>(
    db: &C,
    (tenant_id, campaign_id): (&str, &str),
    kind: &str,
    rules_of: impl Fn(&campaign::Kind) -> Option<T>,
) -> Result<(campaigns::Model, Campaign, T), CampaignError> {
    let (row, campaign) = load(db, tenant_id, campaign_id).await?;
    match rules_of(&campaign.kind) {
        Some(rules) => Ok((row, campaign, rules)),
        None => Err(FieldViolation::new("campaign_id", format!("is not a {kind} campaign")).into()),
    }
}

/// Whether a stored campaign is active at `at`.
pub(super) fn is_active(row: &campaigns::Model, at: DateTime<Utc>) -> bool {
    state_at(stored(row), row.starts_at, row.ends_at, at) == pb::CampaignState::Active
}

/// A stored campaign as the rules read it.
pub(crate) fn rules(row: &campaigns::Model) -> Result<Campaign, CampaignError> {
    Ok(Campaign::of_definition(&definition(row)?))
}

fn definition(row: &campaigns::Model) -> Result<pb::Campaign, CampaignError> {
    pb::Campaign::decode(row.definition.as_slice()).map_err(|error| undecodable("campaign", error))
}

pub(super) fn stored(row: &campaigns::Model) -> Stored {
    Stored::parse(&row.state).unwrap_or(Stored::Ended)
}

/// A campaign as the contract shows it at `now`.
pub fn campaign_to_pb(row: &campaigns::Model, now: DateTime<Utc>) -> Result<pb::Campaign, CampaignError> {
    Ok(pb::Campaign {
        state: state_at(stored(row), row.starts_at, row.ends_at, now).into(),
        spent: row.spent,
        created_at: Some(to_proto(row.created_at)),
        ..definition(row)?
    })
}

pub async fn get(
    db: &DatabaseConnection,
    tenant_id: &str,
    campaign_id: &str,
    now: DateTime<Utc>,
) -> Result<pb::Campaign, CampaignError> {
    let (row, _) = load(db, tenant_id, campaign_id).await?;
    campaign_to_pb(&row, now)
}

/// A page of the tenant's campaigns by id, and the token of the next page.
pub async fn list(
    db: &DatabaseConnection,
    tenant_id: &str,
    (after, size): (Option<String>, u64),
    now: DateTime<Utc>,
) -> Result<(Vec<pb::Campaign>, String), CampaignError> {
    let rows = store::campaigns::list(db, tenant_id, after, size + 1).await?;
    let (rows, next) = super::page(rows, size, |row| &row.campaign_id);
    let campaigns = rows
        .iter()
        .map(|row| campaign_to_pb(row, now))
        .collect::<Result<_, _>>()?;
    Ok((campaigns, next))
}

/// Moves a campaign to `target`; FAILED_PRECONDITION naming its state when it cannot go there.
pub async fn change(
    db: &DatabaseConnection,
    tenant_id: &str,
    campaign_id: &str,
    target: pb::CampaignState,
    now: DateTime<Utc>,
) -> Result<pb::Campaign, CampaignError> {
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let (mut row, _) = load(&txn, tenant_id, campaign_id).await?;
        let from = stored(&row);
        let current = state_at(from, row.starts_at, row.ends_at, now);
        let Some(to) = campaign::change(from, current, target) else {
            let why = format!(
                "the campaign is {}: it cannot become {}",
                current.as_str_name(),
                target.as_str_name()
            );
            return Err(CampaignError::refused("ILLEGAL_STATE_CHANGE", "state", why));
        };
        if to != from && !store::campaigns::set_state(&txn, tenant_id, campaign_id, from, to).await? {
            return Err(CampaignError::Database(sea_orm::DbErr::Custom(
                "the campaign's state changed under its lock".into(),
            )));
        }
        txn.commit().await?;
        row.state = to.as_str().to_owned();
        campaign_to_pb(&row, now)
    })
    .await
}

/// What a campaign has rewarded so far.
pub async fn run(
    db: &DatabaseConnection,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<pb::GetCampaignRunResponse, CampaignError> {
    load(db, tenant_id, campaign_id).await?;
    let rewards = store::rewards::of_campaign(db, tenant_id, campaign_id).await?;
    let mut run = pb::GetCampaignRunResponse::default();
    let mut members = HashSet::new();
    for reward in &rewards {
        if reward.outcome != store::rewards::GIVEN {
            run.refused += 1;
            continue;
        }
        members.insert(reward.member_id.as_str());
        run.rewards += 1;
        run.points_granted += reward.points;
        run.points_revoked += reward.revoked;
        run.coupons_issued += i64::from(!reward.coupon_id.is_empty());
    }
    run.members = i64::try_from(members.len()).unwrap_or(i64::MAX);
    for (state, grants) in store::rewards::count_by_state(db, tenant_id, campaign_id).await? {
        match state.as_str() {
            store::rewards::PENDING => run.pending = grants,
            store::rewards::FAILED => run.failed = grants,
            _ => {}
        }
    }
    let drop = store::drops::find(db, tenant_id, campaign_id).await?;
    run.drop = drop.as_ref().map(super::drops::progress_to_pb);
    Ok(run)
}

/// Every `every` until `shutdown`: publishes CampaignStarted for each scheduled campaign whose
/// window has opened, once, and gives birthday gifts.
pub fn spawn_sweep(
    (db, audiences): (DatabaseConnection, std::sync::Arc<dyn AudienceSource>),
    clock: quanyu_runtime::clock::Clock,
    every: std::time::Duration,
    shutdown: quanyu_runtime::shutdown::Shutdown,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now = clock.now();
            if let Err(error) = start_due(&db, now).await {
                tracing::warn!(%error, "campaigns due to start wait for the next sweep");
            }
            if let Err(error) = super::rewards::celebrate_birthdays(&db, audiences.as_ref(), now).await {
                tracing::warn!(%error, "birthdays wait for the next sweep");
            }
        }
    });
}

async fn start_due(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<(), CampaignError> {
    let txn = begin_write(db).await?;
    let due = store::campaigns::due_to_start(&txn, now).await?;
    let mut events = Vec::with_capacity(due.len());
    for row in &due {
        store::campaigns::mark_started(&txn, row, now).await?;
        events.push(crate::events::campaign_started(row));
    }
    quanyu_outbox::append(&txn, events).await?;
    txn.commit().await?;
    Ok(())
}
