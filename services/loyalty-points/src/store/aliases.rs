//! Members merged into another (member-identity's MembersMerged): each merged id now means its
//! survivor.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};

use super::entity::aliases;

/// Records that `loser` now means `survivor`, and so do the members merged into `loser` before
/// (chains collapse). Recording the same pair again changes nothing.
pub async fn record(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    survivor: &str,
    loser: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let alias = aliases::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        member_id: Set(loser.to_owned()),
        survivor_id: Set(survivor.to_owned()),
        merged_at: Set(at),
    };
    aliases::Entity::insert(alias)
        .on_conflict(
            OnConflict::columns([aliases::Column::TenantId, aliases::Column::MemberId])
                .update_column(aliases::Column::SurvivorId)
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    aliases::Entity::update_many()
        .col_expr(aliases::Column::SurvivorId, Expr::value(survivor.to_owned()))
        .filter(aliases::Column::TenantId.eq(tenant_id))
        .filter(aliases::Column::SurvivorId.eq(loser))
        .exec(txn)
        .await?;
    Ok(())
}

/// The member each id now means: the survivor for merged members, the id itself otherwise.
pub async fn current_members<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_ids: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    if member_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let scope = [(aliases::Column::TenantId, tenant_id.into())];
    let merged: HashMap<String, String> = quanyu_runtime::db::find_by_keys::<aliases::Entity, _>(
        db,
        &scope,
        aliases::Column::MemberId,
        member_ids.to_vec(),
        false,
    )
    .await?
    .into_iter()
    .map(|alias| (alias.member_id, alias.survivor_id))
    .collect();
    Ok(member_ids
        .iter()
        .map(|id| (id.clone(), merged.get(id).cloned().unwrap_or_else(|| id.clone())))
        .collect())
}
