//! Reading the figures of a window from the facts and rollups: one aggregate query each.

use sea_orm::{ConnectionTrait, DbErr, Value};

use super::facts::Place;
use super::statement;
use crate::domain::window::Window;

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
    /// `tenant_id = ? AND <day> BETWEEN ? AND ?` and the place conditions set, with their values.
    fn conditions(&self, day_column: &str) -> (String, Vec<Value>) {
        let mut sql = format!("tenant_id = ? AND {day_column} BETWEEN ? AND ?");
        let mut values: Vec<Value> = vec![
            self.tenant_id.as_ref().into(),
            self.window.first_day.as_str().into(),
            self.window.last_day.as_str().into(),
        ];
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
        if !self.place.brand_id.is_empty() {
            sql.push_str(" AND brand_id = ?");
            values.push(self.place.brand_id.as_str().into());
        }
        if self.place.channel != 0 {
            sql.push_str(" AND channel = ?");
            values.push(self.place.channel.into());
        }
        if !self.place.store_id.is_empty() {
            sql.push_str(" AND store_id = ?");
            values.push(self.place.store_id.as_str().into());
        }
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

/// For each pair of channels (in order, each pair once), the members who bought on both.
pub async fn channel_overlap(db: &impl ConnectionTrait, scope: &Scope) -> Result<Vec<(i32, i32, i64)>, DbErr> {
    let (conditions, values) = scope.conditions("day");
    let bought = format!("SELECT DISTINCT member_id, channel FROM member_days WHERE {conditions} AND orders > 0");
    let sql = format!(
        "SELECT a.channel AS channel, b.channel AS other_channel, count(*) AS members \
         FROM ({bought}) AS a JOIN ({bought}) AS b ON a.member_id = b.member_id AND a.channel <= b.channel \
         GROUP BY a.channel, b.channel ORDER BY a.channel, b.channel"
    );
    let both = values.iter().cloned().chain(values.iter().cloned()).collect();
    let rows = db
        .query_all_raw(statement(db.get_database_backend(), &sql, both))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("", "channel")?,
                row.try_get("", "other_channel")?,
                row.try_get("", "members")?,
            ))
        })
        .collect()
}
