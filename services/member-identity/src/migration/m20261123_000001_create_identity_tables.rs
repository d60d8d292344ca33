use quanyu_runtime::db::schema::{index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, string, string_null, text, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_create_identity_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            table(
                "tenants",
                vec![
                    string("id"),
                    string("display_name"),
                    timestamp_with_time_zone("created_at"),
                ],
                &["id"],
            ),
            table(
                "brands",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("display_name"),
                    timestamp_with_time_zone("created_at"),
                ],
                &["tenant_id", "id"],
            ),
            table(
                "members",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("status"),
                    string_null("merged_into"),
                    string("name"),
                    string("gender"),
                    string_null("birthday"),
                    string("province"),
                    string("city"),
                    string("life_stage"),
                    text("attributes"),
                    string("channel"),
                    string("brand_id"),
                    string("store_id"),
                    string("guide_id"),
                    string("referral_code"),
                    timestamp_with_time_zone("enrolled_at"),
                    timestamp_with_time_zone("updated_at"),
                ],
                &["tenant_id", "id"],
            ),
            table(
                "identities",
                vec![
                    string("tenant_id"),
                    string("kind"),
                    string("namespace"),
                    string("value"),
                    string("member_id"),
                    string_null("derived_from"),
                    timestamp_with_time_zone("linked_at"),
                ],
                &["tenant_id", "kind", "namespace", "value"],
            ),
            table(
                "tag_definitions",
                vec![
                    string("tenant_id"),
                    string("name"),
                    string("kind"),
                    text("allowed_values"),
                    text("description"),
                    timestamp_with_time_zone("created_at"),
                ],
                &["tenant_id", "name"],
            ),
            table(
                "member_tags",
                vec![
                    string("tenant_id"),
                    string("member_id"),
                    string("tag_name"),
                    string("value"),
                    timestamp_with_time_zone("tagged_at"),
                ],
                &["tenant_id", "member_id", "tag_name"],
            ),
            table(
                "consents",
                vec![
                    string("tenant_id"),
                    string("member_id"),
                    string("channel"),
                    boolean("granted"),
                    timestamp_with_time_zone("decided_at"),
                    string("source"),
                ],
                &["tenant_id", "member_id", "channel"],
            ),
            table(
                "guide_bindings",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("member_id"),
                    string("store_id"),
                    string("guide_id"),
                    string("source"),
                    timestamp_with_time_zone("bound_at"),
                    timestamp_with_time_zone_null("unbound_at"),
                ],
                &["tenant_id", "id"],
            ),
            table(
                "audit_entries",
                vec![
                    string("tenant_id"),
                    string("id"),
                    string("actor"),
                    string("action"),
                    string("member_id"),
                    text("changed"),
                    timestamp_with_time_zone("occurred_at"),
                ],
                &["tenant_id", "id"],
            ),
        ];
        for statement in tables {
            manager.create_table(statement).await?;
        }
        let indexes = [
            index("identities_by_member", "identities", &["tenant_id", "member_id"]),
            index("members_by_merged_into", "members", &["tenant_id", "merged_into"]),
            index(
                "member_tags_by_tag",
                "member_tags",
                &["tenant_id", "tag_name", "member_id"],
            ),
            index(
                "guide_bindings_by_member",
                "guide_bindings",
                &["tenant_id", "member_id"],
            ),
            index("audit_entries_by_member", "audit_entries", &["tenant_id", "member_id"]),
        ];
        for statement in indexes {
            manager.create_index(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "audit_entries",
            "guide_bindings",
            "consents",
            "member_tags",
            "tag_definitions",
            "identities",
            "members",
            "brands",
            "tenants",
        ] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
