//! The background pass that expires due lots and releases holds past their TTL on accounts
//! nobody touched, so that balances, events and analytics do not wait for the member's next
//! visit.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use quanyu_runtime::clock::Clock;
use quanyu_runtime::db::begin_write;
use quanyu_runtime::db::with_retries;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::accounts;
use super::sales::Programs;
use super::{Result, load_accounts, program_rules, save_accounts_alone};

const ACCOUNTS_PER_PASS: u64 = 500;

type AccountId = (String, String, String);

async fn due_accounts(db: &DatabaseConnection, at: DateTime<Utc>) -> Result<BTreeSet<AccountId>> {
    let due: Vec<AccountId> = accounts::Entity::find()
        .select_only()
        .columns([
            accounts::Column::TenantId,
            accounts::Column::ProgramId,
            accounts::Column::MemberId,
        ])
        .filter(accounts::Column::NextDue.lte(at))
        // Most overdue first; the order also keeps the plan on the next_due index whatever the
        // planner guesses of how many are due.
        .order_by_asc(accounts::Column::NextDue)
        .limit(ACCOUNTS_PER_PASS)
        .into_tuple()
        .all(db)
        .await?;
    Ok(due.into_iter().collect())
}

async fn settle(
    db: &DatabaseConnection,
    programs: &Programs,
    (tenant_id, program_id, member_id): &AccountId,
    clock: &Clock,
) -> Result<()> {
    let at = clock.now();
    let txn = begin_write(db).await?;
    let id = (program_id.clone(), member_id.clone());
    let mut loaded = load_accounts(&txn, tenant_id, programs, [id], at).await?;
    save_accounts_alone(&txn, tenant_id, programs, loaded.values_mut(), at).await?;
    txn.commit().await?;
    Ok(())
}

/// One pass; returns how many accounts it settled.
pub async fn sweep(db: &DatabaseConnection, clock: &Clock) -> Result<usize> {
    let due = due_accounts(db, clock.now()).await?;
    let mut programs_of: HashMap<String, Programs> = HashMap::new();
    for account in &due {
        if !programs_of.contains_key(&account.0) {
            programs_of.insert(account.0.clone(), program_rules(db, &account.0).await?);
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
