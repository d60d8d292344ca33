//! A POS export's row and the sale it records. A row is read from CSV (a header line naming the
//! columns) or JSON Lines (one object per line, the same names):
//!
//! | column | |
//! |---|---|
//! | `store`, `till`, `receipt` | required; the sale's key is the till and receipt within the store |
//! | `time` | required; RFC 3339 (`2026-11-23T10:00:00+08:00`) or `2026-11-23 10:00:00` in `--utc-offset` |
//! | `phone`, `card` | the buyer: a phone number, else a POS loyalty card; neither is an anonymous sale |
//! | `amount`, `currency` | required; the total paid (for a refund, refunded) as a decimal, currency default CNY |
//! | `lines` | optional: `SKU:CATEGORY:QUANTITY:AMOUNT` joined by `;` (in JSON also a list of objects) |
//! | `refund_of` | makes the row a refund of that receipt (`RECEIPT` of the same till, or `TILL/RECEIPT`) |
//! | `brand` | optional: the brand id |

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone as _};
use quanyu_proto::common::v1 as common_pb;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as pb;
use serde_json::{Map, Value};

pub const COLUMNS: &[&str] = &[
    "store",
    "till",
    "receipt",
    "time",
    "phone",
    "card",
    "amount",
    "currency",
    "lines",
    "refund_of",
    "brand",
];

/// How rows become sales: what the file itself does not say.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Sales are keyed `SOURCE:STORE` and `TILL/RECEIPT`.
    pub source: String,
    /// The offset of times written without one.
    pub utc_offset: FixedOffset,
    /// The card system of `card` identities (empty: the tenant's one).
    pub card_system: String,
}

/// A row that was read but cannot be a sale: the column at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A row's columns by name; CSV cells arrive as strings, JSON values as they are written.
pub type Row = Map<String, Value>;

/// The first column of `row` that is not one of [`COLUMNS`].
pub fn unknown_column<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.find(|name| !COLUMNS.contains(name))
}

/// A column as text: absent, null and empty are all `None`.
fn text<'a>(row: &'a Row, column: &str) -> Result<Option<&'a str>, FieldError> {
    match row.get(column) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.trim()).filter(|value| !value.is_empty())),
        Some(_) => Err(field_error(column, "must be a string")),
    }
}

fn required<'a>(row: &'a Row, column: &str) -> Result<&'a str, FieldError> {
    text(row, column)?.ok_or_else(|| field_error(column, "is required"))
}

/// A decimal amount of money (`128`, `128.5`, `128.00`) in minor units; strings or JSON numbers.
fn amount(value: &Value, field: &str) -> Result<i64, FieldError> {
    let written = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return Err(field_error(field, "must be a decimal amount such as 128.00")),
    };
    parse_minor(&written).ok_or_else(|| {
        field_error(
            field,
            format!("`{written}` is not a decimal amount with at most two decimals"),
        )
    })
}

/// `128.5` is 12850 minor units; at most two decimals, no sign, no exponent.
pub fn parse_minor(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 2 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents)
}

fn time(written: &str, offset: FixedOffset) -> Result<prost_types::Timestamp, FieldError> {
    let at = DateTime::parse_from_rfc3339(written)
        .ok()
        .or_else(|| {
            ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(written, format).ok())
                .and_then(|local| offset.from_local_datetime(&local).single())
        })
        .ok_or_else(|| {
            field_error(
                "time",
                format!("`{written}` is not a time such as 2026-11-23T10:00:00+08:00 or 2026-11-23 10:00:00"),
            )
        })?;
    Ok(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

fn money(amount_minor: i64, currency: &str) -> Option<common_pb::Money> {
    Some(common_pb::Money {
        amount_minor,
        currency: currency.to_owned(),
    })
}

fn lines(value: Option<&Value>, currency: &str) -> Result<Vec<pb::SaleLine>, FieldError> {
    let line = |index: usize, sku: &str, category: &str, quantity: &Value, paid: &Value| {
        let field = |name: &str| format!("lines[{index}].{name}");
        let quantity = match quantity {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| field_error(field("quantity"), "must be a whole number"))?;
        Ok(pb::SaleLine {
            sku: sku.trim().to_owned(),
            category: category.trim().to_owned(),
            quantity,
            amount: money(amount(paid, &field("amount"))?, currency),
        })
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => text
            .split(';')
            .enumerate()
            .map(|(index, written)| match written.split(':').collect::<Vec<_>>()[..] {
                [sku, category, quantity, paid] => line(index, sku, category, &quantity.into(), &paid.into()),
                _ => Err(field_error(
                    format!("lines[{index}]"),
                    format!("`{written}` is not SKU:CATEGORY:QUANTITY:AMOUNT"),
                )),
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let get = |name: &str| item.get(name).cloned().unwrap_or(Value::Null);
                let name = |name: &str| get(name).as_str().unwrap_or_default().to_owned();
                line(index, &name("sku"), &name("category"), &get("quantity"), &get("amount"))
            })
            .collect(),
        Some(_) => Err(field_error("lines", "must be text or a list of lines")),
    }
}

/// The sale a row records.
pub fn sale(row: &Row, defaults: &Defaults) -> Result<pb::Sale, FieldError> {
    let store = required(row, "store")?;
    let till = required(row, "till")?;
    let receipt = required(row, "receipt")?;
    let occurred_at = time(required(row, "time")?, defaults.utc_offset)?;
    let currency = text(row, "currency")?.unwrap_or("CNY");
    let paid = amount(
        row.get("amount").ok_or_else(|| field_error("amount", "is required"))?,
        "amount",
    )?;
    let identity = match (text(row, "phone")?, text(row, "card")?) {
        (Some(phone), _) => Some((identity_pb::IdentityKind::Phone, phone, "")),
        (None, Some(card)) => Some((identity_pb::IdentityKind::PosCard, card, defaults.card_system.as_str())),
        (None, None) => None,
    };
    let buyer = identity.map(|(kind, value, namespace)| pb::Buyer {
        who: Some(pb::buyer::Who::Identity(identity_pb::Identity {
            kind: kind.into(),
            value: value.to_owned(),
            namespace: namespace.to_owned(),
        })),
    });
    let (kind, original_transaction_id) = match text(row, "refund_of")? {
        None => (pb::SaleKind::Sale, String::new()),
        Some(original) if original.contains('/') => (pb::SaleKind::Refund, original.to_owned()),
        Some(original) => (pb::SaleKind::Refund, format!("{till}/{original}")),
    };
    Ok(pb::Sale {
        source: format!("{}:{store}", defaults.source),
        transaction_id: format!("{till}/{receipt}"),
        kind: kind.into(),
        original_transaction_id,
        channel: common_pb::Channel::Store.into(),
        brand_id: text(row, "brand")?.unwrap_or_default().to_owned(),
        store_id: store.to_owned(),
        occurred_at: Some(occurred_at),
        buyer,
        amount: money(paid, currency),
        lines: lines(row.get("lines"), currency)?,
        points_redeemed: 0,
    })
}

/// The column a violation of the service names (`amount.currency` is the `currency` column).
pub fn column_of(violation_field: &str) -> String {
    let mapped = [
        ("amount.currency", "currency"),
        ("amount", "amount"),
        ("buyer", "phone"),
        ("occurred_at", "time"),
        ("original_transaction_id", "refund_of"),
        ("store_id", "store"),
        ("brand_id", "brand"),
        ("transaction_id", "receipt"),
        ("lines", "lines"),
    ];
    mapped
        .iter()
        .find(|(prefix, _)| violation_field.starts_with(prefix))
        .map_or_else(
            || violation_field.to_owned(),
            |(prefix, column)| match violation_field.strip_prefix(prefix) {
                Some(rest) if *column == "lines" => format!("lines{rest}"),
                _ => (*column).to_owned(),
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn defaults() -> Defaults {
        Defaults {
            source: "pos".into(),
            utc_offset: FixedOffset::east_opt(8 * 3600).unwrap(),
            card_system: String::new(),
        }
    }

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::String((*value).to_owned())))
            .collect()
    }

    const SALE: &[(&str, &str)] = &[
        ("store", "S001"),
        ("till", "2"),
        ("receipt", "000123"),
        ("time", "2026-11-23 10:00:00"),
        ("phone", "13800138000"),
        ("amount", "128.5"),
        ("lines", "A100:shoes:1:99.50;B200:socks:2:29"),
    ];

    #[test]
    fn a_csv_row_is_a_store_sale_keyed_by_store_till_and_receipt() {
        let sale = sale(&row(SALE), &defaults()).unwrap();
        assert_eq!(
            (sale.source.as_str(), sale.transaction_id.as_str()),
            ("pos:S001", "2/000123")
        );
        assert_eq!(sale.amount.as_ref().unwrap().amount_minor, 12_850);
        assert_eq!(
            sale.occurred_at.as_ref().unwrap().seconds,
            1_795_399_200,
            "10:00 at +08:00 is 02:00 UTC"
        );
        assert_eq!(sale.channel(), common_pb::Channel::Store);
        let quantities: Vec<(i64, i64)> = sale
            .lines
            .iter()
            .map(|line| (line.quantity, line.amount.clone().unwrap().amount_minor))
            .collect();
        assert_eq!(quantities, [(1, 9_950), (2, 2_900)]);
    }

    #[test]
    fn a_refund_names_its_receipt_in_the_same_till_or_another() {
        let mut refund = row(SALE);
        refund.insert("refund_of".into(), "000100".into());
        let same_till = sale(&refund, &defaults()).unwrap();
        assert_eq!(
            (same_till.kind(), same_till.original_transaction_id.as_str()),
            (pb::SaleKind::Refund, "2/000100")
        );
        refund.insert("refund_of".into(), "1/000099".into());
        assert_eq!(sale(&refund, &defaults()).unwrap().original_transaction_id, "1/000099");
    }

    #[test]
    fn a_json_row_may_write_numbers_and_a_list_of_lines() {
        let written = r#"{"store":"S001","till":"2","receipt":"9","time":"2026-11-23T10:00:00+08:00",
            "card":"C-77","amount":59.9,"lines":[{"sku":"A1","category":"tea","quantity":2,"amount":"59.90"}]}"#;
        let row: Row = serde_json::from_str(written).unwrap();
        let sale = sale(&row, &defaults()).unwrap();
        assert_eq!(sale.amount.unwrap().amount_minor, 5_990);
        let Some(pb::buyer::Who::Identity(card)) = sale.buyer.unwrap().who else {
            panic!("a card buyer")
        };
        assert_eq!(
            (card.kind(), card.value.as_str()),
            (identity_pb::IdentityKind::PosCard, "C-77")
        );
        assert_eq!(sale.lines[0].quantity, 2);
    }

    #[test]
    fn a_bad_cell_names_its_column() {
        let with = |column: &str, value: &str| {
            let mut bad = row(SALE);
            bad.insert(column.into(), value.into());
            sale(&bad, &defaults()).unwrap_err().field
        };
        assert_eq!(with("amount", "12.345"), "amount");
        assert_eq!(with("time", "yesterday"), "time");
        assert_eq!(with("store", " "), "store");
        assert_eq!(with("lines", "A100:shoes:one:1"), "lines[0].quantity");
        assert_eq!(with("lines", "A100;B"), "lines[0]");
    }

    #[test]
    fn service_violations_are_reported_under_the_file_columns() {
        assert_eq!(column_of("amount.currency"), "currency");
        assert_eq!(column_of("amount.amount_minor"), "amount");
        assert_eq!(column_of("buyer.identity.value"), "phone");
        assert_eq!(column_of("lines[2].quantity"), "lines[2].quantity");
        assert_eq!(column_of("points_redeemed"), "points_redeemed");
    }

    proptest! {
        #[test]
        fn amounts_read_back_as_written(minor in 0i64..1_000_000_000_000) {
            let written = format!("{}.{:02}", minor / 100, minor % 100);
            prop_assert_eq!(parse_minor(&written), Some(minor));
            prop_assert_eq!(parse_minor(&(minor / 100).to_string()), Some(minor / 100 * 100));
        }
    }
}
