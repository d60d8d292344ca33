//! Consumers' interactions per day and place, and the member each identity is linked to.

use std::collections::HashMap;

use quanyu_runtime::db::lock_keys;
use sea_orm::{DatabaseTransaction, DbErr, Value};

use super::{Rollup, add_rows, day_and_place, execute, fold, values_by_key};
use crate::domain::Place;
use crate::domain::interaction::anonymous_consumer;

/// The rollup of what each consumer did per day and place: its table, key and counters.
const INTERACTION_DAYS: Rollup<1> = ("interaction_days", ["consumer_id"], &["exposures", "engagements"]);

/// What one consumer did on a day at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionDay {
    pub consumer_id: String,
    pub day: String,
    pub place: Place,
    pub exposures: i64,
    pub engagements: i64,
}

/// Makes transactions that record or link the consumers of these identities take turns, so that
/// an interaction is never recorded for an identity's own consumer after its link folded that
/// consumer into a member.
pub async fn lock_identities(txn: &DatabaseTransaction, tenant_id: &str, keys: &[String]) -> Result<(), DbErr> {
    let locks: Vec<String> = keys
        .iter()
        .map(|key| format!("analytics-identity:{tenant_id}:{key}"))
        .collect();
    lock_keys(txn, &locks).await
}

/// The members the identities of `keys` are linked to, by key; an identity linked to none is
/// left out.
pub async fn members_of(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    keys: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    values_by_key(
        txn,
        ("identity_links", "identity_key", "member_id", ""),
        tenant_id,
        &keys,
    )
    .await
}

/// Links the identities of `keys` to `member_id`: what their consumers did becomes the member's.
/// Takes the identities' locks first, as recording an interaction does.
pub async fn link(txn: &DatabaseTransaction, tenant_id: &str, keys: &[String], member_id: &str) -> Result<(), DbErr> {
    lock_identities(txn, tenant_id, keys).await?;
    let sql = "INSERT INTO identity_links (tenant_id, identity_key, member_id) VALUES (?, ?, ?) \
               ON CONFLICT (tenant_id, identity_key) DO UPDATE SET member_id = excluded.member_id";
    for key in keys {
        let values = vec![tenant_id.into(), key.as_str().into(), member_id.into()];
        execute(txn, sql, values).await?;
        fold(txn, INTERACTION_DAYS, tenant_id, &anonymous_consumer(key), member_id).await?;
    }
    Ok(())
}

/// The identities of `keys` no longer stand for `member_id`: later interactions by them are
/// their own consumers'. What they did while linked stays the member's.
pub async fn unlink(txn: &DatabaseTransaction, tenant_id: &str, keys: &[String], member_id: &str) -> Result<(), DbErr> {
    lock_identities(txn, tenant_id, keys).await?;
    let sql = "DELETE FROM identity_links WHERE tenant_id = ? AND identity_key = ? AND member_id = ?";
    for key in keys {
        let values = vec![tenant_id.into(), key.as_str().into(), member_id.into()];
        execute(txn, sql, values).await?;
    }
    Ok(())
}

/// Folds `loser` into `survivor`: its identities and what it did become the survivor's.
pub async fn merge(txn: &DatabaseTransaction, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    let sql = "UPDATE identity_links SET member_id = ? WHERE tenant_id = ? AND member_id = ?";
    let values = vec![survivor.into(), tenant_id.into(), loser.into()];
    execute(txn, sql, values).await?;
    fold(txn, INTERACTION_DAYS, tenant_id, loser, survivor).await
}

/// Drops what ties an erased member to their identities; the counts of what they did stay.
pub async fn erase(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<(), DbErr> {
    let sql = "DELETE FROM identity_links WHERE tenant_id = ? AND member_id = ?";
    execute(txn, sql, vec![tenant_id.into(), member_id.into()]).await?;
    Ok(())
}

/// Adds consumers' days to the rollup (a batch's days, each consumer, day and place once).
pub async fn add_interactions(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    days: &[InteractionDay],
) -> Result<(), DbErr> {
    let rows: Vec<Vec<Value>> = days
        .iter()
        .map(|day| {
            let mut row = vec![tenant_id.into(), day.consumer_id.as_str().into()];
            row.extend(day_and_place(&day.day, &day.place));
            row.extend([day.exposures.into(), day.engagements.into()]);
            row
        })
        .collect();
    add_rows(txn, INTERACTION_DAYS, &rows).await
}
