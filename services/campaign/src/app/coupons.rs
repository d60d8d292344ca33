//! Issuing, claiming, checking, redeeming and voiding coupons, and partners' code pools.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use prost::Message as _;
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::Money;
use quanyu_runtime::clock::to_proto;
use quanyu_runtime::db::{Writes, begin_write, with_retries};
use quanyu_runtime::error::quote;
use sea_orm::{ConnectionTrait, DatabaseConnection, IntoActiveModel};

use super::{Keyed, coupon_to_pb, templates, undecodable};
use crate::domain::code;
use crate::domain::coupon::{self, Order, Refusal, State};
use crate::domain::template::{CodeSource, Template};
use crate::error::CampaignError;
use crate::events;
use crate::store;
use crate::store::coupons::Expiry;
use crate::store::entity::{coupons, redemptions};

/// A coupon to issue (or to be claimed) under an idempotency key.
pub struct Issue<'a> {
    pub template_id: &'a str,
    pub member_id: &'a str,
    pub origin: pb::CouponOrigin,
    /// Where a claim comes from.
    pub channel: i32,
}

/// Issues a coupon, or answers the coupon issued before under the same key (as it is now).
pub async fn issue(
    db: &DatabaseConnection,
    tenant_id: &str,
    (issue, keyed): (&Issue<'_>, &Keyed<'_>),
    now: DateTime<Utc>,
) -> Result<pb::Coupon, CampaignError> {
    // A claim is seldom sent twice: the first attempt takes its key for new without reading it.
    // A key recorded before fails the record's insert (a unique violation, retried), and a
    // refusal (the member at the limit, the stock out) may be the first claim's own doing: the
    // retry, or the refusal, reads the key first.
    let unread = AtomicBool::new(true);
    with_retries(|| async {
        let read_first = !unread.swap(false, Ordering::Relaxed);
        match issue_once(db, tenant_id, (issue, keyed), now, read_first).await {
            Err(CampaignError::Refused { .. }) if !read_first => {
                issue_once(db, tenant_id, (issue, keyed), now, true).await
            }
            outcome => outcome,
        }
    })
    .await
}

async fn issue_once(
    db: &DatabaseConnection,
    tenant_id: &str,
    (issue, keyed): (&Issue<'_>, &Keyed<'_>),
    now: DateTime<Utc>,
    read_first: bool,
) -> Result<pb::Coupon, CampaignError> {
    let txn = begin_write(db).await?;
    if read_first && let Some(response) = keyed.recorded(&txn, tenant_id).await? {
        let first = pb::Coupon::decode(response.as_slice()).map_err(|error| undecodable("coupon", error))?;
        let now_stored = store::coupons::by_codes(&txn, tenant_id, vec![first.code.clone()], false).await?;
        return Ok(now_stored.first().map_or(first, |coupon| coupon_to_pb(coupon, now)));
    }
    let coupon = issue_in(&txn, tenant_id, issue, Some(keyed), now).await?;
    txn.commit().await?;
    counted("issued", 1);
    Ok(coupon_to_pb(&coupon, now))
}

/// Issues a coupon in the caller's transaction (its event with it, and its idempotency record
/// when keyed): the coupon, or why not. A refusal leaves the member's count and the stock as
/// they were only when the caller rolls back what this did.
pub(crate) async fn issue_in<C: ConnectionTrait>(
    txn: &C,
    tenant_id: &str,
    issue: &Issue<'_>,
    keyed: Option<&Keyed<'_>>,
    now: DateTime<Utc>,
) -> Result<coupons::Model, CampaignError> {
    let member_id = store::members::current(txn, tenant_id, issue.member_id).await?;
    let (row, template) = templates::load(txn, tenant_id, issue.template_id).await?;
    let (valid_from, valid_until) = template.validity.of_issue(now);
    if valid_until <= now {
        return Err(CampaignError::refused(
            "TEMPLATE_ENDED",
            "template_id",
            "its coupons' validity has ended",
        ));
    }
    if issue.origin == pb::CouponOrigin::Claimed
        && !template.channels.is_empty()
        && !template.channels.contains(&issue.channel)
    {
        return Err(CampaignError::refused(
            "WRONG_CHANNEL",
            "channel",
            "the template's coupons cannot be claimed on this channel",
        ));
    }
    let limit = row.per_member_limit;
    if !store::coupons::take_member_place(txn, tenant_id, issue.template_id, &member_id, limit).await? {
        let why = format!("the member holds {limit} coupons of this template, the most one member may");
        return Err(CampaignError::refused("MEMBER_LIMIT_REACHED", "member_id", why));
    }
    let take_stock = || async {
        let taken = store::templates::take_stock(txn, tenant_id, issue.template_id).await?;
        taken
            .ok_or_else(|| CampaignError::refused("OUT_OF_STOCK", "template_id", "no coupons of the template are left"))
    };
    // An imported code is the pool's at the coupon's number, so the stock comes first. A
    // generated one lets it come last: the stock's row, which every claimer of a hot template
    // wants, is then locked only from its update to the commit.
    let number = match template.code_source {
        CodeSource::Imported => Some(take_stock().await?),
        CodeSource::Generated => None,
    };
    let code = match number {
        Some(number) => store::templates::pool_code(txn, tenant_id, issue.template_id, number)
            .await?
            .ok_or_else(|| CampaignError::NotFound(format!("the pool has no code at {number}")))?,
        None => code::generate()?,
    };
    let coupon = coupons::Model {
        tenant_id: tenant_id.to_owned(),
        coupon_id: uuid::Uuid::now_v7().to_string(),
        code,
        template_id: issue.template_id.to_owned(),
        member_id,
        origin: issue.origin.as_str_name().to_owned(),
        state: State::Available.as_str().to_owned(),
        issued_at: now,
        valid_from,
        valid_until,
        order_source: String::new(),
        order_id: String::new(),
        redeemed_at: None,
        void_reason: String::new(),
    };
    let mut writes = Writes::new(txn);
    writes.insert_many(vec![coupon.clone().into_active_model()], None);
    quanyu_outbox::append_to(&mut writes, vec![events::issued(&coupon, issue.origin, issue.channel)]);
    if let Some(keyed) = keyed {
        let record = keyed.record(&coupon_to_pb(&coupon, now));
        quanyu_runtime::idempotency::record(&mut writes, tenant_id, vec![record], now);
    }
    writes.execute(txn).await?;
    if number.is_none() {
        take_stock().await?;
    }
    Ok(coupon)
}

/// Counts coupons by what happened to them (`campaign_coupons_total{event}`), once committed.
pub(crate) fn counted(event: &'static str, coupons: usize) {
    metrics::counter!("campaign_coupons_total", "event" => event).increment(coupons as u64);
}

/// The checks of an order's codes: one per code, and the coupons it could use with what each
/// takes off.
struct Checked {
    checks: Vec<pb::CouponCheck>,
    usable: Vec<(coupons::Model, i64)>,
    /// The first refusal: the code's index and why.
    refused: Option<(usize, coupon::Refused)>,
}

/// Checks `codes` (normalized) for `order`, reading the coupons locked for update when `lock`.
async fn check_codes<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    order: &Order,
    codes: &[String],
    now: DateTime<Utc>,
    lock: bool,
) -> Result<Checked, CampaignError> {
    let found: HashMap<String, coupons::Model> = store::coupons::by_codes(db, tenant_id, codes.to_vec(), lock)
        .await?
        .into_iter()
        .map(|coupon| (coupon.code.clone(), coupon))
        .collect();
    let mut templates: HashMap<String, Template> = HashMap::new();
    for coupon in found.values() {
        if !templates.contains_key(&coupon.template_id) {
            let (_, template) = templates::load(db, tenant_id, &coupon.template_id).await?;
            templates.insert(coupon.template_id.clone(), template);
        }
    }
    let alone = codes.len() == 1;
    let mut seen = HashSet::new();
    let mut checked = Checked {
        checks: Vec::with_capacity(codes.len()),
        usable: Vec::new(),
        refused: None,
    };
    for (index, code) in codes.iter().enumerate() {
        let coupon = found.get(code);
        let template = coupon.and_then(|coupon| templates.get(&coupon.template_id));
        let outcome = match (coupon, template) {
            _ if !seen.insert(code) => Err(refusal(Refusal::Repeated, "is named twice in the order")),
            (Some(coupon), Some(template)) => coupon::check(template, &as_domain(coupon), order, now, alone),
            _ if code::is_mistyped(code) => Err(refusal(
                Refusal::NotFound,
                "is mistyped: its check character does not match",
            )),
            _ => Err(refusal(Refusal::NotFound, "is not a coupon of this tenant")),
        };
        let mut check = pb::CouponCheck {
            code: code.clone(),
            template_id: coupon.map(|coupon| coupon.template_id.clone()).unwrap_or_default(),
            ..Default::default()
        };
        if let Some(template) = template {
            check.kind = kind_of(template).into();
            if let crate::domain::template::Benefit::Gift(sku) = &template.benefit {
                check.gift_sku = sku.clone();
            }
        }
        match outcome {
            Ok(discount) => {
                check.discount = Some(money(discount, &order.currency));
                if let Some(coupon) = coupon {
                    checked.usable.push((coupon.clone(), discount));
                }
            }
            Err(refused) => {
                check.refusal = refusal_to_pb(refused.refusal).into();
                check.reason = refused.reason.clone();
                checked.refused.get_or_insert((index, refused));
            }
        }
        checked.checks.push(check);
    }
    Ok(checked)
}

fn refusal(refusal: Refusal, reason: &str) -> coupon::Refused {
    coupon::Refused {
        refusal,
        reason: reason.to_owned(),
    }
}

fn as_domain(coupon: &coupons::Model) -> coupon::Coupon {
    coupon::Coupon {
        coupon_id: coupon.coupon_id.clone(),
        code: coupon.code.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        state: State::parse(&coupon.state).unwrap_or(State::Void),
        valid_from: coupon.valid_from,
        valid_until: coupon.valid_until,
    }
}

fn kind_of(template: &Template) -> pb::CouponKind {
    use crate::domain::template::Benefit;
    match template.benefit {
        Benefit::AmountOff(_) => pb::CouponKind::AmountOff,
        Benefit::PercentOff { .. } => pb::CouponKind::PercentOff,
        Benefit::Gift(_) => pb::CouponKind::Gift,
        Benefit::FreeShipping => pb::CouponKind::FreeShipping,
    }
}

fn refusal_to_pb(refusal: Refusal) -> pb::CouponRefusal {
    match refusal {
        Refusal::NotFound => pb::CouponRefusal::NotFound,
        Refusal::NotYetValid => pb::CouponRefusal::NotYetValid,
        Refusal::Expired => pb::CouponRefusal::Expired,
        Refusal::Redeemed => pb::CouponRefusal::Redeemed,
        Refusal::Void => pb::CouponRefusal::Void,
        Refusal::WrongChannel => pb::CouponRefusal::WrongChannel,
        Refusal::WrongBrand => pb::CouponRefusal::WrongBrand,
        Refusal::WrongStore => pb::CouponRefusal::WrongStore,
        Refusal::BelowMinSpend => pb::CouponRefusal::BelowMinSpend,
        Refusal::WrongCurrency => pb::CouponRefusal::WrongCurrency,
        Refusal::DoesNotStack => pb::CouponRefusal::DoesNotStack,
        Refusal::WrongMember => pb::CouponRefusal::WrongMember,
        Refusal::Repeated => pb::CouponRefusal::Repeated,
    }
}

fn money(amount_minor: i64, currency: &str) -> Money {
    Money {
        amount_minor,
        currency: currency.to_owned(),
    }
}

/// What the usable coupons take off the order together.
fn discount_of(checked: &Checked, order: &Order) -> Money {
    let each = checked.usable.iter().map(|(_, discount)| *discount);
    money(coupon::total_discount(order.amount_minor, each), &order.currency)
}

/// Checks codes for an order without changing anything.
pub async fn validate(
    db: &DatabaseConnection,
    tenant_id: &str,
    order: &Order,
    codes: &[String],
    now: DateTime<Utc>,
) -> Result<pb::ValidateCouponsResponse, CampaignError> {
    let checked = check_codes(db, tenant_id, order, codes, now, false).await?;
    Ok(pb::ValidateCouponsResponse {
        discount: Some(discount_of(&checked, order)),
        checks: checked.checks,
    })
}

/// An order's redemption of codes (normalized), as the request names it.
pub struct Redemption<'a> {
    pub order: &'a pb::Order,
    pub checked_order: Order,
    pub codes: Vec<String>,
    pub keyed: Keyed<'a>,
}

/// Redeems the codes for the order, all or none; the same order again answers the first time.
pub async fn redeem(
    db: &DatabaseConnection,
    tenant_id: &str,
    redemption: &Redemption<'_>,
    now: DateTime<Utc>,
) -> Result<pb::RedeemCouponsResponse, CampaignError> {
    with_retries(|| redeem_once(db, tenant_id, redemption, now)).await
}

async fn redeem_once(
    db: &DatabaseConnection,
    tenant_id: &str,
    redemption: &Redemption<'_>,
    now: DateTime<Utc>,
) -> Result<pb::RedeemCouponsResponse, CampaignError> {
    let txn = begin_write(db).await?;
    if let Some(response) = redemption.keyed.recorded(&txn, tenant_id).await? {
        return pb::RedeemCouponsResponse::decode(response.as_slice())
            .map_err(|error| undecodable("redemption", error));
    }
    let order = &redemption.checked_order;
    let checked = check_codes(&txn, tenant_id, order, &redemption.codes, now, true).await?;
    if let Some((index, refused)) = &checked.refused {
        let reason = refusal_to_pb(refused.refusal)
            .as_str_name()
            .trim_start_matches("COUPON_REFUSAL_");
        let code_field = format!("codes[{index}]");
        let why = format!("coupon {} {}", quote(&redemption.codes[*index]), refused.reason);
        return Err(CampaignError::refused(reason, refused.refusal.field(&code_field), why));
    }
    let (source, order_id) = (redemption.order.source.as_str(), redemption.order.order_id.as_str());
    let discount = discount_of(&checked, order);
    let ids = checked
        .usable
        .iter()
        .map(|(coupon, _)| coupon.coupon_id.clone())
        .collect();
    store::coupons::redeem(&txn, tenant_id, ids, (source, order_id), now).await?;
    store::coupons::record_redemption(
        &txn,
        redemptions::Model {
            tenant_id: tenant_id.to_owned(),
            order_source: source.to_owned(),
            order_id: order_id.to_owned(),
            // What the buyer pays, which refunds give back.
            amount_minor: order.amount_minor - discount.amount_minor,
            currency: order.currency.clone(),
            refunded_minor: 0,
            restored: false,
            redeemed_at: now,
        },
    )
    .await?;
    let redeemed: Vec<_> = checked
        .usable
        .iter()
        .map(|(coupon, discount)| events::redeemed(coupon, redemption.order, money(*discount, &order.currency)))
        .collect();
    let response = pb::RedeemCouponsResponse {
        discount: Some(discount),
        checks: checked.checks,
        redeemed_at: Some(to_proto(now)),
    };
    let mut writes = Writes::new(&txn);
    quanyu_runtime::idempotency::record(&mut writes, tenant_id, vec![redemption.keyed.record(&response)], now);
    let count = redeemed.len();
    quanyu_outbox::append_to(&mut writes, redeemed);
    writes.execute(&txn).await?;
    txn.commit().await?;
    counted("redeemed", count);
    Ok(response)
}

/// A coupon by its code (normalized); NOT_FOUND naming the code when there is none.
async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    code: &str,
    lock: bool,
) -> Result<coupons::Model, CampaignError> {
    let found = store::coupons::by_codes(db, tenant_id, vec![code.to_owned()], lock).await?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| CampaignError::NotFound(format!("coupon {} not found", quote(code))))
}

pub async fn get(
    db: &DatabaseConnection,
    tenant_id: &str,
    code: &str,
    now: DateTime<Utc>,
) -> Result<pb::Coupon, CampaignError> {
    Ok(coupon_to_pb(&find(db, tenant_id, code, false).await?, now))
}

/// Voids an available coupon; a void one is answered as it is.
pub async fn void(
    db: &DatabaseConnection,
    tenant_id: &str,
    code: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<pb::Coupon, CampaignError> {
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let mut coupon = find(&txn, tenant_id, code, true).await?;
        match State::parse(&coupon.state) {
            Some(State::Void) => return Ok(coupon_to_pb(&coupon, now)),
            Some(State::Redeemed) => {
                return Err(CampaignError::refused(
                    "REDEEMED",
                    "code",
                    "the coupon has been redeemed: refund its order to restore it",
                ));
            }
            Some(State::Available) | None => {}
        }
        store::coupons::void(&txn, tenant_id, &coupon.coupon_id, reason).await?;
        quanyu_outbox::append(&txn, vec![events::voided(&coupon, reason)]).await?;
        txn.commit().await?;
        counted("voided", 1);
        coupon.state = State::Void.as_str().to_owned();
        coupon.void_reason = reason.to_owned();
        Ok(coupon_to_pb(&coupon, now))
    })
    .await
}

/// A page of a member's coupons, newest first, and the token of the next page.
pub async fn list(
    db: &DatabaseConnection,
    tenant_id: &str,
    member_id: &str,
    state: pb::CouponState,
    (after, size): (Option<String>, u64),
    now: DateTime<Utc>,
) -> Result<(Vec<pb::Coupon>, String), CampaignError> {
    let member_id = store::members::current(db, tenant_id, member_id).await?;
    let state = match state {
        pb::CouponState::Unspecified => None,
        pb::CouponState::Available => Some((State::Available, Expiry::Valid)),
        pb::CouponState::Expired => Some((State::Available, Expiry::Expired)),
        pb::CouponState::Redeemed => Some((State::Redeemed, Expiry::Any)),
        pb::CouponState::Void => Some((State::Void, Expiry::Any)),
    };
    let rows = store::coupons::of_member(db, tenant_id, &member_id, state, after, size + 1, now).await?;
    let (rows, next) = super::page(rows, size, |coupon| &coupon.coupon_id);
    Ok((rows.iter().map(|coupon| coupon_to_pb(coupon, now)).collect(), next))
}

/// Adds a partner's codes (normalized) to an imported template's pool.
pub async fn import(
    db: &DatabaseConnection,
    tenant_id: &str,
    template_id: &str,
    codes: &[String],
) -> Result<pb::ImportCouponCodesResponse, CampaignError> {
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let (_, template) = templates::load(&txn, tenant_id, template_id).await?;
        if template.code_source != CodeSource::Imported {
            return Err(CampaignError::InvalidInput(vec![
                quanyu_runtime::error::FieldViolation::new(
                    "template_id",
                    "makes its own codes: only templates with CODE_SOURCE_IMPORTED take a partner's",
                ),
            ]));
        }
        let stock = store::templates::lock_stock(&txn, tenant_id, template_id)
            .await?
            .unwrap_or_default();
        let wellformed: Vec<String> = codes
            .iter()
            .filter(|code| code::check_imported(code).is_ok())
            .cloned()
            .collect();
        let pooled: HashMap<String, String> = store::templates::pooled(&txn, tenant_id, wellformed)
            .await?
            .into_iter()
            .collect();
        let mut added: Vec<String> = Vec::new();
        let results = codes
            .iter()
            .map(|code| {
                let (outcome, error) = match (code::check_imported(code), pooled.get(code)) {
                    (Err(why), _) => (pb::ImportOutcome::Rejected, why),
                    (Ok(()), Some(owner)) if owner == template_id => (pb::ImportOutcome::Duplicate, String::new()),
                    (Ok(()), Some(owner)) => (
                        pb::ImportOutcome::Rejected,
                        format!("is in the pool of template {}", quote(owner)),
                    ),
                    (Ok(()), None) if added.contains(code) => (pb::ImportOutcome::Duplicate, String::new()),
                    (Ok(()), None) => {
                        added.push(code.clone());
                        (pb::ImportOutcome::Added, String::new())
                    }
                };
                pb::ImportResult {
                    outcome: outcome.into(),
                    error,
                }
            })
            .collect();
        store::templates::add_to_pool(&txn, tenant_id, template_id, stock, &added).await?;
        txn.commit().await?;
        Ok(pb::ImportCouponCodesResponse {
            results,
            stock: stock + i64::try_from(added.len()).unwrap_or(i64::MAX),
        })
    })
    .await
}
