//! The log of consumers whose facts changed, and the reading of consumers' facts, from which
//! every replica keeps its copy of the facts in memory current (see `app::index`).

use std::collections::BTreeSet;

use quanyu_runtime::db::lock_keys;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, StreamTrait, Value};
use tokio_stream::StreamExt;

use super::{ROWS_A_STATEMENT, insert_rows, statement};
use crate::domain::Place;

/// A tenant and one of its consumers (a member id, or `identity:<key>`).
pub type Changed = (String, String);

/// Logs that the facts of `changed` consumers changed in this transaction. Writers take one lock
/// first, so that the log's order is the order of commits: a reader that has read up to a
/// position has missed nothing before it. Call it last, just before commit, to hold the lock
/// briefly (and after every other lock the transaction takes, so that none wait in a circle).
pub async fn record(txn: &DatabaseTransaction, changed: &BTreeSet<Changed>) -> Result<(), DbErr> {
    if changed.is_empty() {
        return Ok(());
    }
    lock_keys(txn, &["analytics:consumer-changes".to_owned()]).await?;
    let rows: Vec<Vec<Value>> = changed
        .iter()
        .map(|(tenant_id, consumer_id)| vec![tenant_id.as_str().into(), consumer_id.as_str().into()])
        .collect();
    insert_rows(txn, "INSERT INTO consumer_changes (tenant_id, consumer_id)", "", &rows).await
}

/// The first and last positions the log holds (0 when it is empty).
pub async fn bounds(txn: &impl ConnectionTrait) -> Result<(i64, i64), DbErr> {
    let sql = "SELECT CAST(COALESCE(min(seq), 0) AS BIGINT) AS oldest, \
               CAST(COALESCE(max(seq), 0) AS BIGINT) AS latest FROM consumer_changes";
    let row = txn
        .query_one_raw(statement(txn.get_database_backend(), sql, Vec::new()))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("an aggregate's row".into()))?;
    Ok((row.try_get("", "oldest")?, row.try_get("", "latest")?))
}

/// The consumers changed after position `after` up to `through`, each once; none when the log
/// holds more than `most` changes there.
pub async fn since(
    txn: &impl ConnectionTrait,
    (after, through): (i64, i64),
    most: usize,
) -> Result<Option<BTreeSet<Changed>>, DbErr> {
    let sql = "SELECT tenant_id, consumer_id FROM consumer_changes WHERE seq > ? AND seq <= ? LIMIT ?";
    let limit = i64::try_from(most).unwrap_or(i64::MAX - 1) + 1;
    let rows = txn
        .query_all_raw(statement(
            txn.get_database_backend(),
            sql,
            vec![after.into(), through.into(), limit.into()],
        ))
        .await?;
    if rows.len() > most {
        return Ok(None);
    }
    rows.iter()
        .map(|row| Ok((row.try_get("", "tenant_id")?, row.try_get("", "consumer_id")?)))
        .collect::<Result<_, DbErr>>()
        .map(Some)
}

/// How many changes a replica may fall behind before it reads every fact again.
pub async fn prune(db: &impl ConnectionTrait, keep: i64) -> Result<(), DbErr> {
    let sql = "DELETE FROM consumer_changes WHERE seq <= (SELECT max(seq) FROM consumer_changes) - ?";
    super::execute(db, sql, vec![keep.into()]).await?;
    Ok(())
}

/// Which of a consumer's facts a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    /// Its enrolment, when it is a member not merged into another (counters unused).
    Enrolment,
    /// A day's purchases at a place: orders and net spend.
    Purchases,
    /// A day's interactions at a place: exposures and engagements.
    Interactions,
}

/// A row of one of a consumer's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactRow {
    pub kind: FactKind,
    pub tenant_id: String,
    pub consumer_id: String,
    pub day: String,
    pub place: Place,
    pub counters: [i64; 2],
}

/// Each kind of fact: its rows' query (columns named as [`FactRow`]'s) and the consumer column.
const FACTS: [(FactKind, &str, &str); 3] = [
    (
        FactKind::Enrolment,
        "SELECT tenant_id, member_id AS consumer_id, enrolled_day AS day, brand_id, channel, store_id, \
         CAST(0 AS BIGINT) AS a, CAST(0 AS BIGINT) AS b FROM members WHERE merged_into IS NULL",
        "member_id",
    ),
    (
        FactKind::Purchases,
        "SELECT tenant_id, member_id AS consumer_id, day, brand_id, channel, store_id, \
         CAST(orders AS BIGINT) AS a, CAST(spend_minor AS BIGINT) AS b FROM member_days WHERE 1 = 1",
        "member_id",
    ),
    (
        FactKind::Interactions,
        "SELECT tenant_id, consumer_id, day, brand_id, channel, store_id, \
         CAST(exposures AS BIGINT) AS a, CAST(engagements AS BIGINT) AS b FROM interaction_days WHERE 1 = 1",
        "consumer_id",
    ),
];

/// Streams every fact of every tenant's consumers to `sink`, a row at a time.
pub async fn read_all<E: From<DbErr>>(
    txn: &DatabaseTransaction,
    mut sink: impl FnMut(FactRow) -> Result<(), E>,
) -> Result<(), E> {
    for (kind, sql, _) in FACTS {
        stream_rows(txn, kind, sql, Vec::new(), &mut sink).await?;
    }
    Ok(())
}

/// Streams the facts of a tenant's `consumers` to `sink`.
pub async fn read_consumers<E: From<DbErr>>(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    consumers: &[&str],
    mut sink: impl FnMut(FactRow) -> Result<(), E>,
) -> Result<(), E> {
    for chunk in consumers.chunks(ROWS_A_STATEMENT) {
        for (kind, sql, column) in FACTS {
            let sql = format!(
                "{sql} AND tenant_id = ? AND {column} IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut values: Vec<Value> = vec![tenant_id.into()];
            values.extend(chunk.iter().map(|consumer| (*consumer).into()));
            stream_rows(txn, kind, &sql, values, &mut sink).await?;
        }
    }
    Ok(())
}

async fn stream_rows<E: From<DbErr>>(
    txn: &DatabaseTransaction,
    kind: FactKind,
    sql: &str,
    values: Vec<Value>,
    sink: &mut impl FnMut(FactRow) -> Result<(), E>,
) -> Result<(), E> {
    let mut rows = txn
        .stream_raw(statement(ConnectionTrait::get_database_backend(txn), sql, values))
        .await?;
    while let Some(row) = rows.next().await {
        let row = row?;
        sink(FactRow {
            kind,
            tenant_id: row.try_get("", "tenant_id")?,
            consumer_id: row.try_get("", "consumer_id")?,
            day: row.try_get("", "day")?,
            place: Place {
                brand_id: row.try_get("", "brand_id")?,
                channel: row.try_get("", "channel")?,
                store_id: row.try_get("", "store_id")?,
            },
            counters: [row.try_get("", "a")?, row.try_get("", "b")?],
        })?;
    }
    Ok(())
}
