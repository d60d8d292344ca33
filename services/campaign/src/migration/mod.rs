//! The campaign schema's migrations. Files are never edited once merged.

use sea_orm_migration::prelude::*;

mod m20261203_000001_create_coupon_tables;
mod m20261203_000002_create_campaign_tables;
mod m20261203_000003_create_member_birthdays;
mod m20261203_000004_create_drops;
mod m20261203_000005_create_referral_tables;
mod m20261203_000006_create_member_purchases;
mod m20261203_000007_create_assist_tables;
mod m20261203_000008_create_referred_keys;
mod m20261204_000009_index_members_of_merges;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(quanyu_outbox::migration::CreateOutbox),
            Box::new(quanyu_outbox::migration::CreateCursors),
            Box::new(quanyu_outbox::migration::CreatePendingEvents),
            Box::new(quanyu_runtime::idempotency::CreateIdempotency),
            Box::new(m20261203_000001_create_coupon_tables::Migration),
            Box::new(m20261203_000002_create_campaign_tables::Migration),
            Box::new(m20261203_000003_create_member_birthdays::Migration),
            Box::new(m20261203_000004_create_drops::Migration),
            Box::new(m20261203_000005_create_referral_tables::Migration),
            Box::new(m20261203_000006_create_member_purchases::Migration),
            Box::new(m20261203_000007_create_assist_tables::Migration),
            Box::new(m20261203_000008_create_referred_keys::Migration),
            Box::new(m20261204_000009_index_members_of_merges::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "campaign_migrations".into_iden()
    }
}
