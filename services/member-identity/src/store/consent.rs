//! Members' consent per contact channel.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseTransaction, DbErr, EntityTrait};

use super::entity::consents;
use crate::domain::merge::ConsentDecision;

pub fn decision_of(row: consents::Model) -> ConsentDecision {
    ConsentDecision {
        channel: row.channel,
        granted: row.granted,
        decided_at: row.decided_at,
        source: row.source,
    }
}

pub fn consent_row(tenant_id: &str, member_id: &str, decision: ConsentDecision) -> consents::ActiveModel {
    consents::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        member_id: Set(member_id.to_owned()),
        channel: Set(decision.channel),
        granted: Set(decision.granted),
        decided_at: Set(decision.decided_at),
        source: Set(decision.source),
    }
}

/// The decision stored for a member's channel, if any.
pub async fn find(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    channel: &str,
) -> Result<Option<ConsentDecision>, DbErr> {
    let key = (tenant_id.to_owned(), member_id.to_owned(), channel.to_owned());
    Ok(consents::Entity::find_by_id(key).one(txn).await?.map(decision_of))
}

/// Stores a decision for its channel, replacing the one there.
pub async fn save(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    decision: ConsentDecision,
) -> Result<(), DbErr> {
    consents::Entity::insert(consent_row(tenant_id, member_id, decision))
        .on_conflict(
            OnConflict::columns([
                consents::Column::TenantId,
                consents::Column::MemberId,
                consents::Column::Channel,
            ])
            .update_columns([
                consents::Column::Granted,
                consents::Column::DecidedAt,
                consents::Column::Source,
            ])
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
