//! Fixtures for loyalty-points: the test program, sales and refunds as tills send them, and the
//! calls the tests make most.

use quanyu_proto::common::v1::{Channel, Money};
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as pb;

use crate::{PointsClient, Sandbox, keys};

/// The test program: 1 point per 100 fen, gift cards excluded, a member and a gold tier.
pub fn program(hold_ttl_seconds: i32) -> pb::Program {
    pb::Program {
        program_id: "lumen-club".into(),
        brand_id: String::new(),
        points_name: "Lumen points".into(),
        earning: Some(pb::EarningRules {
            points_per_unit: 1,
            unit_minor: 100,
            rounding: pb::Rounding::Down.into(),
            multipliers: Vec::new(),
            excluded_categories: vec!["gift-card".into()],
            cap_per_order: 0,
            cap_per_day: 0,
            utc_offset_minutes: 480,
            currency: String::new(),
        }),
        expiry: Some(pb::ExpiryPolicy {
            policy: Some(pb::expiry_policy::Policy::RollingMonths(12)),
        }),
        tiers: vec![
            pb::Tier {
                code: "member".into(),
                growth_threshold: 0,
                multiplier_bp: 10_000,
            },
            pb::Tier {
                code: "gold".into(),
                growth_threshold: 1_000,
                multiplier_bp: 20_000,
            },
        ],
        hold_ttl_seconds,
        auto_enroll: true,
        rules_version: 0,
    }
}

/// Configures the test program for tenant acme; returns a platform client.
pub async fn with_program(suite: &Sandbox, hold_ttl_seconds: i32) -> PointsClient {
    let mut client = suite.points(keys::ACME_PLATFORM).await;
    client
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(hold_ttl_seconds)),
        })
        .await
        .expect("the call succeeds");
    client
}

pub fn cny(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: "CNY".into(),
    })
}

pub fn now() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp(),
        nanos: 0,
    })
}

pub fn member_buyer(member_id: &str) -> Option<pb::Buyer> {
    Some(pb::Buyer {
        who: Some(pb::buyer::Who::MemberId(member_id.into())),
    })
}

pub fn phone_buyer(phone: &str) -> Option<pb::Buyer> {
    Some(pb::Buyer {
        who: Some(pb::buyer::Who::Identity(identity_pb::Identity {
            kind: identity_pb::IdentityKind::Phone.into(),
            value: phone.into(),
            namespace: String::new(),
        })),
    })
}

/// A store sale of one serum line, from source `pos-sh`.
pub fn sale(transaction_id: &str, buyer: Option<pb::Buyer>, amount_minor: i64) -> pb::Sale {
    pb::Sale {
        source: "pos-sh".into(),
        transaction_id: transaction_id.into(),
        kind: pb::SaleKind::Sale.into(),
        original_transaction_id: String::new(),
        channel: Channel::Store.into(),
        brand_id: String::new(),
        store_id: "sh-01".into(),
        occurred_at: now(),
        buyer,
        amount: cny(amount_minor),
        lines: vec![pb::SaleLine {
            sku: "serum".into(),
            category: "skincare".into(),
            quantity: 1,
            amount: cny(amount_minor),
        }],
        points_redeemed: 0,
    }
}

/// A refund of `amount_minor` of the sale recorded as `original`.
pub fn refund(transaction_id: &str, original: &str, amount_minor: i64) -> pb::Sale {
    pb::Sale {
        kind: pb::SaleKind::Refund.into(),
        original_transaction_id: original.into(),
        buyer: None,
        lines: Vec::new(),
        ..sale(transaction_id, None, amount_minor)
    }
}

/// Records sales; their answers, in order.
pub async fn record(client: &mut PointsClient, sales: Vec<pb::Sale>) -> Vec<pb::SaleResult> {
    client
        .record_sales(pb::RecordSalesRequest { sales })
        .await
        .expect("the call succeeds")
        .into_inner()
        .results
}

/// The tenant-wide program's account of a member.
pub fn account(member_id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef {
        member_id: member_id.into(),
        program_id: String::new(),
    })
}

pub async fn balance(client: &mut PointsClient, member_id: &str) -> pb::Balance {
    client
        .get_balance(pb::GetBalanceRequest {
            account: account(member_id),
        })
        .await
        .expect("the call succeeds")
        .into_inner()
        .balance
        .expect("the call succeeds")
}
