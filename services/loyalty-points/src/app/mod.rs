//! The use cases of loyalty-points, one database transaction each (retried whole when it loses a
//! race): they load and lock what they change through `store`, apply `domain` rules, and write
//! the change with the events that describe it in the same transaction.

pub mod accounts;
pub mod identity;
pub mod merge;
pub mod programs;
pub mod sales;
pub mod sales_writer;
pub mod sweep;

use chrono::{DateTime, Utc};
use quanyu_outbox::NewEvent;
use quanyu_runtime::db::Writes;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::domain::account::Account;
use crate::domain::program::Programs;
use crate::{events, store};

/// Adds the writes that save `accounts` and returns the events that describe what changed.
fn save_accounts(
    writes: &mut Writes,
    tenant_id: &str,
    programs: &Programs,
    accounts: &mut [&mut Account],
    at: DateTime<Utc>,
) -> Vec<NewEvent> {
    let appended = store::accounts::save(writes, tenant_id, programs, accounts, at);
    events::of_accounts(tenant_id, programs, accounts, &appended)
}

/// Saves `accounts` with their events, when nothing else is written beside them.
async fn save_accounts_alone(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    accounts: &mut [&mut Account],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut writes = Writes::new(txn);
    let events = save_accounts(&mut writes, tenant_id, programs, accounts, at);
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(txn).await
}
