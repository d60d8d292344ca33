//! Members' consent per contact channel.

use super::entity::consents;
use crate::domain::merge::ConsentDecision;
use sea_orm::ActiveValue::Set;

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
