//! Coupon drops: how far each has listed its audience, so that a drop stopped (paused, a
//! restart) goes on after the last member it rewarded.

use quanyu_runtime::db::schema::table;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, string, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000004_create_drops"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![
            string("tenant_id"),
            string("campaign_id"),
            // The members the audience selected when the drop started.
            big_integer("audience_members"),
            big_integer("listed"),
            string("last_member_id"),
            boolean("done"),
            timestamp_with_time_zone("started_at"),
            timestamp_with_time_zone_null("finished_at"),
        ];
        manager
            .create_table(table("drops", columns, &["tenant_id", "campaign_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = Table::drop().table("drops").if_exists().to_owned();
        manager.drop_table(drop).await
    }
}
