//! Reading rows by many keys, each key one index probe whatever the table's statistics say.

use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, IdenStatic, Iterable};

use super::quoted;

/// The rows of `E` in `scope` (column = value pairs) whose `key` column is one of `keys`, in no
/// particular order; locked for update when `lock` (SQLite has one writer: nothing to lock).
///
/// On PostgreSQL each key is one index probe (`unnest` joined LATERAL, `OFFSET 0` keeping the
/// planner from flattening it into a join). An `IN` list there, or a flattened join, is planned
/// from statistics, and a table filled faster than autovacuum analyses it is taken for empty: the
/// list becomes a filter over every row of the scope, seconds for a batch of 1,000.
pub async fn find_by_keys<E, C>(
    db: &C,
    scope: &[(E::Column, sea_orm::Value)],
    key: E::Column,
    keys: Vec<String>,
    lock: bool,
) -> Result<Vec<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    C: ConnectionTrait,
{
    let columns: Vec<E::Column> = E::Column::iter().collect();
    find_columns_by_keys::<E, E::Model, C>(db, scope, key, keys, &columns, lock).await
}

/// [`find_by_keys`], reading only `columns` into `M`: a replay needs 3 of a recorded sale's 13.
pub async fn find_columns_by_keys<E, M, C>(
    db: &C,
    scope: &[(E::Column, sea_orm::Value)],
    key: E::Column,
    keys: Vec<String>,
    columns: &[E::Column],
    lock: bool,
) -> Result<Vec<M>, DbErr>
where
    E: sea_orm::EntityTrait,
    M: sea_orm::FromQueryResult,
    C: ConnectionTrait,
{
    use sea_orm::{QueryFilter, QuerySelect};
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    if db.get_database_backend() != DbBackend::Postgres {
        let mut query = E::find().select_only().columns(columns.iter().copied());
        for (column, value) in scope {
            query = query.filter(column.eq(value.clone()));
        }
        return query.filter(key.is_in(keys)).into_model::<M>().all(db).await;
    }
    let mut conditions: Vec<String> = scope
        .iter()
        .enumerate()
        .map(|(index, (column, _))| format!("\"{}\" = ${}", column.as_str(), index + 1))
        .collect();
    conditions.push(format!("\"{}\" = wanted.key", key.as_str()));
    let selected: Vec<String> = columns.iter().map(|column| quoted(*column)).collect();
    let sql = format!(
        "SELECT probed.* FROM unnest(${}::text[]) AS wanted(key) CROSS JOIN LATERAL \
         (SELECT {} FROM \"{}\" WHERE {} OFFSET 0{}) AS probed",
        scope.len() + 1,
        selected.join(", "),
        E::default().table_name(),
        conditions.join(" AND "),
        if lock { " FOR UPDATE" } else { "" },
    );
    let mut values: Vec<sea_orm::Value> = scope.iter().map(|(_, value)| value.clone()).collect();
    values.push(keys.into());
    let statement = sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    M::find_by_statement(statement).all(db).await
}

/// Takes a transaction-scoped lock on each of `keys`, in one order for every transaction, so that
/// work on something that has no row yet (an account being created) is serialized like work on
/// a row. PostgreSQL advisory locks, by a 64-bit hash of the key (a collision only makes two
/// transactions take turns); SQLite has one writer: nothing to lock.
pub async fn lock_keys<C: ConnectionTrait>(db: &C, keys: &[String]) -> Result<(), DbErr> {
    if keys.is_empty() || db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut hashes: Vec<i64> = keys
        .iter()
        .map(|key| i64::from_ne_bytes(crate::fnv1a(crate::FNV_OFFSET, key.as_bytes()).to_ne_bytes()))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let statement = sea_orm::Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(key) FROM unnest($1::int8[]) AS locks(key)",
        [hashes.into()],
    );
    db.execute_raw(statement).await?;
    Ok(())
}
