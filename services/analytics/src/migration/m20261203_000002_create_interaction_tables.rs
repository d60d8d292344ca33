//! Consumers' interactions, and which member each identity they are keyed by stands for.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string};

use super::by_day_and_place;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000002_create_interaction_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The member each identity interactions may be keyed by is linked to, from
        // member-identity's events; an identity not here is a consumer of its own.
        manager
            .create_table(
                Table::create()
                    .table("identity_links")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("identity_key"))
                    .col(string("member_id"))
                    .primary_key(Index::create().col("tenant_id").col("identity_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("identity_links_by_member")
                    .table("identity_links")
                    .col("tenant_id")
                    .col("member_id")
                    .to_owned(),
            )
            .await?;
        // What each consumer did per day and place: a member by member id, anyone else by the
        // identity they were seen with (`identity:<key>`).
        manager
            .create_table(
                by_day_and_place(Table::create().table("interaction_days"), &["consumer_id"])
                    .col(big_integer("exposures"))
                    .col(big_integer("engagements"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("interaction_days_by_day")
                    .table("interaction_days")
                    .col("tenant_id")
                    .col("day")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["interaction_days", "identity_links"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
