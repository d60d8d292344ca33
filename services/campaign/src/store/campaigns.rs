//! Campaigns, their state and their budget.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::execute;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::campaigns;
use crate::domain::campaign::Stored;

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<Option<campaigns::Model>, DbErr> {
    campaigns::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned()))
        .one(db)
        .await
}

pub async fn insert<C: ConnectionTrait>(db: &C, campaign: campaigns::Model) -> Result<(), DbErr> {
    let row = campaigns::ActiveModel {
        tenant_id: Set(campaign.tenant_id),
        campaign_id: Set(campaign.campaign_id),
        definition: Set(campaign.definition),
        kind: Set(campaign.kind),
        state: Set(campaign.state),
        starts_at: Set(campaign.starts_at),
        ends_at: Set(campaign.ends_at),
        budget_limit: Set(campaign.budget_limit),
        spent: Set(campaign.spent),
        created_at: Set(campaign.created_at),
        started_at: Set(campaign.started_at),
    };
    campaigns::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// A page of the tenant's campaigns by id, after `after`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    after: Option<String>,
    limit: u64,
) -> Result<Vec<campaigns::Model>, DbErr> {
    let mut query = campaigns::Entity::find().filter(campaigns::Column::TenantId.eq(tenant_id));
    if let Some(after) = after {
        query = query.filter(campaigns::Column::CampaignId.gt(after));
    }
    query
        .order_by_asc(campaigns::Column::CampaignId)
        .limit(limit)
        .all(db)
        .await
}

/// Stores a campaign's state; false when it was not `from` any more (a concurrent move won).
pub async fn set_state<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
    from: Stored,
    to: Stored,
) -> Result<bool, DbErr> {
    let changed = campaigns::Entity::update_many()
        .col_expr(campaigns::Column::State, Expr::value(to.as_str()))
        .filter(campaigns::Column::TenantId.eq(tenant_id))
        .filter(campaigns::Column::CampaignId.eq(campaign_id))
        .filter(campaigns::Column::State.eq(from.as_str()))
        .exec(db)
        .await?;
    Ok(changed.rows_affected == 1)
}

/// The campaigns of `kinds` that may reward what happened at `at`: scheduled (not a draft, not
/// paused or ended by a call) and with `at` in their window.
pub async fn rewarding<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    kinds: &[&str],
    at: DateTime<Utc>,
) -> Result<Vec<campaigns::Model>, DbErr> {
    campaigns::Entity::find()
        .filter(campaigns::Column::TenantId.eq(tenant_id))
        .filter(campaigns::Column::Kind.is_in(kinds.iter().copied()))
        .filter(campaigns::Column::State.eq(Stored::Scheduled.as_str()))
        .filter(campaigns::Column::StartsAt.lte(at))
        .filter(campaigns::Column::EndsAt.gt(at))
        .all(db)
        .await
}

/// Spends `cost` of the campaign's budget (none set: always); false when the budget has not that
/// much left. One statement: concurrent spenders take turns on the row and never pass the limit.
pub async fn spend<C: ConnectionTrait>(db: &C, tenant_id: &str, campaign_id: &str, cost: i64) -> Result<bool, DbErr> {
    if cost == 0 {
        return Ok(true);
    }
    let sql = "UPDATE campaigns SET spent = spent + ? \
               WHERE tenant_id = ? AND campaign_id = ? AND (budget_limit = 0 OR spent + ? <= budget_limit)";
    let values = vec![cost.into(), tenant_id.into(), campaign_id.into(), cost.into()];
    Ok(execute(db, sql, values).await? == 1)
}

/// Scheduled campaigns of every tenant whose window has opened by `now` and that the sweep has
/// not started yet, locked so that one sweeper starts each.
pub async fn due_to_start<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<Vec<campaigns::Model>, DbErr> {
    let mut query = campaigns::Entity::find()
        .filter(campaigns::Column::State.eq(Stored::Scheduled.as_str()))
        .filter(campaigns::Column::StartedAt.is_null())
        .filter(campaigns::Column::StartsAt.lte(now))
        .limit(100);
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = query.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        );
    }
    query.all(db).await
}

pub async fn mark_started<C: ConnectionTrait>(
    db: &C,
    campaign: &campaigns::Model,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    campaigns::Entity::update_many()
        .col_expr(campaigns::Column::StartedAt, Expr::value(at))
        .filter(campaigns::Column::TenantId.eq(campaign.tenant_id.as_str()))
        .filter(campaigns::Column::CampaignId.eq(campaign.campaign_id.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// The campaigns of `kind` of every tenant that are active at `now`.
pub async fn active_everywhere<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<Vec<campaigns::Model>, DbErr> {
    campaigns::Entity::find()
        .filter(campaigns::Column::Kind.eq(kind))
        .filter(campaigns::Column::State.eq(Stored::Scheduled.as_str()))
        .filter(campaigns::Column::StartsAt.lte(now))
        .filter(campaigns::Column::EndsAt.gt(now))
        .all(db)
        .await
}
