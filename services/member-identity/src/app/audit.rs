//! The audit trail of changes.

use crate::error::IdentityError;
use crate::store::entity::audit_entries;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

type Result<T> = std::result::Result<T, IdentityError>;

pub async fn list_audit_entries(
    db: &DatabaseConnection,
    tenant_id: &str,
    member_id: &str,
    before: Option<String>,
    limit: u64,
) -> Result<Vec<audit_entries::Model>> {
    let mut query = audit_entries::Entity::find().filter(audit_entries::Column::TenantId.eq(tenant_id));
    if !member_id.is_empty() {
        query = query.filter(audit_entries::Column::MemberId.eq(member_id));
    }
    if let Some(before) = before {
        query = query.filter(audit_entries::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(audit_entries::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
