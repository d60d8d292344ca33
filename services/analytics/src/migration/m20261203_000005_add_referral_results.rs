//! Referral campaigns' results: the members each brought, and those qualified now.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000005_add_referral_results"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for counter in ["invitees", "invitees_qualified"] {
            let mut column = big_integer(counter).default(0).to_owned();
            manager
                .alter_table(
                    Table::alter()
                        .table("campaign_results")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for counter in ["invitees_qualified", "invitees"] {
            manager
                .alter_table(Table::alter().table("campaign_results").drop_column(counter).to_owned())
                .await?;
        }
        Ok(())
    }
}
