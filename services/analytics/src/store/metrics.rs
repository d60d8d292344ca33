//! Reading the figures of a window from the facts and rollups: one aggregate query each.

use sea_orm::{ConnectionTrait, DbErr, Value};

use super::{Query, day_after, statement};
use crate::domain::Place;
use crate::domain::window::{Window, days_before};

/// What a metric counts: a tenant, a window, and the place fields the filter sets.
pub struct Scope {
    pub tenant_id: std::sync::Arc<str>,
    pub window: Window,
    /// Each field empty (or 0 for the channel) selects everything.
    pub place: Place,
    /// Lines of one category, or one SKU; empty selects whole sales.
    pub line: LineFilter,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter {
    pub category: String,
    pub sku: String,
}

impl LineFilter {
    pub fn is_set(&self) -> bool {
        !self.category.is_empty() || !self.sku.is_empty()
    }
}

impl Scope {
    /// `tenant_id = ? AND <day> BETWEEN ? AND ?` (the window's days) and the place conditions set,
    /// with their values.
    fn conditions(&self, day_column: &str) -> (String, Vec<Value>) {
        self.conditions_between(day_column, &self.window.first_day, &self.window.last_day)
    }

    /// As [`conditions`](Self::conditions), from `first_day` to `last_day`.
    fn conditions_between(&self, day_column: &str, first_day: &str, last_day: &str) -> (String, Vec<Value>) {
        let mut sql = format!("tenant_id = ? AND {day_column} BETWEEN ? AND ?");
        let mut values: Vec<Value> = vec![self.tenant_id.as_ref().into(), first_day.into(), last_day.into()];
        self.place_conditions(&mut sql, &mut values);
        (sql, values)
    }

    /// As [`conditions`](Self::conditions), but from the first day there is.
    fn conditions_to_date(&self, day_column: &str) -> (String, Vec<Value>) {
        let mut sql = format!("tenant_id = ? AND {day_column} <= ?");
        let mut values: Vec<Value> = vec![self.tenant_id.as_ref().into(), self.window.last_day.as_str().into()];
        self.place_conditions(&mut sql, &mut values);
        (sql, values)
    }

    /// The values of [`MEMBERS_BY_LAST_DAY`].
    fn members_by_last_day(&self, values: &mut Vec<Value>) {
        values.push(self.tenant_id.as_ref().into());
        values.push(self.window.last_day.as_str().into());
    }

    fn place_conditions(&self, sql: &mut String, values: &mut Vec<Value>) {
        let (conditions, place_values) = self.place_of("");
        sql.push_str(&conditions);
        values.extend(place_values);
    }

    /// ` AND <alias>brand_id = ?`… for each place field the filter sets (`alias` is empty or
    /// ends with a dot), with their values.
    fn place_of(&self, alias: &str) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values: Vec<Value> = Vec::new();
        if !self.place.brand_id.is_empty() {
            sql.push_str(&format!(" AND {alias}brand_id = ?"));
            values.push(self.place.brand_id.as_str().into());
        }
        if self.place.channel != 0 {
            sql.push_str(&format!(" AND {alias}channel = ?"));
            values.push(self.place.channel.into());
        }
        if !self.place.store_id.is_empty() {
            sql.push_str(&format!(" AND {alias}store_id = ?"));
            values.push(self.place.store_id.as_str().into());
        }
        (sql, values)
    }
}

/// Members enrolled by the window's last day, a merged member not counted (values from
/// `Scope::members_by_last_day`).
const MEMBERS_BY_LAST_DAY: &str =
    "(SELECT count(*) FROM members WHERE tenant_id = ? AND enrolled_day <= ? AND merged_into IS NULL)";

/// Runs an aggregate query that answers two integers, `a` and `b` (NULL read as 0).
async fn pair<C: ConnectionTrait>(db: &C, sql: &str, values: Vec<Value>) -> Result<(i64, i64), DbErr> {
    let row = db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    let read = |column: &str| -> Result<i64, DbErr> {
        Ok(match &row {
            Some(row) => row.try_get::<Option<i64>>("", column)?.unwrap_or(0),
            None => 0,
        })
    };
    Ok((read("a")?, read("b")?))
}

/// As [`pair`], for a query built with its values.
async fn pair_of(db: &impl ConnectionTrait, query: Query) -> Result<(i64, i64), DbErr> {
    let (sql, values) = query.into_parts();
    pair(db, &sql, values).await
}

/// Members enrolled in the window at the place, not merged into another.
pub async fn new_members<C: ConnectionTrait>(db: &C, scope: &Scope) -> Result<i64, DbErr> {
    let (conditions, values) = scope.conditions("enrolled_day");
    let sql =
        format!("SELECT count(*) AS a, CAST(0 AS BIGINT) AS b FROM members WHERE {conditions} AND merged_into IS NULL");
    Ok(pair(db, &sql, values).await?.0)
}

/// Net sales by members, and by everyone: of whole sales, or of the lines the scope selects.
pub async fn sales(db: &impl ConnectionTrait, scope: &Scope) -> Result<(i64, i64), DbErr> {
    let (mut conditions, mut values) = scope.conditions("day");
    let table = if scope.line.is_set() {
        for (column, wanted) in [("category", &scope.line.category), ("sku", &scope.line.sku)] {
            if !wanted.is_empty() {
                conditions.push_str(&format!(" AND {column} = ?"));
                values.push(wanted.as_str().into());
            }
        }
        "daily_lines"
    } else {
        "daily_sales"
    };
    let sql = format!(
        "SELECT CAST(sum(member_sales_minor) AS BIGINT) AS a, \
         CAST(sum(member_sales_minor + other_sales_minor) AS BIGINT) AS b FROM {table} WHERE {conditions}"
    );
    pair(db, &sql, values).await
}

/// Members who bought on two or more distinct days, and members who bought.
pub async fn repeat_buyers(db: &impl ConnectionTrait, scope: &Scope) -> Result<(i64, i64), DbErr> {
    let (conditions, values) = scope.conditions("day");
    let sql = format!(
        "SELECT CAST(sum(CASE WHEN days >= 2 THEN 1 ELSE 0 END) AS BIGINT) AS a, count(*) AS b FROM \
         (SELECT member_id, count(DISTINCT day) AS days FROM member_days \
          WHERE {conditions} AND orders > 0 GROUP BY member_id) AS buyers"
    );
    pair(db, &sql, values).await
}

/// Members who bought in the window, and members enrolled by its last day.
pub async fn active_members(db: &impl ConnectionTrait, scope: &Scope) -> Result<(i64, i64), DbErr> {
    let (conditions, mut values) = scope.conditions("day");
    scope.members_by_last_day(&mut values);
    let sql = format!(
        "SELECT (SELECT count(DISTINCT member_id) FROM member_days WHERE {conditions} AND orders > 0) AS a, \
         {MEMBERS_BY_LAST_DAY} AS b"
    );
    pair(db, &sql, values).await
}

/// Each buying member's net spend in the window, largest first.
pub async fn spend_by_buyer(db: &impl ConnectionTrait, scope: &Scope) -> Result<Vec<i64>, DbErr> {
    let (conditions, values) = scope.conditions("day");
    let sql = format!(
        "SELECT CAST(sum(spend_minor) AS BIGINT) AS spend FROM member_days WHERE {conditions} \
         GROUP BY member_id HAVING sum(orders) > 0 ORDER BY spend DESC"
    );
    let rows = db
        .query_all_raw(statement(db.get_database_backend(), &sql, values))
        .await?;
    rows.iter().map(|row| row.try_get("", "spend")).collect()
}

/// Members' net spend up to the window's last day, and members enrolled by then.
pub async fn spend_to_date(db: &impl ConnectionTrait, scope: &Scope) -> Result<(i64, i64), DbErr> {
    let (conditions, mut values) = scope.conditions_to_date("day");
    scope.members_by_last_day(&mut values);
    // Members' spend per day is in the daily rollup already: a few rows a day, not one a member.
    let sql = format!(
        "SELECT (SELECT CAST(sum(member_sales_minor) AS BIGINT) FROM daily_sales WHERE {conditions}) AS a, \
         {MEMBERS_BY_LAST_DAY} AS b"
    );
    pair(db, &sql, values).await
}

/// Member m's purchases (`d`) among the sales the scope's place selects, as a condition's start:
/// `EXISTS (SELECT 1 FROM member_days d WHERE … AND d.orders > 0<place>` (to be continued and
/// closed by the caller).
fn purchases_of_member(query: &mut Query, scope: &Scope) {
    query
        .push(
            "EXISTS (SELECT 1 FROM member_days d WHERE d.tenant_id = m.tenant_id AND d.member_id = m.member_id \
             AND d.orders > 0",
        )
        .append(scope.place_of("d."));
}

/// Members enrolled in the window at the place who bought there within `days` of enrolling
/// (the day of enrolment the first), and members enrolled in the window there.
pub async fn new_members_first_purchase(
    db: &impl ConnectionTrait,
    scope: &Scope,
    days: i64,
) -> Result<(i64, i64), DbErr> {
    let mut query = Query::default();
    query.push("SELECT CAST(COALESCE(sum(CASE WHEN ");
    purchases_of_member(&mut query, scope);
    query.push(&format!(
        " AND d.day >= m.enrolled_day AND d.day <= {}) THEN 1 ELSE 0 END), 0) AS BIGINT) AS a, count(*) AS b \
         FROM members m WHERE m.merged_into IS NULL AND ",
        day_after(db.get_database_backend(), "m.enrolled_day", days - 1)
    ));
    query.append(scope.conditions("enrolled_day"));
    pair_of(db, query).await
}

/// Members enrolled before the window who had not bought at the place before it and bought
/// there in it, and members enrolled before the window who had not bought there before it.
pub async fn existing_members_first_purchase(db: &impl ConnectionTrait, scope: &Scope) -> Result<(i64, i64), DbErr> {
    let first_day = scope.window.first_day.as_str();
    let mut query = Query::default();
    query.push("SELECT CAST(COALESCE(sum(CASE WHEN ");
    purchases_of_member(&mut query, scope);
    query
        .push(" AND d.day BETWEEN ")
        .bind(first_day)
        .push(" AND ")
        .bind(scope.window.last_day.as_str())
        .push(") THEN 1 ELSE 0 END), 0) AS BIGINT) AS a, count(*) AS b FROM members m WHERE m.tenant_id = ")
        .bind(scope.tenant_id.as_ref())
        .push(" AND m.merged_into IS NULL AND m.enrolled_day < ")
        .bind(first_day)
        .push(" AND NOT ");
    purchases_of_member(&mut query, scope);
    query.push(" AND d.day < ").bind(first_day).push(")");
    pair_of(db, query).await
}

/// Members who bought in two or more distinct places of `column` (brand_id or store_id) in the
/// window, and members who bought in one.
pub async fn bought_in_several(db: &impl ConnectionTrait, scope: &Scope, column: &str) -> Result<(i64, i64), DbErr> {
    let (conditions, values) = scope.conditions("day");
    let sql = format!(
        "SELECT CAST(COALESCE(sum(CASE WHEN places >= 2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS a, count(*) AS b FROM \
         (SELECT member_id, count(DISTINCT {column}) AS places FROM member_days \
          WHERE {conditions} AND orders > 0 AND {column} <> '' GROUP BY member_id) AS buyers"
    );
    pair(db, &sql, values).await
}

/// Members enrolled in the window at the place, by month of enrolment; and of them, by month of
/// enrolment and month of purchase, those who bought (at the place, on or after enrolling).
pub async fn cohorts(
    db: &impl ConnectionTrait,
    scope: &Scope,
) -> Result<(Vec<(String, i64)>, Vec<(String, String, i64)>), DbErr> {
    let backend = db.get_database_backend();
    let (conditions, values) = scope.conditions("enrolled_day");
    let sizes = format!(
        "SELECT substr(enrolled_day, 1, 7) AS cohort, count(*) AS members FROM members \
         WHERE {conditions} AND merged_into IS NULL GROUP BY substr(enrolled_day, 1, 7) ORDER BY cohort"
    );
    let rows = db.query_all_raw(statement(backend, &sizes, values)).await?;
    let sizes = rows
        .iter()
        .map(|row| Ok((row.try_get("", "cohort")?, row.try_get("", "members")?)))
        .collect::<Result<_, DbErr>>()?;
    let mut query = Query::default();
    query
        .push(
            "SELECT substr(m.enrolled_day, 1, 7) AS cohort, substr(d.day, 1, 7) AS bought, \
             count(DISTINCT m.member_id) AS members FROM members m JOIN member_days d \
             ON d.tenant_id = m.tenant_id AND d.member_id = m.member_id AND d.orders > 0 \
             AND d.day >= m.enrolled_day",
        )
        .append(scope.place_of("d."))
        .push(" WHERE m.merged_into IS NULL AND m.tenant_id = ")
        .bind(scope.tenant_id.as_ref())
        .push(" AND m.enrolled_day BETWEEN ")
        .bind(scope.window.first_day.as_str())
        .push(" AND ")
        .bind(scope.window.last_day.as_str())
        .append(scope.place_of("m."))
        .push(" GROUP BY substr(m.enrolled_day, 1, 7), substr(d.day, 1, 7)");
    let rows = db.query_all_raw(query.into_statement(backend)).await?;
    let retained = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get("", "cohort")?,
                row.try_get("", "bought")?,
                row.try_get("", "members")?,
            ))
        })
        .collect::<Result<_, DbErr>>()?;
    Ok((sizes, retained))
}

/// Each member who bought in the 365 days to the window's last day at the place: the day of
/// their last purchase, their purchases and their net spend.
pub async fn buyers_by_recency(db: &impl ConnectionTrait, scope: &Scope) -> Result<Vec<(String, i64, i64)>, DbErr> {
    let last_day = scope.window.last_day.as_str();
    let (conditions, values) = scope.conditions_between("day", &days_before(last_day, 364), last_day);
    let sql = format!(
        "SELECT max(CASE WHEN orders > 0 THEN day END) AS last_day, CAST(sum(orders) AS BIGINT) AS purchases, \
         CAST(sum(spend_minor) AS BIGINT) AS spend FROM member_days WHERE {conditions} \
         GROUP BY member_id HAVING sum(orders) > 0"
    );
    let rows = db
        .query_all_raw(statement(db.get_database_backend(), &sql, values))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("", "last_day")?,
                row.try_get("", "purchases")?,
                row.try_get("", "spend")?,
            ))
        })
        .collect()
}

/// One field's members and what they did in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFigures {
    pub store_id: String,
    pub guide_id: String,
    pub bound_members: i64,
    pub active_members: i64,
    pub spend_minor: i64,
}

/// Per store (or per guide, with `by_guide`): members bound to it and enrolled by the window's
/// last day, those who bought in the window (among the sales of the scope's brand and channel),
/// and their net spend. The scope's store selects one store's fields.
pub async fn fields(db: &impl ConnectionTrait, scope: &Scope, by_guide: bool) -> Result<Vec<FieldFigures>, DbErr> {
    let sales_scope = Scope {
        tenant_id: scope.tenant_id.clone(),
        window: scope.window.clone(),
        place: crate::domain::Place {
            store_id: String::new(),
            ..scope.place.clone()
        },
        line: LineFilter::default(),
    };
    let guide = if by_guide { "m.bound_guide_id" } else { "''" };
    let mut query = Query::default();
    query
        .push(&format!(
            "SELECT m.bound_store_id AS store_id, {guide} AS guide_id, count(*) AS bound_members, \
             CAST(COALESCE(sum(CASE WHEN s.orders > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS active_members, \
             CAST(COALESCE(sum(s.spend), 0) AS BIGINT) AS spend_minor FROM members m LEFT JOIN \
             (SELECT member_id, sum(orders) AS orders, sum(spend_minor) AS spend FROM member_days WHERE "
        ))
        .append(sales_scope.conditions("day"))
        .push(" GROUP BY member_id) AS s ON s.member_id = m.member_id WHERE m.tenant_id = ")
        .bind(scope.tenant_id.as_ref())
        .push(" AND m.merged_into IS NULL AND m.bound_store_id <> '' AND m.enrolled_day <= ")
        .bind(scope.window.last_day.as_str());
    if !scope.place.store_id.is_empty() {
        query
            .push(" AND m.bound_store_id = ")
            .bind(scope.place.store_id.as_str());
    }
    // PostgreSQL groups by no constant: per store, the guide column is not grouped.
    let grouped = if by_guide {
        "m.bound_store_id, m.bound_guide_id"
    } else {
        "m.bound_store_id"
    };
    query.push(&format!(" GROUP BY {grouped} ORDER BY {grouped}"));
    let rows = db
        .query_all_raw(query.into_statement(db.get_database_backend()))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(FieldFigures {
                store_id: row.try_get("", "store_id")?,
                guide_id: row.try_get("", "guide_id")?,
                bound_members: row.try_get("", "bound_members")?,
                active_members: row.try_get("", "active_members")?,
                spend_minor: row.try_get("", "spend_minor")?,
            })
        })
        .collect()
}
