//! Sales and refunds as recorded, by the sale's key (source and transaction id), kept for good:
//! each row is the sale's idempotency record (`quanyu_runtime::idempotency`: the digest of the
//! sale and the answer it got) and what its refunds need. A sale's record lives in its own row
//! rather than the `idempotency` table: one row written per sale instead of two.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::db::{Writes, find_by_keys, find_columns_by_keys};
use quanyu_runtime::idempotency::{Record, RequestDigest};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryTrait,
};

use super::entity::sales;
use crate::domain::sale::SaleRecord;

/// `keys` (source, transaction id) by source, each source's in key order.
fn by_source(keys: &[(String, String)]) -> BTreeMap<&str, Vec<String>> {
    let mut by_source: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, key) in keys {
        by_source.entry(source.as_str()).or_default().push(key.clone());
    }
    for keys in by_source.values_mut() {
        keys.sort_unstable();
    }
    by_source
}

#[derive(FromQueryResult)]
struct Answer {
    source: String,
    key: String,
    request_digest: Vec<u8>,
    response: Vec<u8>,
}

/// The idempotency records of the sales under `keys`: what their replays are answered from.
pub async fn answers<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
) -> Result<Vec<(String, String, Record)>, DbErr> {
    use sales::Column;
    let columns = [Column::Source, Column::Key, Column::RequestDigest, Column::Response];
    let mut found = Vec::with_capacity(keys.len());
    for (source, keys) in by_source(keys) {
        let scope = [(Column::TenantId, tenant_id.into()), (Column::Source, source.into())];
        let rows = find_columns_by_keys::<sales::Entity, Answer, _>(db, &scope, Column::Key, keys, &columns, false);
        for row in rows.await? {
            let Some(request) = RequestDigest::from_bytes(&row.request_digest) else {
                // Taken for new: its key's insert then fails, and the sale is not applied twice.
                tracing::warn!(source = row.source, key = row.key, "a sale's digest does not decode");
                continue;
            };
            let record = Record {
                request,
                response: row.response,
            };
            found.push((row.source, row.key, record));
        }
    }
    Ok(found)
}

/// The records of the sales under `keys` (source, transaction id), one probe per key; locked
/// until the transaction ends when `lock` (a refund changes its sale's refunded share). Rows are
/// locked in key order: one order for every transaction.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    lock: bool,
) -> Result<Vec<(String, String, SaleRecord)>, DbErr> {
    let mut found = Vec::with_capacity(keys.len());
    for (source, keys) in by_source(keys) {
        let scope = [
            (sales::Column::TenantId, tenant_id.into()),
            (sales::Column::Source, source.into()),
        ];
        for row in find_by_keys::<sales::Entity, _>(db, &scope, sales::Column::Key, keys, lock).await? {
            let record = SaleRecord {
                is_refund: row.is_refund,
                member_id: row.member_id,
                program_id: row.program_id,
                eligible_minor: row.eligible_minor,
                points_earned: row.points_earned,
                growth: row.growth,
                refunded_minor: row.refunded_minor,
                points_reversed: row.points_reversed,
            };
            found.push((row.source, row.key, record));
        }
    }
    Ok(found)
}

/// A sale newly recorded: its key, its idempotency record and what its refunds need.
pub struct NewSale {
    pub source: String,
    pub key: String,
    pub answer: Record,
    pub record: SaleRecord,
}

/// Adds the inserts of newly recorded sales to a transaction's writes. A key recorded meanwhile
/// by a concurrent transaction fails the insert, and the retry answers the sale as a replay.
pub fn insert(writes: &mut Writes, tenant_id: &str, recorded: Vec<NewSale>, at: DateTime<Utc>) {
    let rows = recorded
        .into_iter()
        .map(
            |NewSale {
                 source,
                 key,
                 answer,
                 record,
             }| sales::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                source: Set(source),
                key: Set(key),
                request_digest: Set(answer.request.to_bytes()),
                response: Set(answer.response),
                is_refund: Set(record.is_refund),
                member_id: Set(record.member_id),
                program_id: Set(record.program_id),
                eligible_minor: Set(record.eligible_minor),
                points_earned: Set(record.points_earned),
                growth: Set(record.growth),
                refunded_minor: Set(record.refunded_minor),
                points_reversed: Set(record.points_reversed),
                recorded_at: Set(at),
            },
        )
        .collect();
    writes.insert_many(rows, None);
}

/// Adds the update of the refunded share of a sale recorded before this transaction.
pub fn update_refunded(writes: &mut Writes, tenant_id: &str, source: &str, key: &str, record: &SaleRecord) {
    let refunded_share = sales::Entity::update_many()
        .col_expr(sales::Column::RefundedMinor, Expr::value(record.refunded_minor))
        .col_expr(sales::Column::PointsReversed, Expr::value(record.points_reversed))
        .filter(sales::Column::TenantId.eq(tenant_id))
        .filter(sales::Column::Source.eq(source))
        .filter(sales::Column::Key.eq(key));
    writes.push(refunded_share.into_query());
}
