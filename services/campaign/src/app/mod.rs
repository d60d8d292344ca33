//! Campaign's use cases, each one transaction.

pub mod assists;
pub mod audiences;
pub mod campaigns;
pub mod coupons;
pub mod drops;
pub mod ingest;
pub mod referrals;
pub mod rewards;
pub mod templates;

use chrono::{DateTime, Utc};
use prost::Message as _;
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::to_proto;
use quanyu_runtime::error::FieldViolation;
use quanyu_runtime::idempotency::{self, Replay, RequestDigest};
use sea_orm::ConnectionTrait;

use crate::domain::coupon::State;
use crate::error::CampaignError;
use crate::store::entity::{self, coupon_templates};

/// A write made idempotent by a key in a scope, as the runtime records them.
pub struct Keyed<'a> {
    pub scope: String,
    pub key: &'a str,
    pub request: RequestDigest,
    /// The name of a request field by number, to name the field in which a reuse differs.
    pub field_name: fn(u32) -> String,
}

impl<'a> Keyed<'a> {
    /// The key of `request`, in `scope`.
    pub fn of<M: prost::Message + prost::Name>(scope: impl Into<String>, key: &'a str, request: &M) -> Self {
        Self {
            scope: scope.into(),
            key,
            request: RequestDigest::of(request),
            field_name: idempotency::field_name::<M>,
        }
    }

    /// The response recorded under the key for the same request, `None` for a first write, or
    /// ALREADY_EXISTS for another request under the same key.
    async fn recorded<C: ConnectionTrait>(&self, db: &C, tenant_id: &str) -> Result<Option<Vec<u8>>, CampaignError> {
        let recorded = idempotency::find(db, tenant_id, &self.scope, vec![self.key.to_owned()], false).await?;
        match idempotency::replay(recorded.get(self.key), &self.request) {
            Replay::First => Ok(None),
            Replay::Same(response) => Ok(Some(response.to_vec())),
            Replay::Conflict { field } => {
                let field = (self.field_name)(field);
                Err(CampaignError::AlreadyExists {
                    message: format!("{} was used for a request with a different {field}", self.key),
                    field: FieldViolation::new(field, "differs from the request first made under this key"),
                })
            }
        }
    }

    /// The record of this write's response, to write with it.
    fn record(&self, response: &impl prost::Message) -> idempotency::NewRecord {
        idempotency::NewRecord {
            scope: self.scope.clone(),
            key: self.key.to_owned(),
            request: self.request.clone(),
            response: response.encode_to_vec(),
        }
    }
}

/// Checks that a definition created again under its id (`what`, `id`) is the one stored: the
/// same is answered as it was, another is ALREADY_EXISTS naming the first field that differs.
fn unchanged<M: prost::Message + prost::Name>(
    stored: &[u8],
    given: &M,
    (what, id): (&str, &str),
) -> Result<(), CampaignError> {
    let before = RequestDigest::of_encoded(stored).unwrap_or_else(|| RequestDigest::of(&()));
    match RequestDigest::of(given).first_difference(&before) {
        None => Ok(()),
        Some(field) => {
            let field = format!("{what}.{}", idempotency::field_name::<M>(field));
            Err(CampaignError::AlreadyExists {
                message: format!(
                    "{what} {} exists with a different {field}",
                    quanyu_runtime::error::quote(id)
                ),
                field: FieldViolation::new(field, format!("differs from the {what} created under this id")),
            })
        }
    }
}

/// A page of at most `size` of `rows` (read with one more than a page, to tell whether another
/// follows), and the token of the next page, empty after the last.
fn page<T>(mut rows: Vec<T>, size: u64, key: impl Fn(&T) -> &String) -> (Vec<T>, String) {
    let more = rows.len() as u64 > size;
    rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let next = match rows.last() {
        Some(last) if more => quanyu_runtime::page::token(key(last)),
        _ => String::new(),
    };
    (rows, next)
}

/// A stored response that does not decode: the database holds what this service never wrote.
fn undecodable(what: &str, error: prost::DecodeError) -> CampaignError {
    CampaignError::Database(sea_orm::DbErr::Custom(format!(
        "a stored {what} does not decode: {error}"
    )))
}

/// A coupon as the contract shows it at `now` (an available coupon past its validity is EXPIRED).
pub fn coupon_to_pb(coupon: &entity::coupons::Model, now: DateTime<Utc>) -> pb::Coupon {
    let state = match State::parse(&coupon.state) {
        Some(State::Available) if now >= coupon.valid_until => pb::CouponState::Expired,
        Some(State::Available) => pb::CouponState::Available,
        Some(State::Redeemed) => pb::CouponState::Redeemed,
        Some(State::Void) => pb::CouponState::Void,
        None => pb::CouponState::Unspecified,
    };
    pb::Coupon {
        code: coupon.code.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        state: state.into(),
        issued_at: Some(to_proto(coupon.issued_at)),
        valid_from: Some(to_proto(coupon.valid_from)),
        valid_until: Some(to_proto(coupon.valid_until)),
        order_source: coupon.order_source.clone(),
        order_id: coupon.order_id.clone(),
        redeemed_at: coupon.redeemed_at.map(to_proto),
        origin: pb::CouponOrigin::from_str_name(&coupon.origin)
            .unwrap_or_default()
            .into(),
        void_reason: coupon.void_reason.clone(),
        coupon_id: coupon.coupon_id.clone(),
    }
}

/// A template as the contract shows it: as defined, with its stock and issue count now.
pub fn template_to_pb(row: &coupon_templates::Model) -> Result<pb::CouponTemplate, CampaignError> {
    let definition =
        pb::CouponTemplate::decode(row.definition.as_slice()).map_err(|error| undecodable("template", error))?;
    Ok(pb::CouponTemplate {
        stock: row.stock,
        issued: row.issued,
        created_at: Some(to_proto(row.created_at)),
        ..definition
    })
}
