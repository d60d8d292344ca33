//! Programs as stored: the contract's definition, encoded, with its rules version.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::programs;

/// The rules version of a program, its row locked until the transaction ends; none when new.
pub async fn lock_version(txn: &DatabaseTransaction, tenant_id: &str, program_id: &str) -> Result<Option<u32>, DbErr> {
    let current = programs::Entity::find_by_id((tenant_id.to_owned(), program_id.to_owned()))
        .lock_exclusive()
        .one(txn)
        .await?;
    Ok(current.map(|row| row.rules_version.unsigned_abs()))
}

/// Another program of the tenant that earns for `brand_id`, if any.
pub async fn earning_for_brand(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    brand_id: &str,
    other_than: &str,
) -> Result<Option<String>, DbErr> {
    let clash = programs::Entity::find()
        .filter(programs::Column::TenantId.eq(tenant_id))
        .filter(programs::Column::BrandId.eq(brand_id))
        .filter(programs::Column::Id.ne(other_than))
        .one(txn)
        .await?;
    Ok(clash.map(|row| row.id))
}

/// Stores a program's definition under its id.
pub async fn save(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    program_id: &str,
    brand_id: &str,
    rules_version: u32,
    definition: Vec<u8>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = programs::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        id: Set(program_id.to_owned()),
        brand_id: Set(brand_id.to_owned()),
        rules_version: Set(i32::try_from(rules_version).unwrap_or(i32::MAX)),
        definition: Set(definition),
        updated_at: Set(at),
    };
    programs::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([programs::Column::TenantId, programs::Column::Id])
                .update_columns([
                    programs::Column::BrandId,
                    programs::Column::RulesVersion,
                    programs::Column::Definition,
                    programs::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Every program of a tenant, as stored, by id.
pub async fn all<C: ConnectionTrait>(db: &C, tenant_id: &str) -> Result<Vec<programs::Model>, DbErr> {
    programs::Entity::find()
        .filter(programs::Column::TenantId.eq(tenant_id))
        .order_by_asc(programs::Column::Id)
        .all(db)
        .await
}
