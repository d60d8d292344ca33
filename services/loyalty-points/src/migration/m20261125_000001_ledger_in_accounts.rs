//! Moves each account's lots and holds out of their tables into its own row (see
//! `store::ledger_state`), with the time it next needs settling for the background sweep.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::db::schema::index;
use sea_orm::{ConnectionTrait, QueryResult};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{binary_null, timestamp_with_time_zone_null};

use crate::domain::ledger::{Hold, Lot};
use crate::store::ledger_state;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000001_ledger_in_accounts"
    }
}

type AccountId = (String, String, String);

fn account_of(row: &QueryResult) -> Result<AccountId, DbErr> {
    Ok((
        row.try_get("", "tenant_id")?,
        row.try_get("", "program_id")?,
        row.try_get("", "member_id")?,
    ))
}

async fn rows(manager: &SchemaManager<'_>, table: &str, order: &str) -> Result<Vec<QueryResult>, DbErr> {
    let query = Query::select()
        .expr(Expr::cust("*"))
        .from(Alias::new(table))
        .order_by(Alias::new(order), Order::Asc)
        .to_owned();
    manager.get_connection().query_all(&query).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [binary_null("ledger"), timestamp_with_time_zone_null("next_due")] {
            manager
                .alter_table(Table::alter().table("accounts").add_column(column).to_owned())
                .await?;
        }
        manager
            .create_index(index("accounts_by_next_due", "accounts", &["next_due"]))
            .await?;
        let mut lots: BTreeMap<AccountId, Vec<Lot>> = BTreeMap::new();
        for row in rows(manager, "lots", "lot_id").await? {
            lots.entry(account_of(&row)?).or_default().push(Lot {
                id: row.try_get::<i64>("", "lot_id")?.unsigned_abs(),
                earned_at: row.try_get::<DateTime<Utc>>("", "earned_at")?,
                expires_at: row.try_get::<DateTime<Utc>>("", "expires_at")?,
                original: row.try_get("", "original")?,
                remaining: row.try_get("", "remaining")?,
                reference: row.try_get("", "reference")?,
            });
        }
        let mut holds: BTreeMap<AccountId, Vec<Hold>> = BTreeMap::new();
        for row in rows(manager, "holds", "hold_id").await? {
            holds.entry(account_of(&row)?).or_default().push(Hold {
                id: row.try_get::<i64>("", "hold_id")?.unsigned_abs(),
                amount: row.try_get("", "amount")?,
                expires_at: row.try_get::<DateTime<Utc>>("", "expires_at")?,
                reference: row.try_get("", "reference")?,
            });
        }
        let accounts: std::collections::BTreeSet<AccountId> = lots.keys().chain(holds.keys()).cloned().collect();
        for account in accounts {
            let lots = lots.remove(&account).unwrap_or_default();
            let holds = holds.remove(&account).unwrap_or_default();
            let next_due = ledger_state::next_due(&lots, &holds);
            let (tenant_id, program_id, member_id) = account;
            let update = Query::update()
                .table("accounts")
                // No hold had ended then: the same bytes as the encoding of that day.
                .value("ledger", ledger_state::encode(&lots, &holds, &[]))
                .value("next_due", next_due)
                .and_where(Expr::col("tenant_id").eq(tenant_id))
                .and_where(Expr::col("program_id").eq(program_id))
                .and_where(Expr::col("member_id").eq(member_id))
                .to_owned();
            manager.get_connection().execute(&update).await?;
        }
        for table in ["lots", "holds"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "m20261125_000001_ledger_in_accounts cannot be undone: restore a backup taken before it".into(),
        ))
    }
}
