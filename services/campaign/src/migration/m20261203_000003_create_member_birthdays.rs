//! Each member's birthday as month and day (never the year): what birthday gifts need, and no
//! more. An erasure deletes it.

use quanyu_runtime::db::schema::{compare_keys_as_bytes, index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000003_create_member_birthdays"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![string("tenant_id"), string("member_id"), string("month_day")];
        let key = ["tenant_id", "member_id"];
        manager.create_table(table("member_birthdays", columns, &key)).await?;
        compare_keys_as_bytes(manager, "member_birthdays", &["tenant_id", "member_id", "month_day"]).await?;
        let by_day = index(
            "member_birthdays_by_day",
            "member_birthdays",
            &["tenant_id", "month_day", "member_id"],
        );
        manager.create_index(by_day).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = Table::drop().table("member_birthdays").if_exists().to_owned();
        manager.drop_table(drop).await
    }
}
