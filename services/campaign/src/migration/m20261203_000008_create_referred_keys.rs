//! Keyed hashes of members' identities (never the identities), and the ones each referral
//! campaign has seen referred: a person erased or merged and enrolled again is known by them.

use quanyu_runtime::db::schema::{index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000008_create_referred_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let keys = vec![string("tenant_id"), string("identity_key"), string("member_id")];
        manager
            .create_table(table(
                "member_identity_keys",
                keys,
                &["tenant_id", "identity_key", "member_id"],
            ))
            .await?;
        let by_member = index(
            "member_identity_keys_by_member",
            "member_identity_keys",
            &["tenant_id", "member_id"],
        );
        manager.create_index(by_member).await?;
        let referred = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("identity_key"),
            string("invitee_id"),
        ];
        manager
            .create_table(table(
                "referred_keys",
                referred,
                &["tenant_id", "campaign_id", "identity_key"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["referred_keys", "member_identity_keys"] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
