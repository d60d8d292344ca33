//! Each member's first purchase as campaign saw it: a referral attributed after its invitee's
//! purchase arrived (the identity and points streams are read apart) is qualified by it.

use quanyu_runtime::db::schema::table;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000006_create_member_purchases"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![
            string("tenant_id"),
            string("member_id"),
            // `<source>/<transaction id>`
            string("purchase"),
            big_integer("amount_minor"),
            timestamp_with_time_zone("purchased_at"),
        ];
        manager
            .create_table(table("member_purchases", columns, &["tenant_id", "member_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = Table::drop().table("member_purchases").if_exists().to_owned();
        manager.drop_table(drop).await
    }
}
