//! Audiences: the members a rule selects as of a day, counted or listed in member id order (the
//! rule becomes one SQL condition on each member); and the rules saved by name.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use super::{Query, execute, statement};
use crate::domain::aipl::{Signal, Stage, Windows};
use crate::domain::audience::{Fact, Op, Rule, Test, Value as RuleValue, born_by};
use crate::domain::window::days_before;

/// What an audience is read as of: whose members, on which day.
#[derive(Debug, Clone)]
pub struct AsOf {
    pub tenant_id: String,
    pub today: NaiveDate,
}

impl AsOf {
    fn day(&self, days_ago: i64) -> String {
        days_before(&self.today.format("%Y-%m-%d").to_string(), days_ago)
    }
}

/// `FROM members m WHERE` the member is the tenant's, current (not merged away, not erased,
/// enrolled by today), and meets `rule`.
fn members_meeting(query: &mut Query, rule: &Rule, as_of: &AsOf) {
    query
        .push(" FROM members m WHERE m.tenant_id = ")
        .bind(as_of.tenant_id.as_str())
        .push(" AND m.merged_into IS NULL AND m.erased = FALSE AND m.enrolled_day <= ")
        .bind(as_of.day(0))
        .push(" AND ");
    condition(query, rule, as_of);
}

fn condition(query: &mut Query, rule: &Rule, as_of: &AsOf) {
    match rule {
        Rule::And(left, right) | Rule::Or(left, right) => {
            let joint = if matches!(rule, Rule::And(..)) { " AND " } else { " OR " };
            query.push("(");
            condition(query, left, as_of);
            query.push(joint);
            condition(query, right, as_of);
            query.push(")");
        }
        Rule::Not(inner) => {
            query.push("NOT ");
            condition(query, inner, as_of);
        }
        Rule::Test(test) => {
            // A fact the member has no value for meets no comparison (SQL would say NULL).
            query.push("COALESCE((");
            comparison(query, test, as_of);
            query.push("), FALSE)");
        }
    }
}

/// `FROM <table> <alias> WHERE` the row is member m's.
fn rows_of_member(table: &str, alias: &str, member_column: &str) -> String {
    format!("FROM {table} {alias} WHERE {alias}.tenant_id = m.tenant_id AND {alias}.{member_column} = m.member_id")
}

fn comparison(query: &mut Query, test: &Test, as_of: &AsOf) {
    let op = test.op;
    let purchases = format!("{} AND d.orders > 0", rows_of_member("member_days", "d", "member_id"));
    let year = (as_of.day(364), as_of.day(0));
    match (&test.fact, &test.value) {
        (Fact::Tier | Fact::Tag | Fact::Channel, value) => {
            let (rows, column) = match test.fact {
                Fact::Tier => (rows_of_member("member_programs", "p", "member_id"), "p.tier"),
                Fact::Tag => (rows_of_member("member_tags", "t", "member_id"), "t.name"),
                _ => (purchases, "d.channel"),
            };
            let exists = if op == Op::Ne { "NOT EXISTS" } else { "EXISTS" };
            query
                .push(&format!("{exists} (SELECT 1 {rows} AND {column} = "))
                .bind(bound(value))
                .push(")");
        }
        (Fact::Points, value) => {
            let rows = rows_of_member("member_programs", "p", "member_id");
            query.push(&format!("(SELECT COALESCE(sum(p.balance), 0) {rows}) {} ", op.sql()));
            query.bind(bound(value));
        }
        (Fact::Frequency | Fact::Spend, value) => {
            let column = if test.fact == Fact::Spend {
                "d.spend_minor"
            } else {
                "d.orders"
            };
            query
                .push(&format!(
                    "(SELECT COALESCE(sum({column}), 0) {purchases} AND d.day BETWEEN "
                ))
                .bind(year.0)
                .push(" AND ")
                .bind(year.1)
                .push(&format!(") {} ", op.sql()))
                .bind(bound(value));
        }
        (Fact::RecencyDays, RuleValue::Number(days)) => {
            // Days since the last purchase compare as that purchase's day, the other way round.
            query
                .push(&format!("(SELECT max(d.day) {purchases} AND d.day <= "))
                .bind(as_of.day(0))
                .push(&format!(") {} ", op.flipped().sql()))
                .bind(as_of.day(*days));
        }
        (Fact::Age, RuleValue::Number(years)) => age(query, op, *years, as_of.today),
        (Fact::City | Fact::Store | Fact::Guide | Fact::Enrolled, value) => {
            let column = match test.fact {
                Fact::City => "m.city",
                Fact::Store => "m.bound_store_id",
                Fact::Guide => "m.bound_guide_id",
                _ => "m.enrolled_day",
            };
            query.push(&format!("{column} {} ", op.sql())).bind(bound(value));
        }
        (Fact::Stage, value) => {
            stage(query, as_of, &Windows::default());
            query.push(&format!(" {} ", op.sql())).bind(bound(value));
        }
        // A checked rule compares recency and age with numbers only.
        (Fact::RecencyDays | Fact::Age, _) => {
            query.push("FALSE");
        }
    }
}

/// A rule's value as SQL compares it.
fn bound(value: &RuleValue) -> Value {
    match value {
        RuleValue::Text(text) => text.as_str().into(),
        RuleValue::Number(number) => (*number).into(),
        RuleValue::Date(date) => date.format("%Y-%m-%d").to_string().into(),
        RuleValue::Channel(channel) => (*channel as i32).into(),
        RuleValue::Stage(stage) => (*stage as i32).into(),
    }
}

/// `age <op> years`, as bounds on the birthday: someone is at least n years old when born by
/// the day n years ago.
fn age(query: &mut Query, op: Op, years: i64, today: NaiveDate) {
    let reached = |query: &mut Query, years: i64| {
        let by = born_by(today, years).format("%Y-%m-%d").to_string();
        query.push("m.birthday <= ").bind(by);
    };
    match op {
        Op::Ge => reached(query, years),
        Op::Gt => reached(query, years + 1),
        Op::Lt | Op::Le => {
            query.push("NOT ");
            reached(query, if op == Op::Lt { years } else { years + 1 });
        }
        Op::Eq | Op::Ne => {
            if op == Op::Ne {
                query.push("NOT ");
            }
            query.push("(");
            reached(query, years);
            query.push(" AND NOT ");
            reached(query, years + 1);
            query.push(")");
        }
    }
}

/// Member m's AIPL stage today, as its number: the deepest whose signal the member shows.
fn stage(query: &mut Query, as_of: &AsOf, windows: &Windows) {
    let window = |days: i64| (as_of.day(days - 1), as_of.day(0));
    query.push("(CASE");
    for (stage, signal) in Stage::DEEPEST_FIRST {
        query.push(" WHEN ");
        let (rows, extra, days) = match signal {
            Signal::Exposed => ("interaction_days", "i.exposures > 0", windows.aware_days),
            Signal::Engaged => ("interaction_days", "i.engagements > 0", windows.interest_days),
            Signal::Purchased => ("member_days", "i.orders > 0", windows.purchase_days),
            Signal::BoughtOnEnoughDays => ("member_days", "i.orders > 0", windows.loyal_days),
        };
        let member_column = if rows == "interaction_days" {
            "consumer_id"
        } else {
            "member_id"
        };
        let rows = rows_of_member(rows, "i", member_column);
        let (from, to) = window(days);
        if signal == Signal::BoughtOnEnoughDays {
            query
                .push(&format!(
                    "(SELECT count(DISTINCT i.day) {rows} AND {extra} AND i.day BETWEEN "
                ))
                .bind(from)
                .push(" AND ")
                .bind(to)
                .push(") >= ")
                .bind(windows.loyal_min_purchase_days);
        } else {
            query
                .push(&format!("EXISTS (SELECT 1 {rows} AND {extra} AND i.day BETWEEN "))
                .bind(from)
                .push(" AND ")
                .bind(to)
                .push(")");
        }
        query.push(&format!(" THEN {}", stage as i32));
    }
    query.push(&format!(" ELSE {} END)", Stage::None as i32));
}

/// How many members `rule` selects.
pub async fn count(db: &impl ConnectionTrait, rule: &Rule, as_of: &AsOf) -> Result<i64, DbErr> {
    let mut query = Query::default();
    query.push("SELECT count(*) AS members");
    members_meeting(&mut query, rule, as_of);
    let row = db
        .query_one_raw(query.into_statement(db.get_database_backend()))
        .await?;
    row.map_or(Ok(0), |row| row.try_get("", "members"))
}

/// The next `limit` members `rule` selects after `after` (in member id order).
pub async fn members(
    db: &impl ConnectionTrait,
    rule: &Rule,
    as_of: &AsOf,
    after: &str,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let mut query = Query::default();
    query.push("SELECT m.member_id");
    members_meeting(&mut query, rule, as_of);
    query
        .push(" AND m.member_id > ")
        .bind(after)
        .push(" ORDER BY m.member_id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = db
        .query_all_raw(query.into_statement(db.get_database_backend()))
        .await?;
    rows.iter().map(|row| row.try_get("", "member_id")).collect()
}

/// Those of `member_ids` that `rule` selects, in member id order.
pub async fn matching(
    db: &impl ConnectionTrait,
    rule: &Rule,
    as_of: &AsOf,
    member_ids: &[String],
) -> Result<Vec<String>, DbErr> {
    if member_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = Query::default();
    query.push("SELECT m.member_id");
    members_meeting(&mut query, rule, as_of);
    query.push(" AND m.member_id IN (");
    for (n, member_id) in member_ids.iter().enumerate() {
        query.push(if n == 0 { "" } else { ", " }).bind(member_id.as_str());
    }
    query.push(") ORDER BY m.member_id");
    let rows = db
        .query_all_raw(query.into_statement(db.get_database_backend()))
        .await?;
    rows.iter().map(|row| row.try_get("", "member_id")).collect()
}

/// A saved audience as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub name: String,
    pub rule: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn saved_from(row: &sea_orm::QueryResult) -> Result<Saved, DbErr> {
    Ok(Saved {
        name: row.try_get("", "name")?,
        rule: row.try_get("", "rule")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// The audience saved under `name`, if any.
pub async fn find(db: &impl ConnectionTrait, tenant_id: &str, name: &str) -> Result<Option<Saved>, DbErr> {
    let sql = "SELECT name, rule, created_at, updated_at FROM audiences WHERE tenant_id = ? AND name = ?";
    let row = db
        .query_one_raw(statement(
            db.get_database_backend(),
            sql,
            vec![tenant_id.into(), name.into()],
        ))
        .await?;
    row.as_ref().map(saved_from).transpose()
}

/// Saves `rule` under `name` at `at`; the audience as saved, and whether it is new.
pub async fn save(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (name, rule): (&str, &str),
    at: DateTime<Utc>,
) -> Result<(Saved, bool), DbErr> {
    let before = find(txn, tenant_id, name).await?;
    let sql = "INSERT INTO audiences (tenant_id, name, rule, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
               ON CONFLICT (tenant_id, name) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at";
    execute(
        txn,
        sql,
        vec![tenant_id.into(), name.into(), rule.into(), at.into(), at.into()],
    )
    .await?;
    let saved = Saved {
        name: name.to_owned(),
        rule: rule.to_owned(),
        created_at: before.as_ref().map_or(at, |before| before.created_at),
        updated_at: at,
    };
    Ok((saved, before.is_none()))
}

/// The audiences saved after `after` (by name), at most `limit`.
pub async fn list(db: &impl ConnectionTrait, tenant_id: &str, after: &str, limit: u64) -> Result<Vec<Saved>, DbErr> {
    let sql = "SELECT name, rule, created_at, updated_at FROM audiences WHERE tenant_id = ? AND name > ? \
               ORDER BY name LIMIT ?";
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .query_all_raw(statement(
            db.get_database_backend(),
            sql,
            vec![tenant_id.into(), after.into(), limit.into()],
        ))
        .await?;
    rows.iter().map(saved_from).collect()
}

/// Deletes the audience saved under `name`; false when there was none.
pub async fn delete(txn: &DatabaseTransaction, tenant_id: &str, name: &str) -> Result<bool, DbErr> {
    let sql = "DELETE FROM audiences WHERE tenant_id = ? AND name = ?";
    let done = txn
        .execute_raw(statement(
            txn.get_database_backend(),
            sql,
            vec![tenant_id.into(), name.into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}
