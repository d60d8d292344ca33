//! Members' consent per contact channel.

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::DatabaseConnection;

use crate::convert::consent_to_pb;
use crate::domain::merge::{self as merge_rules, ConsentDecision};
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store;
use crate::store::audit;
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
    let stored = store::consent::find(&txn, tenant_id, member_id, &decision.channel).await?;
    if !merge_rules::supersedes(&decision, stored.as_ref()) {
        txn.commit().await?;
        return Ok((stored.unwrap_or(decision), false));
    }
    store::consent::save(&txn, tenant_id, member_id, decision.clone()).await?;
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
