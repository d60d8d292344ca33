//! Referral campaigns: members' invite codes, who invited whom, each inviter's ladder, and when
//! each member enrolled (an invitee must have enrolled after the code they bring was made).

use quanyu_runtime::db::schema::{index, table};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, timestamp_with_time_zone, timestamp_with_time_zone_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000005_create_referral_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("member_id"),
            string("code"),
            timestamp_with_time_zone("created_at"),
        ];
        manager
            .create_table(table("invite_codes", codes, &["tenant_id", "campaign_id", "member_id"]))
            .await?;
        let mut by_code = index("invite_codes_by_code", "invite_codes", &["tenant_id", "code"]);
        manager.create_index(by_code.unique().to_owned()).await?;
        // One row per invitee per campaign; `qualified_order` names the purchase that qualified
        // it (`<source>/<transaction id>`), empty while it has not.
        let referrals = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("invitee_id"),
            string("inviter_id"),
            string("state"),
            timestamp_with_time_zone("enrolled_at"),
            timestamp_with_time_zone("attributed_at"),
            string("qualified_order").default("").to_owned(),
            big_integer("qualified_amount_minor").default(0).to_owned(),
            big_integer("refunded_minor").default(0).to_owned(),
            timestamp_with_time_zone_null("qualified_at"),
        ];
        manager
            .create_table(table(
                "referrals",
                referrals,
                &["tenant_id", "campaign_id", "invitee_id"],
            ))
            .await?;
        let by_inviter = index(
            "referrals_by_inviter",
            "referrals",
            &["tenant_id", "campaign_id", "inviter_id", "invitee_id"],
        );
        manager.create_index(by_inviter).await?;
        let by_order = index("referrals_by_order", "referrals", &["tenant_id", "qualified_order"]);
        manager.create_index(by_order).await?;
        let tasks = vec![
            string("tenant_id"),
            string("campaign_id"),
            string("inviter_id"),
            big_integer("invitees"),
            big_integer("qualified"),
            big_integer("rungs_paid"),
        ];
        manager
            .create_table(table(
                "referral_tasks",
                tasks,
                &["tenant_id", "campaign_id", "inviter_id"],
            ))
            .await?;
        let enrolments = vec![
            string("tenant_id"),
            string("member_id"),
            timestamp_with_time_zone("enrolled_at"),
        ];
        manager
            .create_table(table("member_enrolments", enrolments, &["tenant_id", "member_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["member_enrolments", "referral_tasks", "referrals", "invite_codes"] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
