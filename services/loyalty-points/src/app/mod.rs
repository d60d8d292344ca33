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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quanyu_outbox::NewEvent;
use quanyu_runtime::db::Writes;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::domain::account::Account;
use crate::domain::ledger::Entry;
use crate::domain::program::Programs;
use crate::{events, store};

/// Adds the writes that save `accounts`; returns the events that describe what changed, and the
/// points their entries moved, to count once the transaction commits.
fn save_accounts(
    writes: &mut Writes,
    tenant_id: &str,
    programs: &Programs,
    accounts: &mut [&mut Account],
    at: DateTime<Utc>,
) -> (Vec<NewEvent>, LedgerTally) {
    let appended = store::accounts::save(writes, tenant_id, programs, accounts, at);
    let tally = LedgerTally::of(&appended);
    (events::of_accounts(tenant_id, programs, accounts, &appended), tally)
}

/// Saves `accounts` with their events, when nothing else is written beside them.
async fn save_accounts_alone(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    accounts: &mut [&mut Account],
    at: DateTime<Utc>,
) -> Result<LedgerTally, DbErr> {
    let mut writes = Writes::new(txn);
    let (events, tally) = save_accounts(&mut writes, tenant_id, programs, accounts, at);
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(txn).await?;
    Ok(tally)
}

/// The points a use case's ledger entries moved, by kind: counted in
/// `points_ledger_points_total{kind}` (`earn`, `redeem`, `expire`, `grant`, …) by [`Self::count`]
/// after the transaction commits, so that a retried or failed attempt counts nothing.
#[must_use = "count it once the transaction has committed"]
pub struct LedgerTally(BTreeMap<String, u64>);

impl LedgerTally {
    fn of(appended: &[Vec<Entry>]) -> Self {
        let mut points = BTreeMap::new();
        for entry in appended.iter().flatten() {
            let kind = store::accounts::entry_kind(entry.kind).to_lowercase();
            *points.entry(kind).or_default() += entry.amount.unsigned_abs();
        }
        Self(points)
    }

    pub fn count(self) {
        for (kind, points) in self.0 {
            metrics::counter!("points_ledger_points_total", "kind" => kind).increment(points);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::EntryKind;

    #[test]
    fn a_tally_adds_the_points_each_kind_of_entry_moved() {
        let entry = |kind, amount| Entry {
            kind,
            amount,
            balance_after: 0,
            at: chrono::Utc::now(),
            reference: String::new(),
        };
        let tally = LedgerTally::of(&[
            vec![entry(EntryKind::Earn, 100), entry(EntryKind::Redeem, -30)],
            vec![entry(EntryKind::Earn, 20), entry(EntryKind::Expire, -5)],
        ]);
        let counted: Vec<(&str, u64)> = tally.0.iter().map(|(kind, points)| (kind.as_str(), *points)).collect();
        assert_eq!(counted, [("earn", 120), ("expire", 5), ("redeem", 30)]);
    }
}
