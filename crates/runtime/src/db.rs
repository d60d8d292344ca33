//! Database connection, migration and the retry of transactions that lost a race.
//!
//! A service owns its own schema: on PostgreSQL it lives in a schema named after the service
//! (and `{service}` in the URL can give each service its own database too); on SQLite each
//! service has its own file.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use sea_orm::sea_query::{
    ArrayType, OnConflict, PostgresQueryBuilder, QueryBuilder, SqlWriterValues, SqliteQueryBuilder, SubQueryStatement,
    Values,
};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    EntityName, EntityTrait, IdenStatic, Iterable, PrimaryKeyToColumn, QueryTrait, Statement,
};
use sea_orm_migration::MigratorTrait;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; `{service}` is replaced by the service's schema name
    /// (`member_identity`).
    pub url: Secret,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://data/{service}.db?mode=rwc"),
            max_connections: 10,
            min_connections: 1,
            acquire_timeout_secs: 10,
        }
    }
}

impl DatabaseConfig {
    /// The URL of one service's database.
    pub fn url_for(&self, schema: &str) -> String {
        self.url.expose().replace("{service}", schema)
    }
}

/// Connects to a service's database and brings its schema up to date.
pub async fn connect<M: MigratorTrait>(config: &DatabaseConfig, schema: &str) -> Result<DatabaseConnection, DbErr> {
    let url = config.url_for(schema);
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
        // A ping before every checkout costs each query a second round trip; only a connection
        // idle long enough to have been dropped by the server or a proxy is checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        create_sqlite_directory(&url)?;
        // WAL lets readers run beside the one writer; the busy timeout makes writers queue
        // instead of failing at once.
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    } else {
        create_postgres_schema(&url, schema).await?;
        options.set_schema_search_path(schema.to_owned());
    }
    let db = Database::connect(options).await?;
    M::up(&db, None).await?;
    Ok(db)
}

fn create_sqlite_directory(url: &str) -> Result<(), DbErr> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(directory) if !directory.as_os_str().is_empty() => std::fs::create_dir_all(directory)
            .map_err(|error| DbErr::Custom(format!("cannot create {}: {error}", directory.display()))),
        _ => Ok(()),
    }
}

async fn create_postgres_schema(url: &str, schema: &str) -> Result<(), DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await?;
    debug_assert_eq!(db.get_database_backend(), DbBackend::Postgres);
    db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    db.close().await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so that a writer waits its turn under the busy timeout instead of failing when
/// another commits between its first read and its first write; PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    let options = sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..sea_orm::TransactionOptions::default()
    };
    sea_orm::TransactionTrait::begin_with_options(db, options).await
}

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

/// The writes that end a use case's transaction, sent together: on PostgreSQL as one statement
/// (each write but the last a data-modifying `WITH` query) while they are small, else and
/// elsewhere one after the other, large inserts on PostgreSQL from arrays. A few sales'
/// transaction writes four tables: together they cost one round trip instead of four.
///
/// Writes pushed here see one snapshot on PostgreSQL, so none may depend on another's effect
/// (no two change the same row).
pub struct Writes {
    backend: DbBackend,
    statements: Vec<SubQueryStatement>,
    /// Statements sent on their own: PostgreSQL inserts of many rows from arrays.
    alone: Vec<Statement>,
}

/// Writes with more parameters than this go one by one: a round trip matters little beside them,
/// while PostgreSQL parses and plans a statement in time that grows faster than its size (a
/// 1,000-sale transaction's writes took 17 ms to parse and 16 ms to plan as one statement, about
/// 8 ms as four).
const COMBINED_MAX_PARAMETERS: usize = 4_096;

/// SQLite's limit on the parameters of one statement, the lower of the two: inserts are cut into
/// statements that stay under it.
const SQLITE_MAX_PARAMETERS: usize = 32_766;

/// From this many rows, PostgreSQL inserts take one array per column (`unnest`) instead of a
/// `VALUES` list of a parameter per cell: one short statement, planned once, instead of
/// thousands of placeholders to build, bind and parse.
const ARRAYS_FROM_ROWS: usize = 64;

impl Writes {
    /// Writes to be executed on `db` (a transaction), built for its backend.
    pub fn new(db: &impl ConnectionTrait) -> Self {
        Self {
            backend: db.get_database_backend(),
            statements: Vec::new(),
            alone: Vec::new(),
        }
    }

    pub fn push(&mut self, statement: impl Into<SubQueryStatement>) {
        self.statements.push(statement.into());
    }

    /// Inserts `rows` (upserts them with `on_conflict`), in as many statements as the limit on
    /// one statement's parameters needs; nothing when there are none.
    pub fn insert_many<A>(&mut self, mut rows: Vec<A>, on_conflict: Option<OnConflict>)
    where
        A: ActiveModelTrait,
    {
        if self.backend == DbBackend::Postgres
            && rows.len() >= ARRAYS_FROM_ROWS
            && let Some(insert) = insert_from_arrays(&mut rows, on_conflict.as_ref())
        {
            self.alone.push(insert);
            return;
        }
        let columns = <<A::Entity as EntityTrait>::Column as Iterable>::iter().count();
        let per_statement = (SQLITE_MAX_PARAMETERS / columns.max(1)).max(1);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut insert = A::Entity::insert_many(rows.by_ref().take(per_statement).collect::<Vec<A>>());
            if let Some(on_conflict) = &on_conflict {
                insert = insert.on_conflict(on_conflict.clone());
            }
            self.push(insert.into_query());
        }
    }

    /// Updates `rows`, found by their entity's primary key, to the values set in them, as inserts
    /// that update on a conflict with the key (each row exists, so each insert becomes its
    /// update; from arrays on PostgreSQL when there are many). An insert finds each row by the
    /// key's index whatever the statistics say; PostgreSQL plans an `UPDATE … FROM` a list as a
    /// join, and hashed every account of a program (12 ms at 50,000) to update 1,000 of them.
    pub fn update_many<A>(&mut self, rows: Vec<A>)
    where
        A: ActiveModelTrait,
    {
        let Some(first) = rows.first() else {
            return;
        };
        let keys = key_columns::<A::Entity>();
        let changed = set_columns(first).into_iter().filter(|column| !is_key(&keys, column));
        let on_key = OnConflict::columns(keys.iter().copied())
            .update_columns(changed)
            .to_owned();
        self.insert_many(rows, Some(on_key));
    }

    /// Sends the large statements built so far while `build` adds the rest of the writes, then
    /// sends the rest: the service builds while PostgreSQL writes. Small writes are all sent
    /// together as [`execute`](Self::execute) sends them.
    pub async fn execute_while<C: ConnectionTrait>(
        mut self,
        db: &C,
        build: impl FnOnce(&mut Self),
    ) -> Result<(), DbErr> {
        let ready = std::mem::take(&mut self.alone);
        // The first poll sends the first statement; `build` then runs while it executes.
        let (sent, ()) = tokio::join!(send_each(db, ready), async { build(&mut self) });
        sent?;
        self.execute(db).await
    }

    pub async fn execute<C: ConnectionTrait>(mut self, db: &C) -> Result<(), DbErr> {
        send_each(db, std::mem::take(&mut self.alone)).await?;
        let backend = self.backend;
        let each: Vec<(String, Values)> = self
            .statements
            .iter()
            .map(|statement| match backend {
                DbBackend::Postgres => built(PostgresQueryBuilder, statement),
                _ => built(SqliteQueryBuilder, statement),
            })
            .collect();
        let parameters: usize = each.iter().map(|(_, values)| values.0.len()).sum();
        if backend == DbBackend::Postgres && each.len() > 1 && parameters <= COMBINED_MAX_PARAMETERS {
            // Built again as one statement: cheap at this size.
            let (sql, values) = self.combined();
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            return Ok(());
        }
        for (sql, values) in each {
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }

    /// `WITH write_0 AS (…), write_1 AS (…) <last write>`, parameters numbered throughout.
    fn combined(&self) -> (String, Values) {
        let (placeholder, numbered) = PostgresQueryBuilder.placeholder();
        let mut sql = SqlWriterValues::new(placeholder, numbered);
        let Some((last, first)) = self.statements.split_last() else {
            return sql.into_parts();
        };
        for (index, statement) in first.iter().enumerate() {
            let separator = if index == 0 { "WITH" } else { "," };
            // Writing into a String cannot fail.
            let _ = write!(sql, "{separator} write_{index} AS (");
            PostgresQueryBuilder.prepare_query_statement(statement, &mut sql);
            let _ = write!(sql, ")");
        }
        let _ = write!(sql, " ");
        PostgresQueryBuilder.prepare_query_statement(last, &mut sql);
        sql.into_parts()
    }
}

/// Sends statements one after another.
async fn send_each<C: ConnectionTrait>(db: &C, statements: Vec<Statement>) -> Result<(), DbErr> {
    for statement in statements {
        db.execute_raw(statement).await?;
    }
    Ok(())
}

/// `INSERT INTO t (c, …) SELECT … FROM unnest($1::type[], …) [ON CONFLICT …]`, taking the rows'
/// cells (the rows are left unset). None, and the rows untouched, when a cell is NULL or of a
/// type without an array here: sea-query cannot bind an array with NULL elements.
fn insert_from_arrays<A: ActiveModelTrait>(rows: &mut [A], on_conflict: Option<&OnConflict>) -> Option<Statement> {
    let arrays = Arrays::take(rows)?;
    let names: Vec<String> = arrays.columns.iter().map(|column| quoted(*column)).collect();
    let mut sql = format!(
        "INSERT INTO \"{}\" ({}) SELECT {} FROM {}",
        A::Entity::default().table_name(),
        names.join(", "),
        arrays.cells.join(", "),
        arrays.unnest,
    );
    if let Some(on_conflict) = on_conflict {
        let mut clause = String::new();
        PostgresQueryBuilder.prepare_on_conflict(&Some(on_conflict.clone()), &mut clause);
        sql.push_str(&clause);
    }
    Some(Statement::from_sql_and_values(DbBackend::Postgres, sql, arrays.values))
}

/// The columns of an entity's primary key.
fn key_columns<E: EntityTrait>() -> Vec<E::Column> {
    E::PrimaryKey::iter().map(|key| key.into_column()).collect()
}

fn is_key<C: IdenStatic>(keys: &[C], column: &C) -> bool {
    keys.iter().any(|key| key.as_str() == column.as_str())
}

/// The columns set in `row`, as an insert of many rows takes them from its first.
fn set_columns<A: ActiveModelTrait>(row: &A) -> Vec<<A::Entity as EntityTrait>::Column> {
    <<A::Entity as EntityTrait>::Column as Iterable>::iter()
        .filter(|column| !row.is_not_set(*column))
        .collect()
}

fn quoted(column: impl IdenStatic) -> String {
    format!("\"{}\"", column.as_str())
}

/// Rows' cells as parameters for a statement that reads them from `unnest(…) AS cells(…)`: one
/// array per column, or one value for a column that holds the same value in every row (a batch's
/// tenant, program, time): fewer cells to copy, bind and parse.
struct Arrays<C> {
    /// The columns set in the first row, as an insert of many rows takes them.
    columns: Vec<C>,
    /// Each column's cell, as the statement reads it: `cells."c"` or `$n::type`.
    cells: Vec<String>,
    /// `unnest($n::type[], …) AS cells("c", …)`.
    unnest: String,
    values: Vec<sea_orm::Value>,
}

impl<C: ColumnTrait> Arrays<C> {
    /// Takes the rows' cells; None, and the rows untouched, when a cell is NULL or of a type
    /// without an array here.
    fn take<A>(rows: &mut [A]) -> Option<Self>
    where
        A: ActiveModelTrait,
        A::Entity: EntityTrait<Column = C>,
    {
        let columns = set_columns(rows.first()?);
        if rows
            .iter()
            .any(|row| columns.iter().any(|column| row.is_not_set(*column)))
        {
            return None;
        }
        let mut taken: Vec<Vec<sea_orm::Value>> = Vec::with_capacity(columns.len());
        let mut types = Vec::with_capacity(columns.len());
        for column in &columns {
            // Taken, not cloned (an account's ledger is in its cells); put back on a NULL.
            let cells: Vec<sea_orm::Value> = rows
                .iter_mut()
                .filter_map(|row| row.take(*column).into_value())
                .collect();
            let column_type = cells.first().and_then(array_type);
            let complete = cells.iter().all(|cell| array_type(cell).is_some());
            taken.push(cells);
            match column_type {
                Some(column_type) if complete => types.push(column_type),
                _ => {
                    for (column, cells) in columns.iter().zip(taken) {
                        for (row, cell) in rows.iter_mut().zip(cells) {
                            row.set(*column, cell);
                        }
                    }
                    return None;
                }
            }
        }
        let constant: Vec<bool> = taken
            .iter()
            .map(|cells| cells.iter().all(|cell| Some(cell) == cells.first()))
            .collect();
        // At least one array gives the statement its rows.
        let all_constant = constant.iter().all(|constant| *constant);
        let mut arrays = Self {
            columns,
            cells: Vec::new(),
            unnest: String::new(),
            values: Vec::with_capacity(taken.len()),
        };
        let (mut unnested, mut names) = (Vec::new(), Vec::new());
        for (index, (cells, (array, sql_type))) in taken.into_iter().zip(types).enumerate() {
            let parameter = index + 1;
            let name = quoted(arrays.columns[index]);
            if constant[index] && !(all_constant && index == 0) {
                arrays.cells.push(format!("${parameter}::{sql_type}"));
                arrays.values.extend(cells.into_iter().next());
            } else {
                arrays.cells.push(format!("cells.{name}"));
                unnested.push(format!("${parameter}::{sql_type}[]"));
                names.push(name);
                arrays.values.push(sea_orm::Value::Array(array, Some(Box::new(cells))));
            }
        }
        arrays.unnest = format!("unnest({}) AS cells({})", unnested.join(", "), names.join(", "));
        Some(arrays)
    }
}

/// The array type of a column holding `value`, and its PostgreSQL name; None for NULL.
fn array_type(value: &sea_orm::Value) -> Option<(ArrayType, &'static str)> {
    use sea_orm::Value;
    match value {
        Value::String(Some(_)) => Some((ArrayType::String, "text")),
        Value::BigInt(Some(_)) => Some((ArrayType::BigInt, "int8")),
        Value::Int(Some(_)) => Some((ArrayType::Int, "int4")),
        Value::Bool(Some(_)) => Some((ArrayType::Bool, "bool")),
        Value::Bytes(Some(_)) => Some((ArrayType::Bytes, "bytea")),
        Value::ChronoDateTimeUtc(Some(_)) => Some((ArrayType::ChronoDateTimeUtc, "timestamptz")),
        _ => None,
    }
}

fn built(builder: impl QueryBuilder, statement: &SubQueryStatement) -> (String, Values) {
    let (placeholder, numbered) = builder.placeholder();
    let mut sql = SqlWriterValues::new(placeholder, numbered);
    builder.prepare_query_statement(statement, &mut sql);
    sql.into_parts()
}

/// An error that a fresh attempt of the same transaction may not meet.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for DbErr {
    fn is_transient(&self) -> bool {
        crate::error::is_transient(self)
    }
}

const ATTEMPTS: u32 = 8;

/// Runs a use case's transaction again while it fails transiently (serialization failure,
/// deadlock, busy SQLite, a unique key taken by a concurrent transaction), with growing pauses.
/// Each attempt is a whole transaction, so a retry re-reads what the lost race changed.
pub async fn with_retries<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && tries < ATTEMPTS => {
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos()
                        % 5,
                );
                tokio::time::sleep(Duration::from_millis((2 << tries.min(6)) + jitter)).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

/// Helpers for services' migrations, so that each migration file states only its tables.
pub mod schema {
    use sea_orm_migration::prelude::*;

    /// `CREATE TABLE IF NOT EXISTS name (columns…, PRIMARY KEY (key…))`.
    pub fn table(name: &'static str, columns: Vec<ColumnDef>, key: &[&'static str]) -> TableCreateStatement {
        let mut statement = Table::create();
        statement.table(name).if_not_exists();
        for mut column in columns {
            statement.col(&mut column);
        }
        let mut primary_key = Index::create();
        for column in key {
            primary_key.col(*column);
        }
        statement.primary_key(&mut primary_key);
        statement.to_owned()
    }

    /// `CREATE INDEX IF NOT EXISTS name ON table (columns…)`.
    pub fn index(name: &'static str, table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
        let mut statement = Index::create();
        statement.name(name).table(table).if_not_exists();
        for column in columns {
            statement.col(*column);
        }
        statement.to_owned()
    }
}

/// Declares an entity's (empty) relations and default active-model behaviour: Quanyu's tables
/// relate by tenant-scoped keys in queries, not by sea-orm relations.
#[macro_export]
macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}
