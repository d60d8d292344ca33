//! Tenants and their brands.

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::DatabaseConnection;

use crate::error::IdentityError;
use crate::store;
use crate::store::entity::{brands, tenants};

type Result<T> = std::result::Result<T, IdentityError>;

/// Makes sure the tenants that API keys are bound to exist.
pub async fn ensure_tenants(db: &DatabaseConnection, tenant_ids: &[String], at: DateTime<Utc>) -> Result<()> {
    Ok(store::tenant::insert_missing(db, tenant_ids, at).await?)
}

pub async fn create_tenant(
    db: &DatabaseConnection,
    id: &str,
    display_name: &str,
    at: DateTime<Utc>,
) -> Result<tenants::Model> {
    let txn = begin_write(db).await?;
    if store::tenant::find(&txn, id).await?.is_some() {
        return Err(IdentityError::TenantExists(id.to_owned()));
    }
    let tenant = tenants::Model {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: at,
    };
    store::tenant::insert(&txn, tenant.clone()).await?;
    txn.commit().await?;
    Ok(tenant)
}

pub async fn create_brand(
    db: &DatabaseConnection,
    actor: &TenantActor,
    id: &str,
    display_name: &str,
    at: DateTime<Utc>,
) -> Result<brands::Model> {
    let txn = begin_write(db).await?;
    if store::tenant::find_brand(&txn, &actor.tenant_id, id).await?.is_some() {
        return Err(IdentityError::BrandExists(id.to_owned()));
    }
    let brand = brands::Model {
        tenant_id: actor.tenant_id.to_string(),
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: at,
    };
    store::tenant::insert_brand(&txn, brand.clone()).await?;
    txn.commit().await?;
    Ok(brand)
}
