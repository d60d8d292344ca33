//! The log of consumers whose facts changed: each replica reads it to keep its in-memory copy of
//! the facts current, whichever replica applied the change.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_pk_auto, string};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000007_create_consumer_changes"
    }
}

const TABLE: &str = "consumer_changes";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .if_not_exists()
                    .col(big_pk_auto("seq"))
                    .col(string("tenant_id"))
                    .col(string("consumer_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TABLE).if_exists().to_owned())
            .await
    }
}
