//! Validation of the sales a till or shop sends.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::is_slug;
use quanyu_runtime::clock::from_proto;
use quanyu_runtime::error::{FieldViolation, Violations};

use crate::app::sales::CheckedSale;
use crate::domain::earning::{MAX_AMOUNT_MINOR, SaleLine};
use crate::domain::ledger::MAX_POINTS_PER_CHANGE;
use crate::domain::program::Programs;

/// Lines a sale may carry: a long receipt has a few hundred, and every line is written again by
/// each service that keeps them.
const MAX_LINES: usize = 1_000;

fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    from_proto(at?)
}

// Field names are formatted only for a violation: most sales have none, and a 1,000-sale batch
// would otherwise build thousands of names for nothing.
fn money(field: impl Display, amount: Option<&Money>, currency: Option<&str>, violations: &mut Violations) -> i64 {
    let Some(amount) = amount else {
        violations.add(field.to_string(), "is required");
        return 0;
    };
    let code_ok = amount.currency.len() == 3 && amount.currency.chars().all(|c| c.is_ascii_uppercase());
    if !code_ok {
        violations.add(format!("{field}.currency"), "must be an ISO 4217 code such as CNY");
    } else if !quanyu_runtime::money::is_currency(&amount.currency) {
        violations.add(
            format!("{field}.currency"),
            format!("{} is not an ISO 4217 currency", amount.currency),
        );
    } else if currency.is_some_and(|currency| currency != amount.currency) {
        violations.add(format!("{field}.currency"), "must be the sale's currency");
    }
    if !(0..=MAX_AMOUNT_MINOR).contains(&amount.amount_minor) {
        violations.add(format!("{field}.amount_minor"), format!("must be 0-{MAX_AMOUNT_MINOR}"));
    }
    amount.amount_minor
}

/// Checks one sale of a batch: every field at fault is named. A purchase names the program it
/// earns in: its brand's, else the tenant-wide one.
pub fn check_sale(
    sale: &pb::Sale,
    programs: &Programs,
    now: DateTime<Utc>,
) -> Result<CheckedSale, Vec<FieldViolation>> {
    let mut violations = Violations::default();
    violations.text("source", &sale.source, 64, true);
    violations.text("transaction_id", &sale.transaction_id, 128, true);
    let kind = match pb::SaleKind::try_from(sale.kind) {
        Ok(pb::SaleKind::Unspecified) | Err(_) => {
            violations.add("kind", "must be SALE_KIND_SALE or SALE_KIND_REFUND");
            pb::SaleKind::Unspecified
        }
        Ok(kind) => kind,
    };
    if kind == pb::SaleKind::Refund {
        violations.text("original_transaction_id", &sale.original_transaction_id, 128, true);
        if sale.points_redeemed != 0 {
            violations.add("points_redeemed", "a refund redeems nothing");
        }
    }
    if Channel::try_from(sale.channel).is_err() {
        violations.add("channel", format!("{} is not a channel", sale.channel));
    }
    violations.text("store_id", &sale.store_id, 64, false);
    match time(sale.occurred_at.as_ref()) {
        None => violations.add("occurred_at", "is required"),
        Some(at) if at > now + chrono::Duration::minutes(5) => violations.add("occurred_at", "is in the future"),
        Some(_) => {}
    }
    let amount_minor = money("amount", sale.amount.as_ref(), None, &mut violations);
    let currency = sale.amount.as_ref().map(|amount| amount.currency.as_str());
    let mut lines = Vec::new();
    if sale.lines.len() > MAX_LINES {
        let many = sale.lines.len();
        violations.add("lines", format!("must hold at most {MAX_LINES} lines, got {many}"));
    }
    for (index, line) in sale.lines.iter().enumerate().take(MAX_LINES) {
        violations.text(format_args!("lines[{index}].sku"), &line.sku, 64, false);
        violations.text(format_args!("lines[{index}].category"), &line.category, 64, false);
        if line.quantity <= 0 {
            violations.add(format!("lines[{index}].quantity"), "must be positive");
        }
        let amount = money(
            format_args!("lines[{index}].amount"),
            line.amount.as_ref(),
            currency,
            &mut violations,
        );
        lines.push(SaleLine {
            category: line.category.clone(),
            amount_minor: amount,
        });
    }
    let lines_total = lines
        .iter()
        .try_fold(0i64, |total, line| total.checked_add(line.amount_minor.max(0)));
    if lines_total.is_none_or(|total| total > MAX_AMOUNT_MINOR) {
        violations.add("lines", format!("must add up to at most {MAX_AMOUNT_MINOR}"));
    }
    if lines.is_empty() {
        lines.push(SaleLine {
            category: String::new(),
            amount_minor,
        });
    }
    if !(0..=MAX_POINTS_PER_CHANGE).contains(&sale.points_redeemed) {
        violations.add("points_redeemed", format!("must be 0-{MAX_POINTS_PER_CHANGE}"));
    }
    if let Some(buyer) = &sale.buyer {
        match &buyer.who {
            Some(pb::buyer::Who::MemberId(id)) => {
                violations.check(super::member_id(id).map_err(|v| v.under("buyer")));
            }
            Some(pb::buyer::Who::Identity(identity)) if identity.kind == 0 => {
                violations.add("buyer.identity.kind", "is required");
            }
            Some(pb::buyer::Who::Identity(_)) => {}
            None => violations.add("buyer", "names neither a member id nor an identity"),
        }
    }
    let program_id = if kind == pb::SaleKind::Sale {
        if !sale.brand_id.is_empty() && !is_slug(&sale.brand_id) {
            violations.add("brand_id", "must be empty or a brand id");
        }
        let for_brand = programs.iter().find(|(_, (rules, _))| rules.brand_id == sale.brand_id);
        let tenant_wide = programs.iter().find(|(_, (rules, _))| rules.brand_id.is_empty());
        match for_brand.or(tenant_wide) {
            Some((id, (rules, _))) => {
                let earns_in = &rules.earning.currency;
                if currency.is_some_and(|currency| currency != earns_in && quanyu_runtime::money::is_currency(currency))
                {
                    violations.add(
                        "amount.currency",
                        format!("this program earns in {earns_in}, not in another currency"),
                    );
                }
                Some(id.clone())
            }
            None => {
                violations.add(
                    "brand_id",
                    "no program earns for this brand (configure one with UpsertProgram)",
                );
                None
            }
        }
    } else {
        None
    };
    violations.into_result()?;
    Ok(CheckedSale {
        is_refund: kind == pb::SaleKind::Refund,
        program_id,
        lines,
        amount_minor,
    })
}
