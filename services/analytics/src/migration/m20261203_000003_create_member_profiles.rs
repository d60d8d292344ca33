//! What audience rules compare beyond purchases and interactions: profile, binding, tags, points
//! and tiers; and the audiences saved by name.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, boolean, string, string_null, text, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000003_create_member_profiles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time. City and
        // birthday are personal: an erasure clears them.
        let columns = [
            string_null("city"),
            string_null("birthday"),
            string("bound_store_id").default("").to_owned(),
            string("bound_guide_id").default("").to_owned(),
            boolean("erased").default(false).to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(Table::alter().table("members").add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("member_tags")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("member_id"))
                    .col(string("name"))
                    .col(string("value"))
                    .primary_key(Index::create().col("tenant_id").col("member_id").col("name"))
                    .to_owned(),
            )
            .await?;
        // Each loyalty account's balance and tier, as loyalty-points last announced them.
        manager
            .create_table(
                Table::create()
                    .table("member_programs")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("member_id"))
                    .col(string("program_id"))
                    .col(big_integer("balance").default(0))
                    .col(string("tier").default(""))
                    .primary_key(Index::create().col("tenant_id").col("member_id").col("program_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audiences")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("name"))
                    .col(text("rule"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant_id").col("name"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["audiences", "member_programs", "member_tags"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        for column in ["erased", "bound_guide_id", "bound_store_id", "birthday", "city"] {
            manager
                .alter_table(Table::alter().table("members").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
