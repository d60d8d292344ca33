//! What campaigns and coupon templates achieved, from campaign's event stream.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000004_create_campaign_results"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per campaign (`scope` campaign) and per coupon template (`scope` template).
        let counters = [
            "members_reached",
            "rewards",
            "points_granted",
            "coupons_issued",
            "coupons_redeemed",
            "coupons_restored",
        ];
        let mut results = Table::create();
        results
            .table("campaign_results")
            .if_not_exists()
            .col(string("tenant_id"))
            .col(string("scope"))
            .col(string("result_id"));
        for counter in counters {
            results.col(big_integer(counter).default(0));
        }
        manager
            .create_table(
                results
                    .primary_key(Index::create().col("tenant_id").col("scope").col("result_id"))
                    .to_owned(),
            )
            .await?;
        // The members each result reached, to count each once (a merge folds them).
        manager
            .create_table(
                Table::create()
                    .table("campaign_reach")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("scope"))
                    .col(string("result_id"))
                    .col(string("member_id"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("scope")
                            .col("result_id")
                            .col("member_id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("campaign_reach_by_member")
                    .table("campaign_reach")
                    .col("tenant_id")
                    .col("member_id")
                    .to_owned(),
            )
            .await?;
        // The campaign that gave each coupon a campaign gave, for its redemptions.
        manager
            .create_table(
                Table::create()
                    .table("campaign_coupons")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("coupon_id"))
                    .col(string("campaign_id"))
                    .primary_key(Index::create().col("tenant_id").col("coupon_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["campaign_coupons", "campaign_reach", "campaign_results"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
