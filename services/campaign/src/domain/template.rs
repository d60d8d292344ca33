//! Coupon templates: what a coupon gives, where and when it is valid, and the checks a template
//! must pass to be created.

use chrono::{DateTime, Duration, Utc};
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_runtime::auth::is_slug;
use quanyu_runtime::clock::from_proto;
use quanyu_runtime::error::Violations;

pub type Timestamp = DateTime<Utc>;

/// The most one coupon may take off or ask for, in minor units (a million yuan): far above any
/// real coupon, and small enough that sums stay far inside `i64`.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000;
/// The longest a coupon stays valid after its issue, in days.
pub const MAX_VALID_DAYS: u32 = 3_660;
/// The most places (channels, brands, stores) a template lists in each.
pub const MAX_PLACES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Benefit {
    AmountOff(i64),
    PercentOff { percent: u32, cap: Option<i64> },
    Gift(String),
    FreeShipping,
}

impl Benefit {
    /// What a coupon is worth at most, in minor units; `None` when nothing bounds it (a percent
    /// off without a cap).
    pub fn face_value(&self) -> Option<i64> {
        match self {
            Self::AmountOff(off) => Some(*off),
            Self::PercentOff { cap, .. } => *cap,
            Self::Gift(_) | Self::FreeShipping => Some(0),
        }
    }

    /// What it takes off an order of `amount` (minor units): never more than the order.
    pub fn discount(&self, amount: i64) -> i64 {
        let off = match self {
            Self::AmountOff(off) => *off,
            Self::PercentOff { percent, cap } => {
                let off = i128::from(amount.max(0)) * i128::from(*percent) / 100;
                let off = i64::try_from(off).unwrap_or(i64::MAX);
                cap.map_or(off, |cap| off.min(cap))
            }
            Self::Gift(_) | Self::FreeShipping => 0,
        };
        off.clamp(0, amount.max(0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// [from, until); from issue when `from` is absent.
    Window { from: Option<Timestamp>, until: Timestamp },
    /// From issue, for this many days.
    Days(u32),
}

impl Validity {
    /// When a coupon issued at `issued_at` is valid: [from, until).
    pub fn of_issue(self, issued_at: Timestamp) -> (Timestamp, Timestamp) {
        match self {
            Self::Window { from, until } => (from.unwrap_or(issued_at), until),
            Self::Days(days) => (issued_at, issued_at + Duration::days(i64::from(days))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    Generated,
    Imported,
}

/// A template as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub template_id: String,
    pub benefit: Benefit,
    pub currency: String,
    pub min_spend: i64,
    /// Where it is valid; empty lists place no limit.
    pub channels: Vec<i32>,
    pub brand_ids: Vec<String>,
    pub store_ids: Vec<String>,
    pub validity: Validity,
    pub stacks: bool,
    /// 0 for no limit.
    pub stock: i64,
    /// 0 for no limit.
    pub per_member_limit: u32,
    pub code_source: CodeSource,
}

impl Template {
    /// The template of a stored definition (checked when it was created).
    pub fn of_definition(definition: &pb::CouponTemplate) -> Self {
        let mut violations = Violations::default();
        let template = read(definition, &mut violations);
        debug_assert!(violations.into_result().is_ok(), "stored templates were checked");
        template
    }
}

/// Checks a template as a caller defines it; the rules' template, or every field at fault.
pub fn check(definition: &pb::CouponTemplate) -> Result<Template, Vec<quanyu_runtime::error::FieldViolation>> {
    let mut violations = Violations::default();
    let template = read(definition, &mut violations);
    violations.into_result().map(|()| template)
}

fn read(definition: &pb::CouponTemplate, violations: &mut Violations) -> Template {
    let field = |name: &str| format!("template.{name}");
    if !is_slug(&definition.template_id) {
        violations.add(field("template_id"), "must be 1-64 of [a-z0-9_.-]");
    }
    violations.text(field("name"), &definition.name, 100, true);
    let currency = if definition.currency.is_empty() {
        "CNY".to_owned()
    } else {
        definition.currency.clone()
    };
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        violations.add(field("currency"), "must be an ISO 4217 code such as CNY");
    }
    let amount = |violations: &mut Violations, name: &str, money: Option<&Money>, required: bool| {
        amount_of(violations, field(name), &currency, (money, required))
    };
    let benefit = match pb::CouponKind::try_from(definition.kind) {
        Ok(pb::CouponKind::AmountOff) => {
            let off = amount(violations, "amount_off", definition.amount_off.as_ref(), true);
            if off == 0 && definition.amount_off.is_some() {
                violations.add(field("amount_off"), "must be positive");
            }
            Benefit::AmountOff(off)
        }
        Ok(pb::CouponKind::PercentOff) => {
            if !(1..=99).contains(&definition.percent_off) {
                violations.add(field("percent_off"), "must be 1-99");
            }
            let cap = definition
                .cap
                .as_ref()
                .map(|cap| amount(violations, "cap", Some(cap), true));
            Benefit::PercentOff {
                percent: definition.percent_off,
                cap,
            }
        }
        Ok(pb::CouponKind::Gift) => {
            violations.text(field("gift_sku"), &definition.gift_sku, 64, true);
            Benefit::Gift(definition.gift_sku.clone())
        }
        Ok(pb::CouponKind::FreeShipping) => Benefit::FreeShipping,
        Ok(pb::CouponKind::Unspecified) | Err(_) => {
            violations.add(field("kind"), "must be AMOUNT_OFF, PERCENT_OFF, GIFT or FREE_SHIPPING");
            Benefit::FreeShipping
        }
    };
    let min_spend = amount(violations, "min_spend", definition.min_spend.as_ref(), false);
    let kind_fields = [
        ("amount_off", definition.amount_off.is_some(), pb::CouponKind::AmountOff),
        ("percent_off", definition.percent_off != 0, pb::CouponKind::PercentOff),
        ("cap", definition.cap.is_some(), pb::CouponKind::PercentOff),
        ("gift_sku", !definition.gift_sku.is_empty(), pb::CouponKind::Gift),
    ];
    for (name, set, kind) in kind_fields {
        if set && definition.kind != i32::from(kind) {
            violations.add(field(name), format!("is only for {} coupons", kind.as_str_name()));
        }
    }
    let places = (
        &definition.channels[..],
        &definition.brand_ids[..],
        &definition.store_ids[..],
    );
    check_places("template", places, violations);
    let validity = validity(definition, violations);
    if definition.stock < 0 {
        violations.add(field("stock"), "must be 0 (no limit) or more");
    }
    let code_source = match pb::CodeSource::try_from(definition.code_source) {
        Ok(pb::CodeSource::Unspecified | pb::CodeSource::Generated) => CodeSource::Generated,
        Ok(pb::CodeSource::Imported) => {
            if definition.stock != 0 {
                violations.add(field("stock"), "is the codes imported: leave it 0");
            }
            CodeSource::Imported
        }
        Err(_) => {
            violations.add(
                field("code_source"),
                format!("{} is not a code source", definition.code_source),
            );
            CodeSource::Generated
        }
    };
    Template {
        template_id: definition.template_id.clone(),
        benefit,
        currency,
        min_spend,
        channels: definition.channels.clone(),
        brand_ids: definition.brand_ids.clone(),
        store_ids: definition.store_ids.clone(),
        validity,
        stacks: definition.stacks,
        stock: definition.stock,
        per_member_limit: definition.per_member_limit,
        code_source,
    }
}

/// An amount in `currency` under `field` (`template.cap`): its minor units, or 0 with the fault
/// recorded.
pub(crate) fn amount_of(
    violations: &mut Violations,
    field: String,
    currency: &str,
    (money, required): (Option<&Money>, bool),
) -> i64 {
    match money {
        None if required => {
            violations.add(field, "is required");
            0
        }
        None => 0,
        Some(money) if !money.currency.is_empty() && money.currency != currency => {
            violations.add(field, format!("must be in {currency}"));
            0
        }
        Some(money) if !(0..=MAX_AMOUNT_MINOR).contains(&money.amount_minor) => {
            violations.add(field, format!("must be 0 to {MAX_AMOUNT_MINOR} minor units"));
            0
        }
        Some(money) => money.amount_minor,
    }
}

/// Checks where something applies, under `prefix` (`template`): its channels, brands and
/// stores.
pub(crate) fn check_places(
    prefix: &str,
    (channels, brand_ids, store_ids): (&[i32], &[String], &[String]),
    violations: &mut Violations,
) {
    for (index, channel) in channels.iter().enumerate() {
        if matches!(Channel::try_from(*channel), Ok(Channel::Unspecified) | Err(_)) {
            violations.add(
                format!("{prefix}.channels[{index}]"),
                format!("{channel} is not a channel"),
            );
        }
    }
    for (name, ids) in [("brand_ids", brand_ids), ("store_ids", store_ids)] {
        if ids.len() > MAX_PLACES {
            violations.add(format!("{prefix}.{name}"), format!("must list at most {MAX_PLACES}"));
        }
        for (index, id) in ids.iter().enumerate() {
            violations.text(format_args!("{prefix}.{name}[{index}]"), id, 64, true);
        }
    }
}

fn validity(definition: &pb::CouponTemplate, violations: &mut Violations) -> Validity {
    let mut instant = |name: &str, at: Option<&prost_types::Timestamp>| {
        at.and_then(|at| {
            let read = from_proto(at);
            if read.is_none() {
                violations.add(format!("template.{name}"), "is not a valid time");
            }
            read
        })
    };
    let from = instant("valid_from", definition.valid_from.as_ref());
    let until = instant("valid_until", definition.valid_until.as_ref());
    match (until, definition.valid_days) {
        (Some(until), 0) => {
            if from.is_some_and(|from| from >= until) {
                violations.add("template.valid_until", "must be after valid_from");
            }
            Validity::Window { from, until }
        }
        (None, days) if (1..=MAX_VALID_DAYS).contains(&days) && definition.valid_from.is_none() => Validity::Days(days),
        (None, days) if days > MAX_VALID_DAYS => {
            violations.add("template.valid_days", format!("must be 1-{MAX_VALID_DAYS}"));
            Validity::Days(days)
        }
        (None, days) if days > 0 => {
            violations.add("template.valid_from", "goes with valid_until, not valid_days");
            Validity::Days(days)
        }
        _ => {
            violations.add("template.valid_until", "set exactly one of valid_until and valid_days");
            Validity::Days(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn amount_off(template_id: &str, off: i64) -> pb::CouponTemplate {
        pb::CouponTemplate {
            template_id: template_id.into(),
            name: "50 off".into(),
            kind: pb::CouponKind::AmountOff.into(),
            amount_off: Some(Money {
                amount_minor: off,
                currency: String::new(),
            }),
            valid_days: 30,
            ..Default::default()
        }
    }

    #[test]
    fn a_template_names_every_field_at_fault() {
        let bad = pb::CouponTemplate {
            template_id: "Not A Slug".into(),
            kind: pb::CouponKind::PercentOff.into(),
            percent_off: 120,
            gift_sku: "x".into(),
            channels: vec![0],
            valid_days: 5,
            valid_until: Some(prost_types::Timestamp::default()),
            stock: -1,
            ..Default::default()
        };
        let violations = check(&bad).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        for expected in [
            "template.template_id",
            "template.name",
            "template.percent_off",
            "template.gift_sku",
            "template.channels[0]",
            "template.valid_until",
            "template.stock",
        ] {
            assert!(fields.contains(&expected), "{expected} in {fields:?}");
        }
        assert!(check(&amount_off("fifty", 5_000)).is_ok());
        assert!(check(&amount_off("zero", 0)).is_err());
    }

    #[test]
    fn validity_is_a_window_or_days_from_issue() {
        let issued = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc();
        let (from, until) = Validity::Days(7).of_issue(issued);
        assert_eq!((from, until - from), (issued, Duration::days(7)));
        let end = issued + Duration::days(1);
        assert_eq!(
            Validity::Window { from: None, until: end }.of_issue(issued),
            (issued, end)
        );
    }

    #[test]
    fn percent_off_rounds_down_and_stops_at_its_cap() {
        let ten = Benefit::PercentOff {
            percent: 10,
            cap: Some(500),
        };
        assert_eq!(ten.discount(1_999), 199);
        assert_eq!(ten.discount(100_000), 500);
        assert_eq!(Benefit::AmountOff(5_000).discount(3_000), 3_000);
        assert_eq!(Benefit::Gift("tote".into()).discount(3_000), 0);
    }

    proptest! {
        /// No coupon takes off more than the order, nor less than nothing.
        #[test]
        fn a_discount_stays_within_the_order(
            amount in -1_000i64..MAX_AMOUNT_MINOR, off in 0..MAX_AMOUNT_MINOR, percent in 1u32..100,
            cap in proptest::option::of(0..MAX_AMOUNT_MINOR),
        ) {
            for benefit in [Benefit::AmountOff(off), Benefit::PercentOff { percent, cap }] {
                let discount = benefit.discount(amount);
                prop_assert!((0..=amount.max(0)).contains(&discount));
            }
        }
    }
}
