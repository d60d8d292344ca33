//! Analytics' tables: member facts and daily rollups. Statements are plain SQL that both
//! databases read alike (upserts with ON CONFLICT); only placeholders differ.

pub mod audiences;
pub mod campaigns;
pub mod changes;
pub mod consumers;
pub mod facts;
pub mod metrics;
pub mod profiles;

use quanyu_runtime::db::sql::{Query, execute, statement};
use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Value};

use crate::domain::Place;

/// SQL for the day `days` after the day in `column` (days as windows name them): the one date
/// arithmetic the two databases write differently.
fn day_after(backend: DbBackend, column: &str, days: i64) -> String {
    match backend {
        DbBackend::Postgres => format!("to_char(CAST({column} AS DATE) + {days}, 'YYYY-MM-DD')"),
        _ => format!("date({column}, '+{days} days')"),
    }
}

/// The columns that place a rollup row, after the tenant and the rollup's own keys.
const DAY_AND_PLACE: [&str; 4] = ["day", "brand_id", "channel", "store_id"];

/// The values of [`DAY_AND_PLACE`].
fn day_and_place(day: &str, place: &Place) -> [Value; 4] {
    [
        day.into(),
        place.brand_id.as_str().into(),
        place.channel.into(),
        place.store_id.as_str().into(),
    ]
}

/// A rollup table: its name, the `K` keys of a row after the tenant (the day and place follow
/// them), and the counters each row adds up.
pub type Rollup<const K: usize> = (&'static str, [&'static str; K], &'static [&'static str]);

/// Rows a multi-row statement carries at most: SQLite takes at most 32,766 values a statement.
const ROWS_A_STATEMENT: usize = 500;

/// Adds `rows` to a rollup, in as few statements as its limit allows: each row is the tenant,
/// the rollup's keys, the day and place, then its counters, which are added to those of the row
/// with the same key when there is one. No two rows may share a key (PostgreSQL will not update
/// a row twice in one statement): callers add them up first.
async fn add_rows<const K: usize>(
    txn: &DatabaseTransaction,
    (table, keys, counters): Rollup<K>,
    rows: &[Vec<Value>],
) -> Result<(), DbErr> {
    let key_columns: Vec<&str> = std::iter::once("tenant_id")
        .chain(keys.iter().copied())
        .chain(DAY_AND_PLACE)
        .collect();
    let columns: Vec<&str> = key_columns.iter().chain(counters).copied().collect();
    let insert = format!("INSERT INTO {table} ({})", columns.join(", "));
    let on_conflict = format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        key_columns.join(", "),
        additions(table, counters)
    );
    insert_rows(txn, &insert, &on_conflict, rows).await
}

/// `insert` (`INSERT INTO table (columns…)`) of `rows`, each row the values of those columns,
/// then `on_conflict`, in statements of at most [`ROWS_A_STATEMENT`] rows.
async fn insert_rows(
    txn: &DatabaseTransaction,
    insert: &str,
    on_conflict: &str,
    rows: &[Vec<Value>],
) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_A_STATEMENT) {
        let columns = chunk.first().map_or(0, Vec::len);
        let sql = format!(
            "{insert} VALUES {} {on_conflict}",
            placeholder_rows(columns, chunk.len())
        );
        execute(txn, &sql, chunk.concat()).await?;
    }
    Ok(())
}

/// The `value` column by the `key` column of the tenant's rows in `table` whose key is one of
/// `keys` (and that `condition` selects, when not empty), in statements of at most
/// [`ROWS_A_STATEMENT`] keys.
async fn values_by_key(
    txn: &DatabaseTransaction,
    (table, key, value, condition): (&str, &str, &str, &str),
    tenant_id: &str,
    keys: &[&str],
) -> Result<HashMap<String, String>, DbErr> {
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!(" AND {condition}")
    };
    let mut found = HashMap::new();
    for chunk in keys.chunks(ROWS_A_STATEMENT) {
        let sql = format!(
            "SELECT {key}, {value} FROM {table} WHERE tenant_id = ?{condition} AND {key} IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut values: Vec<Value> = vec![tenant_id.into()];
        values.extend(chunk.iter().map(|wanted| (*wanted).into()));
        let rows = txn
            .query_all_raw(statement(txn.get_database_backend(), &sql, values))
            .await?;
        for row in rows {
            found.insert(row.try_get("", key)?, row.try_get("", value)?);
        }
    }
    Ok(found)
}

/// `(?, ?), (?, ?)`: `rows` rows of `columns` placeholders each.
fn placeholder_rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// `counter = table.counter + excluded.counter, …`: an upsert that adds.
fn additions(table: &str, counters: &[&str]) -> String {
    let each: Vec<String> = counters
        .iter()
        .map(|counter| format!("{counter} = {table}.{counter} + excluded.{counter}"))
        .collect();
    each.join(", ")
}

/// Moves the rollup rows of `from` (in key column `key`) to `into`, adding their counters to the
/// rows `into` has on the same day and place.
async fn fold(
    txn: &DatabaseTransaction,
    (table, [key], counters): Rollup<1>,
    tenant_id: &str,
    from: &str,
    into: &str,
) -> Result<(), DbErr> {
    let place = DAY_AND_PLACE.join(", ");
    let copied = counters.join(", ");
    let moved = format!(
        "INSERT INTO {table} (tenant_id, {key}, {place}, {copied}) \
         SELECT tenant_id, ?, {place}, {copied} FROM {table} WHERE tenant_id = ? AND {key} = ? \
         ON CONFLICT (tenant_id, {key}, {place}) DO UPDATE SET {}",
        additions(table, counters)
    );
    execute(txn, &moved, vec![into.into(), tenant_id.into(), from.into()]).await?;
    let emptied = format!("DELETE FROM {table} WHERE tenant_id = ? AND {key} = ?");
    execute(txn, &emptied, vec![tenant_id.into(), from.into()]).await?;
    Ok(())
}
