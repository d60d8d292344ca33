//! Numbering committed events: the only writer of positions (see the crate documentation).

use std::time::Duration;

use quanyu_runtime::db::begin_write;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    QueryOrder, QuerySelect, Statement,
};

use crate::entity::pending;

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
            .order_by_asc(pending::Column::Id)
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

/// The columns that an event keeps when it is numbered: a pending event's, but its id.
fn event_columns() -> String {
    pending::Column::iter()
        .filter(|column| !matches!(column, pending::Column::Id))
        .map(|column| column.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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
    // The rows move inside the database, in id order, each to the next position.
    let count = match txn.get_database_backend() {
        DbBackend::Postgres => move_pending_postgres(&txn, last).await?,
        _ => move_pending_one_writer(&txn, last).await?,
    };
    if count == 0 {
        return Ok(0);
    }
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

/// One statement, hence one snapshot, both picks and removes the batch: an event that commits
/// late with a lower id is left for the next batch, never removed unnumbered.
async fn move_pending_postgres(txn: &DatabaseTransaction, last: i64) -> Result<u64, DbErr> {
    let columns = event_columns();
    let sql = format!(
        "WITH moved AS (DELETE FROM outbox_pending WHERE id IN \
         (SELECT id FROM outbox_pending ORDER BY id LIMIT {BATCH}) RETURNING id, {columns}), \
         numbered AS (INSERT INTO outbox_events (position, {columns}) \
         SELECT $1 + row_number() OVER (ORDER BY id), {columns} FROM moved RETURNING position) \
         SELECT count(*) AS moved FROM numbered"
    );
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, [last.into()]);
    let moved: i64 = txn
        .query_one_raw(statement)
        .await?
        .map_or(Ok(0), |row| row.try_get("", "moved"))?;
    Ok(moved.unsigned_abs())
}

/// SQLite has one writer, which this transaction is: nothing commits between its statements.
async fn move_pending_one_writer(txn: &DatabaseTransaction, last: i64) -> Result<u64, DbErr> {
    let columns = event_columns();
    let backend = txn.get_database_backend();
    let batch = format!("SELECT id FROM outbox_pending ORDER BY id LIMIT {BATCH}");
    let bounds = Statement::from_string(
        backend,
        format!("SELECT count(*) AS moved, max(id) AS upto FROM ({batch}) AS batch"),
    );
    let Some(row) = txn.query_one_raw(bounds).await? else {
        return Ok(0);
    };
    let (moved, upto): (i64, Option<i64>) = (row.try_get("", "moved")?, row.try_get("", "upto")?);
    let Some(upto) = upto else {
        return Ok(0);
    };
    let insert = format!(
        "INSERT INTO outbox_events (position, {columns}) \
         SELECT ? + row_number() OVER (ORDER BY id), {columns} FROM outbox_pending WHERE id <= ?"
    );
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [last.into(), upto.into()],
    ))
    .await?;
    let delete = "DELETE FROM outbox_pending WHERE id <= ?";
    txn.execute_raw(Statement::from_sql_and_values(backend, delete, [upto.into()]))
        .await?;
    Ok(moved.unsigned_abs())
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
