//! Coupons and the rules of their use: whether an order may use a coupon, and what it takes off.

use super::template::{Template, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Available,
    Redeemed,
    Void,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Redeemed => "REDEEMED",
            Self::Void => "VOID",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Available, Self::Redeemed, Self::Void]
            .into_iter()
            .find(|state| state.as_str() == stored)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub coupon_id: String,
    pub code: String,
    pub template_id: String,
    pub member_id: String,
    pub state: State,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
}

/// The order a coupon is used for, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub channel: i32,
    pub brand_id: String,
    pub store_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// When set, every coupon must be this member's.
    pub member_id: Option<String>,
}

/// Why an order cannot use a coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    NotYetValid,
    Expired,
    Redeemed,
    Void,
    WrongChannel,
    WrongBrand,
    WrongStore,
    BelowMinSpend,
    WrongCurrency,
    DoesNotStack,
    WrongMember,
    Repeated,
}

impl Refusal {
    /// The request field at fault, under the code's own field `code_field` (`codes[2]`).
    pub fn field(self, code_field: &str) -> String {
        match self {
            Self::WrongChannel => "order.channel".into(),
            Self::WrongBrand => "order.brand_id".into(),
            Self::WrongStore => "order.store_id".into(),
            Self::BelowMinSpend => "order.amount".into(),
            Self::WrongCurrency => "order.amount.currency".into(),
            Self::WrongMember => "order.member_id".into(),
            Self::NotFound
            | Self::NotYetValid
            | Self::Expired
            | Self::Redeemed
            | Self::Void
            | Self::DoesNotStack
            | Self::Repeated => code_field.to_owned(),
        }
    }
}

/// A refusal, with why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    pub reason: String,
}

fn refused(refusal: Refusal, reason: impl Into<String>) -> Refused {
    Refused {
        refusal,
        reason: reason.into(),
    }
}

fn at(time: Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What `coupon` (of `template`) takes off `order` at `now`, or why it cannot be used. `alone`
/// says whether it is the order's only coupon.
pub fn check(template: &Template, coupon: &Coupon, order: &Order, now: Timestamp, alone: bool) -> Result<i64, Refused> {
    match coupon.state {
        State::Redeemed => return Err(refused(Refusal::Redeemed, "has been redeemed")),
        State::Void => return Err(refused(Refusal::Void, "has been voided")),
        State::Available => {}
    }
    if now < coupon.valid_from {
        return Err(refused(
            Refusal::NotYetValid,
            format!("is valid from {}", at(coupon.valid_from)),
        ));
    }
    if now >= coupon.valid_until {
        return Err(refused(
            Refusal::Expired,
            format!("expired at {}", at(coupon.valid_until)),
        ));
    }
    if let Some(member_id) = &order.member_id
        && *member_id != coupon.member_id
    {
        return Err(refused(Refusal::WrongMember, "belongs to another member"));
    }
    if !template.channels.is_empty() && !template.channels.contains(&order.channel) {
        return Err(refused(Refusal::WrongChannel, "is not valid on this channel"));
    }
    if !template.brand_ids.is_empty() && !template.brand_ids.contains(&order.brand_id) {
        return Err(refused(Refusal::WrongBrand, "is not valid for this brand"));
    }
    if !template.store_ids.is_empty() && !template.store_ids.contains(&order.store_id) {
        return Err(refused(Refusal::WrongStore, "is not valid in this store"));
    }
    if order.currency != template.currency {
        let why = format!("is for orders in {}, not {}", template.currency, order.currency);
        return Err(refused(Refusal::WrongCurrency, why));
    }
    if order.amount_minor < template.min_spend {
        let why = format!("needs an order of at least {} minor units", template.min_spend);
        return Err(refused(Refusal::BelowMinSpend, why));
    }
    if !alone && !template.stacks {
        return Err(refused(Refusal::DoesNotStack, "cannot be used with other coupons"));
    }
    Ok(template.benefit.discount(order.amount_minor))
}

/// What the usable coupons of an order take off together: their sum, never more than the order.
pub fn total_discount(order_amount: i64, discounts: impl IntoIterator<Item = i64>) -> i64 {
    discounts.into_iter().sum::<i64>().clamp(0, order_amount.max(0))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::template::{Benefit, CodeSource, Validity};

    fn template() -> Template {
        Template {
            template_id: "fifty".into(),
            benefit: Benefit::AmountOff(5_000),
            currency: "CNY".into(),
            min_spend: 20_000,
            channels: vec![5],
            brand_ids: vec!["b1".into()],
            store_ids: vec!["s1".into()],
            validity: Validity::Days(7),
            stacks: false,
            stock: 0,
            per_member_limit: 1,
            code_source: CodeSource::Generated,
        }
    }

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn coupon() -> Coupon {
        Coupon {
            coupon_id: "c".into(),
            code: "X".into(),
            template_id: "fifty".into(),
            member_id: "m1".into(),
            state: State::Available,
            valid_from: now() - Duration::days(1),
            valid_until: now() + Duration::days(1),
        }
    }

    fn order() -> Order {
        Order {
            channel: 5,
            brand_id: "b1".into(),
            store_id: "s1".into(),
            amount_minor: 30_000,
            currency: "CNY".into(),
            member_id: Some("m1".into()),
        }
    }

    fn refusal(coupon: &Coupon, order: &Order, alone: bool) -> Refusal {
        check(&template(), coupon, order, now(), alone).unwrap_err().refusal
    }

    #[test]
    fn an_order_in_place_and_time_uses_the_coupon() {
        assert_eq!(check(&template(), &coupon(), &order(), now(), true), Ok(5_000));
    }

    #[test]
    fn each_rule_refuses_with_its_reason_and_field() {
        let cases = [
            (
                Order {
                    store_id: "s2".into(),
                    ..order()
                },
                Refusal::WrongStore,
                "order.store_id",
            ),
            (Order { channel: 1, ..order() }, Refusal::WrongChannel, "order.channel"),
            (
                Order {
                    brand_id: "b2".into(),
                    ..order()
                },
                Refusal::WrongBrand,
                "order.brand_id",
            ),
            (
                Order {
                    amount_minor: 19_999,
                    ..order()
                },
                Refusal::BelowMinSpend,
                "order.amount",
            ),
            (
                Order {
                    currency: "USD".into(),
                    ..order()
                },
                Refusal::WrongCurrency,
                "order.amount.currency",
            ),
            (
                Order {
                    member_id: Some("m2".into()),
                    ..order()
                },
                Refusal::WrongMember,
                "order.member_id",
            ),
        ];
        for (order, expected, field) in cases {
            assert_eq!(refusal(&coupon(), &order, true), expected);
            assert_eq!(expected.field("codes[0]"), field);
        }
        let late = Coupon {
            valid_until: now(),
            ..coupon()
        };
        assert_eq!(refusal(&late, &order(), true), Refusal::Expired);
        let early = Coupon {
            valid_from: now() + Duration::seconds(1),
            ..coupon()
        };
        assert_eq!(refusal(&early, &order(), true), Refusal::NotYetValid);
        let used = Coupon {
            state: State::Redeemed,
            ..coupon()
        };
        assert_eq!(refusal(&used, &order(), true), Refusal::Redeemed);
        assert_eq!(refusal(&coupon(), &order(), false), Refusal::DoesNotStack);
        assert_eq!(Refusal::DoesNotStack.field("codes[1]"), "codes[1]");
    }

    #[test]
    fn coupons_together_never_take_off_more_than_the_order() {
        assert_eq!(total_discount(10_000, [6_000, 6_000]), 10_000);
        assert_eq!(total_discount(10_000, [1_000, 2_000]), 3_000);
    }
}
