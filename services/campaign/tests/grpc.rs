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
    tenants_never_see_each_others_coupons,
    campaigns_move_through_their_states,
    an_entry_gift_rewards_each_new_member_once_within_its_budget,
    member_day_bonuses_are_given_once_a_day_and_taken_back_on_refund,
    a_tier_gift_rewards_reaching_the_tier,
    birthday_gifts_come_on_the_birthday_once_a_year,
    a_money_budget_counts_the_coupons_face_value,
    a_drop_rewards_each_member_of_its_audience_once,
    an_audience_limits_who_a_campaign_rewards,
    a_referral_ladder_pays_each_rung_once_and_claws_back_on_refund,
    referrals_are_refused_with_the_reason,
    a_burst_of_referrals_is_held_for_review,
    a_purchase_seen_before_the_attribution_qualifies_it,
    the_leaderboard_and_the_tree_show_who_brought_whom,
    assists_complete_a_task_once_and_keep_to_their_limits,
    a_person_erased_and_enrolled_again_is_not_referred_twice,
    referral_windows_follow_the_clock
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
    issue(&mut client, "fifty", &survivor, "s").await.unwrap();
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
    assert_eq!(
        wallet.coupons.len(),
        2,
        "the merged id names the survivor's wallet, which holds both"
    );
    let over = issue(&mut client, "fifty", &survivor, "b").await.unwrap_err();
    assert_eq!(
        reason(&over),
        "MEMBER_LIMIT_REACHED",
        "the merged member's count went with the coupon"
    );

    // Analytics counts the person once: the two members its coupons reached are one now.
    let mut analytics = suite.analytics(keys::ACME_PLATFORM).await;
    let mut result = Default::default();
    for _ in 0..200 {
        let request = quanyu_proto::analytics::v1::GetCampaignResultsRequest {
            campaign_ids: Vec::new(),
            coupon_template_ids: vec!["fifty".into()],
        };
        result = analytics
            .get_campaign_results(request)
            .await
            .unwrap()
            .into_inner()
            .coupon_templates[0]
            .clone();
        if result.members_reached == 1 && result.coupons_issued == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("analytics never folded the merged member's reach: {result:?}");
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

fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc();
    Some(quanyu_runtime::clock::to_proto(at))
}

/// A campaign of `kind` over November and December 2026 that grants 100 points.
fn campaign(campaign_id: &str, kind: pb::CampaignKind) -> pb::Campaign {
    pb::Campaign {
        campaign_id: campaign_id.into(),
        name: "Winter".into(),
        kind: kind.into(),
        starts_at: timestamp("2026-11-01T00:00:00+08:00"),
        ends_at: timestamp("2027-01-01T00:00:00+08:00"),
        reward: Some(pb::Reward {
            points: 100,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_campaign(client: &mut CampaignClient, campaign: pb::Campaign) -> Result<pb::Campaign, Status> {
    let request = pb::CreateCampaignRequest {
        campaign: Some(campaign),
    };
    Ok(client.create_campaign(request).await?.into_inner().campaign.unwrap())
}

/// Creates a campaign and schedules it (ACTIVE within its window).
async fn schedule(client: &mut CampaignClient, campaign: pb::Campaign) {
    let campaign_id = campaign.campaign_id.clone();
    create_campaign(client, campaign).await.unwrap();
    move_to(client, &campaign_id, pb::CampaignState::Scheduled)
        .await
        .unwrap();
}

async fn move_to(
    client: &mut CampaignClient,
    campaign_id: &str,
    state: pb::CampaignState,
) -> Result<pb::Campaign, Status> {
    let request = pb::ChangeCampaignStateRequest {
        campaign_id: campaign_id.into(),
        state: state.into(),
    };
    Ok(client
        .change_campaign_state(request)
        .await?
        .into_inner()
        .campaign
        .unwrap())
}

async fn run_of(client: &mut CampaignClient, campaign_id: &str) -> pb::GetCampaignRunResponse {
    let request = pb::GetCampaignRunRequest {
        campaign_id: campaign_id.into(),
    };
    client.get_campaign_run(request).await.unwrap().into_inner()
}

/// Polls a campaign's run until `check` holds of it (rewards follow other services' events).
async fn run_until(
    client: &mut CampaignClient,
    campaign_id: &str,
    check: impl Fn(&pb::GetCampaignRunResponse) -> bool,
) -> pb::GetCampaignRunResponse {
    for _ in 0..100 {
        let run = run_of(client, campaign_id).await;
        if check(&run) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the run of {campaign_id} never got there: {:?}",
        run_of(client, campaign_id).await
    );
}

async fn campaigns_move_through_their_states(suite: Suite) {
    use pb::CampaignState::{Active, Draft, Ended, Paused, Scheduled};
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let created = create_campaign(&mut client, campaign("winter", pb::CampaignKind::EntryGift))
        .await
        .unwrap();
    assert_eq!(created.state, Draft as i32);
    let again = create_campaign(&mut client, created.clone()).await.unwrap();
    assert_eq!(again, created, "the campaign read back is the same");
    let other = create_campaign(&mut client, campaign("winter", pb::CampaignKind::PurchaseBonus))
        .await
        .unwrap_err();
    assert_eq!(
        (other.code(), violated_fields(&other)),
        (Code::AlreadyExists, vec!["campaign.kind".to_owned()])
    );

    let refused = move_to(&mut client, "winter", Paused).await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::FailedPrecondition, "ILLEGAL_STATE_CHANGE".into())
    );
    assert!(
        refused.message().contains("CAMPAIGN_STATE_DRAFT"),
        "{}",
        refused.message()
    );
    assert_eq!(
        move_to(&mut client, "winter", Scheduled).await.unwrap().state,
        Active as i32,
        "its window is open"
    );
    assert_eq!(
        move_to(&mut client, "winter", Paused).await.unwrap().state,
        Paused as i32
    );
    assert_eq!(
        move_to(&mut client, "winter", Active).await.unwrap().state,
        Active as i32
    );
    assert_eq!(move_to(&mut client, "winter", Ended).await.unwrap().state, Ended as i32);
    assert_eq!(
        move_to(&mut client, "winter", Ended).await.unwrap().state,
        Ended as i32,
        "ended again"
    );
    let after_end = move_to(&mut client, "winter", Scheduled).await.unwrap_err();
    assert!(
        after_end.message().contains("CAMPAIGN_STATE_ENDED"),
        "{}",
        after_end.message()
    );

    let later = pb::Campaign {
        starts_at: timestamp("2027-03-01T00:00:00+08:00"),
        ends_at: timestamp("2027-04-01T00:00:00+08:00"),
        ..campaign("spring", pb::CampaignKind::EntryGift)
    };
    create_campaign(&mut client, later).await.unwrap();
    assert_eq!(
        move_to(&mut client, "spring", Scheduled).await.unwrap().state,
        Scheduled as i32
    );
    suite.context.clock.set(
        chrono::DateTime::parse_from_rfc3339("2027-03-02T00:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let spring = client
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: "spring".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(spring.state, Active as i32, "active by itself once its window opens");
    assert!(
        started(&suite, "spring").await,
        "the sweep announces the campaign started"
    );

    let listed = client
        .list_campaigns(pb::ListCampaignsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.campaigns[0].campaign_id, "spring");
    let rest = client
        .list_campaigns(pb::ListCampaignsRequest {
            page_size: 1,
            page_token: listed.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rest.campaigns[0].campaign_id.as_str(), rest.next_page_token.as_str()),
        ("winter", "")
    );

    let unknown_coupon = pb::Campaign {
        reward: Some(pb::Reward {
            coupon_template_id: "none".into(),
            ..Default::default()
        }),
        ..campaign("gift", pb::CampaignKind::EntryGift)
    };
    let refused = create_campaign(&mut client, unknown_coupon).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["campaign.reward.coupon_template_id"]);
    let bad = move_to(&mut client, "winter", Draft).await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["state"]);
    let missing = move_to(&mut client, "none", Ended).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

/// Three members enrol on the WeChat mall and one in a store; the entry gift of the mall gives
/// 100 points and a coupon to the first two (its budget is two coupons) and nothing to the
/// store's member. A grant sent again is a duplicate at loyalty-points, not a second grant.
async fn an_entry_gift_rewards_each_new_member_once_within_its_budget(suite: Suite) {
    with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("welcome")).await;
    let gift = pb::Campaign {
        channels: vec![Channel::WechatMall.into()],
        reward: Some(pb::Reward {
            points: 100,
            coupon_template_id: "welcome".into(),
            ..Default::default()
        }),
        budget: Some(pb::Budget {
            kind: pb::BudgetKind::Coupons.into(),
            limit: 2,
        }),
        ..campaign("welcome", pb::CampaignKind::EntryGift)
    };
    schedule(&mut client, gift).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let online = quanyu_proto::identity::v1::Enrollment {
        channel: Channel::WechatMall.into(),
        ..Default::default()
    };
    let mut members = Vec::new();
    for phone in ["13700137001", "13700137002", "13700137003"] {
        members.push(enrol(&mut identity, phone, online.clone()).await);
    }
    let in_store = quanyu_proto::identity::v1::Enrollment {
        channel: Channel::Store.into(),
        ..Default::default()
    };
    enrol(&mut identity, "13700137004", in_store).await;

    let run = run_until(&mut client, "welcome", |run| {
        run.rewards + run.refused == 3 && run.pending == 0
    })
    .await;
    assert_eq!(
        (run.rewards, run.refused, run.coupons_issued, run.points_granted),
        (2, 1, 2, 200)
    );
    let campaign = client
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: "welcome".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(campaign.spent, 2, "the budget is spent, never passed");
    let mut points = suite.points(keys::ACME_PLATFORM).await;
    let balances = [
        quanyu_testkit::points::balance(&mut points, &members[0]).await.balance,
        quanyu_testkit::points::balance(&mut points, &members[1]).await.balance,
        quanyu_testkit::points::balance(&mut points, &members[2]).await.balance,
    ];
    assert_eq!(balances, [100, 100, 0]);

    // Sending every grant again (a restart before it was marked sent) grants nothing twice.
    let db = suite.database("campaign").await;
    sea_orm::ConnectionTrait::execute_unprepared(&db, "UPDATE point_grants SET state = 'PENDING'")
        .await
        .unwrap();
    run_until(&mut client, "welcome", |run| run.pending == 0).await;
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &members[0]).await.balance,
        100
    );
    let wallet = client
        .list_coupons(pb::ListCouponsRequest {
            member_id: members[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wallet.coupons[0].origin, pb::CouponOrigin::Campaign as i32);
}

/// A sale in November 2026 at the given day and hour in +08:00.
fn november_sale(transaction_id: &str, member_id: &str, day: u32, amount_minor: i64) -> quanyu_proto::points::v1::Sale {
    quanyu_proto::points::v1::Sale {
        occurred_at: timestamp(&format!("2026-11-{day:02}T12:00:00+08:00")),
        ..sale(transaction_id, member_buyer(member_id), amount_minor)
    }
}

/// Member days are the 8th of the month: 2 bonus points per yuan on one purchase a member day
/// from 100 yuan; a refund takes back its share of the bonus.
async fn member_day_bonuses_are_given_once_a_day_and_taken_back_on_refund(suite: Suite) {
    let mut points = with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let member_day = pb::Campaign {
        member_day: Some(pb::MemberDay {
            day: Some(pb::member_day::Day::DayOfMonth(8)),
        }),
        reward: None,
        bonus: Some(pb::PurchaseBonus {
            points_per_unit: 2,
            unit: cny(100),
            min_spend: cny(10_000),
        }),
        budget: Some(pb::Budget {
            kind: pb::BudgetKind::Points.into(),
            limit: 1_000,
        }),
        ..campaign("day", pb::CampaignKind::MemberDay)
    };
    schedule(&mut client, member_day).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    record(
        &mut pos,
        vec![
            november_sale("d-1", "m-1", 8, 20_000),
            november_sale("d-2", "m-1", 8, 15_000),
            november_sale("d-3", "m-1", 9, 30_000),
            november_sale("d-4", "m-2", 8, 9_999),
        ],
    )
    .await;
    let run = run_until(&mut client, "day", |run| run.rewards == 1 && run.pending == 0).await;
    assert_eq!(run.points_granted, 400, "the first member-day purchase only");
    let earned = 200 + 150 + 300;
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, "m-1").await.balance,
        earned + 400
    );

    record(&mut pos, vec![refund("d-1-back", "d-1", 10_000)]).await;
    let run = run_until(&mut client, "day", |run| run.points_revoked == 200 && run.pending == 0).await;
    assert_eq!(run.points_granted, 400);
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, "m-1").await.balance,
        earned - 100 + 400 - 200,
        "half refunded: half the earning and half the bonus back"
    );
    let day = client
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: "day".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(day.spent, 200, "points taken back return to the budget");
}

async fn a_tier_gift_rewards_reaching_the_tier(suite: Suite) {
    with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("gold-welcome")).await;
    let gift = pb::Campaign {
        tier: "gold".into(),
        reward: Some(pb::Reward {
            coupon_template_id: "gold-welcome".into(),
            ..Default::default()
        }),
        ..campaign("gold", pb::CampaignKind::TierGift)
    };
    schedule(&mut client, gift).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    record(
        &mut pos,
        vec![
            sale("t-1", member_buyer("m-1"), 150_000),
            sale("t-2", member_buyer("m-2"), 10_000),
        ],
    )
    .await;
    let run = run_until(&mut client, "gold", |run| run.rewards == 1).await;
    assert_eq!((run.members, run.coupons_issued, run.points_granted), (1, 1, 0));
    let wallet = client
        .list_coupons(pb::ListCouponsRequest {
            member_id: "m-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wallet.coupons.len(), 1);
}

/// Whether campaign's stream carries CampaignStarted for `campaign_id` (polled for a while: the
/// sweep runs every second).
async fn started(suite: &Suite, campaign_id: &str) -> bool {
    use quanyu_proto::events::v1::event::Payload;
    use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
    use quanyu_proto::events::v1::{SubscribeRequest, subscribe_response};
    use tokio_stream::StreamExt as _;

    let bearer = quanyu_runtime::auth::BearerKey::new(keys::ACME_ANALYST).unwrap();
    let mut events = EventStreamServiceClient::with_interceptor(suite.channel("campaign").await, bearer);
    for _ in 0..50 {
        let mut stream = events
            .subscribe(SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
        while let subscribe_response::Item::Event(event) = stream.next().await.unwrap().unwrap().item.unwrap() {
            if let Some(Payload::CampaignStarted(started)) = event.payload
                && started.campaign_id == campaign_id
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn birthday_gifts_come_on_the_birthday_once_a_year(suite: Suite) {
    use quanyu_proto::identity::v1 as identity_pb;
    let mut points = with_program(&suite, 0).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let mut members = Vec::new();
    for (phone, birthday) in [("13500135001", "1990-12-25"), ("13500135002", "1991-06-01")] {
        let member = enrol(&mut identity, phone, Default::default()).await;
        identity
            .update_profile(identity_pb::UpdateProfileRequest {
                member_id: member.clone(),
                birthday: Some(birthday.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        members.push(member);
    }
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, campaign("birthday", pb::CampaignKind::BirthdayGift)).await;
    suite.context.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-12-25T10:00:00+08:00")
            .unwrap()
            .to_utc(),
    );
    let run = run_until(&mut client, "birthday", |run| run.rewards == 1 && run.pending == 0).await;
    assert_eq!((run.members, run.points_granted), (1, 100));
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &members[0]).await.balance,
        100
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let later = run_of(&mut client, "birthday").await;
    assert_eq!(later.rewards, 1, "sweeps that day give nothing more");
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &members[1]).await.balance,
        0
    );
}

async fn a_money_budget_counts_the_coupons_face_value(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("fifty")).await;
    let money = |reward: pb::Reward| pb::Campaign {
        reward: Some(reward),
        budget: Some(pb::Budget {
            kind: pb::BudgetKind::Money.into(),
            limit: 12_000,
        }),
        ..campaign("money", pb::CampaignKind::EntryGift)
    };
    let points_only = money(pb::Reward {
        points: 10,
        ..Default::default()
    });
    let refused = create_campaign(&mut client, points_only).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["campaign.budget.kind"]);
    let coupons = money(pb::Reward {
        coupon_template_id: "fifty".into(),
        ..Default::default()
    });
    schedule(&mut client, coupons).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    for phone in ["13400134001", "13400134002", "13400134003"] {
        enrol(&mut identity, phone, Default::default()).await;
    }
    let run = run_until(&mut client, "money", |run| run.rewards + run.refused == 3).await;
    assert_eq!(
        (run.coupons_issued, run.refused),
        (2, 1),
        "two 50-yuan coupons fit 120 yuan, a third does not"
    );
}

/// An audience of members enrolled in store `store_id`, as analytics reads it.
fn enrolled_in(store_id: &str) -> Option<quanyu_proto::analytics::v1::AudienceSelector> {
    use quanyu_proto::analytics::v1::{AudienceSelector, audience_selector::Audience};
    Some(AudienceSelector {
        audience: Some(Audience::Rule(format!("store = \"{store_id}\""))),
    })
}

/// Enrols one member per phone in store `store_id`, and waits until analytics counts
/// `expected` members in that store's audience.
async fn enrol_in_store(suite: &Suite, store_id: &str, phones: &[&str], expected: i64) -> Vec<String> {
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let in_store = quanyu_proto::identity::v1::Enrollment {
        channel: Channel::Store.into(),
        store_id: store_id.into(),
        ..Default::default()
    };
    let mut members = Vec::new();
    for phone in phones {
        members.push(enrol(&mut identity, phone, in_store.clone()).await);
    }
    let mut analytics = suite.analytics(keys::ACME_PLATFORM).await;
    for _ in 0..100 {
        let request = quanyu_proto::analytics::v1::CountAudienceRequest {
            audience: enrolled_in(store_id),
        };
        if analytics.count_audience(request).await.unwrap().into_inner().members == expected {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("analytics never counted {expected} members in {store_id}");
}

async fn wallet_size(client: &mut CampaignClient, member_id: &str) -> usize {
    let request = pb::ListCouponsRequest {
        member_id: member_id.into(),
        ..Default::default()
    };
    client.list_coupons(request).await.unwrap().into_inner().coupons.len()
}

/// A drop to the members enrolled in sh-01, with a budget of five coupons for seven members:
/// five get one, two are refused, the rest of the tenant gets nothing, and nothing is given
/// twice however the campaign is paused and resumed.
async fn a_drop_rewards_each_member_of_its_audience_once(suite: Suite) {
    use quanyu_proto::analytics::v1::{AudienceSelector, audience_selector::Audience};
    let phones: Vec<String> = (1..=7).map(|n| format!("1360013600{n}")).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let audience = enrol_in_store(&suite, "sh-01", &phones, 7).await;
    let others = enrol_in_store(&suite, "bj-02", &["13600136100"], 1).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    create(&mut client, fifty_off("drop")).await;
    let drop = |audience| pb::Campaign {
        reward: Some(pb::Reward {
            coupon_template_id: "drop".into(),
            ..Default::default()
        }),
        audience,
        budget: Some(pb::Budget {
            kind: pb::BudgetKind::Coupons.into(),
            limit: 5,
        }),
        ..campaign("drop", pb::CampaignKind::CouponDrop)
    };
    let unparsed = Some(AudienceSelector {
        audience: Some(Audience::Rule("store = ".into())),
    });
    let refused = create_campaign(&mut client, drop(unparsed)).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["campaign.audience.rule"], "{refused:?}");
    let unsaved = Some(AudienceSelector {
        audience: Some(Audience::Name("nobody-saved-this".into())),
    });
    let refused = create_campaign(&mut client, drop(unsaved)).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["campaign.audience.name"], "{refused:?}");

    create_campaign(&mut client, drop(enrolled_in("sh-01"))).await.unwrap();
    assert!(
        run_of(&mut client, "drop").await.drop.is_none(),
        "a draft has not started"
    );
    move_to(&mut client, "drop", pb::CampaignState::Scheduled)
        .await
        .unwrap();
    let run = run_until(&mut client, "drop", |run| {
        run.drop.as_ref().is_some_and(|drop| drop.done)
    })
    .await;
    let progress = run.drop.clone().unwrap();
    assert_eq!((progress.audience_members, progress.listed), (7, 7));
    assert_eq!(progress.last_member_id, audience.iter().max().unwrap().clone());
    assert!(progress.finished_at.is_some());
    assert_eq!((run.coupons_issued, run.refused, run.members), (5, 2, 5));
    let mut held = 0;
    for member in &audience {
        let coupons = wallet_size(&mut client, member).await;
        assert!(coupons <= 1, "{member} holds {coupons}");
        held += coupons;
    }
    assert_eq!(held, 5);
    assert_eq!(wallet_size(&mut client, &others[0]).await, 0, "outside the audience");

    move_to(&mut client, "drop", pb::CampaignState::Paused).await.unwrap();
    move_to(&mut client, "drop", pb::CampaignState::Active).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let again = run_of(&mut client, "drop").await;
    assert_eq!((again.rewards, again.refused), (5, 2), "a done drop gives nothing more");
}

/// A purchase bonus for the members enrolled in sh-01 rewards their purchases and no one else's.
async fn an_audience_limits_who_a_campaign_rewards(suite: Suite) {
    with_program(&suite, 0).await;
    let inside = enrol_in_store(&suite, "sh-01", &["13300133001"], 1).await;
    let outside = enrol_in_store(&suite, "bj-02", &["13300133002"], 1).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let bonus = pb::Campaign {
        audience: enrolled_in("sh-01"),
        bonus: Some(pb::PurchaseBonus {
            points_per_unit: 1,
            unit: cny(10_000),
            min_spend: None,
        }),
        ..campaign("local", pb::CampaignKind::PurchaseBonus)
    };
    schedule(&mut client, bonus).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    record(
        &mut pos,
        vec![
            november_sale("l-1", &outside[0], 10, 10_000),
            november_sale("l-2", &inside[0], 10, 10_000),
        ],
    )
    .await;
    let run = run_until(&mut client, "local", |run| run.rewards == 1 && run.pending == 0).await;
    assert_eq!((run.members, run.points_granted), (1, 101));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = run_of(&mut client, "local").await;
    assert_eq!(later.rewards, 1, "the purchase outside the audience is not rewarded");
    let mut points = suite.points(keys::ACME_PLATFORM).await;
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &inside[0]).await.balance,
        100 + 101,
        "what the sale earns, and the bonus"
    );
}

/// A referral ladder over the test window: one qualified invitee pays 100 points, two pay 300
/// more; a purchase within 7 days qualifies, a refund within 7 days takes it back.
fn ladder(campaign_id: &str, claw_back: bool, max_invitees: u32) -> pb::Campaign {
    let rung = |invitees, points| pb::Rung {
        invitees,
        reward: Some(pb::Reward {
            points,
            ..Default::default()
        }),
    };
    pb::Campaign {
        reward: None,
        referral: Some(pb::ReferralRules {
            rungs: vec![rung(1, 100), rung(2, 300)],
            qualify_within_days: 7,
            return_window_days: 7,
            claw_back,
            max_invitees,
            max_per_hour: 0,
        }),
        ..campaign(campaign_id, pb::CampaignKind::Referral)
    }
}

async fn invite_code(client: &mut CampaignClient, campaign_id: &str, member_id: &str) -> Result<String, Status> {
    let request = pb::GetInviteCodeRequest {
        campaign_id: campaign_id.into(),
        member_id: member_id.into(),
    };
    Ok(client.get_invite_code(request).await?.into_inner().code)
}

/// Attributes `member_id` by `code`, waiting while campaign has not read the member's enrolment.
async fn attribute(client: &mut CampaignClient, code: &str, member_id: &str) -> Result<pb::Referral, Status> {
    for _ in 0..100 {
        let request = pb::AttributeReferralRequest {
            code: code.into(),
            member_id: member_id.into(),
        };
        match client.attribute_referral(request).await {
            Err(status) if status.code() == Code::FailedPrecondition && reason(&status) == "MEMBER_NOT_SEEN" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answer => return Ok(answer?.into_inner().referral.unwrap()),
        }
    }
    panic!("campaign never saw {member_id} enrol");
}

/// Polls a member's progress until `check` holds of it (attributions follow enrolment events).
async fn progress_until(
    client: &mut CampaignClient,
    (campaign_id, member_id): (&str, &str),
    check: impl Fn(&pb::GetTaskProgressResponse) -> bool,
) -> pb::GetTaskProgressResponse {
    for _ in 0..100 {
        let progress = progress(client, campaign_id, member_id).await;
        if check(&progress) {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the progress of {member_id} in {campaign_id} never got there: {:?}",
        progress(client, campaign_id, member_id).await
    );
}

async fn progress(client: &mut CampaignClient, campaign_id: &str, member_id: &str) -> pb::GetTaskProgressResponse {
    let request = pb::GetTaskProgressRequest {
        campaign_id: campaign_id.into(),
        member_id: member_id.into(),
        ..Default::default()
    };
    client.get_task_progress(request).await.unwrap().into_inner()
}

/// A enrols and shares a code; B enrols with it in a store, C online and is attributed after.
/// B's purchase pays the first rung, C's the second; C's refund claws the second back.
async fn a_referral_ladder_pays_each_rung_once_and_claws_back_on_refund(mut suite: Suite) {
    use quanyu_proto::identity::v1 as identity_pb;
    let mut points = with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("friends", true, 0)).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let inviter = enrol(&mut identity, "13200132001", Default::default()).await;
    let code = invite_code(&mut client, "friends", &inviter).await.unwrap();
    assert_eq!(
        invite_code(&mut client, "friends", &inviter).await.unwrap(),
        code,
        "one code a member"
    );

    let with_code = identity_pb::Enrollment {
        channel: Channel::Store.into(),
        referral_code: code.to_lowercase(),
        ..Default::default()
    };
    let in_store = enrol(&mut identity, "13200132002", with_code).await;
    let online_channel = identity_pb::Enrollment {
        channel: Channel::WechatMall.into(),
        ..Default::default()
    };
    let online = enrol(&mut identity, "13200132003", online_channel).await;
    let attributed = attribute(&mut client, &code, &online).await.unwrap();
    assert_eq!(
        (attributed.inviter_id.as_str(), attributed.state),
        (inviter.as_str(), pb::ReferralState::Attributed as i32)
    );
    let again = attribute(&mut client, &code, &online).await.unwrap();
    assert_eq!(
        again.attributed_at, attributed.attributed_at,
        "the same attribution again"
    );
    let both = progress_until(&mut client, ("friends", &inviter), |progress| progress.invitees == 2).await;
    assert_eq!((both.invitees, both.qualified, both.rungs_paid), (2, 0, 0));
    let mut listed: Vec<String> = both.referrals.iter().map(|r| r.invitee_id.clone()).collect();
    listed.sort();
    let mut expected = vec![in_store.clone(), online.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    let mut pos = suite.points(keys::ACME_POS).await;
    record(&mut pos, vec![sale("r-1", member_buyer(&in_store), 10_000)]).await;
    let first = run_until(&mut client, "friends", |run| run.rewards == 1 && run.pending == 0).await;
    assert_eq!(first.points_granted, 100);
    // A second purchase by the same invitee qualifies nothing more.
    record(&mut pos, vec![sale("r-2", member_buyer(&in_store), 10_000)]).await;
    let online_sale = quanyu_proto::points::v1::Sale {
        channel: Channel::WechatMall.into(),
        ..sale("r-3", member_buyer(&online), 20_000)
    };
    record(&mut pos, vec![online_sale]).await;
    let second = run_until(&mut client, "friends", |run| run.rewards == 2 && run.pending == 0).await;
    assert_eq!(second.points_granted, 400);
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &inviter).await.balance,
        400
    );
    let climbed = progress(&mut client, "friends", &inviter).await;
    assert_eq!((climbed.qualified, climbed.rungs_paid), (2, 2));

    record(&mut pos, vec![refund("r-3-back", "r-3", 20_000)]).await;
    let clawed = run_until(&mut client, "friends", |run| {
        run.points_revoked == 300 && run.pending == 0
    })
    .await;
    assert_eq!(clawed.rewards, 2);
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &inviter).await.balance,
        100,
        "the second rung's points are taken back"
    );
    let after = progress(&mut client, "friends", &inviter).await;
    assert_eq!((after.qualified, after.rungs_paid), (1, 1));

    // The invitee buys again within the days to qualify: the second rung is paid again, once.
    let online_again = quanyu_proto::points::v1::Sale {
        channel: Channel::WechatMall.into(),
        ..sale("r-4", member_buyer(&online), 20_000)
    };
    record(&mut pos, vec![online_again]).await;
    let repaid = run_until(&mut client, "friends", |run| run.rewards == 3 && run.pending == 0).await;
    assert_eq!(repaid.points_granted - repaid.points_revoked, 400);
    let relisted = progress(&mut client, "friends", &inviter).await;
    assert_eq!((relisted.qualified, relisted.rungs_paid), (2, 2));

    // Every event again, from the start (a consumer rewound, a replica with a lost cursor):
    // nothing is attributed, qualified, paid or taken back twice.
    let db = suite.database("campaign").await;
    let positions = "SELECT CAST(COALESCE(sum(position), 0) AS BIGINT) AS applied FROM outbox_cursors";
    let applied = |db: sea_orm::DatabaseConnection| async move {
        let statement = sea_orm::Statement::from_string(db.get_database_backend(), positions);
        let row = sea_orm::ConnectionTrait::query_one_raw(&db, statement)
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "applied").unwrap()
    };
    let caught_up = applied(db.clone()).await;
    sea_orm::ConnectionTrait::execute_unprepared(&db, "UPDATE outbox_cursors SET position = 0")
        .await
        .unwrap();
    suite
        .start_another(&quanyu_campaign::SERVICE, quanyu_testkit::CAMPAIGN_SETTINGS)
        .await;
    for _ in 0..200 {
        if applied(db.clone()).await >= caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied(db.clone()).await >= caught_up, "the replay reached the end");
    let replayed = run_until(&mut client, "friends", |run| run.pending == 0).await;
    assert_eq!(
        (replayed.rewards, replayed.points_granted, replayed.points_revoked),
        (repaid.rewards, repaid.points_granted, repaid.points_revoked)
    );
    assert_eq!(progress(&mut client, "friends", &inviter).await.qualified, 2);
    assert_eq!(
        quanyu_testkit::points::balance(&mut points, &inviter).await.balance,
        400
    );
}

async fn referrals_are_refused_with_the_reason(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("capped", false, 1)).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let early = enrol(&mut identity, "13100131000", Default::default()).await;
    let inviter = enrol(&mut identity, "13100131001", Default::default()).await;
    let other_inviter = enrol(&mut identity, "13100131002", Default::default()).await;
    let code = invite_code(&mut client, "capped", &inviter).await.unwrap();
    let other_code = invite_code(&mut client, "capped", &other_inviter).await.unwrap();
    let first = enrol(&mut identity, "13100131003", Default::default()).await;
    let second = enrol(&mut identity, "13100131004", Default::default()).await;

    let refusal = |answer: Result<pb::Referral, Status>| reason(&answer.unwrap_err());
    assert_eq!(refusal(attribute(&mut client, &code, &inviter).await), "SELF_REFERRAL");
    assert_eq!(refusal(attribute(&mut client, &code, &early).await), "ALREADY_A_MEMBER");
    attribute(&mut client, &code, &first).await.unwrap();
    assert_eq!(
        refusal(attribute(&mut client, &other_code, &first).await),
        "ALREADY_REFERRED"
    );
    assert_eq!(
        refusal(attribute(&mut client, &code, &second).await),
        "INVITEE_CAP_REACHED"
    );
    let unknown = attribute(&mut client, "ABCDEFGHJKMNP", &second).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let empty = client
        .attribute_referral(pb::AttributeReferralRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&empty), ["code", "member_id"]);

    move_to(&mut client, "capped", pb::CampaignState::Ended).await.unwrap();
    assert_eq!(
        refusal(attribute(&mut client, &other_code, &second).await),
        "CAMPAIGN_NOT_ACTIVE"
    );
    let late = invite_code(&mut client, "capped", &second).await.unwrap_err();
    assert_eq!(reason(&late), "CAMPAIGN_NOT_ACTIVE");
    create_campaign(&mut client, campaign("gift", pb::CampaignKind::EntryGift))
        .await
        .unwrap();
    let not_referral = invite_code(&mut client, "gift", &inviter).await.unwrap_err();
    assert_eq!(violated_fields(&not_referral), ["campaign_id"]);
    let progress = progress(&mut client, "capped", &inviter).await;
    assert_eq!(progress.invitees, 1, "refused attributions count for nothing");
}

/// At most two attributions an hour to one inviter: the third and fourth are held; one is
/// approved and counts, the other denied for good.
async fn a_burst_of_referrals_is_held_for_review(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let mut burst = ladder("burst", false, 0);
    if let Some(rules) = burst.referral.as_mut() {
        rules.max_per_hour = 2;
    }
    schedule(&mut client, burst).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let inviter = enrol(&mut identity, "13000130000", Default::default()).await;
    let code = invite_code(&mut client, "burst", &inviter).await.unwrap();
    let mut states = Vec::new();
    let mut invitees = Vec::new();
    for n in 1..=4 {
        let invitee = enrol(&mut identity, &format!("1300013000{n}"), Default::default()).await;
        states.push(attribute(&mut client, &code, &invitee).await.unwrap().state);
        invitees.push(invitee);
    }
    use pb::ReferralState::{Attributed, Denied, Held};
    assert_eq!(states, [Attributed as i32, Attributed as i32, Held as i32, Held as i32]);
    let held = client
        .list_referrals(pb::ListReferralsRequest {
            campaign_id: "burst".into(),
            state: Held.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut expected = vec![invitees[2].clone(), invitees[3].clone()];
    expected.sort();
    let listed: Vec<String> = held.referrals.iter().map(|r| r.invitee_id.clone()).collect();
    assert_eq!(listed, expected);
    assert_eq!(
        progress(&mut client, "burst", &inviter).await.invitees,
        2,
        "held ones count for nothing"
    );

    let review = |invitee: &str, approve: bool| pb::ReviewReferralRequest {
        campaign_id: "burst".into(),
        invitee_id: invitee.into(),
        approve,
    };
    let approved = client
        .review_referral(review(&invitees[2], true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.referral.unwrap().state, Attributed as i32);
    let denied = client
        .review_referral(review(&invitees[3], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.referral.unwrap().state, Denied as i32);
    assert_eq!(progress(&mut client, "burst", &inviter).await.invitees, 3);
    let again = client
        .review_referral(review(&invitees[3], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.referral.unwrap().state, Denied as i32, "denied again answers it");
    let reversed = client.review_referral(review(&invitees[3], true)).await.unwrap_err();
    assert_eq!(reason(&reversed), "NOT_HELD");
    let unreferred = client.review_referral(review(&inviter, true)).await.unwrap_err();
    assert_eq!(unreferred.code(), Code::NotFound);
}

/// The points stream may be read ahead of the identity stream: a purchase campaign saw before
/// the invitee's attribution qualifies it when it is attributed.
async fn a_purchase_seen_before_the_attribution_qualifies_it(suite: Suite) {
    with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("late", false, 0)).await;
    // A purchase bonus shows when campaign has read the purchase.
    let probe = pb::Campaign {
        bonus: Some(pb::PurchaseBonus {
            points_per_unit: 0,
            unit: cny(100),
            min_spend: None,
        }),
        ..campaign("probe", pb::CampaignKind::PurchaseBonus)
    };
    schedule(&mut client, probe).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let inviter = enrol(&mut identity, "13500135100", Default::default()).await;
    let code = invite_code(&mut client, "late", &inviter).await.unwrap();
    let invitee = enrol(&mut identity, "13500135101", Default::default()).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    record(&mut pos, vec![sale("late-1", member_buyer(&invitee), 10_000)]).await;
    run_until(&mut client, "probe", |run| run.rewards == 1).await;
    let referral = attribute(&mut client, &code, &invitee).await.unwrap();
    assert_eq!(
        referral.state,
        pb::ReferralState::Qualified as i32,
        "qualified as it is attributed"
    );
    let run = run_until(&mut client, "late", |run| run.rewards == 1).await;
    assert_eq!(run.points_granted, 100);
}

/// A brings B and C; B brings D. The leaderboard ranks A over B, a page at a time; A's tree shows
/// B (with D under) and C; B's shows A above.
async fn the_leaderboard_and_the_tree_show_who_brought_whom(suite: Suite) {
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("tree", false, 0)).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let a = enrol(&mut identity, "13700137100", Default::default()).await;
    let a_code = invite_code(&mut client, "tree", &a).await.unwrap();
    let b = enrol(&mut identity, "13700137101", Default::default()).await;
    let c = enrol(&mut identity, "13700137102", Default::default()).await;
    attribute(&mut client, &a_code, &b).await.unwrap();
    attribute(&mut client, &a_code, &c).await.unwrap();
    let b_code = invite_code(&mut client, "tree", &b).await.unwrap();
    let d = enrol(&mut identity, "13700137103", Default::default()).await;
    attribute(&mut client, &b_code, &d).await.unwrap();

    let board = |page_token: String| pb::GetLeaderboardRequest {
        campaign_id: "tree".into(),
        page_size: 1,
        page_token,
    };
    let first = client.get_leaderboard(board(String::new())).await.unwrap().into_inner();
    let leader = &first.entries[0];
    assert_eq!(
        (leader.rank, leader.member_id.as_str(), leader.invitees),
        (1, a.as_str(), 2)
    );
    let second = client
        .get_leaderboard(board(first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    let next = &second.entries[0];
    assert_eq!((next.rank, next.member_id.as_str(), next.invitees), (2, b.as_str(), 1));
    assert!(second.next_page_token.is_empty());

    let tree = |member_id: &str| pb::GetReferralTreeRequest {
        campaign_id: "tree".into(),
        member_id: member_id.into(),
        ..Default::default()
    };
    let a_tree = client.get_referral_tree(tree(&a)).await.unwrap().into_inner();
    assert!(a_tree.invited_by.is_none());
    let mut nodes: Vec<(String, Vec<String>, i64)> = a_tree
        .invitees
        .iter()
        .map(|node| {
            let invited = node.invited.iter().map(|r| r.invitee_id.clone()).collect();
            (node.referral.clone().unwrap().invitee_id, invited, node.invited_count)
        })
        .collect();
    nodes.sort();
    let mut expected = vec![(b.clone(), vec![d.clone()], 1), (c.clone(), Vec::new(), 0)];
    expected.sort();
    assert_eq!(nodes, expected);
    let b_tree = client.get_referral_tree(tree(&b)).await.unwrap().into_inner();
    assert_eq!(b_tree.invited_by.unwrap().inviter_id, a);
}

fn assist_request(member_id: &str, helper: pb::record_assist_request::Helper) -> pb::RecordAssistRequest {
    pb::RecordAssistRequest {
        campaign_id: "help".into(),
        member_id: member_id.into(),
        helper: Some(helper),
    }
}

/// Two assists complete a task within an hour; a helper helps one task; the reward is given
/// once, also when many friends help at once.
async fn assists_complete_a_task_once_and_keep_to_their_limits(suite: Suite) {
    use pb::record_assist_request::Helper::{HelperDeviceHash as Device, HelperMemberId as Member};
    let mut points = with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    let help = pb::Campaign {
        assist: Some(pb::AssistRules {
            assists_needed: 2,
            window_hours: 1,
            max_tasks_per_helper: 1,
        }),
        ..campaign("help", pb::CampaignKind::Assist)
    };
    schedule(&mut client, help).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let owner = enrol(&mut identity, "13600136200", Default::default()).await;
    let start = |member_id: &str| pb::StartAssistTaskRequest {
        campaign_id: "help".into(),
        member_id: member_id.into(),
    };
    let task = client
        .start_assist_task(start(&owner))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!((task.assists, task.assists_needed), (0, 2));
    let again = client
        .start_assist_task(start(&owner))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(again.started_at, task.started_at, "one task a member");

    let assists = client.clone();
    let refused = |request| {
        let mut client = assists.clone();
        async move { reason(&client.record_assist(request).await.unwrap_err()) }
    };
    assert_eq!(
        refused(assist_request(&owner, Member(owner.clone()))).await,
        "SELF_ASSIST"
    );
    let one = client
        .record_assist(assist_request(&owner, Device("d-1".into())))
        .await
        .unwrap();
    assert_eq!(one.into_inner().task.unwrap().assists, 1);
    assert_eq!(
        refused(assist_request(&owner, Device("d-1".into()))).await,
        "ALREADY_ASSISTED"
    );
    client.start_assist_task(start("m-other")).await.unwrap();
    assert_eq!(
        refused(assist_request("m-other", Device("d-1".into()))).await,
        "HELPER_LIMIT_REACHED",
        "one device helps one task"
    );
    let done = client
        .record_assist(assist_request(&owner, Member("m-friend".into())))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(done.assists, 2);
    assert!(done.completed_at.is_some());
    assert_eq!(
        refused(assist_request(&owner, Device("d-2".into()))).await,
        "TASK_COMPLETE"
    );
    let run = run_until(&mut client, "help", |run| run.rewards == 1 && run.pending == 0).await;
    assert_eq!(run.points_granted, 100);
    assert_eq!(quanyu_testkit::points::balance(&mut points, &owner).await.balance, 100);

    // Six friends at once on a task that needs two: it completes, and rewards, once.
    client.start_assist_task(start("m-crowd")).await.unwrap();
    let crowd: Vec<_> = (0..6)
        .map(|n| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let request = assist_request("m-crowd", Device(format!("crowd-{n}")));
                client.record_assist(request).await
            })
        })
        .collect();
    for friend in crowd {
        if let Err(status) = friend.await.unwrap() {
            assert_eq!(reason(&status), "TASK_COMPLETE");
        }
    }
    let run = run_until(&mut client, "help", |run| run.rewards == 2).await;
    assert_eq!(run.members, 2);

    let nobody = client
        .record_assist(assist_request("m-none", Device("d-3".into())))
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound);
    suite.context.clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        refused(assist_request("m-other", Device("d-4".into()))).await,
        "TASK_EXPIRED"
    );
}

/// B joins with A's code and is erased; the same phone joins again with C's code: campaign
/// knows the person by the keyed hash of the phone it kept, and denies the second referral.
async fn a_person_erased_and_enrolled_again_is_not_referred_twice(suite: Suite) {
    use quanyu_proto::identity::v1 as identity_pb;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("again", false, 0)).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let a = enrol(&mut identity, "13800138300", Default::default()).await;
    let c = enrol(&mut identity, "13800138301", Default::default()).await;
    let a_code = invite_code(&mut client, "again", &a).await.unwrap();
    let c_code = invite_code(&mut client, "again", &c).await.unwrap();
    let with_code = |code: &str| identity_pb::Enrollment {
        referral_code: code.into(),
        ..Default::default()
    };
    let first = enrol(&mut identity, "13800138302", with_code(&a_code)).await;
    let referred = progress_until(&mut client, ("again", &a), |progress| progress.invitees == 1).await;
    assert_eq!(referred.invitees, 1);
    identity
        .erase_member(identity_pb::EraseMemberRequest {
            member_id: first,
            reason: "pipl request".into(),
        })
        .await
        .unwrap();
    let again = enrol(&mut identity, "13800138302", with_code(&c_code)).await;
    let denied = |referrals: &[pb::Referral]| {
        referrals
            .iter()
            .any(|referral| referral.invitee_id == again && referral.state == pb::ReferralState::Denied as i32)
    };
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = client
            .list_referrals(pb::ListReferralsRequest {
                campaign_id: "again".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .referrals;
        if denied(&listed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(denied(&listed), "{listed:?}");
    assert_eq!(
        progress(&mut client, "again", &c).await.invitees,
        0,
        "C brought no one new"
    );
}

/// Seven days to qualify and seven to take a qualification back, on the injected clock: a
/// purchase on the eighth day after enrolling qualifies nothing, and a refund on the eighth day
/// after the qualifying purchase keeps the rung.
async fn referral_windows_follow_the_clock(suite: Suite) {
    use quanyu_proto::identity::v1 as identity_pb;
    with_program(&suite, 0).await;
    let mut client = suite.campaign(keys::ACME_PLATFORM).await;
    schedule(&mut client, ladder("windows", true, 0)).await;
    // A purchase bonus shows when campaign has read the refund (it takes its bonus back).
    let probe = pb::Campaign {
        bonus: Some(pb::PurchaseBonus {
            points_per_unit: 1,
            unit: cny(100),
            min_spend: None,
        }),
        reward: None,
        ..campaign("probe", pb::CampaignKind::PurchaseBonus)
    };
    schedule(&mut client, probe).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let inviter = enrol(&mut identity, "13800138400", Default::default()).await;
    let code = invite_code(&mut client, "windows", &inviter).await.unwrap();
    let with_code = identity_pb::Enrollment {
        referral_code: code.clone(),
        ..Default::default()
    };
    let late_buyer = enrol(&mut identity, "13800138401", with_code.clone()).await;
    progress_until(&mut client, ("windows", &inviter), |progress| progress.invitees == 1).await;
    let clock = &suite.context.clock;
    let at_now =
        |transaction_id: &str, buyer: &str, kind: quanyu_proto::points::v1::SaleKind| quanyu_proto::points::v1::Sale {
            occurred_at: Some(quanyu_runtime::clock::to_proto(clock.now())),
            kind: kind.into(),
            ..sale(transaction_id, member_buyer(buyer), 10_000)
        };
    use quanyu_proto::points::v1::SaleKind;
    clock.advance(chrono::Duration::days(8));
    let mut pos = suite.points(keys::ACME_POS).await;
    let late = record(&mut pos, vec![at_now("w-1", &late_buyer, SaleKind::Sale)]).await;
    assert_eq!(late[0].outcome, quanyu_proto::points::v1::SaleOutcome::Applied as i32);
    let prompt_buyer = enrol(&mut identity, "13800138402", with_code).await;
    record(&mut pos, vec![at_now("w-2", &prompt_buyer, SaleKind::Sale)]).await;
    run_until(&mut client, "windows", |run| run.rewards == 1 && run.pending == 0).await;
    let paid = progress(&mut client, "windows", &inviter).await;
    assert_eq!(
        (paid.invitees, paid.qualified),
        (2, 1),
        "the purchase eight days after enrolling qualified nothing"
    );

    clock.advance(chrono::Duration::days(8));
    let late_refund = quanyu_proto::points::v1::Sale {
        original_transaction_id: "w-2".into(),
        buyer: None,
        lines: Vec::new(),
        ..at_now("w-2-back", &prompt_buyer, SaleKind::Refund)
    };
    let refunded = record(&mut pos, vec![late_refund]).await;
    assert_eq!(
        refunded[0].outcome,
        quanyu_proto::points::v1::SaleOutcome::Applied as i32
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let kept = progress(&mut client, "windows", &inviter).await;
    assert_eq!(
        (kept.qualified, kept.rungs_paid),
        (1, 1),
        "a refund past the return window keeps it"
    );
    assert_eq!(run_of(&mut client, "windows").await.points_revoked, 0);
}
