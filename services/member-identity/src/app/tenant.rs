//! Tenants and their brands.

use crate::error::IdentityError;
use crate::store::entity::{brands, tenants};
use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

type Result<T> = std::result::Result<T, IdentityError>;

/// Makes sure the tenants that API keys are bound to exist.
pub async fn ensure_tenants(db: &DatabaseConnection, tenant_ids: &[String], at: DateTime<Utc>) -> Result<()> {
    if tenant_ids.is_empty() {
        return Ok(());
    }
    let rows = tenant_ids.iter().map(|id| tenants::ActiveModel {
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

pub async fn create_tenant(
    db: &DatabaseConnection,
    id: &str,
    display_name: &str,
    at: DateTime<Utc>,
) -> Result<tenants::Model> {
    let txn = begin_write(db).await?;
    if tenants::Entity::find_by_id(id).one(&txn).await?.is_some() {
        return Err(IdentityError::TenantExists(id.to_owned()));
    }
    let tenant = tenants::Model {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: at,
    };
    tenants::Entity::insert(tenants::ActiveModel::from(tenant.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(tenant)
}

pub async fn get_tenant(db: &DatabaseConnection, id: &str) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| IdentityError::TenantNotFound(id.to_owned()))
}

pub async fn list_tenants(db: &DatabaseConnection, after: Option<String>, limit: u64) -> Result<Vec<tenants::Model>> {
    let mut query = tenants::Entity::find().order_by_asc(tenants::Column::Id).limit(limit);
    if let Some(after) = after {
        query = query.filter(tenants::Column::Id.gt(after));
    }
    Ok(query.all(db).await?)
}

pub async fn create_brand(
    db: &DatabaseConnection,
    actor: &TenantActor,
    id: &str,
    display_name: &str,
    at: DateTime<Utc>,
) -> Result<brands::Model> {
    let txn = begin_write(db).await?;
    if brands::Entity::find_by_id((actor.tenant_id.to_string(), id.to_owned()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(IdentityError::BrandExists(id.to_owned()));
    }
    let brand = brands::Model {
        tenant_id: actor.tenant_id.to_string(),
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: at,
    };
    brands::Entity::insert(brands::ActiveModel::from(brand.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(brand)
}

pub async fn list_brands(db: &DatabaseConnection, tenant_id: &str) -> Result<Vec<brands::Model>> {
    Ok(brands::Entity::find()
        .filter(brands::Column::TenantId.eq(tenant_id))
        .order_by_asc(brands::Column::Id)
        .all(db)
        .await?)
}
