//! Leaves room in the pages of `accounts` for updated rows.
//!
//! Every sale rewrites its account's row. With full pages (PostgreSQL's default) the new version
//! goes to another page and every index of the table gains an entry for it, which the index then
//! has to clean up; with room left, an update that changes no indexed column stays on its page and
//! touches no index (a heap-only tuple). Pages written before this keep their layout until rewritten.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_accounts_fillfactor"
    }
}

/// Percent of each page that inserts fill, leaving the rest for updates.
const FILLFACTOR: u32 = 70;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_fillfactor(manager, FILLFACTOR).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_fillfactor(manager, 100).await
    }
}

/// SQLite has no such setting: nothing to do there.
async fn set_fillfactor(manager: &SchemaManager<'_>, percent: u32) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("ALTER TABLE accounts SET (fillfactor = {percent})"))
            .await?;
    }
    Ok(())
}
