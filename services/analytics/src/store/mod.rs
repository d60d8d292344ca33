//! Analytics' tables: member facts and daily rollups. Statements are plain SQL that both
//! databases read alike (upserts with ON CONFLICT); only placeholders differ.

pub mod audiences;
pub mod consumers;
pub mod facts;
pub mod metrics;
pub mod profiles;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement, Value};

use crate::domain::Place;

/// Runs a statement written with `?` placeholders.
async fn execute(txn: &DatabaseTransaction, sql: &str, values: Vec<Value>) -> Result<(), DbErr> {
    txn.execute_raw(statement(txn.get_database_backend(), sql, values))
        .await?;
    Ok(())
}

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

/// An insert of one rollup row (the tenant, `keys`, the day and place, then `counters`) that adds
/// its counters to the row's when the row exists.
fn adding(table: &str, keys: &[&str], counters: &[&str]) -> String {
    let key_columns: Vec<&str> = std::iter::once("tenant_id")
        .chain(keys.iter().copied())
        .chain(DAY_AND_PLACE)
        .collect();
    let columns: Vec<&str> = key_columns.iter().chain(counters).copied().collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        vec!["?"; columns.len()].join(", "),
        key_columns.join(", "),
        additions(table, counters)
    )
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
    (table, key, counters): (&str, &str, &[&str]),
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
    execute(txn, &emptied, vec![tenant_id.into(), from.into()]).await
}

/// SQL with `?` placeholders, built in step with its values so that each value stands where its
/// placeholder does.
#[derive(Debug, Default)]
struct Query {
    sql: String,
    values: Vec<Value>,
}

impl Query {
    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.sql.push('?');
        self.values.push(value.into());
        self
    }

    /// Appends SQL with placeholders and their values, built apart.
    fn append(&mut self, (sql, values): (String, Vec<Value>)) -> &mut Self {
        self.sql.push_str(&sql);
        self.values.extend(values);
        self
    }

    fn into_statement(self, backend: DbBackend) -> Statement {
        statement(backend, &self.sql, self.values)
    }
}

/// A statement written with `?` placeholders, numbered (`$1`, `$2`) for PostgreSQL.
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        let mut numbered = String::with_capacity(sql.len() + 8);
        let mut next = 0;
        for character in sql.chars() {
            if character == '?' {
                next += 1;
                numbered.push_str(&format!("${next}"));
            } else {
                numbered.push(character);
            }
        }
        numbered
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let values = || vec![Value::from(1), Value::from(2)];
        assert_eq!(
            statement(DbBackend::Postgres, "a = ? AND b = ?", values()).sql,
            "a = $1 AND b = $2"
        );
        assert_eq!(
            statement(DbBackend::Sqlite, "a = ? AND b = ?", values()).sql,
            "a = ? AND b = ?"
        );
    }
}
