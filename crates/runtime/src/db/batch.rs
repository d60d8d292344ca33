//! The writes that end a use case's transaction, combined into as few statements as the
//! backend allows.

use std::fmt::Write as _;

use sea_orm::sea_query::{
    ArrayType, OnConflict, PostgresQueryBuilder, QueryBuilder, SqlWriterValues, SqliteQueryBuilder, SubQueryStatement,
    Values,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn, QueryTrait, Statement,
};

use super::{TUNING, quoted};

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
            && rows.len() >= TUNING.arrays_from_rows
            && let Some(insert) = insert_from_arrays(&mut rows, on_conflict.as_ref())
        {
            self.alone.push(insert);
            return;
        }
        let columns = <<A::Entity as EntityTrait>::Column as Iterable>::iter().count();
        let per_statement = (TUNING.sqlite_max_parameters / columns.max(1)).max(1);
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
    /// that update on a conflict with the key (the insert of a row that exists becomes its update,
    /// and one that does not exist yet is inserted; from arrays on PostgreSQL when there are
    /// many). Each row sets every column without
    /// a default, as an insert must: the database checks them before it meets the conflict.
    /// An insert finds each row by the key's index whatever the statistics say; PostgreSQL plans
    /// an `UPDATE … FROM` a list as a join, and hashed every account of a program (12 ms at
    /// 50,000) to update 1,000 of them.
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
        if backend == DbBackend::Postgres && each.len() > 1 && parameters <= TUNING.combined_max_parameters {
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
