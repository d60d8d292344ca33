//! Coupon templates and their stock.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::value;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use super::entity::{code_pool, coupon_templates};

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
) -> Result<Option<coupon_templates::Model>, DbErr> {
    coupon_templates::Entity::find_by_id((tenant_id.to_owned(), template_id.to_owned()))
        .one(db)
        .await
}

/// Adds a new template; a template with the same id fails the insert (a unique violation).
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
    definition: Vec<u8>,
    (stock, per_member_limit): (i64, u32),
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = coupon_templates::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        template_id: Set(template_id.to_owned()),
        definition: Set(definition),
        stock: Set(stock),
        issued: Set(0),
        per_member_limit: Set(i64::from(per_member_limit)),
        created_at: Set(at),
    };
    coupon_templates::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// Takes one coupon from the template's stock: the number of coupons issued with this one (the
/// first is 1), or `None` when the stock is spent. One statement, so the row's lock is held only
/// from here to the commit, and concurrent takers never pass the stock.
pub async fn take_stock<C: ConnectionTrait>(db: &C, tenant_id: &str, template_id: &str) -> Result<Option<i64>, DbErr> {
    let sql = "UPDATE coupon_templates SET issued = issued + 1 \
               WHERE tenant_id = ? AND template_id = ? AND (stock = 0 OR issued < stock) RETURNING issued";
    let values = vec![tenant_id.into(), template_id.into()];
    value(db, (sql, values), "issued").await
}

/// Locks the template's row for a change of its stock, and reads the stock.
pub async fn lock_stock<C: ConnectionTrait>(db: &C, tenant_id: &str, template_id: &str) -> Result<Option<i64>, DbErr> {
    let sql = "UPDATE coupon_templates SET stock = stock WHERE tenant_id = ? AND template_id = ? RETURNING stock";
    let values = vec![tenant_id.into(), template_id.into()];
    value(db, (sql, values), "stock").await
}

/// Adds a partner's codes to the pool of a template locked by [`lock_stock`], after its `stock`
/// codes, and raises its stock by as many.
pub async fn add_to_pool<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
    stock: i64,
    codes: &[String],
) -> Result<(), DbErr> {
    if codes.is_empty() {
        return Ok(());
    }
    let rows = codes
        .iter()
        .zip(stock + 1..)
        .map(|(code, position)| code_pool::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            template_id: Set(template_id.to_owned()),
            position: Set(position),
            code: Set(code.clone()),
        });
    code_pool::Entity::insert_many(rows).exec_without_returning(db).await?;
    let added = i64::try_from(codes.len()).unwrap_or(i64::MAX);
    let sql = "UPDATE coupon_templates SET stock = stock + ? WHERE tenant_id = ? AND template_id = ?";
    quanyu_runtime::db::sql::execute(db, sql, vec![added.into(), tenant_id.into(), template_id.into()]).await?;
    Ok(())
}

/// The pool's code at `position` (the Nth coupon issued takes the Nth code).
pub async fn pool_code<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
    position: i64,
) -> Result<Option<String>, DbErr> {
    let row = code_pool::Entity::find_by_id((tenant_id.to_owned(), template_id.to_owned(), position))
        .one(db)
        .await?;
    Ok(row.map(|row| row.code))
}

/// Which of `codes` some pool of the tenant holds already, with the template whose pool it is.
pub async fn pooled<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    codes: Vec<String>,
) -> Result<Vec<(String, String)>, DbErr> {
    let scope = [(code_pool::Column::TenantId, tenant_id.into())];
    let rows =
        quanyu_runtime::db::find_by_keys::<code_pool::Entity, _>(db, &scope, code_pool::Column::Code, codes, false)
            .await?;
    Ok(rows.into_iter().map(|row| (row.code, row.template_id)).collect())
}
