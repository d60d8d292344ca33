//! Appending events inside the transaction of the change they describe.

use chrono::{SubsecRound, Utc};
use prost::Message;
use quanyu_proto::events::v1::{Event, event::Payload};
use quanyu_runtime::db::Writes;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseTransaction, DbErr,
};

use crate::entity::{events, pending};

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: String,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub payload: Payload,
}

/// Appends events in the caller's transaction: they exist if and only if it commits. They take
/// no lock: the sequencer numbers them once committed (see the crate documentation).
pub async fn append(txn: &DatabaseTransaction, new_events: Vec<NewEvent>) -> Result<(), DbErr> {
    let mut writes = Writes::new(txn);
    append_to(&mut writes, new_events);
    writes.execute(txn).await
}

/// [`append`] among the other writes of a transaction, sent with them.
pub fn append_to(writes: &mut Writes, new_events: Vec<NewEvent>) {
    if new_events.is_empty() {
        return;
    }
    let count = new_events.len() as u64;
    let occurred_at = Utc::now().trunc_subsecs(6);
    let rows = new_events.into_iter().map(|event| {
        let event_type = event.payload.event_type();
        let payload = Event {
            payload: Some(event.payload),
            ..Event::default()
        }
        .encode_to_vec();
        pending::ActiveModel {
            id: NotSet,
            event_id: Set(uuid::Uuid::now_v7().to_string()),
            tenant_id: Set(event.tenant_id),
            aggregate_type: Set(event.aggregate_type.to_owned()),
            aggregate_id: Set(event.aggregate_id),
            event_type: Set(event_type.to_owned()),
            occurred_at: Set(occurred_at),
            payload: Set(payload),
        }
    });
    writes.insert_many(rows.collect(), None);
    metrics::counter!("outbox_events_appended_total").increment(count);
}

/// Rebuilds the full event from its stored row.
pub(crate) fn decode(row: events::Model) -> Result<Event, DbErr> {
    let stored = Event::decode(row.payload.as_slice())
        .map_err(|error| DbErr::Custom(format!("event {} has an undecodable payload: {error}", row.position)))?;
    Ok(Event {
        event_id: row.event_id,
        tenant_id: row.tenant_id,
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        event_type: row.event_type,
        occurred_at: Some(quanyu_runtime::clock::to_proto(row.occurred_at)),
        position: row.position.unsigned_abs(),
        payload: stored.payload,
    })
}
