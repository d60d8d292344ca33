//! Members' consent per contact channel.

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::convert::consent_to_pb;
use crate::domain::merge::{self as merge_rules, ConsentDecision};
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store::audit;
use crate::store::consent::{consent_row, decision_of};
use crate::store::entity::consents;
use crate::store::member::find_active;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

type Result<T> = std::result::Result<T, IdentityError>;

/// Records a consent decision unless a later one is stored; returns the one in force.
pub async fn set_consent(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    decision: ConsentDecision,
    at: DateTime<Utc>,
) -> Result<(ConsentDecision, bool)> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    find_active(&txn, tenant_id, member_id).await?;
    let stored = consents::Entity::find_by_id((tenant_id.to_owned(), member_id.to_owned(), decision.channel.clone()))
        .one(&txn)
        .await?
        .map(decision_of);
    if !merge_rules::supersedes(&decision, stored.as_ref()) {
        txn.commit().await?;
        return Ok((stored.unwrap_or(decision), false));
    }
    consents::Entity::insert(consent_row(tenant_id, member_id, decision.clone()))
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
        .exec_without_returning(&txn)
        .await?;
    audit(
        &txn,
        actor,
        "member.consent_changed",
        &[member_id],
        &[format!("consents.{}", decision.channel)],
        at,
    )
    .await?;
    let changed = Payload::ConsentChanged(pb::ConsentChanged {
        member_id: member_id.to_owned(),
        consent: Some(consent_to_pb(&decision)),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, changed)]).await?;
    txn.commit().await?;
    Ok((decision, true))
}
