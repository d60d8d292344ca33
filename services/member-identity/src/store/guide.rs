//! Store and shopping-guide binding, with history.

use super::entity::guide_bindings;
use crate::error::IdentityError;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, EntityTrait};

type Result<T> = std::result::Result<T, IdentityError>;

pub async fn insert_binding(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    store_id: &str,
    guide_id: &str,
    source: &str,
    at: DateTime<Utc>,
) -> Result<guide_bindings::Model> {
    let binding = guide_bindings::Model {
        tenant_id: tenant_id.to_owned(),
        id: uuid::Uuid::now_v7().to_string(),
        member_id: member_id.to_owned(),
        store_id: store_id.to_owned(),
        guide_id: guide_id.to_owned(),
        source: source.to_owned(),
        bound_at: at,
        unbound_at: None,
    };
    guide_bindings::Entity::insert(guide_bindings::ActiveModel::from(binding.clone()))
        .exec_without_returning(txn)
        .await?;
    Ok(binding)
}
