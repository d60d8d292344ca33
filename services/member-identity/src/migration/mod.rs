//! The member-identity schema's migrations. Files are never edited once merged.

use sea_orm_migration::prelude::*;

mod m20261123_000001_create_identity_tables;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_identity_tables::Migration),
            Box::new(quanyu_outbox::migration::CreateOutbox),
            Box::new(quanyu_outbox::migration::CreatePendingEvents),
        ]
    }

    fn migration_table_name() -> DynIden {
        "member_identity_migrations".into_iden()
    }
}
