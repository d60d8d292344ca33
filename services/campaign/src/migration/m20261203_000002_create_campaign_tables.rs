//! Campaigns with their budget, the rewards they gave, and the points grants on their way to
//! loyalty-points.

use quanyu_runtime::db::schema::{compare_keys_as_bytes, index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, binary, integer, string, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000002_create_campaign_tables"
    }
}

/// A table: its name, its columns, its key, and its text columns compared as bytes.
type TableSpec = (
    &'static str,
    Vec<ColumnDef>,
    &'static [&'static str],
    &'static [&'static str],
);

fn tables() -> Vec<TableSpec> {
    vec![
        (
            // `definition` is the campaign as created (encoded `Campaign`); `spent` counts against
            // `budget_limit` (0: no budget) under the row's lock.
            "campaigns",
            vec![
                string("tenant_id"),
                string("campaign_id"),
                binary("definition"),
                string("kind"),
                string("state"),
                timestamp_with_time_zone("starts_at"),
                timestamp_with_time_zone("ends_at"),
                big_integer("budget_limit"),
                big_integer("spent"),
                timestamp_with_time_zone("created_at"),
                // When the sweep saw its window open (and published CampaignStarted).
                timestamp_with_time_zone_null("started_at"),
            ],
            &["tenant_id", "campaign_id"],
            &["tenant_id", "campaign_id", "kind"],
        ),
        (
            // One row per member per occurrence (`enrolment`, `tier:gold`, `sale:<source>/<id>`):
            // its key is what makes a reward once. `day` is the member day a purchase fell on.
            "rewards",
            vec![
                string("tenant_id"),
                string("campaign_id"),
                string("occurrence"),
                string("member_id"),
                string("day").default("").to_owned(),
                string("outcome"),
                big_integer("points"),
                big_integer("revoked").default(0).to_owned(),
                string("coupon_id").default("").to_owned(),
                big_integer("sale_amount_minor").default(0).to_owned(),
                timestamp_with_time_zone("created_at"),
            ],
            &["tenant_id", "campaign_id", "occurrence", "member_id"],
            &["tenant_id", "campaign_id", "occurrence", "member_id", "day"],
        ),
        (
            // Grants (positive) and revocations (negative) for loyalty-points, sent oldest first
            // until applied, each under its own idempotency key.
            "point_grants",
            vec![
                string("tenant_id"),
                string("grant_key"),
                string("campaign_id"),
                string("member_id"),
                string("program_id"),
                big_integer("points"),
                string("reference"),
                string("state"),
                integer("attempts").default(0).to_owned(),
                string("error").default("").to_owned(),
                timestamp_with_time_zone("created_at"),
            ],
            &["tenant_id", "grant_key"],
            &["tenant_id", "grant_key", "campaign_id"],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns, key, text_keys) in tables() {
            manager.create_table(table(name, columns, key)).await?;
            compare_keys_as_bytes(manager, name, text_keys).await?;
        }
        manager
            .create_index(index("campaigns_by_kind", "campaigns", &["tenant_id", "kind"]))
            .await?;
        manager
            .create_index(index(
                "campaigns_to_start",
                "campaigns",
                &["state", "started_at", "starts_at"],
            ))
            .await?;
        manager
            .create_index(index(
                "rewards_by_member_day",
                "rewards",
                &["tenant_id", "campaign_id", "member_id", "day"],
            ))
            .await?;
        manager
            .create_index(index("point_grants_by_state", "point_grants", &["state", "created_at"]))
            .await?;
        manager
            .create_index(index(
                "point_grants_by_campaign",
                "point_grants",
                &["tenant_id", "campaign_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _, _) in tables().into_iter().rev() {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
