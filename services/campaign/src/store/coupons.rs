//! Coupons, each member's count per template, and redemptions by order.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::execute;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::{coupons, redemptions};
use crate::domain::coupon::State;

/// Takes one place of `member_id` under the template's per-member `limit` (0: no limit): false
/// when the member holds the limit already. One statement: concurrent issues to one member take
/// turns on the row.
pub async fn take_member_place<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
    member_id: &str,
    limit: i64,
) -> Result<bool, DbErr> {
    let limit = if limit == 0 { i64::MAX } else { limit };
    let sql = "INSERT INTO coupon_holdings (tenant_id, template_id, member_id, issued) VALUES (?, ?, ?, 1) \
               ON CONFLICT (tenant_id, template_id, member_id) \
               DO UPDATE SET issued = coupon_holdings.issued + 1 WHERE coupon_holdings.issued < ?";
    let values = vec![tenant_id.into(), template_id.into(), member_id.into(), limit.into()];
    Ok(execute(db, sql, values).await? == 1)
}

/// The tenant's coupons with these codes, locked for update when `lock`.
pub async fn by_codes<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    codes: Vec<String>,
    lock: bool,
) -> Result<Vec<coupons::Model>, DbErr> {
    let scope = [(coupons::Column::TenantId, tenant_id.into())];
    quanyu_runtime::db::find_by_keys::<coupons::Entity, _>(db, &scope, coupons::Column::Code, codes, lock).await
}

/// A member's coupons, newest first, after the coupon `after` (a page's last), of one state.
pub async fn of_member<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    state: Option<(State, Expiry)>,
    after: Option<String>,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<coupons::Model>, DbErr> {
    let mut query = coupons::Entity::find()
        .filter(coupons::Column::TenantId.eq(tenant_id))
        .filter(coupons::Column::MemberId.eq(member_id));
    if let Some((state, expiry)) = state {
        query = query.filter(coupons::Column::State.eq(state.as_str()));
        query = match expiry {
            Expiry::Any => query,
            Expiry::Valid => query.filter(coupons::Column::ValidUntil.gt(now)),
            Expiry::Expired => query.filter(coupons::Column::ValidUntil.lte(now)),
        };
    }
    if let Some(after) = after {
        query = query.filter(coupons::Column::CouponId.lt(after));
    }
    query
        .order_by_desc(coupons::Column::CouponId)
        .limit(limit)
        .all(db)
        .await
}

/// Whether a listing of available coupons wants those still valid or those past their validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Any,
    Valid,
    Expired,
}

/// Marks coupons redeemed for an order.
pub async fn redeem<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    coupon_ids: Vec<String>,
    (order_source, order_id): (&str, &str),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    coupons::Entity::update_many()
        .col_expr(coupons::Column::State, Expr::value(State::Redeemed.as_str()))
        .col_expr(coupons::Column::OrderSource, Expr::value(order_source))
        .col_expr(coupons::Column::OrderId, Expr::value(order_id))
        .col_expr(coupons::Column::RedeemedAt, Expr::value(at))
        .filter(coupons::Column::TenantId.eq(tenant_id))
        .filter(coupons::Column::CouponId.is_in(coupon_ids))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn void<C: ConnectionTrait>(db: &C, tenant_id: &str, coupon_id: &str, reason: &str) -> Result<(), DbErr> {
    coupons::Entity::update_many()
        .col_expr(coupons::Column::State, Expr::value(State::Void.as_str()))
        .col_expr(coupons::Column::VoidReason, Expr::value(reason))
        .filter(coupons::Column::TenantId.eq(tenant_id))
        .filter(coupons::Column::CouponId.eq(coupon_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records the redemption of an order.
pub async fn record_redemption<C: ConnectionTrait>(db: &C, redemption: redemptions::Model) -> Result<(), DbErr> {
    let row = redemptions::ActiveModel {
        tenant_id: Set(redemption.tenant_id),
        order_source: Set(redemption.order_source),
        order_id: Set(redemption.order_id),
        amount_minor: Set(redemption.amount_minor),
        currency: Set(redemption.currency),
        refunded_minor: Set(redemption.refunded_minor),
        restored: Set(redemption.restored),
        redeemed_at: Set(redemption.redeemed_at),
    };
    redemptions::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// Adds a refund to an order's redemption; the redemption as it is now, if the order redeemed
/// coupons.
pub async fn add_refund<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (order_source, order_id): (&str, &str),
    refunded_minor: i64,
) -> Result<Option<redemptions::Model>, DbErr> {
    let key = (tenant_id.to_owned(), order_source.to_owned(), order_id.to_owned());
    let Some(redemption) = redemptions::Entity::find_by_id(key).one(db).await? else {
        return Ok(None);
    };
    let refunded = redemption.refunded_minor.saturating_add(refunded_minor);
    redemptions::Entity::update_many()
        .col_expr(redemptions::Column::RefundedMinor, Expr::value(refunded))
        .filter(redemptions::Column::TenantId.eq(tenant_id))
        .filter(redemptions::Column::OrderSource.eq(order_source))
        .filter(redemptions::Column::OrderId.eq(order_id))
        .exec(db)
        .await?;
    Ok(Some(redemptions::Model {
        refunded_minor: refunded,
        ..redemption
    }))
}

/// Makes the coupons an order redeemed available again, those still valid at `now`; the coupons
/// restored. The redemption is marked restored, so a later refund restores nothing more.
pub async fn restore<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (order_source, order_id): (&str, &str),
    now: DateTime<Utc>,
) -> Result<Vec<coupons::Model>, DbErr> {
    let of_order = || {
        coupons::Entity::find()
            .filter(coupons::Column::TenantId.eq(tenant_id))
            .filter(coupons::Column::OrderSource.eq(order_source))
            .filter(coupons::Column::OrderId.eq(order_id))
            .filter(coupons::Column::State.eq(State::Redeemed.as_str()))
            .filter(coupons::Column::ValidUntil.gt(now))
    };
    let restored = of_order().all(db).await?;
    coupons::Entity::update_many()
        .col_expr(coupons::Column::State, Expr::value(State::Available.as_str()))
        .col_expr(coupons::Column::OrderSource, Expr::value(""))
        .col_expr(coupons::Column::OrderId, Expr::value(""))
        .col_expr(coupons::Column::RedeemedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(coupons::Column::TenantId.eq(tenant_id))
        .filter(coupons::Column::CouponId.is_in(restored.iter().map(|coupon| coupon.coupon_id.clone())))
        .exec(db)
        .await?;
    redemptions::Entity::update_many()
        .col_expr(redemptions::Column::Restored, Expr::value(true))
        .filter(redemptions::Column::TenantId.eq(tenant_id))
        .filter(redemptions::Column::OrderSource.eq(order_source))
        .filter(redemptions::Column::OrderId.eq(order_id))
        .exec(db)
        .await?;
    Ok(restored)
}
