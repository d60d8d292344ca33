//! Writing facts as events arrive, inside the consumer's transaction.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use std::collections::BTreeMap;

use super::{adding, adding_rows, day_and_place, execute, fold, placeholder_rows, statement};
use crate::domain::Place;

/// A line's category, SKU and (net) amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFact {
    pub category: String,
    pub sku: String,
    pub amount_minor: i64,
}

/// One sale or refund, as it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleFact {
    /// The member it counts for now (after any merge); none for a non-member.
    pub member_id: Option<String>,
    pub day: String,
    pub place: Place,
    /// Negative for a refund.
    pub amount_minor: i64,
    /// 1 for a sale, 0 for a refund.
    pub orders: i64,
    /// What each line adds (negative for a refund's share of the lines it refunds).
    pub lines: Vec<LineFact>,
}

pub async fn enrol(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    day: &str,
    place: &Place,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO members (tenant_id, member_id, enrolled_day, brand_id, channel, store_id) \
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, member_id) DO NOTHING";
    let values = vec![
        tenant_id.into(),
        member_id.into(),
        day.into(),
        place.brand_id.as_str().into(),
        place.channel.into(),
        place.store_id.as_str().into(),
    ];
    execute(txn, sql, values).await?;
    Ok(())
}

/// The member `member_id` stands for now: its survivor when it was merged.
pub async fn member_now(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<String, DbErr> {
    let sql = "SELECT merged_into FROM members WHERE tenant_id = ? AND member_id = ?";
    let values = vec![tenant_id.into(), member_id.into()];
    let survivor: Option<Option<String>> = quanyu_runtime::db::sql::value(txn, (sql, values), "merged_into").await?;
    Ok(survivor.flatten().unwrap_or_else(|| member_id.to_owned()))
}

/// Rows a multi-row insert carries at most: SQLite takes at most 32,766 values a statement, and
/// though loyalty-points now bounds a sale at 1,000 lines, sales recorded before held any number.
const ROWS_A_STATEMENT: usize = 500;

/// The rollup of what each member bought per day and place: its table, key and counters.
pub const MEMBER_DAYS: (&str, &str, &[&str]) = ("member_days", "member_id", &["orders", "spend_minor"]);

/// Folds `loser` into `survivor`: what it bought becomes the survivor's, and it (and any member
/// merged into it before) now stands for the survivor. Folding the same pair again changes
/// nothing.
pub async fn merge(txn: &DatabaseTransaction, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    let sql = "UPDATE members SET merged_into = ? WHERE tenant_id = ? AND (member_id = ? OR merged_into = ?)";
    let values = vec![survivor.into(), tenant_id.into(), loser.into(), loser.into()];
    execute(txn, sql, values).await?;
    fold(txn, MEMBER_DAYS, tenant_id, loser, survivor).await
}

/// Adds a sale to the day's rollup, and to its member's day when it has one.
pub async fn record_sale(txn: &DatabaseTransaction, tenant_id: &str, sale: &SaleFact) -> Result<(), DbErr> {
    let (member_sales, other_sales, member_orders, other_orders) = match sale.member_id {
        Some(_) => (sale.amount_minor, 0, sale.orders, 0),
        None => (0, sale.amount_minor, 0, sale.orders),
    };
    let place = day_and_place(&sale.day, &sale.place);
    let daily = adding(
        "daily_sales",
        &[],
        &[
            "member_sales_minor",
            "other_sales_minor",
            "member_orders",
            "other_orders",
        ],
    );
    let mut values = vec![tenant_id.into()];
    values.extend(place.iter().cloned());
    values.extend([
        member_sales.into(),
        other_sales.into(),
        member_orders.into(),
        other_orders.into(),
    ]);
    execute(txn, &daily, values).await?;
    // The lines in one statement, those of the same category and SKU added together first.
    let mut by_product: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for line in &sale.lines {
        *by_product.entry((&line.category, &line.sku)).or_default() += line.amount_minor;
    }
    let by_product: Vec<_> = by_product.into_iter().collect();
    for chunk in by_product.chunks(ROWS_A_STATEMENT) {
        let daily_lines = adding_rows(
            "daily_lines",
            &["category", "sku"],
            &["member_sales_minor", "other_sales_minor"],
            chunk.len(),
        );
        let mut values = Vec::new();
        for ((category, sku), amount) in chunk {
            let (member_part, other_part) = match sale.member_id {
                Some(_) => (*amount, 0),
                None => (0, *amount),
            };
            values.extend([tenant_id.into(), (*category).into(), (*sku).into()]);
            values.extend(place.iter().cloned());
            values.extend([member_part.into(), other_part.into()]);
        }
        execute(txn, &daily_lines, values).await?;
    }
    let Some(member_id) = &sale.member_id else {
        return Ok(());
    };
    let (table, key, counters) = MEMBER_DAYS;
    let mut values = vec![tenant_id.into(), member_id.as_str().into()];
    values.extend(place);
    values.extend([sale.orders.into(), sale.amount_minor.into()]);
    execute(txn, &adding(table, &[key], counters), values).await?;
    Ok(())
}

/// Keeps a sale's lines for the refunds that may follow it.
pub async fn keep_lines(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    sale: (&str, &str),
    lines: &[LineFact],
) -> Result<(), DbErr> {
    let (source, transaction_id) = sale;
    let numbered: Vec<(i32, &LineFact)> = (0i32..).zip(lines).collect();
    for chunk in numbered.chunks(ROWS_A_STATEMENT) {
        let sql = format!(
            "INSERT INTO sale_lines (tenant_id, source, transaction_id, line, category, sku, amount_minor) \
             VALUES {} ON CONFLICT (tenant_id, source, transaction_id, line) DO NOTHING",
            placeholder_rows(7, chunk.len())
        );
        let mut values = Vec::with_capacity(7 * chunk.len());
        for (line_no, line) in chunk {
            values.extend([
                tenant_id.into(),
                source.into(),
                transaction_id.into(),
                (*line_no).into(),
                line.category.as_str().into(),
                line.sku.as_str().into(),
                line.amount_minor.into(),
            ]);
        }
        execute(txn, &sql, values).await?;
    }
    Ok(())
}

/// The lines kept of a sale, in their order; none when it was never seen.
pub async fn lines_of(txn: &DatabaseTransaction, tenant_id: &str, sale: (&str, &str)) -> Result<Vec<LineFact>, DbErr> {
    let (source, transaction_id) = sale;
    let sql = "SELECT category, sku, amount_minor FROM sale_lines \
               WHERE tenant_id = ? AND source = ? AND transaction_id = ? ORDER BY line";
    let rows = txn
        .query_all_raw(statement(
            txn.get_database_backend(),
            sql,
            vec![tenant_id.into(), source.into(), transaction_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(LineFact {
                category: row.try_get("", "category")?,
                sku: row.try_get("", "sku")?,
                amount_minor: row.try_get("", "amount_minor")?,
            })
        })
        .collect()
}
