//! Writing facts as events arrive, inside the consumer's transaction.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use super::{Rollup, add_rows, day_and_place, execute, fold, insert_rows, statement, values_by_key};
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
    let mut survivors = survivors(txn, tenant_id, &[member_id]).await?;
    Ok(survivors.remove(member_id).unwrap_or_else(|| member_id.to_owned()))
}

/// The survivors of those of `member_ids` that were merged, by member.
pub async fn survivors(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_ids: &[&str],
) -> Result<HashMap<String, String>, DbErr> {
    let merged = ("members", "member_id", "merged_into", "merged_into IS NOT NULL");
    values_by_key(txn, merged, tenant_id, member_ids).await
}

/// The rollup of what each member bought per day and place: its table, key and counters.
pub const MEMBER_DAYS: Rollup<1> = ("member_days", ["member_id"], &["orders", "spend_minor"]);

/// Net sales and orders per day and place, split between members and everyone else.
const DAILY_SALES: Rollup<0> = (
    "daily_sales",
    [],
    &[
        "member_sales_minor",
        "other_sales_minor",
        "member_orders",
        "other_orders",
    ],
);

/// Net sales per day, place and line (category and SKU).
const DAILY_LINES: Rollup<2> = (
    "daily_lines",
    ["category", "sku"],
    &["member_sales_minor", "other_sales_minor"],
);

/// Folds `loser` into `survivor`: what it bought becomes the survivor's, and it (and any member
/// merged into it before) now stands for the survivor. Folding the same pair again changes
/// nothing.
pub async fn merge(txn: &DatabaseTransaction, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    // Two statements, each by an index: with `member_id = ? OR merged_into = ?` SQLite read
    // every member of the tenant.
    for column in ["merged_into", "member_id"] {
        let sql = format!("UPDATE members SET merged_into = ? WHERE tenant_id = ? AND {column} = ?");
        execute(txn, &sql, vec![survivor.into(), tenant_id.into(), loser.into()]).await?;
    }
    fold(txn, MEMBER_DAYS, tenant_id, loser, survivor).await
}

/// Adds sales to the rollups: each rollup in one statement (per 500 rows), the sales that fall
/// on the same row added together first.
pub async fn record_sales(txn: &DatabaseTransaction, tenant_id: &str, sales: &[SaleFact]) -> Result<(), DbErr> {
    let mut daily: BTreeMap<(&str, &Place), [i64; 4]> = BTreeMap::new();
    let mut lines: BTreeMap<(&str, &str, &str, &Place), [i64; 2]> = BTreeMap::new();
    let mut member_days: BTreeMap<(&str, &str, &Place), [i64; 2]> = BTreeMap::new();
    for sale in sales {
        let by_member = sale.member_id.is_some();
        let split = |amount: i64| if by_member { [amount, 0] } else { [0, amount] };
        let [member_sales, other_sales] = split(sale.amount_minor);
        let [member_orders, other_orders] = split(sale.orders);
        let counters = daily.entry((&sale.day, &sale.place)).or_default();
        add_to(counters, [member_sales, other_sales, member_orders, other_orders]);
        for line in &sale.lines {
            let key = (
                line.category.as_str(),
                line.sku.as_str(),
                sale.day.as_str(),
                &sale.place,
            );
            add_to(lines.entry(key).or_default(), split(line.amount_minor));
        }
        if let Some(member_id) = &sale.member_id {
            let counters = member_days.entry((member_id, &sale.day, &sale.place)).or_default();
            add_to(counters, [sale.orders, sale.amount_minor]);
        }
    }
    let row = |keys: &[&str], (day, place): (&str, &Place), counters: &[i64]| -> Vec<Value> {
        let mut row: Vec<Value> = vec![tenant_id.into()];
        row.extend(keys.iter().map(|key| (*key).into()));
        row.extend(day_and_place(day, place));
        row.extend(counters.iter().map(|counter| (*counter).into()));
        row
    };
    let daily: Vec<_> = daily
        .iter()
        .map(|((day, place), counters)| row(&[], (*day, *place), counters))
        .collect();
    add_rows(txn, DAILY_SALES, &daily).await?;
    let lines: Vec<_> = lines
        .iter()
        .map(|((category, sku, day, place), counters)| row(&[*category, *sku], (*day, *place), counters))
        .collect();
    add_rows(txn, DAILY_LINES, &lines).await?;
    let member_days: Vec<_> = member_days
        .iter()
        .map(|((member_id, day, place), counters)| row(&[*member_id], (*day, *place), counters))
        .collect();
    add_rows(txn, MEMBER_DAYS, &member_days).await
}

/// Adds `more` to `counters`, one by one.
fn add_to<const N: usize>(counters: &mut [i64; N], more: [i64; N]) {
    for (counter, more) in counters.iter_mut().zip(more) {
        *counter += more;
    }
}

/// Keeps sales' lines (each sale's source and transaction id, and its lines) for the refunds
/// that may follow them.
pub async fn keep_lines(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    sales: &[((&str, &str), &[LineFact])],
) -> Result<(), DbErr> {
    let rows: Vec<Vec<Value>> = sales
        .iter()
        .flat_map(|((source, transaction_id), lines)| {
            (0i32..).zip(lines.iter()).map(move |(line_no, line)| {
                vec![
                    tenant_id.into(),
                    (*source).into(),
                    (*transaction_id).into(),
                    line_no.into(),
                    line.category.as_str().into(),
                    line.sku.as_str().into(),
                    line.amount_minor.into(),
                ]
            })
        })
        .collect();
    insert_rows(
        txn,
        "INSERT INTO sale_lines (tenant_id, source, transaction_id, line, category, sku, amount_minor)",
        "ON CONFLICT (tenant_id, source, transaction_id, line) DO NOTHING",
        &rows,
    )
    .await
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
