//! Store and shopping-guide binding, with history.

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{begin_read, begin_write};
use sea_orm::DatabaseConnection;

use crate::convert::binding_to_pb;
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store;
use crate::store::audit;
use crate::store::entity::guide_bindings;
use crate::store::guide::insert_binding;
use crate::store::member::{find_active, find_member};
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

type Result<T> = std::result::Result<T, IdentityError>;

pub async fn bind_guide(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    store_id: &str,
    guide_id: &str,
    source: &str,
    at: DateTime<Utc>,
) -> Result<guide_bindings::Model> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    find_active(&txn, tenant_id, member_id).await?;
    if let Some(current) = store::guide::current(&txn, tenant_id, member_id).await? {
        if current.store_id == store_id && current.guide_id == guide_id {
            txn.commit().await?;
            return Ok(current);
        }
        store::guide::close(&txn, current, at).await?;
    }
    let binding = insert_binding(&txn, tenant_id, member_id, store_id, guide_id, source, at).await?;
    audit(
        &txn,
        actor,
        "member.guide_bound",
        &[member_id],
        &["store_id".into(), "guide_id".into()],
        at,
    )
    .await?;
    let bound = Payload::GuideBound(pb::GuideBound {
        member_id: member_id.to_owned(),
        binding: Some(binding_to_pb(&binding)),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, bound)]).await?;
    txn.commit().await?;
    Ok(binding)
}

pub async fn list_guide_bindings(
    db: &DatabaseConnection,
    tenant_id: &str,
    member_id: &str,
) -> Result<Vec<guide_bindings::Model>> {
    let txn = begin_read(db).await?;
    find_member(&txn, tenant_id, member_id, false).await?;
    let bindings = store::guide::history(&txn, tenant_id, member_id).await?;
    txn.commit().await?;
    Ok(bindings)
}
