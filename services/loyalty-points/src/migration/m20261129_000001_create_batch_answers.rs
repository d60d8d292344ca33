//! The answers of whole batches of sales, by the digest of the batch (`store::batch_answers`).

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{binary, string, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000001_create_batch_answers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("batch_answers")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(binary("digest"))
                    .col(binary("answer"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .primary_key(Index::create().col("tenant_id").col("digest"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            // An answer is tens of kilobytes of protobuf, read whole: compressing it on every
            // write and inflating it on every read would cost more than the space it saves.
            db.execute_unprepared("ALTER TABLE batch_answers ALTER COLUMN answer SET STORAGE EXTERNAL")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("batch_answers").if_exists().to_owned())
            .await
    }
}
