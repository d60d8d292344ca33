//! Store and shopping-guide binding, with history.

use super::entity::guide_bindings;
use crate::error::IdentityError;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

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

/// The member's binding in force, if any.
pub async fn current(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
) -> Result<Option<guide_bindings::Model>> {
    Ok(guide_bindings::Entity::find()
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(member_id))
        .filter(guide_bindings::Column::UnboundAt.is_null())
        .one(txn)
        .await?)
}

/// Ends a binding at `at`: it stays in the member's history.
pub async fn close(txn: &DatabaseTransaction, binding: guide_bindings::Model, at: DateTime<Utc>) -> Result<()> {
    let mut closed: guide_bindings::ActiveModel = binding.into();
    closed.unbound_at = Set(Some(at));
    guide_bindings::Entity::update(closed).exec(txn).await?;
    Ok(())
}

/// A member's bindings, newest first.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
) -> std::result::Result<Vec<guide_bindings::Model>, DbErr> {
    guide_bindings::Entity::find()
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(member_id))
        .order_by_desc(guide_bindings::Column::Id)
        .all(db)
        .await
}
