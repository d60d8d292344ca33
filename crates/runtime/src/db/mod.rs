//! The database engine every service writes through: connection and migration
//! ([`connect`]), the writes that end a transaction combined into few statements ([`Writes`]),
//! lookups by many keys that stay on the index ([`find_by_keys`]), and the retry of transactions
//! that lost a race ([`with_retries`]). The thresholds at which it changes strategy are in
//! [`TUNING`].

mod batch;
mod connect;
mod keys;
mod retry;
pub mod sql;

pub use batch::Writes;
pub use connect::{DatabaseConfig, begin_read, begin_snapshot, begin_write, connect, record_pool_gauges};
pub use keys::{find_by_keys, find_columns_by_keys, lock_keys};
pub use retry::{Transient, with_retries};

use sea_orm::IdenStatic;

/// The thresholds at which the write path changes strategy, in one place so that they are read
/// and tuned together. Each trades a round trip, or a read before a write, against the cost of a
/// larger statement, and was set by the points benchmark on PostgreSQL (bench/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// From this many rows, PostgreSQL inserts take one array per column (`unnest`) instead of a
    /// `VALUES` list of a parameter per cell: one short statement, planned once, instead of
    /// thousands of placeholders to build, bind and parse.
    pub arrays_from_rows: usize,
    /// The writes of a transaction go to PostgreSQL as one statement while they hold at most this
    /// many parameters, else one by one: a round trip matters little beside large writes, while
    /// PostgreSQL parses and plans a statement in time that grows faster than its size (a
    /// 1,000-sale transaction's writes took 17 ms to parse and 16 ms to plan as one statement,
    /// about 8 ms as four).
    pub combined_max_parameters: usize,
    /// SQLite's limit on the parameters of one statement: inserts are cut into statements that
    /// stay under it.
    pub sqlite_max_parameters: usize,
    /// Calls of up to this many items share a transaction with the calls queued beside them;
    /// larger ones (an upload's batch) fill one by themselves and are written in their own.
    pub shared_up_to: usize,
    /// Up to this many keyed writes, a transaction's first attempt takes those not known to be
    /// recorded for new, without reading their keys first: a till seldom sends a sale twice, and a
    /// key recorded before fails the insert (the retry then reads). Larger calls, often uploads
    /// sent again, are looked up first.
    pub unread_up_to: usize,
    /// Batches of this many items or more keep the answer their replay gets, under a digest of
    /// the batch: a POS resending the same batch is answered with one read. Smaller ones are
    /// answered item by item, which is then as cheap.
    pub kept_answers_from: usize,
}

/// The tuning in force.
pub const TUNING: Tuning = Tuning {
    arrays_from_rows: 64,
    combined_max_parameters: 4_096,
    sqlite_max_parameters: 32_766,
    shared_up_to: 64,
    unread_up_to: 64,
    kept_answers_from: 64,
};

/// A column's name, quoted for SQL written by hand.
fn quoted(column: impl IdenStatic) -> String {
    format!("\"{}\"", column.as_str())
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

    /// Makes PostgreSQL compare the text of key columns byte by byte (`COLLATE "C"`): cheaper
    /// than the database's collation, in the same order for UTF-8. SQLite compares bytes already.
    pub async fn compare_keys_as_bytes(
        manager: &SchemaManager<'_>,
        table: &str,
        columns: &[&str],
    ) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let changes: Vec<String> = columns
            .iter()
            .map(|column| format!("ALTER COLUMN \"{column}\" TYPE varchar COLLATE \"C\""))
            .collect();
        db.execute_unprepared(&format!("ALTER TABLE \"{table}\" {}", changes.join(", ")))
            .await?;
        Ok(())
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
