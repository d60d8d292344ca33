//! Members merged into another (member-identity's MembersMerged): their coupons and their counts
//! under per-member limits move to the survivor, and their id means the survivor from then on.

use quanyu_runtime::db::sql::execute;
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
    for (sql, values) in statements {
        execute(db, sql, values).await?;
    }
    Ok(())
}
