//! Migrations that a service adds to its own migrator: [`CreateOutbox`] then
//! [`CreatePendingEvents`] in a producer, [`CreateCursors`] in a consumer.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, string, timestamp_with_time_zone};

/// A table of stored events, numbered (`outbox_events`) or waiting to be (`outbox_pending`).
fn event_table(name: &'static str, key: &mut ColumnDef) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(key)
        .col(string("event_id"))
        .col(string("tenant_id"))
        .col(string("aggregate_type"))
        .col(string("aggregate_id"))
        .col(string("event_type"))
        .col(timestamp_with_time_zone("occurred_at"))
        .col(binary("payload"))
        .to_owned()
}

/// The outbox of a producing service: events, the position sequence and registered consumers.
pub struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20261124_000001_create_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(event_table("outbox_events", big_integer("position").primary_key()))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_events_by_tenant")
                    .table("outbox_events")
                    .col("tenant_id")
                    .col("position")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbox_sequence")
                    .if_not_exists()
                    .col(big_integer("id").primary_key())
                    .col(big_integer("last_position"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("outbox_sequence")
                    .columns(["id", "last_position"])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbox_consumers")
                    .if_not_exists()
                    .col(string("name").primary_key())
                    .col(big_integer("position"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox_consumers", "outbox_sequence", "outbox_events"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Where `append` writes: events wait here, unnumbered, until the sequencer gives them positions
/// (see the crate documentation). Added after [`CreateOutbox`], in the same migrators.
pub struct CreatePendingEvents;

impl MigrationName for CreatePendingEvents {
    fn name(&self) -> &str {
        "m20261125_000001_create_outbox_pending"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePendingEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(event_table(
                "outbox_pending",
                big_integer("id").primary_key().auto_increment(),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("outbox_pending").if_exists().to_owned())
            .await
    }
}

/// The cursors of a consuming service.
pub struct CreateCursors;

impl MigrationName for CreateCursors {
    fn name(&self) -> &str {
        "m20261124_000002_create_outbox_cursors"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCursors {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox_cursors")
                    .if_not_exists()
                    .col(string("consumer").primary_key())
                    .col(big_integer("position"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("outbox_cursors").if_exists().to_owned())
            .await
    }
}
