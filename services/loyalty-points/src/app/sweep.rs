//! The background pass that expires due lots and releases holds past their TTL on accounts
//! nobody touched, so that balances, events and analytics do not wait for the member's next
//! visit.

use std::collections::HashMap;
use std::time::Duration;

use quanyu_runtime::clock::Clock;
use quanyu_runtime::db::{begin_write, with_retries};
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

use super::save_accounts_alone;
use crate::domain::program::Programs;
use crate::error::PointsError;
use crate::store;

const ACCOUNTS_PER_PASS: u64 = 500;

/// Settles one account: whatever is due by now expires or ends.
async fn settle(
    db: &DatabaseConnection,
    programs: &Programs,
    (tenant_id, program_id, member_id): &(String, String, String),
    clock: &Clock,
) -> Result<(), PointsError> {
    let at = clock.now();
    let txn = begin_write(db).await?;
    let id = (program_id.clone(), member_id.clone());
    let mut loaded = store::accounts::load(&txn, tenant_id, programs, [id], at).await?;
    let mut accounts: Vec<_> = loaded.values_mut().collect();
    let tally = save_accounts_alone(&txn, tenant_id, programs, &mut accounts, at).await?;
    txn.commit().await?;
    tally.count();
    Ok(())
}

/// One pass; returns how many accounts it settled.
pub async fn sweep(db: &DatabaseConnection, clock: &Clock) -> Result<usize, PointsError> {
    let due = store::accounts::due(db, clock.now(), ACCOUNTS_PER_PASS).await?;
    let mut programs_of: HashMap<String, Programs> = HashMap::new();
    for account in &due {
        if !programs_of.contains_key(&account.0) {
            programs_of.insert(account.0.clone(), super::programs::load(db, &account.0).await?);
        }
        let programs = &programs_of[&account.0];
        with_retries(|| settle(db, programs, account, clock)).await?;
    }
    Ok(due.len())
}

/// Sweeps every `every` until shutdown.
pub fn spawn_sweeper(db: DatabaseConnection, clock: Clock, every: Duration, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => return,
            }
            match sweep(&db, &clock).await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "expired lots and lapsed holds settled"),
                Err(error) => tracing::warn!(%error, "points sweep failed; will retry"),
            }
        }
    });
}
