use quanyu_runtime::db::schema::{index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, integer, string, string_null, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_create_points_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            table(
                "programs",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("brand_id"),
                    integer("rules_version"),
                    binary("definition"),
                    timestamp_with_time_zone("updated_at"),
                ],
                &["tenant_id", "id"],
            ),
            table(
                "accounts",
                vec![
                    string("tenant_id"),
                    string("program_id"),
                    string("member_id"),
                    big_integer("balance"),
                    big_integer("growth_period"),
                    big_integer("growth_lifetime"),
                    integer("growth_year"),
                    string("tier"),
                    big_integer("next_id"),
                    timestamp_with_time_zone("updated_at"),
                ],
                &["tenant_id", "program_id", "member_id"],
            ),
            table(
                "lots",
                vec![
                    string("tenant_id"),
                    string("program_id"),
                    string("member_id"),
                    big_integer("lot_id"),
                    timestamp_with_time_zone("earned_at"),
                    timestamp_with_time_zone("expires_at"),
                    big_integer("original"),
                    big_integer("remaining"),
                    string("reference"),
                ],
                &["tenant_id", "program_id", "member_id", "lot_id"],
            ),
            table(
                "holds",
                vec![
                    string("tenant_id"),
                    string("program_id"),
                    string("member_id"),
                    big_integer("hold_id"),
                    big_integer("amount"),
                    timestamp_with_time_zone("expires_at"),
                    string("reference"),
                ],
                &["tenant_id", "program_id", "member_id", "hold_id"],
            ),
            table(
                "entries",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("program_id"),
                    string("member_id"),
                    string("kind"),
                    big_integer("points"),
                    big_integer("balance_after"),
                    timestamp_with_time_zone("at"),
                    string("reference"),
                    integer("rules_version"),
                ],
                &["tenant_id", "id"],
            ),
            table(
                "operations",
                vec![
                    string("tenant_id"),
                    string("source"),
                    string("key"),
                    binary("request"),
                    binary("result"),
                    string_null("member_id"),
                    string_null("program_id"),
                    big_integer("eligible_minor"),
                    big_integer("points_earned"),
                    big_integer("refunded_minor"),
                    big_integer("points_reversed"),
                    big_integer("growth"),
                    timestamp_with_time_zone("recorded_at"),
                ],
                &["tenant_id", "source", "key"],
            ),
            table(
                "member_aliases",
                vec![
                    string("tenant_id"),
                    string("member_id"),
                    string("survivor_id"),
                    timestamp_with_time_zone("merged_at"),
                ],
                &["tenant_id", "member_id"],
            ),
        ];
        for statement in tables {
            manager.create_table(statement).await?;
        }
        let by_account = ["tenant_id", "program_id", "member_id", "id"];
        manager
            .create_index(index("entries_by_account", "entries", &by_account))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "member_aliases",
            "operations",
            "entries",
            "holds",
            "lots",
            "accounts",
            "programs",
        ] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
