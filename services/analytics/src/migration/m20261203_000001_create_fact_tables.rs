//! Member facts and the daily rollups every metric is answered from.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, string_null};

use super::by_day_and_place;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_create_fact_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per member: where and when they enrolled, and whom they were merged into.
        manager
            .create_table(
                Table::create()
                    .table("members")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("member_id"))
                    .col(string("enrolled_day"))
                    .col(string("brand_id"))
                    .col(integer("channel"))
                    .col(string("store_id"))
                    .col(string_null("merged_into"))
                    .primary_key(Index::create().col("tenant_id").col("member_id"))
                    .to_owned(),
            )
            .await?;
        // Net sales and orders per day and place, split between members and everyone else.
        manager
            .create_table(
                by_day_and_place(Table::create().table("daily_sales"), &[])
                    .col(big_integer("member_sales_minor"))
                    .col(big_integer("other_sales_minor"))
                    .col(big_integer("member_orders"))
                    .col(big_integer("other_orders"))
                    .to_owned(),
            )
            .await?;
        // What each member bought per day and place: distinct-member figures count from here.
        manager
            .create_table(
                by_day_and_place(Table::create().table("member_days"), &["member_id"])
                    .col(big_integer("orders"))
                    .col(big_integer("spend_minor"))
                    .to_owned(),
            )
            .await?;
        // Net sales per day, place and line (category and SKU), for share of sales by product.
        manager
            .create_table(
                by_day_and_place(Table::create().table("daily_lines"), &["category", "sku"])
                    .col(big_integer("member_sales_minor"))
                    .col(big_integer("other_sales_minor"))
                    .to_owned(),
            )
            .await?;
        // The lines of each sale, so that a refund takes back from them.
        manager
            .create_table(
                Table::create()
                    .table("sale_lines")
                    .if_not_exists()
                    .col(string("tenant_id"))
                    .col(string("source"))
                    .col(string("transaction_id"))
                    .col(integer("line"))
                    .col(string("category"))
                    .col(string("sku"))
                    .col(big_integer("amount_minor"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("source")
                            .col("transaction_id")
                            .col("line"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("members_by_enrolment")
                    .table("members")
                    .col("tenant_id")
                    .col("enrolled_day")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("member_days_by_day")
                    .table("member_days")
                    .col("tenant_id")
                    .col("day")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["sale_lines", "daily_lines", "member_days", "daily_sales", "members"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
