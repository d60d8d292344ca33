//! A merge finds the members merged into its loser before by index: without one it read every
//! member of the tenant, and merges grew slower as members grew.

use quanyu_runtime::db::schema::index;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000006_index_members_by_survivor"
    }
}

const NAME: &str = "members_by_survivor";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Only merged members: the others stay out of the index, and queries that count the
        // members not merged keep the indexes they had.
        let mut by_survivor = index(NAME, "members", &["tenant_id", "merged_into"]);
        by_survivor.and_where(Expr::col("merged_into").is_not_null());
        manager.create_index(by_survivor).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table("members").if_exists().to_owned())
            .await
    }
}
