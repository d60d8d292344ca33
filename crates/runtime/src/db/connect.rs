//! Connection and migration: each service owns its own schema. On PostgreSQL it lives in a
//! schema named after the service (and `{service}` in the URL can give each service its own
//! database too); on SQLite each service has its own file.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;
use serde::{Deserialize, Serialize};

use crate::config::SecretUrl;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; `{service}` is replaced by the service's schema name
    /// (`member_identity`).
    pub url: SecretUrl,
    /// The pool's size; unset, [`POSTGRES_CONNECTIONS`] on PostgreSQL and one on SQLite.
    pub max_connections: Option<u32>,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("sqlite://data/{service}.db?mode=rwc"),
            max_connections: None,
            min_connections: 1,
            acquire_timeout_secs: 10,
        }
    }
}

/// A PostgreSQL pool's size unless configured.
pub const POSTGRES_CONNECTIONS: u32 = 10;

impl DatabaseConfig {
    /// The URL of one service's database.
    pub fn url_for(&self, schema: &str) -> String {
        self.url.expose().replace("{service}", schema)
    }

    /// The pool's size for a database at `url`. SQLite writes one transaction at a time: with
    /// more connections, writers that find the database locked sleep in SQLite's busy handler
    /// (1, 2, 5, 10… ms) while the lock is free again, instead of queueing for the connection
    /// (bench/README, the demo). Readers queue for it too: configure more connections where long
    /// reports matter more than writes.
    fn pool_size(&self, url: &str) -> u32 {
        self.max_connections.unwrap_or_else(|| {
            if url.starts_with("sqlite:") {
                1
            } else {
                POSTGRES_CONNECTIONS
            }
        })
    }
}

/// How much of a SQLite database is read through a memory map: address space, not memory; the
/// kernel's page cache holds what is read.
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// Connects to a service's database and brings its schema up to date.
pub async fn connect<M: MigratorTrait>(config: &DatabaseConfig, schema: &str) -> Result<DatabaseConnection, DbErr> {
    let url = config.url_for(schema);
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(config.pool_size(&url))
        .min_connections(config.min_connections)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
        // A ping before every checkout costs each query a second round trip; only a connection
        // idle long enough to have been dropped by the server or a proxy is checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        create_sqlite_directory(&url)?;
        // WAL lets readers run beside the one writer; the busy timeout makes writers queue
        // instead of failing at once. Pages are read through a memory map, shared by every
        // connection, instead of copied into each connection's small page cache (2 MB by
        // default): rollups upserted at random members missed that cache on nearly every page.
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
        });
    } else {
        // The schema need not exist yet: PostgreSQL resolves the search path at each statement.
        options.set_schema_search_path(schema.to_owned());
    }
    let db = super::with_retries(|| Database::connect(options.clone())).await?;
    migrate::<M>(&db, schema).await?;
    Ok(db)
}

/// Brings `schema` up to date in one transaction that holds the schema's migration lock (a
/// PostgreSQL advisory lock; SQLite's write lock): any number of replicas and `quanyu migrate`
/// Jobs may start at once on a fresh database, exactly one applies each step, and the others
/// find it applied.
async fn migrate<M: MigratorTrait>(db: &DatabaseConnection, schema: &str) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    super::lock_keys(&txn, &[format!("quanyu-migrate:{schema}")]).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
    }
    M::up(&txn, None).await?;
    txn.commit().await
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

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so that a writer waits its turn under the busy timeout instead of failing when
/// another commits between its first read and its first write; PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    let options = sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..sea_orm::TransactionOptions::default()
    };
    let _waiting = Waiting::start();
    sea_orm::TransactionTrait::begin_with_options(db, options).await
}

/// Begins a transaction that only reads.
pub async fn begin_read(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    let _waiting = Waiting::start();
    sea_orm::TransactionTrait::begin(db).await
}

/// Begins a transaction that only reads, and reads one snapshot throughout: REPEATABLE READ on
/// PostgreSQL (whose default reads each statement's own); SQLite's read transactions do already.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return begin_read(db).await;
    }
    let _waiting = Waiting::start();
    let snapshot = Some(sea_orm::IsolationLevel::RepeatableRead);
    sea_orm::TransactionTrait::begin_with_config(db, snapshot, Some(sea_orm::AccessMode::ReadOnly)).await
}

/// Counts a use case waiting for a connection (`db_pool_waiting`) until dropped, however its
/// wait ends (a connection, an error, a cancelled call).
struct Waiting;

impl Waiting {
    fn start() -> Self {
        metrics::gauge!("db_pool_waiting").increment(1.0);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("db_pool_waiting").decrement(1.0);
    }
}

/// Sets the gauges of `service`'s pool: connections in use and idle, and the most it may open.
pub fn record_pool_gauges(db: &DatabaseConnection, service: &'static str) {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        _ => return,
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_max_connections", "service" => service).set(f64::from(max));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_pools_hold_one_connection_and_postgresql_pools_ten_unless_configured() {
        let unset = DatabaseConfig::default();
        assert_eq!(unset.pool_size("sqlite://data/x.db"), 1);
        assert_eq!(unset.pool_size("postgres://db/quanyu"), POSTGRES_CONNECTIONS);
        let configured = DatabaseConfig {
            max_connections: Some(4),
            ..DatabaseConfig::default()
        };
        assert_eq!(configured.pool_size("sqlite://data/x.db"), 4);
        assert_eq!(configured.pool_size("postgres://db/quanyu"), 4);
    }
}
