//! Sales and refunds as recorded: what a sale's refunds need, by the sale's key (source and
//! transaction id), kept for good. The answer a replay gets is an idempotency record beside it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::db::{Writes, find_by_keys};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait};

use super::entity::sales;
use crate::domain::sale::SaleRecord;

/// The records of the sales under `keys` (source, transaction id), one probe per key; locked
/// until the transaction ends when `lock` (a refund changes its sale's refunded share). Rows are
/// locked in key order: one order for every transaction.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    lock: bool,
) -> Result<Vec<(String, String, SaleRecord)>, DbErr> {
    let mut by_source: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, key) in keys {
        by_source.entry(source.as_str()).or_default().push(key.clone());
    }
    let mut found = Vec::with_capacity(keys.len());
    for (source, mut keys) in by_source {
        keys.sort_unstable();
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

/// Adds the inserts of newly recorded sales to a transaction's writes.
pub fn insert(writes: &mut Writes, tenant_id: &str, recorded: Vec<(String, String, SaleRecord)>, at: DateTime<Utc>) {
    let rows = recorded
        .into_iter()
        .map(|(source, key, record)| sales::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            source: Set(source),
            key: Set(key),
            is_refund: Set(record.is_refund),
            member_id: Set(record.member_id),
            program_id: Set(record.program_id),
            eligible_minor: Set(record.eligible_minor),
            points_earned: Set(record.points_earned),
            growth: Set(record.growth),
            refunded_minor: Set(record.refunded_minor),
            points_reversed: Set(record.points_reversed),
            recorded_at: Set(at),
        })
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
