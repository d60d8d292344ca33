//! The audit trail of changes, as rows.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::audit_entries;

/// A tenant's audit entries (of one member, when named), newest first, before an entry id when
/// given.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    before: Option<String>,
    limit: u64,
) -> Result<Vec<audit_entries::Model>, DbErr> {
    let mut query = audit_entries::Entity::find().filter(audit_entries::Column::TenantId.eq(tenant_id));
    if !member_id.is_empty() {
        query = query.filter(audit_entries::Column::MemberId.eq(member_id));
    }
    if let Some(before) = before {
        query = query.filter(audit_entries::Column::Id.lt(before));
    }
    query
        .order_by_desc(audit_entries::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
