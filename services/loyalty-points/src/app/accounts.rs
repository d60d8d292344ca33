//! Single-account use cases: balance, redemption, holds and adjustments, each one transaction on
//! the account's locked row.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{Writes, begin_write};
use quanyu_runtime::error::FieldViolation;
use quanyu_runtime::idempotency::{self, NewRecord, Replay, RequestDigest};
use sea_orm::DatabaseConnection;

use super::{save_accounts, save_accounts_alone};
use crate::convert::balance_to_pb;
use crate::domain::expiry::expires_at;
use crate::domain::ledger::Credit;
use crate::domain::ledger::HoldEnd;
use crate::domain::program::ProgramRules;
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
    /// Points another service grants, under its reference.
    Grant {
        points: i64,
        reference: String,
    },
    /// Points granted under `reference` taken back.
    RevokeGrant {
        points: i64,
        reference: String,
    },
    /// Nothing: read the balance (still expiring what is due).
    Read,
}

/// The outcome of a change: the balance after it, and the hold it placed.
pub struct Changed {
    pub balance: pb::Balance,
    pub hold: Option<(u64, DateTime<Utc>)>,
}

/// A change a till may send again: its idempotency scope and key, the digest of its request,
/// and how its response is encoded, to be recorded with it.
pub struct Keyed<'a> {
    pub scope: &'static str,
    pub key: &'a str,
    pub request: RequestDigest,
    pub respond: &'a (dyn Fn(&Changed) -> Vec<u8> + Send + Sync),
    /// The name of a field of the request, by number, for a conflict's refusal.
    pub field_name: fn(u32) -> String,
}

/// What a change came to.
pub enum Outcome {
    Done(Changed),
    /// The same change was made before under its key: its recorded response.
    Replayed(Vec<u8>),
}

/// Runs one change on one account in one transaction, idempotently when keyed: the same key
/// with the same request is answered with the response recorded the first time, with another
/// request is refused naming the field that differs.
pub async fn change(
    db: &DatabaseConnection,
    key: &AccountKey<'_>,
    change: Change,
    keyed: Option<&Keyed<'_>>,
    at: DateTime<Utc>,
) -> Result<Outcome, PointsError> {
    let tenant_id = key.actor.tenant_id.as_ref();
    if matches!(change, Change::Read) && !store::accounts::exists(db, tenant_id, &key.program.id, key.member_id).await?
    {
        // A member with no points yet: nothing to settle, and reading creates no account.
        return Ok(Outcome::Done(Changed {
            balance: pb::Balance {
                member_id: key.member_id.to_owned(),
                program_id: key.program.id.clone(),
                tier: key.program.ladder.tier_for(0).code.clone(),
                ..pb::Balance::default()
            },
            hold: None,
        }));
    }
    let txn = begin_write(db).await?;
    let programs = HashMap::from([(key.program.id.clone(), (key.program.clone(), key.rules_version))]);
    let id = (key.program.id.clone(), key.member_id.to_owned());
    let mut account = store::accounts::load(&txn, tenant_id, &programs, [id.clone()], at)
        .await?
        .remove(&id)
        .ok_or_else(|| PointsError::ProgramNotFound(key.program.id.clone()))?;
    if let Some(keyed) = keyed {
        let recorded = idempotency::find(&txn, tenant_id, keyed.scope, vec![keyed.key.to_owned()], false).await?;
        match idempotency::replay(recorded.get(keyed.key), &keyed.request) {
            Replay::First => {}
            Replay::Same(response) => {
                // What fell due meanwhile is still settled.
                let tally = save_accounts_alone(&txn, tenant_id, &programs, &mut [&mut account], at).await?;
                txn.commit().await?;
                tally.count();
                return Ok(Outcome::Replayed(response.to_vec()));
            }
            Replay::Conflict { field } => {
                let field = FieldViolation::new(
                    (keyed.field_name)(field),
                    "differs from the request first sent with this idempotency key",
                );
                return Err(PointsError::IdempotencyConflict {
                    key: keyed.key.to_owned(),
                    field,
                });
            }
        }
    }
    let reference = keyed.map_or_else(String::new, |keyed| format!("{}:{}", keyed.scope, keyed.key));
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
            let hold = account.ledger.release_hold(hold_id, at)?;
            account.ended_holds.push((hold, HoldEnd::Released));
        }
        Change::Adjust { points, reason } if points > 0 => {
            let expiry = expires_at(key.program.expiry, at, key.program.offset);
            account.ledger.credit(Credit::Adjust, points, at, expiry, &reason)?;
        }
        Change::Adjust { points, reason } => account.ledger.debit_adjustment(-points, at, &reason)?,
        Change::Grant { points, reference } => {
            let expiry = expires_at(key.program.expiry, at, key.program.offset);
            account.ledger.credit(Credit::Grant, points, at, expiry, &reference)?;
        }
        Change::RevokeGrant { points, reference } => account.ledger.reverse(points, at, &reference)?,
        Change::Read => {}
    }
    let mut writes = Writes::new(&txn);
    let (events, tally) = save_accounts(&mut writes, tenant_id, &programs, &mut [&mut account], at);
    let balance = balance_to_pb(&account);
    let changed = Changed { balance, hold };
    if let Some(keyed) = keyed {
        let record = NewRecord {
            scope: keyed.scope.to_owned(),
            key: keyed.key.to_owned(),
            request: keyed.request.clone(),
            response: (keyed.respond)(&changed),
        };
        idempotency::record(&mut writes, tenant_id, vec![record], at);
    }
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(&txn).await?;
    txn.commit().await?;
    tally.count();
    Ok(Outcome::Done(changed))
}
