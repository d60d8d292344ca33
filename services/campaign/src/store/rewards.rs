//! The rewards campaigns gave, and the points grants on their way to loyalty-points.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::{point_grants, rewards};

/// Whether the member has a reward (given or not) for this occurrence already.
pub async fn exists<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
    occurrence: &str,
    member_id: &str,
) -> Result<bool, DbErr> {
    let key = (
        tenant_id.to_owned(),
        campaign_id.to_owned(),
        occurrence.to_owned(),
        member_id.to_owned(),
    );
    Ok(rewards::Entity::find_by_id(key).one(db).await?.is_some())
}

/// How many rewards the member was given on a member day.
pub async fn given_on_day<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
    member_id: &str,
    day: &str,
) -> Result<u64, DbErr> {
    rewards::Entity::find()
        .filter(rewards::Column::TenantId.eq(tenant_id))
        .filter(rewards::Column::CampaignId.eq(campaign_id))
        .filter(rewards::Column::MemberId.eq(member_id))
        .filter(rewards::Column::Day.eq(day))
        .filter(rewards::Column::Outcome.eq(GIVEN))
        .count(db)
        .await
}

/// The outcome of a reward given.
pub const GIVEN: &str = "GIVEN";

pub async fn insert<C: ConnectionTrait>(db: &C, reward: rewards::Model) -> Result<(), DbErr> {
    let row = rewards::ActiveModel {
        tenant_id: Set(reward.tenant_id),
        campaign_id: Set(reward.campaign_id),
        occurrence: Set(reward.occurrence),
        member_id: Set(reward.member_id),
        day: Set(reward.day),
        outcome: Set(reward.outcome),
        points: Set(reward.points),
        revoked: Set(reward.revoked),
        coupon_id: Set(reward.coupon_id),
        sale_amount_minor: Set(reward.sale_amount_minor),
        created_at: Set(reward.created_at),
    };
    rewards::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// The points rewards given for one occurrence (a sale), of every campaign.
pub async fn of_occurrence<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    occurrence: &str,
) -> Result<Vec<rewards::Model>, DbErr> {
    rewards::Entity::find()
        .filter(rewards::Column::TenantId.eq(tenant_id))
        .filter(rewards::Column::Occurrence.eq(occurrence))
        .filter(rewards::Column::Outcome.eq(GIVEN))
        .filter(rewards::Column::Points.gt(0))
        .all(db)
        .await
}

/// Records that `points` more of a reward were taken back.
pub async fn add_revoked<C: ConnectionTrait>(db: &C, reward: &rewards::Model, points: i64) -> Result<(), DbErr> {
    rewards::Entity::update_many()
        .col_expr(
            rewards::Column::Revoked,
            Expr::col(rewards::Column::Revoked).add(points),
        )
        .filter(rewards::Column::TenantId.eq(reward.tenant_id.as_str()))
        .filter(rewards::Column::CampaignId.eq(reward.campaign_id.as_str()))
        .filter(rewards::Column::Occurrence.eq(reward.occurrence.as_str()))
        .filter(rewards::Column::MemberId.eq(reward.member_id.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// A campaign's rewards, to report its run.
pub async fn of_campaign<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<Vec<rewards::Model>, DbErr> {
    rewards::Entity::find()
        .filter(rewards::Column::TenantId.eq(tenant_id))
        .filter(rewards::Column::CampaignId.eq(campaign_id))
        .all(db)
        .await
}

/// The states of point grants.
pub const PENDING: &str = "PENDING";
pub const DONE: &str = "DONE";
pub const FAILED: &str = "FAILED";

pub async fn enqueue<C: ConnectionTrait>(db: &C, grant: point_grants::Model) -> Result<(), DbErr> {
    let row = point_grants::ActiveModel {
        tenant_id: Set(grant.tenant_id),
        grant_key: Set(grant.grant_key),
        campaign_id: Set(grant.campaign_id),
        member_id: Set(grant.member_id),
        program_id: Set(grant.program_id),
        points: Set(grant.points),
        reference: Set(grant.reference),
        state: Set(grant.state),
        attempts: Set(grant.attempts),
        error: Set(grant.error),
        created_at: Set(grant.created_at),
    };
    point_grants::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// A grant by its key.
pub async fn grant<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    grant_key: &str,
) -> Result<Option<point_grants::Model>, DbErr> {
    point_grants::Entity::find_by_id((tenant_id.to_owned(), grant_key.to_owned()))
        .one(db)
        .await
}

/// The oldest grants still to send, of every tenant.
pub async fn pending<C: ConnectionTrait>(db: &C, limit: u64) -> Result<Vec<point_grants::Model>, DbErr> {
    point_grants::Entity::find()
        .filter(point_grants::Column::State.eq(PENDING))
        .order_by_asc(point_grants::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Records what became of sending a grant: its new state (PENDING again, with the error, when it
/// is to be tried again).
pub async fn settle<C: ConnectionTrait>(
    db: &C,
    grant: &point_grants::Model,
    state: &str,
    error: &str,
) -> Result<(), DbErr> {
    point_grants::Entity::update_many()
        .col_expr(point_grants::Column::State, Expr::value(state))
        .col_expr(point_grants::Column::Error, Expr::value(error))
        .col_expr(
            point_grants::Column::Attempts,
            Expr::col(point_grants::Column::Attempts).add(1),
        )
        .filter(point_grants::Column::TenantId.eq(grant.tenant_id.as_str()))
        .filter(point_grants::Column::GrantKey.eq(grant.grant_key.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// A campaign's grants by state: (state, count).
pub async fn count_by_state<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<Vec<(String, i64)>, DbErr> {
    point_grants::Entity::find()
        .select_only()
        .column(point_grants::Column::State)
        .column_as(point_grants::Column::GrantKey.count(), "grants")
        .filter(point_grants::Column::TenantId.eq(tenant_id))
        .filter(point_grants::Column::CampaignId.eq(campaign_id))
        .group_by(point_grants::Column::State)
        .into_tuple()
        .all(db)
        .await
}
