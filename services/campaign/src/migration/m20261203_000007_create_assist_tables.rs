//! Assist tasks (助力): each member's task per campaign, and who helped it.

use quanyu_runtime::db::schema::{index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, timestamp_with_time_zone, timestamp_with_time_zone_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000007_create_assist_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tasks = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("member_id"),
            big_integer("assists"),
            timestamp_with_time_zone("started_at"),
            timestamp_with_time_zone("expires_at"),
            timestamp_with_time_zone_null("completed_at"),
        ];
        manager
            .create_table(table("assist_tasks", tasks, &["tenant_id", "campaign_id", "member_id"]))
            .await?;
        // `helper` is `member:<id>` or `device:<hash>`: one row per helper per task.
        let assists = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("member_id"),
            string("helper"),
            timestamp_with_time_zone("helped_at"),
        ];
        manager
            .create_table(table(
                "assists",
                assists,
                &["tenant_id", "campaign_id", "member_id", "helper"],
            ))
            .await?;
        let by_helper = index("assists_by_helper", "assists", &["tenant_id", "campaign_id", "helper"]);
        manager.create_index(by_helper).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["assists", "assist_tasks"] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
