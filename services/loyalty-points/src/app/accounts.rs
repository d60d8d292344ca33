//! Single-account use cases: balance, redemption, holds and adjustments, each one transaction on
//! the account's locked row.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{Writes, begin_write};
use sea_orm::DatabaseConnection;

use super::{save_accounts, save_accounts_alone};
use crate::convert::balance_to_pb;
use crate::domain::account::HoldEnd;
use crate::domain::expiry::expires_at;
use crate::domain::ledger::Credit;
use crate::domain::program::ProgramRules;
use crate::domain::sale::SaleRecord;
use crate::error::PointsError;
use crate::store;

/// The account a change runs against.
pub struct AccountKey<'a> {
    pub actor: &'a TenantActor,
    pub program: &'a ProgramRules,
    pub rules_version: u32,
    pub member_id: &'a str,
}

/// What a single-account change does, given the account locked for it.
pub enum Change {
    Redeem {
        points: i64,
    },
    PlaceHold {
        points: i64,
    },
    ConfirmHold {
        hold_id: u64,
    },
    ReleaseHold {
        hold_id: u64,
    },
    Adjust {
        points: i64,
        reason: String,
    },
    /// Nothing: read the balance (still expiring what is due).
    Read,
}

/// The outcome of a change: the balance after it, and the hold it placed.
pub struct Changed {
    pub balance: pb::Balance,
    pub hold: Option<(u64, DateTime<Utc>)>,
}

/// Runs one change on one account in one transaction, idempotently when a key is given: the
/// same key with the same request answers with the balance now, with another request is refused.
pub async fn change(
    db: &DatabaseConnection,
    key: &AccountKey<'_>,
    change: Change,
    idempotency: Option<(&str, &str, Vec<u8>)>,
    at: DateTime<Utc>,
) -> Result<Changed, PointsError> {
    let tenant_id = key.actor.tenant_id.as_ref();
    if matches!(change, Change::Read) && !store::accounts::exists(db, tenant_id, &key.program.id, key.member_id).await?
    {
        // A member with no points yet: nothing to settle, and reading creates no account.
        return Ok(Changed {
            balance: pb::Balance {
                member_id: key.member_id.to_owned(),
                program_id: key.program.id.clone(),
                tier: key.program.ladder.tier_for(0).code.clone(),
                ..pb::Balance::default()
            },
            hold: None,
        });
    }
    let txn = begin_write(db).await?;
    let programs = HashMap::from([(key.program.id.clone(), (key.program.clone(), key.rules_version))]);
    let id = (key.program.id.clone(), key.member_id.to_owned());
    let mut account = store::accounts::load(&txn, tenant_id, &programs, [id.clone()], at)
        .await?
        .remove(&id)
        .ok_or_else(|| PointsError::ProgramNotFound(key.program.id.clone()))?;
    if let Some((source, idempotency_key, request)) = &idempotency {
        let ids = [(source.to_string(), idempotency_key.to_string())];
        let recorded = store::operations::recorded(&txn, tenant_id, &ids, false).await?;
        if let Some(first) = recorded.into_values().next() {
            if first.request != *request {
                return Err(PointsError::IdempotencyConflict((*idempotency_key).to_owned()));
            }
            save_accounts_alone(&txn, tenant_id, &programs, &mut [&mut account], at).await?;
            txn.commit().await?;
            return Ok(Changed {
                balance: balance_to_pb(&account),
                hold: None,
            });
        }
    }
    let reference = idempotency
        .as_ref()
        .map_or_else(String::new, |(source, id, _)| format!("{source}:{id}"));
    let mut hold = None;
    match change {
        Change::Redeem { points } => account.ledger.redeem(points, at, &reference)?,
        Change::PlaceHold { points } => {
            let until = at + key.program.hold_ttl;
            hold = Some((account.ledger.place_hold(points, until, &reference)?, until));
        }
        Change::ConfirmHold { hold_id } => {
            let hold = account.ledger.holds().iter().find(|hold| hold.id == hold_id).cloned();
            account.ledger.confirm_hold(hold_id, at)?;
            account.ended_holds.extend(hold.map(|hold| (hold, HoldEnd::Confirmed)));
        }
        Change::ReleaseHold { hold_id } => {
            let hold = account.ledger.release_hold(hold_id)?;
            account.ended_holds.push((hold, HoldEnd::Released));
        }
        Change::Adjust { points, reason } if points > 0 => {
            let expiry = expires_at(key.program.expiry, at, key.program.offset);
            account.ledger.credit(Credit::Adjust, points, at, expiry, &reason)?;
        }
        Change::Adjust { points, reason } => account.ledger.debit_adjustment(-points, at, &reason)?,
        Change::Read => {}
    }
    let mut writes = Writes::new(&txn);
    let events = save_accounts(&mut writes, tenant_id, &programs, &mut [&mut account], at);
    let balance = balance_to_pb(&account);
    if let Some((source, idempotency_key, request)) = idempotency {
        let record = SaleRecord {
            member_id: Some(key.member_id.to_owned()),
            program_id: Some(key.program.id.clone()),
            ..SaleRecord::default()
        };
        let row = store::operations::row(
            tenant_id,
            source,
            idempotency_key,
            request,
            balance.encode_to_vec(),
            &record,
            at,
        );
        store::operations::insert(&mut writes, vec![row]);
    }
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(&txn).await?;
    txn.commit().await?;
    Ok(Changed { balance, hold })
}
