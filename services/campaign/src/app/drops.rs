//! Coupon drops: a COUPON_DROP campaign rewards each member of its audience once. A runner lists
//! the audience from analytics in member id order and rewards it a batch per transaction, with
//! the drop's place moved past the batch in the same transaction: a drop stopped anywhere (a
//! pause, a restart, a crash) goes on after the last batch it committed, and two runners of one
//! drop (two replicas) take turns on its row, so each batch is rewarded once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::Clock;
use quanyu_runtime::db::begin_write;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;
use tokio_stream::StreamExt as _;

use super::audiences::AudienceSource;
use super::rewards::{Happening, give};
use crate::domain::campaign::{Campaign, Kind, state_at};
use crate::error::CampaignError;
use crate::store;
use crate::store::entity::drops;

/// Members listed, and rewarded in one transaction, at a time.
pub const BATCH: i32 = 500;

/// Every `every` until `shutdown`: runs each active drop that is not done, one after another.
pub fn spawn_runner(
    db: DatabaseConnection,
    audiences: std::sync::Arc<dyn AudienceSource>,
    clock: Clock,
    every: Duration,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(every) => {}
            }
            let unfinished = match store::drops::unfinished(&db, clock.now()).await {
                Ok(unfinished) => unfinished,
                Err(error) => {
                    tracing::warn!(%error, "drops wait for the next sweep");
                    continue;
                }
            };
            for (tenant_id, campaign_id) in unfinished {
                let drop = (tenant_id.as_str(), campaign_id.as_str());
                if let Err(error) = run(&db, audiences.as_ref(), drop, &clock, &shutdown).await {
                    tracing::warn!(tenant_id, campaign_id, %error, "the drop goes on at the next sweep");
                }
            }
        }
    });
}

/// Runs one drop from where it stands until its audience is listed, it stops being active,
/// another runner moves it, or `shutdown`.
pub async fn run(
    db: &DatabaseConnection,
    audiences: &dyn AudienceSource,
    (tenant_id, campaign_id): (&str, &str),
    clock: &Clock,
    shutdown: &Shutdown,
) -> Result<(), CampaignError> {
    let (_, campaign) = super::campaigns::load(db, tenant_id, campaign_id).await?;
    let Some(audience) = &campaign.audience else {
        return Ok(());
    };
    let mut drop = match store::drops::find(db, tenant_id, campaign_id).await? {
        Some(drop) => drop,
        None => {
            let members = audiences.count(tenant_id, audience).await?;
            store::drops::start(db, (tenant_id, campaign_id), members, clock.now()).await?;
            store::drops::find(db, tenant_id, campaign_id)
                .await?
                .ok_or_else(|| CampaignError::NotFound(format!("the drop of {campaign_id} vanished")))?
        }
    };
    if drop.done {
        return Ok(());
    }
    let mut batches = audiences
        .list(tenant_id, audience, (&drop.last_member_id, BATCH))
        .await?;
    loop {
        let next = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            next = batches.next() => next,
        };
        let Some(members) = next.transpose()? else {
            let txn = begin_write(db).await?;
            store::drops::finish(&txn, &drop, clock.now()).await?;
            txn.commit().await?;
            return Ok(());
        };
        let Some(last) = members.last().cloned() else {
            continue;
        };
        if !reward_batch(db, &campaign, &drop, &members, clock.now()).await? {
            return Ok(());
        }
        drop.listed += i64::try_from(members.len()).unwrap_or(i64::MAX);
        drop.last_member_id = last;
    }
}

/// Rewards one batch of the audience and moves the drop past it, in one transaction; false
/// (nothing rewarded) when the campaign is not active now or another runner moved the drop.
async fn reward_batch(
    db: &DatabaseConnection,
    campaign: &Campaign,
    drop: &drops::Model,
    members: &[String],
    now: DateTime<Utc>,
) -> Result<bool, CampaignError> {
    let txn = begin_write(db).await?;
    let tenant_id = drop.tenant_id.as_str();
    let last = members.last().map_or("", String::as_str);
    let listed = i64::try_from(members.len()).unwrap_or(i64::MAX);
    // First: the drop's row is the lock that makes runners take turns.
    if !store::drops::advance(&txn, drop, (listed, last)).await? {
        return Ok(false);
    }
    let (row, _) = super::campaigns::load(&txn, tenant_id, &campaign.campaign_id).await?;
    let state = super::campaigns::stored(&row);
    if state_at(state, row.starts_at, row.ends_at, now) != pb::CampaignState::Active {
        return Ok(false);
    }
    for member_id in members {
        let dropped = Happening {
            kinds: &[Kind::COUPON_DROP],
            member_id,
            at: now,
            place: None,
            occurrence: "drop".into(),
            sale: None,
            tier: None,
        };
        give(
            &txn,
            tenant_id,
            (campaign, &dropped),
            (campaign.points, String::new()),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// A drop's progress as the contract shows it.
pub fn progress_to_pb(drop: &drops::Model) -> pb::DropProgress {
    use quanyu_runtime::clock::to_proto;
    pb::DropProgress {
        audience_members: drop.audience_members,
        listed: drop.listed,
        last_member_id: drop.last_member_id.clone(),
        done: drop.done,
        started_at: Some(to_proto(drop.started_at)),
        finished_at: drop.finished_at.map(to_proto),
    }
}
