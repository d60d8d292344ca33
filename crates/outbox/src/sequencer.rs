//! Numbering committed events: the only writer of positions (see the crate documentation).

use std::time::Duration;

use quanyu_runtime::db::begin_write;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{events, pending};

/// Events numbered per transaction of the sequencer.
const BATCH: u64 = 1_000;

/// How often the background sequencer looks for events when no subscriber is asking.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Gives every committed pending event the next position, in batches; returns how many it numbered.
pub async fn sequence(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let mut numbered = 0;
    loop {
        let anything_pending = pending::Entity::find()
            .select_only()
            .column(pending::Column::Id)
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
            .await?
            .is_some();
        if !anything_pending {
            return Ok(numbered);
        }
        let moved = sequence_batch(db).await?;
        numbered += moved;
        if moved < BATCH {
            return Ok(numbered);
        }
    }
}

async fn sequence_batch(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let txn = begin_write(db).await?;
    // The sequence row's lock makes sequencers take turns. Each statement after it reads a fresh
    // snapshot, so it sees every event committed before the lock was granted, including the
    // removals of the sequencer that held it before.
    let lock = Query::select()
        .column("last_position")
        .from("outbox_sequence")
        .and_where(Expr::col("id").eq(1))
        .lock_exclusive()
        .to_owned();
    let last: i64 = txn
        .query_one(&lock)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("outbox_sequence row (is the outbox migrated?)".into()))?
        .try_get("", "last_position")?;
    let batch = pending::Entity::find()
        .order_by_asc(pending::Column::Id)
        .limit(BATCH)
        .all(&txn)
        .await?;
    let count = batch.len() as u64;
    if batch.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = batch.iter().map(|row| row.id).collect();
    let numbered = batch
        .into_iter()
        .zip(last + 1..)
        .map(|(row, position)| events::ActiveModel {
            position: Set(position),
            event_id: Set(row.event_id),
            tenant_id: Set(row.tenant_id),
            aggregate_type: Set(row.aggregate_type),
            aggregate_id: Set(row.aggregate_id),
            event_type: Set(row.event_type),
            occurred_at: Set(row.occurred_at),
            payload: Set(row.payload),
        });
    events::Entity::insert_many(numbered)
        .exec_without_returning(&txn)
        .await?;
    // Exactly these rows: one committed after the batch was read may have a lower id.
    pending::Entity::delete_many()
        .filter(pending::Column::Id.is_in(ids))
        .exec(&txn)
        .await?;
    let advance = Query::update()
        .table("outbox_sequence")
        .value("last_position", last + i64::try_from(count).unwrap_or(i64::MAX))
        .and_where(Expr::col("id").eq(1))
        .to_owned();
    txn.execute(&advance).await?;
    txn.commit().await?;
    metrics::counter!("outbox_events_sequenced_total").increment(count);
    Ok(count)
}

/// Numbers events every second until shutdown, so that they get positions (and can be pruned)
/// while nobody subscribes; subscriptions number what they are about to read themselves.
pub fn spawn_sequencer(db: DatabaseConnection, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(IDLE_INTERVAL) => {}
                () = shutdown.wait() => return,
            }
            if let Err(error) = sequence(&db).await {
                tracing::warn!(%error, "outbox sequencing failed; will retry");
            }
        }
    });
}
