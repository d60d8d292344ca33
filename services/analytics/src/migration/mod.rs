//! The analytics schema's migrations. Files are never edited once merged.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, string};

mod m20261203_000001_create_fact_tables;
mod m20261203_000002_create_interaction_tables;
mod m20261203_000003_create_member_profiles;
mod m20261203_000004_create_campaign_results;
mod m20261203_000005_add_referral_results;
mod m20261204_000006_index_members_by_survivor;
mod m20261204_000007_create_consumer_changes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(quanyu_outbox::migration::CreateCursors),
            Box::new(m20261203_000001_create_fact_tables::Migration),
            Box::new(quanyu_runtime::idempotency::CreateIdempotency),
            Box::new(m20261203_000002_create_interaction_tables::Migration),
            Box::new(m20261203_000003_create_member_profiles::Migration),
            Box::new(m20261203_000004_create_campaign_results::Migration),
            Box::new(m20261203_000005_add_referral_results::Migration),
            Box::new(m20261204_000006_index_members_by_survivor::Migration),
            Box::new(m20261204_000007_create_consumer_changes::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "analytics_migrations".into_iden()
    }
}

/// A rollup's key: the tenant, `keys`, the day and the place (brand, channel, store).
pub(crate) fn by_day_and_place<'a>(
    table: &'a mut TableCreateStatement,
    keys: &[&'static str],
) -> &'a mut TableCreateStatement {
    let mut primary_key = Index::create();
    table.if_not_exists().col(string("tenant_id"));
    primary_key.col("tenant_id");
    for key in keys.iter().copied().chain(["day", "brand_id"]) {
        table.col(string(key));
        primary_key.col(key);
    }
    table.col(integer("channel")).col(string("store_id"));
    table.primary_key(primary_key.col("channel").col("store_id"))
}
