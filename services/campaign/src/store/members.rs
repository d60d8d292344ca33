//! What campaign keeps of members: who was merged into whom (member-identity's MembersMerged:
//! coupons and counts under per-member limits move to the survivor, and the merged id means the
//! survivor from then on), and birthdays as month and day, for birthday gifts.

use quanyu_runtime::db::sql::{Query, execute};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, sea_query::OnConflict};

use super::entity::merged_members;

/// The member `member_id` means now: its survivor when it was merged, itself otherwise.
pub async fn current<C: ConnectionTrait>(db: &C, tenant_id: &str, member_id: &str) -> Result<String, DbErr> {
    let merged = merged_members::Entity::find_by_id((tenant_id.to_owned(), member_id.to_owned()))
        .one(db)
        .await?;
    Ok(merged.map_or_else(|| member_id.to_owned(), |merged| merged.survivor_id))
}

/// Folds `loser` into `survivor`. Folding the same pair again changes nothing.
pub async fn fold<C: ConnectionTrait>(db: &C, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    let merged = merged_members::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        member_id: Set(loser.to_owned()),
        survivor_id: Set(survivor.to_owned()),
    };
    let on_conflict = OnConflict::columns([merged_members::Column::TenantId, merged_members::Column::MemberId])
        .update_column(merged_members::Column::SurvivorId)
        .to_owned();
    merged_members::Entity::insert(merged)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await?;
    let statements: [(&str, Vec<sea_orm::Value>); 4] = [
        // Members merged into the loser before now mean the survivor too.
        (
            "UPDATE merged_members SET survivor_id = ? WHERE tenant_id = ? AND survivor_id = ?",
            vec![survivor.into(), tenant_id.into(), loser.into()],
        ),
        (
            "UPDATE coupons SET member_id = ? WHERE tenant_id = ? AND member_id = ?",
            vec![survivor.into(), tenant_id.into(), loser.into()],
        ),
        (
            "INSERT INTO coupon_holdings (tenant_id, template_id, member_id, issued) \
             SELECT tenant_id, template_id, ?, issued FROM coupon_holdings WHERE tenant_id = ? AND member_id = ? \
             ON CONFLICT (tenant_id, template_id, member_id) \
             DO UPDATE SET issued = coupon_holdings.issued + excluded.issued",
            vec![survivor.into(), tenant_id.into(), loser.into()],
        ),
        (
            "DELETE FROM coupon_holdings WHERE tenant_id = ? AND member_id = ?",
            vec![tenant_id.into(), loser.into()],
        ),
    ];
    // The survivor's birthday is the person's; the merged record's goes.
    set_birthday(db, tenant_id, loser, None).await?;
    for (sql, values) in statements {
        execute(db, sql, values).await?;
    }
    Ok(())
}

/// Keeps a member's birthday (`MM-DD`), or forgets it (`None`: unknown, or erased).
pub async fn set_birthday<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    month_day: Option<&str>,
) -> Result<(), DbErr> {
    let (sql, values): (&str, Vec<sea_orm::Value>) = match month_day {
        Some(month_day) => (
            "INSERT INTO member_birthdays (tenant_id, member_id, month_day) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id, member_id) DO UPDATE SET month_day = excluded.month_day",
            vec![tenant_id.into(), member_id.into(), month_day.into()],
        ),
        None => (
            "DELETE FROM member_birthdays WHERE tenant_id = ? AND member_id = ?",
            vec![tenant_id.into(), member_id.into()],
        ),
    };
    execute(db, sql, values).await?;
    Ok(())
}

/// Members after `after` (in member id order) whose birthday is one of `month_days` and whom
/// the campaign has not rewarded for the occurrence yet, at most `limit`.
pub async fn birthdays_due<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    month_days: &[String],
    (campaign_id, occurrence): (&str, &str),
    (after, limit): (&str, u64),
) -> Result<Vec<String>, DbErr> {
    let mut query = Query::default();
    query
        .push("SELECT b.member_id FROM member_birthdays b WHERE b.tenant_id = ")
        .bind(tenant_id)
        .push(" AND b.member_id > ")
        .bind(after)
        .push(" AND b.month_day IN (");
    for (index, month_day) in month_days.iter().enumerate() {
        query.push(if index == 0 { "" } else { ", " }).bind(month_day.as_str());
    }
    query
        .push(") AND NOT EXISTS (SELECT 1 FROM rewards r WHERE r.tenant_id = b.tenant_id AND r.campaign_id = ")
        .bind(campaign_id)
        .push(" AND r.occurrence = ")
        .bind(occurrence)
        .push(" AND r.member_id = b.member_id) ORDER BY b.member_id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = db
        .query_all_raw(query.into_statement(db.get_database_backend()))
        .await?;
    rows.iter().map(|row| row.try_get::<String>("", "member_id")).collect()
}
