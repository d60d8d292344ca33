//! Tenants and their brands, as rows.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::{brands, tenants};

/// Adds the tenants of `ids` that do not exist yet, each named after its id.
pub async fn insert_missing<C: ConnectionTrait>(db: &C, ids: &[String], at: DateTime<Utc>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = ids.iter().map(|id| tenants::ActiveModel {
        id: Set(id.clone()),
        display_name: Set(id.clone()),
        created_at: Set(at),
    });
    tenants::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(tenants::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(db: &C, id: &str) -> Result<Option<tenants::Model>, DbErr> {
    tenants::Entity::find_by_id(id).one(db).await
}

pub async fn insert<C: ConnectionTrait>(db: &C, tenant: tenants::Model) -> Result<(), DbErr> {
    tenants::Entity::insert(tenants::ActiveModel::from(tenant))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Tenants by id, after `after` when given.
pub async fn list<C: ConnectionTrait>(db: &C, after: Option<String>, limit: u64) -> Result<Vec<tenants::Model>, DbErr> {
    let mut query = tenants::Entity::find().order_by_asc(tenants::Column::Id).limit(limit);
    if let Some(after) = after {
        query = query.filter(tenants::Column::Id.gt(after));
    }
    query.all(db).await
}

pub async fn find_brand<C: ConnectionTrait>(db: &C, tenant_id: &str, id: &str) -> Result<Option<brands::Model>, DbErr> {
    brands::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
        .one(db)
        .await
}

pub async fn insert_brand<C: ConnectionTrait>(db: &C, brand: brands::Model) -> Result<(), DbErr> {
    brands::Entity::insert(brands::ActiveModel::from(brand))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// A tenant's brands, by id.
pub async fn brands<C: ConnectionTrait>(db: &C, tenant_id: &str) -> Result<Vec<brands::Model>, DbErr> {
    brands::Entity::find()
        .filter(brands::Column::TenantId.eq(tenant_id))
        .order_by_asc(brands::Column::Id)
        .all(db)
        .await
}
