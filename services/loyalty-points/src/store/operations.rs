//! Idempotent writes recorded by key, for good: a sale with what its refunds need, or a
//! redemption, hold or adjustment, each with the request to tell a replay from a conflict and the
//! answer to replay.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use quanyu_runtime::db::{Writes, find_columns_by_keys};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, FromQueryResult, Iterable, QueryFilter, QueryTrait};

use super::entity::operations;
use crate::domain::sale::SaleRecord;

type Result<T> = std::result::Result<T, DbErr>;

/// An idempotent write's identity within its tenant.
pub trait Keyed {
    fn source(&self) -> &str;
    fn key(&self) -> &str;
}

impl Keyed for operations::Model {
    fn source(&self) -> &str {
        &self.source
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// What a replay needs of a recorded operation: the request to compare, the result to answer.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Recording {
    pub source: String,
    pub key: String,
    pub request: Vec<u8>,
    pub result: Vec<u8>,
}

impl Keyed for Recording {
    fn source(&self) -> &str {
        &self.source
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// Operations recorded, by source and key: looked up by borrowed keys, since a 1,000-sale replay
/// asks several times per sale.
#[derive(Debug, Clone)]
pub struct Recorded<T = operations::Model> {
    by_source: HashMap<String, HashMap<String, T>>,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Self {
            by_source: HashMap::new(),
        }
    }
}

impl<T: Keyed> Recorded<T> {
    pub fn get(&self, source: &str, key: &str) -> Option<&T> {
        self.by_source.get(source)?.get(key)
    }

    pub fn get_mut(&mut self, source: &str, key: &str) -> Option<&mut T> {
        self.by_source.get_mut(source)?.get_mut(key)
    }

    pub fn remove(&mut self, source: &str, key: &str) -> Option<T> {
        self.by_source.get_mut(source)?.remove(key)
    }

    pub fn contains(&self, source: &str, key: &str) -> bool {
        self.get(source, key).is_some()
    }

    /// Adds an operation under its own source and key, replacing what was there.
    pub fn insert(&mut self, operation: T) {
        // Most operations share their source with one already held: its name is not copied again.
        let by_key = match self.by_source.get_mut(operation.source()) {
            Some(by_key) => by_key,
            None => self.by_source.entry(operation.source().to_owned()).or_default(),
        };
        by_key.insert(operation.key().to_owned(), operation);
    }

    pub fn extend(&mut self, other: Recorded<T>) {
        for operation in other.into_values() {
            self.insert(operation);
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.by_source.values().flat_map(HashMap::values)
    }

    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.by_source.into_values().flat_map(HashMap::into_values)
    }
}

/// Operations already recorded under these keys, whole. Keys are kept for good, so what a read
/// outside a transaction finds stays true; `lock` holds the rows until the transaction ends (a
/// refund updates its original's refunded share).
pub async fn recorded<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    lock: bool,
) -> Result<Recorded> {
    let columns: Vec<operations::Column> = operations::Column::iter().collect();
    read_recorded(db, tenant_id, keys, &columns, lock).await
}

/// What a replay of these keys needs of their recorded operations (see [`recorded`]).
pub async fn recordings<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
) -> Result<Recorded<Recording>> {
    use operations::Column;
    let columns = [Column::Source, Column::Key, Column::Request, Column::Result];
    read_recorded(db, tenant_id, keys, &columns, false).await
}

/// The `columns` of operations recorded under these keys, one query per source.
async fn read_recorded<T, C>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    columns: &[operations::Column],
    lock: bool,
) -> Result<Recorded<T>>
where
    T: Keyed + FromQueryResult,
    C: sea_orm::ConnectionTrait,
{
    let mut by_source: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, key) in keys {
        by_source.entry(source.as_str()).or_default().push(key.clone());
    }
    let mut found = Recorded::default();
    for (source, mut keys) in by_source {
        // Rows are locked in the order of the keys: one order for every transaction.
        keys.sort_unstable();
        let scope = [
            (operations::Column::TenantId, tenant_id.into()),
            (operations::Column::Source, source.into()),
        ];
        let key = operations::Column::Key;
        for row in find_columns_by_keys::<operations::Entity, T, _>(db, &scope, key, keys, columns, lock).await? {
            found.insert(row);
        }
    }
    Ok(found)
}

/// The row of an operation recorded under `(source, key)`: `request` and `result` encoded, the
/// sale's record (empty for other operations).
#[allow(clippy::too_many_arguments)]
pub fn row(
    tenant_id: &str,
    source: &str,
    key: &str,
    request: Vec<u8>,
    result: Vec<u8>,
    record: &SaleRecord,
    at: DateTime<Utc>,
) -> operations::Model {
    operations::Model {
        tenant_id: tenant_id.to_owned(),
        source: source.to_owned(),
        key: key.to_owned(),
        request,
        result,
        member_id: record.member_id.clone(),
        program_id: record.program_id.clone(),
        eligible_minor: record.eligible_minor,
        points_earned: record.points_earned,
        refunded_minor: record.refunded_minor,
        points_reversed: record.points_reversed,
        growth: record.growth,
        recorded_at: at,
    }
}

/// What a recorded sale keeps for its refunds; `is_refund` is told by its request.
pub fn sale_record(row: &operations::Model, is_refund: bool) -> SaleRecord {
    SaleRecord {
        is_refund,
        member_id: row.member_id.clone(),
        program_id: row.program_id.clone(),
        eligible_minor: row.eligible_minor,
        points_earned: row.points_earned,
        growth: row.growth,
        refunded_minor: row.refunded_minor,
        points_reversed: row.points_reversed,
    }
}

/// Adds the inserts of newly recorded operations to a transaction's writes.
pub fn insert(writes: &mut Writes, rows: Vec<operations::Model>) {
    writes.insert_many(rows.into_iter().map(operations::ActiveModel::from).collect(), None);
}

/// Adds the update of the refunded share of a sale recorded before this transaction.
pub fn update_refunded(writes: &mut Writes, tenant_id: &str, source: &str, key: &str, record: &SaleRecord) {
    let refunded_share = operations::Entity::update_many()
        .col_expr(operations::Column::RefundedMinor, Expr::value(record.refunded_minor))
        .col_expr(operations::Column::PointsReversed, Expr::value(record.points_reversed))
        .filter(operations::Column::TenantId.eq(tenant_id))
        .filter(operations::Column::Source.eq(source))
        .filter(operations::Column::Key.eq(key));
    writes.push(refunded_share.into_query());
}
