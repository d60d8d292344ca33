//! Assist tasks and who helped them. A helper's assist is one row keyed by the task and the
//! helper, so a friend helps a task once; the task's count moves by one conditional statement.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::{execute, value};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::entity::assist_tasks;

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
) -> Result<Option<assist_tasks::Model>, DbErr> {
    assist_tasks::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned(), member_id.to_owned()))
        .one(db)
        .await
}

/// Starts a task; a task the member started before stays.
pub async fn start<C: ConnectionTrait>(db: &C, task: &assist_tasks::Model) -> Result<(), DbErr> {
    let sql = "INSERT INTO assist_tasks (tenant_id, campaign_id, member_id, assists, started_at, expires_at) \
               VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (tenant_id, campaign_id, member_id) DO NOTHING";
    let values = vec![
        task.tenant_id.as_str().into(),
        task.campaign_id.as_str().into(),
        task.member_id.as_str().into(),
        task.started_at.into(),
        task.expires_at.into(),
    ];
    execute(db, sql, values).await?;
    Ok(())
}

/// The tasks of a campaign `helper` has helped.
pub async fn helped_by<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, helper): (&str, &str),
) -> Result<i64, DbErr> {
    let sql = "SELECT count(*) AS helped FROM assists WHERE tenant_id = ? AND campaign_id = ? AND helper = ?";
    let values = vec![tenant_id.into(), campaign_id.into(), helper.into()];
    Ok(value(db, (sql, values), "helped").await?.unwrap_or(0))
}

/// Records `helper`'s assist to a task and counts it; false when the helper helped it before.
pub async fn assist<C: ConnectionTrait>(
    db: &C,
    task: &assist_tasks::Model,
    helper: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let key = || {
        vec![
            task.tenant_id.as_str().into(),
            task.campaign_id.as_str().into(),
            task.member_id.as_str().into(),
        ]
    };
    let sql = "INSERT INTO assists (tenant_id, campaign_id, member_id, helper, helped_at) VALUES (?, ?, ?, ?, ?) \
               ON CONFLICT (tenant_id, campaign_id, member_id, helper) DO NOTHING";
    let mut values = key();
    values.extend([helper.into(), at.into()]);
    if execute(db, sql, values).await? == 0 {
        return Ok(false);
    }
    let counted =
        "UPDATE assist_tasks SET assists = assists + 1 WHERE tenant_id = ? AND campaign_id = ? AND member_id = ?";
    execute(db, counted, key()).await?;
    Ok(true)
}

/// Marks a task complete at `at`; false when it was already.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    task: &assist_tasks::Model,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let sql = "UPDATE assist_tasks SET completed_at = ? \
               WHERE tenant_id = ? AND campaign_id = ? AND member_id = ? AND completed_at IS NULL";
    let values = vec![
        at.into(),
        task.tenant_id.as_str().into(),
        task.campaign_id.as_str().into(),
        task.member_id.as_str().into(),
    ];
    Ok(execute(db, sql, values).await? == 1)
}
