//! campaign's coupons over real gRPC, on SQLite and PostgreSQL: templates, issues and claims
//! under stock and per-member limits, checks and redemptions at a till, voids, the wallet, code
//! pools, and what the other services' events do (refunds restore, merges move).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_testkit::points::{cny, member_buyer, record, refund, sale, with_program};
use quanyu_testkit::{CampaignClient, Suite, enrol, keys, merge};
use tonic::{Code, Status};

quanyu_testkit::suite!(
    templates_are_created_once_and_checked_field_by_field,
    issues_and_claims_are_idempotent_and_keep_to_the_rules,
    concurrent_claims_never_pass_the_stock_nor_a_members_limit,
    a_till_redeems_what_the_order_may_use_and_nothing_else,
    a_full_refund_of_the_order_gives_the_coupon_back,
    a_merged_members_coupons_move_to_the_survivor,
    partner_codes_are_issued_in_the_order_imported,
    the_wallet_pages_coupons_by_state,
    tenants_never_see_each_others_coupons
);

/// The fields a refusal names, from its `google.rpc.BadRequest`.
fn violated_fields(status: &Status) -> Vec<String> {
    let details = tonic_types::StatusExt::get_error_details(status);
    let violations = details.bad_request().map(|request| request.field_violations.clone());
    violations.unwrap_or_default().into_iter().map(|v| v.field).collect()
}

/// The `google.rpc.ErrorInfo` reason of a refusal.
fn reason(status: &Status) -> String {
    let details = tonic_types::StatusExt::get_error_details(status);
    let info = details
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "campaign.quanyu", "{status:?}");
    info.reason
}

/// A 50-yuan-off coupon on orders of 200 yuan or more, in store sh-01, valid 30 days.
fn fifty_off(template_id: &str) -> pb::CouponTemplate {
    pb::CouponTemplate {
        template_id: template_id.into(),
        name: "50 off 200".into(),
        kind: pb::CouponKind::AmountOff.into(),
        amount_off: cny(5_000),
        min_spend: cny(20_000),
        store_ids: vec!["sh-01".into()],
        valid_days: 30,
        ..Default::default()
    }
}

async fn create(client: &mut CampaignClient, template: pb::CouponTemplate) -> pb::CouponTemplate {
    client
        .create_coupon_template(pb::CreateCouponTemplateRequest {
            template: Some(template),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap()
}

async fn issue(
    client: &mut CampaignClient,
    template_id: &str,
    member_id: &str,
    key: &str,
) -> Result<pb::Coupon, Status> {
    let request = pb::IssueCouponRequest {
        template_id: template_id.into(),
        member_id: member_id.into(),
        idempotency_key: key.into(),
    };
    Ok(client.issue_coupon(request).await?.into_inner().coupon.unwrap())
}

fn claim(template_id: &str, member_id: &str, key: &str) -> pb::ClaimCouponRequest {
    pb::ClaimCouponRequest {
        template_id: template_id.into(),
        member_id: member_id.into(),
        channel: Channel::WechatMall.into(),
        idempotency_key: key.into(),
    }
}

/// An order of `amount_minor` fen in store sh-01, from the till `pos-sh`.
fn order(order_id: &str, amount_minor: i64) -> pb::Order {
    pb::Order {
        source: "pos-sh".into(),
        order_id: order_id.into(),
        channel: Channel::Store.into(),
        brand_id: String::new(),
        store_id: "sh-01".into(),
        amount: cny(amount_minor),
        member_id: String::new(),
    }
}

fn redeem_request(order: pb::Order, codes: &[&str]) -> pb::RedeemCouponsRequest {
    pb::RedeemCouponsRequest {
        order: Some(order),
        codes: codes.iter().map(|code| (*code).to_owned()).collect(),
    }
}

async fn coupon(client: &mut CampaignClient, code: &str) -> pb::Coupon {
    let request = pb::GetCouponRequest { code: code.into() };
    client.get_coupon(request).await.unwrap().into_inner().coupon.unwrap()
}

async fn templates_are_created_once_and_checked_field_by_field(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let created = create(&mut client, fifty_off("fifty")).await;
    assert_eq!((created.issued, created.stock), (0, 0));
    assert!(created.created_at.is_some());
    assert_eq!(
        create(&mut client, created.clone()).await,
        created,
        "the template read back is the same"
    );

    let other = pb::CouponTemplate {
        min_spend: cny(10_000),
        ..fifty_off("fifty")
    };
    let refused = client
        .create_coupon_template(pb::CreateCouponTemplateRequest { template: Some(other) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&refused), ["template.min_spend"]);

    let bad = pb::CouponTemplate {
        template_id: "Bad Id".into(),
        kind: pb::CouponKind::PercentOff.into(),
        percent_off: 0,
        channels: vec![99],
        valid_days: 0,
        ..Default::default()
    };
    let refused = client
        .create_coupon_template(pb::CreateCouponTemplateRequest { template: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = violated_fields(&refused);
    for field in [
        "template.template_id",
        "template.name",
        "template.percent_off",
        "template.channels[0]",
        "template.valid_until",
    ] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
    let missing = client
        .get_coupon_template(pb::GetCouponTemplateRequest {
            template_id: "none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut analyst = suite.campaign(keys::ACME_ANALYST).await;
    let denied = analyst
        .create_coupon_template(pb::CreateCouponTemplateRequest {
            template: Some(fifty_off("x")),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn issues_and_claims_are_idempotent_and_keep_to_the_rules(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(
        &mut client,
        pb::CouponTemplate {
            per_member_limit: 2,
            channels: vec![Channel::WechatMall.into(), Channel::Store.into()],
            ..fifty_off("fifty")
        },
    )
    .await;
    let first = issue(&mut client, "fifty", "m-1", "grant-1").await.unwrap();
    assert_eq!(first.code.len(), 14);
    assert_eq!(
        (first.state, first.origin),
        (pb::CouponState::Available as i32, pb::CouponOrigin::Issued as i32)
    );
    let valid_for = first.valid_until.unwrap().seconds - first.valid_from.unwrap().seconds;
    assert_eq!(valid_for, 30 * 86_400);
    assert_eq!(
        issue(&mut client, "fifty", "m-1", "grant-1").await.unwrap(),
        first,
        "the same key, the same coupon"
    );
    let conflict = issue(&mut client, "fifty", "m-2", "grant-1").await.unwrap_err();
    assert_eq!(
        (conflict.code(), violated_fields(&conflict)),
        (Code::AlreadyExists, vec!["member_id".to_owned()])
    );

    let claimed = client
        .claim_coupon(claim("fifty", "m-1", "claim-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.coupon.unwrap().origin, pb::CouponOrigin::Claimed as i32);
    let over = client.claim_coupon(claim("fifty", "m-1", "claim-2")).await.unwrap_err();
    assert_eq!(
        (over.code(), reason(&over)),
        (Code::FailedPrecondition, "MEMBER_LIMIT_REACHED".into())
    );
    assert_eq!(violated_fields(&over), ["member_id"]);
    let on_tmall = pb::ClaimCouponRequest {
        channel: Channel::Tmall.into(),
        ..claim("fifty", "m-2", "claim-3")
    };
    let wrong = client.claim_coupon(on_tmall).await.unwrap_err();
    assert_eq!(
        (wrong.code(), reason(&wrong)),
        (Code::FailedPrecondition, "WRONG_CHANNEL".into())
    );

    let bad = client
        .claim_coupon(pb::ClaimCouponRequest {
            template_id: "Fifty!".into(),
            member_id: String::new(),
            channel: 0,
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        ["template_id", "member_id", "idempotency_key", "channel"]
    );
    let unknown = issue(&mut client, "none", "m-1", "grant-9").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let template = client
        .get_coupon_template(pb::GetCouponTemplateRequest {
            template_id: "fifty".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    assert_eq!(template.issued, 2, "refusals take nothing from the stock");
}

/// 10 × S claims at once on a stock of S, by as many members, issue exactly S; claims by one
/// member at once issue no more than the member's limit.
async fn concurrent_claims_never_pass_the_stock_nor_a_members_limit(suite: Suite) {
    const STOCK: usize = 5;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(
        &mut client,
        pb::CouponTemplate {
            stock: STOCK as i64,
            ..fifty_off("hot")
        },
    )
    .await;
    create(
        &mut client,
        pb::CouponTemplate {
            per_member_limit: 2,
            ..fifty_off("limited")
        },
    )
    .await;
    let mut claims = tokio::task::JoinSet::new();
    for n in 0..10 * STOCK {
        let mut client = client.clone();
        claims.spawn(async move {
            client
                .claim_coupon(claim("hot", &format!("m-{n}"), &format!("k-{n}")))
                .await
        });
    }
    for n in 0..10 {
        let mut client = client.clone();
        claims.spawn(async move {
            client
                .claim_coupon(claim("limited", "m-one", &format!("one-{n}")))
                .await
        });
    }
    let (mut hot, mut limited, mut codes) = (0, 0, std::collections::HashSet::new());
    while let Some(answer) = claims.join_next().await {
        match answer.unwrap() {
            Ok(claimed) => {
                let coupon = claimed.into_inner().coupon.unwrap();
                if coupon.template_id == "hot" {
                    hot += 1
                } else {
                    limited += 1
                }
                assert!(codes.insert(coupon.code), "every code is unique");
            }
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(["OUT_OF_STOCK", "MEMBER_LIMIT_REACHED"].contains(&reason(&status).as_str()));
            }
        }
    }
    assert_eq!((hot, limited), (STOCK, 2));
    let template = client
        .get_coupon_template(pb::GetCouponTemplateRequest {
            template_id: "hot".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    assert_eq!(template.issued, STOCK as i64);
}

async fn a_till_redeems_what_the_order_may_use_and_nothing_else(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let mut till = suite.campaign(keys::ACME_POS).await;
    create(&mut client, fifty_off("fifty")).await;
    let ten_percent = pb::CouponTemplate {
        template_id: "ten".into(),
        name: "10% off".into(),
        kind: pb::CouponKind::PercentOff.into(),
        percent_off: 10,
        cap: cny(1_000),
        stacks: true,
        valid_days: 1,
        ..Default::default()
    };
    create(&mut client, ten_percent).await;
    let fifty = issue(&mut client, "fifty", "m-1", "a").await.unwrap().code;
    let ten = issue(&mut client, "ten", "m-1", "b").await.unwrap().code;
    let ten_more = issue(&mut client, "ten", "m-1", "c").await.unwrap().code;

    let checked = till
        .validate_coupons(pb::ValidateCouponsRequest {
            order: Some(order("o-1", 30_000)),
            codes: vec![fifty.to_lowercase(), ten.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.checks[0].refusal, pb::CouponRefusal::DoesNotStack as i32);
    assert_eq!(checked.checks[1].discount, cny(1_000), "10% of 300 yuan, capped at 10");
    assert_eq!(checked.discount, cny(1_000));

    // Each rule refuses with its reason and field; the coupon stays usable.
    let refusals = [
        (
            pb::Order {
                store_id: "bj-02".into(),
                ..order("o-2", 30_000)
            },
            "WRONG_STORE",
            "order.store_id",
        ),
        (order("o-2", 19_999), "BELOW_MIN_SPEND", "order.amount"),
        (
            pb::Order {
                amount: Some(Money {
                    amount_minor: 30_000,
                    currency: "USD".into(),
                }),
                ..order("o-2", 0)
            },
            "WRONG_CURRENCY",
            "order.amount.currency",
        ),
    ];
    for (order, expected, field) in refusals {
        let refused = till.redeem_coupons(redeem_request(order, &[&fifty])).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(
            (reason(&refused), violated_fields(&refused)),
            (expected.into(), vec![field.to_owned()])
        );
    }
    let mistyped = format!("{}{}", &fifty[..13], if fifty.ends_with('2') { '3' } else { '2' });
    let refused = till
        .redeem_coupons(redeem_request(order("o-2", 30_000), &[&mistyped]))
        .await
        .unwrap_err();
    assert_eq!(
        (reason(&refused), violated_fields(&refused)),
        ("NOT_FOUND".into(), vec!["codes[0]".to_owned()])
    );
    assert!(refused.message().contains("mistyped"), "{}", refused.message());
    assert_eq!(coupon(&mut till, &fifty).await.state, pb::CouponState::Available as i32);

    let redeemed = till
        .redeem_coupons(redeem_request(order("o-2", 30_000), &[&fifty]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redeemed.discount, cny(5_000));
    let again = till
        .redeem_coupons(redeem_request(order("o-2", 30_000), &[&fifty]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, redeemed, "the same order again is answered as the first time");
    let changed = till
        .redeem_coupons(redeem_request(order("o-2", 40_000), &[&fifty]))
        .await
        .unwrap_err();
    assert_eq!(
        (changed.code(), violated_fields(&changed)),
        (Code::AlreadyExists, vec!["order".to_owned()])
    );
    let used = coupon(&mut till, &fifty).await;
    assert_eq!(
        (used.state, used.order_id.as_str()),
        (pb::CouponState::Redeemed as i32, "o-2")
    );
    let twice = till
        .redeem_coupons(redeem_request(order("o-3", 30_000), &[&fifty]))
        .await
        .unwrap_err();
    assert_eq!(reason(&twice), "REDEEMED");

    // Coupons that stack are used together; a refusal of one redeems none.
    let both = till
        .redeem_coupons(redeem_request(order("o-4", 5_000), &[&ten, &ten_more]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(both.discount, cny(1_000), "500 and 500 off a 50-yuan order");
    let with_used = till
        .redeem_coupons(redeem_request(order("o-5", 5_000), &[&ten, &fifty]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&with_used), ["codes[0]"]);

    let void = client
        .void_coupon(pb::VoidCouponRequest {
            code: fifty.clone(),
            reason: "mistake".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (void.code(), reason(&void)),
        (Code::FailedPrecondition, "REDEEMED".into())
    );
    let expiring = issue(&mut client, "ten", "m-1", "d").await.unwrap().code;
    suite.context.clock.advance(chrono::Duration::days(2));
    let late = till
        .redeem_coupons(redeem_request(order("o-6", 5_000), &[&expiring]))
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "EXPIRED");
    assert_eq!(
        coupon(&mut till, &expiring).await.state,
        pb::CouponState::Expired as i32
    );
    let voided = client
        .void_coupon(pb::VoidCouponRequest {
            code: expiring.clone(),
            reason: "fraud".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .coupon
        .unwrap();
    assert_eq!(
        (voided.state, voided.void_reason.as_str()),
        (pb::CouponState::Void as i32, "fraud")
    );

    let bad = till
        .redeem_coupons(pb::RedeemCouponsRequest {
            order: Some(pb::Order {
                source: String::new(),
                amount: None,
                channel: 42,
                ..order("", 0)
            }),
            codes: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        [
            "order.source",
            "order.order_id",
            "order.channel",
            "order.amount",
            "order.amount.currency",
            "codes"
        ]
    );
    let mut analyst = suite.campaign(keys::ACME_ANALYST).await;
    let denied = analyst
        .redeem_coupons(redeem_request(order("o-7", 5_000), &[&ten]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// Polls until `check` holds of the coupon, for effects of another service's events.
async fn eventually(client: &mut CampaignClient, code: &str, check: impl Fn(&pb::Coupon) -> bool) -> pb::Coupon {
    for _ in 0..100 {
        let found = coupon(client, code).await;
        if check(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "coupon {code} never reached the state expected: {:?}",
        coupon(client, code).await
    );
}

async fn a_full_refund_of_the_order_gives_the_coupon_back(suite: Suite) {
    let mut points = with_program(&suite, 0).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let member = enrol(&mut identity, "13800138000", Default::default()).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("fifty")).await;
    let code = issue(&mut client, "fifty", &member, "a").await.unwrap().code;
    let mut till = suite.campaign(keys::ACME_POS).await;
    let redeem = pb::Order {
        member_id: member.clone(),
        ..order("t-1", 30_000)
    };
    till.redeem_coupons(redeem_request(redeem, &[&code])).await.unwrap();
    record(&mut points, vec![sale("t-1", member_buyer(&member), 25_000)]).await;

    record(&mut points, vec![refund("r-1", "t-1", 10_000)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        coupon(&mut till, &code).await.state,
        pb::CouponState::Redeemed as i32,
        "a part refunded keeps it used"
    );
    record(&mut points, vec![refund("r-2", "t-1", 15_000)]).await;
    let restored = eventually(&mut till, &code, |coupon| {
        coupon.state == pb::CouponState::Available as i32
    })
    .await;
    assert!(restored.order_id.is_empty());
    let reused = till
        .redeem_coupons(redeem_request(order("t-2", 30_000), &[&code]))
        .await
        .unwrap();
    assert_eq!(
        reused.into_inner().discount,
        cny(5_000),
        "the restored coupon is used again"
    );
}

async fn a_merged_members_coupons_move_to_the_survivor(suite: Suite) {
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let survivor = enrol(&mut identity, "13800138001", Default::default()).await;
    let merged = enrol(&mut identity, "13800138002", Default::default()).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(
        &mut client,
        pb::CouponTemplate {
            per_member_limit: 1,
            ..fifty_off("fifty")
        },
    )
    .await;
    let code = issue(&mut client, "fifty", &merged, "a").await.unwrap().code;
    merge(&mut identity, &survivor, &merged).await;
    eventually(&mut client, &code, |coupon| coupon.member_id == survivor).await;
    let wallet = client
        .list_coupons(pb::ListCouponsRequest {
            member_id: merged.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wallet.coupons.len(), 1, "the merged id names the survivor's wallet");
    let over = issue(&mut client, "fifty", &survivor, "b").await.unwrap_err();
    assert_eq!(
        reason(&over),
        "MEMBER_LIMIT_REACHED",
        "the merged member's count went with the coupon"
    );
}

async fn partner_codes_are_issued_in_the_order_imported(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let imported = pb::CouponTemplate {
        code_source: pb::CodeSource::Imported.into(),
        ..fifty_off("partner")
    };
    create(&mut client, imported).await;
    create(
        &mut client,
        pb::CouponTemplate {
            code_source: pb::CodeSource::Imported.into(),
            ..fifty_off("other")
        },
    )
    .await;
    let import = |template_id: &str, codes: &[&str]| pb::ImportCouponCodesRequest {
        template_id: template_id.into(),
        codes: codes.iter().map(|code| (*code).to_owned()).collect(),
    };
    client
        .import_coupon_codes(import("other", &["TAKEN-0001"]))
        .await
        .unwrap();
    let answer = client
        .import_coupon_codes(import(
            "partner",
            &["jd-0001", "JD-0002", "jd 0001", "bad", "taken-0001"],
        ))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<i32> = answer.results.iter().map(|result| result.outcome).collect();
    use pb::ImportOutcome::{Added, Duplicate, Rejected};
    assert_eq!(
        outcomes,
        [
            Added as i32,
            Added as i32,
            Duplicate as i32,
            Rejected as i32,
            Rejected as i32
        ]
    );
    assert!(answer.results[4].error.contains("other"), "{:?}", answer.results[4]);
    assert_eq!(answer.stock, 2);
    let again = client
        .import_coupon_codes(import("partner", &["JD0001"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.results[0].outcome, again.stock), (Duplicate as i32, 2));

    let first = issue(&mut client, "partner", "m-1", "a").await.unwrap();
    let second = issue(&mut client, "partner", "m-2", "b").await.unwrap();
    assert_eq!((first.code.as_str(), second.code.as_str()), ("JD0001", "JD0002"));
    let empty = issue(&mut client, "partner", "m-3", "c").await.unwrap_err();
    assert_eq!(reason(&empty), "OUT_OF_STOCK");
    let generated = client.import_coupon_codes(import("fifty", &["X-1"])).await.unwrap_err();
    assert_eq!(generated.code(), Code::NotFound);
    create(&mut client, fifty_off("own")).await;
    let own = client
        .import_coupon_codes(import("own", &["ABCDEF"]))
        .await
        .unwrap_err();
    assert_eq!(
        (own.code(), violated_fields(&own)),
        (Code::InvalidArgument, vec!["template_id".to_owned()])
    );
}

async fn the_wallet_pages_coupons_by_state(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("fifty")).await;
    let mut codes = Vec::new();
    for n in 0..5 {
        codes.push(
            issue(&mut client, "fifty", "m-1", &format!("k-{n}"))
                .await
                .unwrap()
                .code,
        );
    }
    let mut till = suite.campaign(keys::ACME_POS).await;
    till.redeem_coupons(redeem_request(order("o-1", 30_000), &[&codes[1]]))
        .await
        .unwrap();
    client
        .void_coupon(pb::VoidCouponRequest {
            code: codes[2].clone(),
            reason: "mistake".into(),
        })
        .await
        .unwrap();
    let page = |state: pb::CouponState, token: String| pb::ListCouponsRequest {
        member_id: "m-1".into(),
        state: state.into(),
        page_size: 2,
        page_token: token,
    };
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let answer = client
            .list_coupons(page(pb::CouponState::Unspecified, token))
            .await
            .unwrap()
            .into_inner();
        listed.extend(answer.coupons.into_iter().map(|coupon| coupon.code));
        token = answer.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let newest_first: Vec<String> = codes.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    for (state, expected) in [
        (pb::CouponState::Available, vec![&codes[4], &codes[3]]),
        (pb::CouponState::Redeemed, vec![&codes[1]]),
        (pb::CouponState::Void, vec![&codes[2]]),
    ] {
        let answer = client
            .list_coupons(page(state, String::new()))
            .await
            .unwrap()
            .into_inner();
        let got: Vec<&String> = answer.coupons.iter().map(|coupon| &coupon.code).collect();
        assert_eq!(got, expected, "{state:?}");
    }
    let bad = client
        .list_coupons(pb::ListCouponsRequest {
            member_id: String::new(),
            state: 9,
            page_size: -1,
            page_token: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["member_id", "state", "page_size", "page_token"]);
}

async fn tenants_never_see_each_others_coupons(suite: Suite) {
    let mut acme = suite.campaign(keys::ACME_PLATFORM).await;
    let mut globex = suite.campaign(keys::GLOBEX_PLATFORM).await;
    create(&mut acme, fifty_off("fifty")).await;
    let code = issue(&mut acme, "fifty", "m-1", "a").await.unwrap().code;
    let unknown = issue(&mut globex, "fifty", "m-1", "a").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "acme's template is not globex's");
    let hidden = globex
        .get_coupon(pb::GetCouponRequest { code: code.clone() })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let refused = globex
        .redeem_coupons(redeem_request(order("o-1", 30_000), &[&code]))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "NOT_FOUND");
    create(&mut globex, fifty_off("fifty")).await;
    let theirs = issue(&mut globex, "fifty", "m-1", "a").await.unwrap();
    assert_ne!(theirs.code, code, "the same key in another tenant is another coupon");
}
