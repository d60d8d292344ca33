//! The loyalty-points schema's migrations. Files are never edited once merged.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_points_tables;
mod m20261125_000001_ledger_in_accounts;
mod m20261126_000001_accounts_fillfactor;
mod m20261127_000001_entries_keyed_by_account;
mod m20261128_000001_keys_in_code_point_order;
mod m20261129_000001_create_batch_answers;
mod m20261203_000002_sales_and_idempotency;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_points_tables::Migration),
            Box::new(quanyu_outbox::migration::CreateOutbox),
            Box::new(quanyu_outbox::migration::CreateCursors),
            Box::new(quanyu_outbox::migration::CreatePendingEvents),
            Box::new(m20261125_000001_ledger_in_accounts::Migration),
            Box::new(m20261126_000001_accounts_fillfactor::Migration),
            Box::new(m20261127_000001_entries_keyed_by_account::Migration),
            Box::new(m20261128_000001_keys_in_code_point_order::Migration),
            Box::new(m20261129_000001_create_batch_answers::Migration),
            Box::new(quanyu_runtime::idempotency::CreateIdempotency),
            Box::new(m20261203_000002_sales_and_idempotency::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "loyalty_points_migrations".into_iden()
    }
}
