//! Coupon drops' progress: one row per drop, moved forward one batch at a time by a conditional
//! update, so that two runners of the same drop never reward the same batch.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::execute;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::entity::drops;
use crate::domain::campaign::Kind;

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<Option<drops::Model>, DbErr> {
    drops::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned()))
        .one(db)
        .await
}

/// Records that a drop started, to an audience of `audience_members`; a drop already started
/// is left as it is.
pub async fn start<C: ConnectionTrait>(
    db: &C,
    (tenant_id, campaign_id): (&str, &str),
    audience_members: i64,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO drops (tenant_id, campaign_id, audience_members, listed, last_member_id, done, started_at) \
               VALUES (?, ?, ?, 0, '', FALSE, ?) ON CONFLICT (tenant_id, campaign_id) DO NOTHING";
    let values = vec![tenant_id.into(), campaign_id.into(), audience_members.into(), at.into()];
    execute(db, sql, values).await?;
    Ok(())
}

/// Moves a drop from `after` past a batch of `listed` members ending at `last`; false when it
/// was not at `after` any more (another runner moved it) or is done.
pub async fn advance<C: ConnectionTrait>(
    db: &C,
    drop: &drops::Model,
    (listed, last): (i64, &str),
) -> Result<bool, DbErr> {
    let sql = "UPDATE drops SET listed = listed + ?, last_member_id = ? \
               WHERE tenant_id = ? AND campaign_id = ? AND last_member_id = ? AND done = FALSE";
    let values = vec![
        listed.into(),
        last.into(),
        drop.tenant_id.as_str().into(),
        drop.campaign_id.as_str().into(),
        drop.last_member_id.as_str().into(),
    ];
    Ok(execute(db, sql, values).await? == 1)
}

/// Marks a drop done: its whole audience was listed.
pub async fn finish<C: ConnectionTrait>(db: &C, drop: &drops::Model, at: DateTime<Utc>) -> Result<(), DbErr> {
    let sql = "UPDATE drops SET done = TRUE, finished_at = ? \
               WHERE tenant_id = ? AND campaign_id = ? AND last_member_id = ? AND done = FALSE";
    let values = vec![
        at.into(),
        drop.tenant_id.as_str().into(),
        drop.campaign_id.as_str().into(),
        drop.last_member_id.as_str().into(),
    ];
    execute(db, sql, values).await?;
    Ok(())
}

/// The drops of every tenant that are active at `now` and not done (started or not), as
/// (tenant, campaign) pairs.
pub async fn unfinished<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<Vec<(String, String)>, DbErr> {
    let active = super::campaigns::active_everywhere(db, Kind::COUPON_DROP, now).await?;
    let mut unfinished = Vec::with_capacity(active.len());
    for campaign in active {
        let drop = find(db, &campaign.tenant_id, &campaign.campaign_id).await?;
        if drop.is_none_or(|drop| !drop.done) {
            unfinished.push((campaign.tenant_id, campaign.campaign_id));
        }
    }
    Ok(unfinished)
}
