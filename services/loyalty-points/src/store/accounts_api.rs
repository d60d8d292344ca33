//! Single-account use cases: balance, history, redemption, holds and adjustments.

use quanyu_runtime::clock::to_proto;
use std::collections::HashMap;

use chrono::DateTime;
use prost::Message;
use quanyu_proto::points::v1::{self as pb, HoldEnd};
use quanyu_runtime::db::{Writes, begin_write};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};

use super::entity::{accounts, entries, operations};
use super::{Account, AccountKey, Result, load_accounts, recorded, save_accounts, save_accounts_alone};
use crate::domain::expiry::expires_at;
use crate::domain::ledger::Credit;
use crate::error::PointsError;

/// The balance as the contract shows it.
pub fn balance_of(account: &Account) -> pb::Balance {
    let mut expiring: Vec<pb::ExpiringPoints> = Vec::new();
    let mut lots: Vec<_> = account.ledger.lots().iter().filter(|lot| lot.remaining > 0).collect();
    lots.sort_by_key(|lot| lot.expires_at);
    for lot in lots {
        match expiring.last_mut() {
            Some(last) if last.expires_at == Some(to_proto(lot.expires_at)) => last.points += lot.remaining,
            _ => expiring.push(pb::ExpiringPoints {
                expires_at: Some(to_proto(lot.expires_at)),
                points: lot.remaining,
            }),
        }
    }
    pb::Balance {
        member_id: account.member_id.clone(),
        program_id: account.program_id.clone(),
        balance: account.ledger.balance(),
        available: account.ledger.available(),
        held: account.ledger.held(),
        growth_this_period: account.tier.period_growth,
        growth_lifetime: account.tier.lifetime_growth,
        tier: account.tier.tier.clone(),
        expiring,
    }
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
    pub hold: Option<(u64, DateTime<chrono::Utc>)>,
}

/// Runs one change on one account in one transaction, idempotently when a key is given: the
/// same key with the same request answers with the balance now, with another request is refused.
pub async fn change(
    db: &DatabaseConnection,
    key: &AccountKey<'_>,
    change: Change,
    idempotency: Option<(&str, &str, Vec<u8>)>,
    at: DateTime<chrono::Utc>,
) -> Result<Changed> {
    let tenant_id = key.actor.tenant_id.as_ref();
    if matches!(change, Change::Read) && !has_account(db, tenant_id, key).await? {
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
    let mut account = load_accounts(&txn, tenant_id, &programs, [id.clone()], at)
        .await?
        .remove(&id)
        .ok_or_else(|| PointsError::ProgramNotFound(key.program.id.clone()))?;
    if let Some((source, idempotency_key, request)) = &idempotency {
        let ids = [(source.to_string(), idempotency_key.to_string())];
        if let Some(first) = recorded(&txn, tenant_id, &ids, false).await?.into_values().next() {
            if first.request != *request {
                return Err(PointsError::IdempotencyConflict((*idempotency_key).to_owned()));
            }
            save_accounts_alone(&txn, tenant_id, &programs, [&mut account], at).await?;
            txn.commit().await?;
            return Ok(Changed {
                balance: balance_of(&account),
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
    let events = save_accounts(&mut writes, tenant_id, &programs, [&mut account], at);
    let balance = balance_of(&account);
    if let Some((source, idempotency_key, request)) = idempotency {
        let row = operations::Model {
            tenant_id: tenant_id.to_owned(),
            source: source.to_owned(),
            key: idempotency_key.to_owned(),
            request,
            result: balance.encode_to_vec(),
            member_id: Some(key.member_id.to_owned()),
            program_id: Some(key.program.id.clone()),
            eligible_minor: 0,
            points_earned: 0,
            refunded_minor: 0,
            points_reversed: 0,
            growth: 0,
            recorded_at: at,
        };
        writes.push(operations::Entity::insert(operations::ActiveModel::from(row)).into_query());
    }
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(&txn).await?;
    txn.commit().await?;
    Ok(Changed { balance, hold })
}

async fn has_account(db: &DatabaseConnection, tenant_id: &str, key: &AccountKey<'_>) -> Result<bool> {
    let id = (tenant_id.to_owned(), key.program.id.clone(), key.member_id.to_owned());
    let found = accounts::Entity::find_by_id(id)
        .select_only()
        .column(accounts::Column::MemberId)
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// An account's entries, newest first.
pub async fn list_entries(
    db: &DatabaseConnection,
    tenant_id: &str,
    program_id: &str,
    member_id: &str,
    kind: Option<&str>,
    before: Option<String>,
    limit: u64,
) -> Result<Vec<entries::Model>> {
    let mut query = entries::Entity::find()
        .filter(entries::Column::TenantId.eq(tenant_id))
        .filter(entries::Column::ProgramId.eq(program_id))
        .filter(entries::Column::MemberId.eq(member_id));
    if let Some(kind) = kind {
        query = query.filter(entries::Column::Kind.eq(kind));
    }
    if let Some(before) = before {
        query = query.filter(entries::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(entries::Column::Id).limit(limit).all(db).await?)
}
