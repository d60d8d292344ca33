//! Coupon templates with their stock, coupons, each member's count per template, partners' code
//! pools, redemptions by order, and merged members.

use quanyu_runtime::db::schema::{compare_keys_as_bytes, index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, binary, boolean, string, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_create_coupon_tables"
    }
}

/// Each table, its columns and its key.
fn tables() -> Vec<(&'static str, Vec<ColumnDef>, &'static [&'static str])> {
    vec![
        (
            // `definition` is the template as created (encoded `CouponTemplate`); `issued` counts
            // against `stock` (0: no limit) under the row's lock.
            "coupon_templates",
            vec![
                string("tenant_id"),
                string("template_id"),
                binary("definition"),
                big_integer("stock"),
                big_integer("issued"),
                big_integer("per_member_limit"),
                timestamp_with_time_zone("created_at"),
            ],
            &["tenant_id", "template_id"],
        ),
        (
            "coupons",
            vec![
                string("tenant_id"),
                string("coupon_id"),
                string("code"),
                string("template_id"),
                string("member_id"),
                string("origin"),
                string("state"),
                timestamp_with_time_zone("issued_at"),
                timestamp_with_time_zone("valid_from"),
                timestamp_with_time_zone("valid_until"),
                string("order_source").default("").to_owned(),
                string("order_id").default("").to_owned(),
                timestamp_with_time_zone_null("redeemed_at"),
                string("void_reason").default("").to_owned(),
            ],
            &["tenant_id", "coupon_id"],
        ),
        (
            "coupon_holdings",
            vec![
                string("tenant_id"),
                string("template_id"),
                string("member_id"),
                big_integer("issued"),
            ],
            &["tenant_id", "template_id", "member_id"],
        ),
        (
            // A partner's codes in the order imported: the Nth coupon issued takes position N.
            "code_pool",
            vec![
                string("tenant_id"),
                string("template_id"),
                big_integer("position"),
                string("code"),
            ],
            &["tenant_id", "template_id", "position"],
        ),
        (
            // `amount_minor` is what the buyer paid: refunds that reach it restore the coupons.
            "redemptions",
            vec![
                string("tenant_id"),
                string("order_source"),
                string("order_id"),
                big_integer("amount_minor"),
                string("currency"),
                big_integer("refunded_minor").default(0).to_owned(),
                boolean("restored").default(false).to_owned(),
                timestamp_with_time_zone("redeemed_at"),
            ],
            &["tenant_id", "order_source", "order_id"],
        ),
        (
            "merged_members",
            vec![string("tenant_id"), string("member_id"), string("survivor_id")],
            &["tenant_id", "member_id"],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns, key) in tables() {
            manager.create_table(table(name, columns, key)).await?;
        }
        let text_keys: [(&str, &[&str]); 6] = [
            ("coupon_templates", &["tenant_id", "template_id"]),
            (
                "coupons",
                &[
                    "tenant_id",
                    "coupon_id",
                    "code",
                    "member_id",
                    "order_source",
                    "order_id",
                ],
            ),
            ("coupon_holdings", &["tenant_id", "template_id", "member_id"]),
            ("code_pool", &["tenant_id", "template_id", "code"]),
            ("redemptions", &["tenant_id", "order_source", "order_id"]),
            ("merged_members", &["tenant_id", "member_id"]),
        ];
        for (name, columns) in text_keys {
            compare_keys_as_bytes(manager, name, columns).await?;
        }
        manager
            .create_index(
                index("coupons_by_code", "coupons", &["tenant_id", "code"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "coupons_by_member",
                "coupons",
                &["tenant_id", "member_id", "coupon_id"],
            ))
            .await?;
        manager
            .create_index(index(
                "coupons_by_order",
                "coupons",
                &["tenant_id", "order_source", "order_id"],
            ))
            .await?;
        manager
            .create_index(
                index("code_pool_by_code", "code_pool", &["tenant_id", "code"])
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _) in tables().into_iter().rev() {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
