//! Keyed writes keep a digest of each request and the response it got
//! (`quanyu_runtime::idempotency`), not the request: sales in a `sales` table of their own, with
//! what their refunds need; redemptions, holds and adjustments in the shared `idempotency` table.
//! `operations` (requests kept whole, buyers' identities with them, redemptions under
//! pseudo-sources beside sales) and `batch_answers` (now idempotency records of scope
//! `sales-batch`) are dropped.
//!
//! Undone, `operations` comes back with every sale's record and answer, but not the requests: a
//! sale sent again after the downgrade is refused as different, and redemptions answer with the
//! balance then. Kept batch answers are not moved either way (a replay is then answered sale by
//! sale).

use prost::Message;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::db::schema::{compare_keys_as_bytes, table};
use quanyu_runtime::idempotency::RequestDigest;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, Statement, TransactionTrait};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, boolean, string, string_null, timestamp_with_time_zone};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000002_sales_and_idempotency"
    }
}

/// The scopes of the single-account writes, which `operations` kept under pseudo-sources.
const ACCOUNT_SCOPES: [&str; 3] = ["redeem", "hold", "adjust"];

/// Rows moved per transaction (and per statement: 14 parameters a row stays under SQLite's
/// limit of 32,766).
const PAGE: u64 = 1_000;

#[derive(Debug, FromQueryResult)]
struct Operation {
    tenant_id: String,
    source: String,
    key: String,
    request: Vec<u8>,
    result: Vec<u8>,
    member_id: Option<String>,
    program_id: Option<String>,
    eligible_minor: i64,
    points_earned: i64,
    refunded_minor: i64,
    points_reversed: i64,
    growth: i64,
    recorded_at: chrono::DateTime<chrono::Utc>,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![
            string("tenant_id"),
            string("source"),
            string("key"),
            binary("request_digest"),
            binary("response"),
            boolean("is_refund"),
            string_null("member_id"),
            string_null("program_id"),
            big_integer("eligible_minor"),
            big_integer("points_earned"),
            big_integer("growth"),
            big_integer("refunded_minor"),
            big_integer("points_reversed"),
            timestamp_with_time_zone("recorded_at"),
        ];
        let keys = ["tenant_id", "source", "key"];
        manager.create_table(table("sales", columns, &keys)).await?;
        compare_keys_as_bytes(manager, "sales", &keys).await?;
        let db = manager.get_connection();
        let mut after: Option<(String, String, String)> = None;
        loop {
            let txn = db.begin().await?;
            let page = operations_after(&txn, after.as_ref()).await?;
            let Some(last) = page.last() else {
                txn.commit().await?;
                break;
            };
            after = Some((last.tenant_id.clone(), last.source.clone(), last.key.clone()));
            move_page(&txn, page).await?;
            txn.commit().await?;
        }
        for name in ["operations", "batch_answers"] {
            manager
                .drop_table(Table::drop().table(name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![
            string("tenant_id"),
            string("source"),
            string("key"),
            binary("request"),
            binary("result"),
            string_null("member_id"),
            string_null("program_id"),
            big_integer("eligible_minor"),
            big_integer("points_earned"),
            big_integer("refunded_minor"),
            big_integer("points_reversed"),
            big_integer("growth"),
            timestamp_with_time_zone("recorded_at"),
        ];
        let keys = ["tenant_id", "source", "key"];
        manager.create_table(table("operations", columns, &keys)).await?;
        compare_keys_as_bytes(manager, "operations", &keys).await?;
        let answers = vec![
            string("tenant_id"),
            binary("digest"),
            binary("answer"),
            timestamp_with_time_zone("recorded_at"),
        ];
        manager
            .create_table(table("batch_answers", answers, &["tenant_id", "digest"]))
            .await?;
        let db = manager.get_connection();
        // A request that names only its kind (a refund is told by it), as the old build reads it.
        let bytes = |hex: &str| match db.get_database_backend() {
            DbBackend::Postgres => format!("'\\x{hex}'::bytea"),
            _ => format!("X'{hex}'"),
        };
        let (sale, refund, empty) = (bytes("1801"), bytes("1802"), bytes(""));
        // The sales, with their answers; then the single-account writes.
        db.execute_unprepared(&format!(
            "INSERT INTO operations (tenant_id, source, key, request, result, member_id, program_id, \
             eligible_minor, points_earned, refunded_minor, points_reversed, growth, recorded_at) \
             SELECT tenant_id, source, key, CASE WHEN is_refund THEN {refund} ELSE {sale} END, response, \
             member_id, program_id, eligible_minor, points_earned, refunded_minor, points_reversed, growth, \
             recorded_at FROM sales"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO operations (tenant_id, source, key, request, result, eligible_minor, points_earned, \
             refunded_minor, points_reversed, growth, recorded_at) \
             SELECT tenant_id, scope, key, {empty}, response, 0, 0, 0, 0, 0, recorded_at FROM idempotency \
             WHERE scope IN ('redeem', 'hold', 'adjust')"
        ))
        .await?;
        db.execute_unprepared("DELETE FROM idempotency").await?;
        manager
            .drop_table(Table::drop().table("sales").if_exists().to_owned())
            .await
    }
}

/// The next page of `operations` in key order.
async fn operations_after(
    txn: &DatabaseTransaction,
    after: Option<&(String, String, String)>,
) -> Result<Vec<Operation>, DbErr> {
    let backend = txn.get_database_backend();
    let placeholders = match backend {
        DbBackend::Postgres => "($1, $2, $3)",
        _ => "(?, ?, ?)",
    };
    let (filter, values): (String, Vec<sea_orm::Value>) = match after {
        Some((tenant, source, key)) => (
            format!("WHERE (tenant_id, source, key) > {placeholders}"),
            vec![tenant.as_str().into(), source.as_str().into(), key.as_str().into()],
        ),
        None => (String::new(), Vec::new()),
    };
    let sql = format!("SELECT * FROM operations {filter} ORDER BY tenant_id, source, key LIMIT {PAGE}");
    let statement = Statement::from_sql_and_values(backend, sql, values);
    Operation::find_by_statement(statement).all(txn).await
}

/// Moves one page: sales to `sales`, with their digest and answer; redemptions, holds and
/// adjustments to idempotency records of their own scope, their answer (the balance they left)
/// wrapped in their response. Rows are written with this migration's own statements, so that
/// later changes to the entities leave it as it is.
async fn move_page(txn: &DatabaseTransaction, page: Vec<Operation>) -> Result<(), DbErr> {
    let mut sales = Query::insert();
    sales.into_table("sales").columns([
        "tenant_id",
        "source",
        "key",
        "request_digest",
        "response",
        "is_refund",
        "member_id",
        "program_id",
        "eligible_minor",
        "points_earned",
        "growth",
        "refunded_minor",
        "points_reversed",
        "recorded_at",
    ]);
    let mut records = Query::insert();
    records.into_table("idempotency").columns([
        "tenant_id",
        "scope",
        "key",
        "request_digest",
        "response",
        "recorded_at",
    ]);
    let (mut any_sale, mut any_record) = (false, false);
    for operation in page {
        let digest = RequestDigest::of_encoded(&operation.request)
            .unwrap_or_else(|| RequestDigest::of(&()))
            .to_bytes();
        if ACCOUNT_SCOPES.contains(&operation.source.as_str()) {
            let balance = pb::Balance::decode(operation.result.as_slice()).ok();
            let response = match operation.source.as_str() {
                "redeem" => pb::RedeemResponse { balance }.encode_to_vec(),
                "hold" => pb::PlaceHoldResponse {
                    balance,
                    ..Default::default()
                }
                .encode_to_vec(),
                _ => pb::AdjustResponse { balance }.encode_to_vec(),
            };
            records.values_panic([
                operation.tenant_id.into(),
                operation.source.into(),
                operation.key.into(),
                digest.into(),
                response.into(),
                operation.recorded_at.into(),
            ]);
            any_record = true;
        } else {
            let kind = pb::Sale::decode(operation.request.as_slice()).map_or(0, |sale| sale.kind);
            sales.values_panic([
                operation.tenant_id.into(),
                operation.source.into(),
                operation.key.into(),
                digest.into(),
                operation.result.into(),
                (kind != i32::from(pb::SaleKind::Sale)).into(),
                operation.member_id.into(),
                operation.program_id.into(),
                operation.eligible_minor.into(),
                operation.points_earned.into(),
                operation.growth.into(),
                operation.refunded_minor.into(),
                operation.points_reversed.into(),
                operation.recorded_at.into(),
            ]);
            any_sale = true;
        }
    }
    let backend = txn.get_database_backend();
    if any_sale {
        txn.execute_raw(backend.build(&sales)).await?;
    }
    if any_record {
        txn.execute_raw(backend.build(&records)).await?;
    }
    Ok(())
}
