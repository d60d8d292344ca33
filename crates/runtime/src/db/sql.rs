//! Plain SQL that both databases read alike, written with `?` placeholders: for statements
//! sea-orm's builders do not express (upserts that add or check, conditional updates that
//! return a row).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TryGetable, Value};

/// Runs a statement written with `?` placeholders; the rows it changed.
pub async fn execute<C: ConnectionTrait>(db: &C, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    Ok(result.rows_affected())
}

/// The value of `column` in the first row a statement written with `?` placeholders answers
/// (a count, a lookup, an `UPDATE … RETURNING`); `None` when it answers no row.
pub async fn value<C: ConnectionTrait, T: TryGetable>(
    db: &C,
    (sql, values): (&str, Vec<Value>),
    column: &str,
) -> Result<Option<T>, DbErr> {
    let row = db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    row.map(|row| row.try_get("", column)).transpose()
}

/// SQL with `?` placeholders, built in step with its values so that each value stands where its
/// placeholder does.
#[derive(Debug, Default)]
pub struct Query {
    sql: String,
    values: Vec<Value>,
}

impl Query {
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.sql.push('?');
        self.values.push(value.into());
        self
    }

    /// Appends SQL with placeholders and their values, built apart.
    pub fn append(&mut self, (sql, values): (String, Vec<Value>)) -> &mut Self {
        self.sql.push_str(&sql);
        self.values.extend(values);
        self
    }

    /// The SQL and its values, apart.
    pub fn into_parts(self) -> (String, Vec<Value>) {
        (self.sql, self.values)
    }

    pub fn into_statement(self, backend: DbBackend) -> Statement {
        statement(backend, &self.sql, self.values)
    }
}

/// A statement written with `?` placeholders, numbered (`$1`, `$2`) for PostgreSQL.
pub fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
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
