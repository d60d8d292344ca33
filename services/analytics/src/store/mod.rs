//! Analytics' tables: member facts and daily rollups. Statements are plain SQL that both
//! databases read alike (upserts with ON CONFLICT); only placeholders differ.

pub mod facts;
pub mod metrics;

use sea_orm::{DbBackend, Statement, Value};

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
