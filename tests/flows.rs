//! Flows across services, on a running suite, on SQLite and PostgreSQL: what one service does that
//! another reacts to through its event stream or its calls.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use quanyu_proto::analytics::v1 as analytics_pb;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as pb;
use quanyu_testkit::fault::Link;
use quanyu_testkit::points::{account, balance, member_buyer, phone_buyer, record, refund, sale, with_program};
use quanyu_testkit::{Backend, Sandbox, Suite, keys};

quanyu_testkit::suite!(
    merged_members_accounts_fold_into_the_survivor,
    a_buyer_enrolled_by_a_sale_is_a_member_of_identity,
    analytics_follows_enrolments_sales_and_merges,
    a_coupon_claimed_online_is_redeemed_in_a_store_and_restored_by_the_refund,
    friends_brought_by_a_code_pay_the_inviters_ladder_once,
);

/// member-identity merges two members; loyalty-points folds the merged member's accounts into the
/// survivor's from the MembersMerged event, and later sales and refunds follow the merge.
async fn merged_members_accounts_fold_into_the_survivor(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let first = record(&mut pos, vec![sale("m-1", phone_buyer("13100131000"), 20_000)]).await;
    let second = record(&mut pos, vec![sale("m-2", phone_buyer("13100131001"), 30_000)]).await;
    let (survivor, loser) = (first[0].member_id.clone(), second[0].member_id.clone());
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    quanyu_testkit::merge(&mut identity, &survivor, &loser).await;
    let mut folded = balance(&mut pos, &survivor).await;
    for _ in 0..100 {
        if folded.balance == 500 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        folded = balance(&mut pos, &survivor).await;
    }
    assert_eq!(folded.balance, 500, "the loser's 300 points joined the survivor's 200");
    assert_eq!(folded.growth_lifetime, 500, "growth adds up");
    assert_eq!(
        folded.expiring.iter().map(|lot| lot.points).sum::<i64>(),
        500,
        "lots kept with their expiry"
    );
    let merged_away = balance(&mut pos, &loser).await;
    assert_eq!(
        (merged_away.member_id.as_str(), merged_away.balance),
        (survivor.as_str(), 500),
        "the loser's id reaches the survivor"
    );

    // Every read naming the merged member answers for the survivor, and says so.
    let mut platform = suite.points(keys::ACME_PLATFORM).await;
    let history = platform
        .list_entries(pb::ListEntriesRequest {
            account: account(&loser),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.member_id, survivor, "the survivor's entries");
    let merge_in = history
        .entries
        .iter()
        .find(|entry| entry.kind == pb::EntryKind::MergeIn as i32)
        .expect("the merge is in the survivor's history");
    assert_eq!(
        (merge_in.points, merge_in.reference.as_str()),
        (300, format!("merge:{loser}").as_str())
    );

    let results = record(&mut pos, vec![sale("m-3", member_buyer(&loser), 10_000)]).await;
    assert_eq!(
        (results[0].member_id.as_str(), results[0].balance_after),
        (survivor.as_str(), 600)
    );

    let refunded = record(&mut pos, vec![refund("m-2-back", "m-2", 30_000)]).await;
    assert_eq!(
        (
            refunded[0].member_id.as_str(),
            refunded[0].points_reversed,
            refunded[0].balance_after
        ),
        (survivor.as_str(), 300, 300),
        "a refund of the loser's earlier sale reverses its points where they went"
    );
    assert_eq!(balance(&mut pos, &survivor).await.growth_lifetime, 300);
}

/// A till's sale by an unknown phone enrols its buyer through member-identity; the member it made
/// is the one member-identity resolves the phone to.
async fn a_buyer_enrolled_by_a_sale_is_a_member_of_identity(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("e-1", phone_buyer("13900139001"), 10_000)]).await;
    assert!(!earned[0].member_id.is_empty(), "the unknown buyer was enrolled");
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let resolved = identity
        .resolve_identities(identity_pb::ResolveIdentitiesRequest {
            identities: vec![identity_pb::Identity {
                kind: identity_pb::IdentityKind::Phone.into(),
                value: "+86 139 0013 9001".into(),
                namespace: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.resolutions[0].member_id, earned[0].member_id);
    assert_eq!(balance(&mut pos, &earned[0].member_id).await.balance, 100);
}

/// Two member-identity replicas behind one `identity_endpoint` (two URLs here, as a headless
/// Service's name resolves to two pods): loyalty-points' calls reach both, not the first alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_identity_spread_over_every_replica() {
    let mut sandbox = Sandbox::start(Backend::Sqlite, &[&quanyu_member_identity::SERVICE])
        .await
        .unwrap();
    let replica = sandbox.start_another(&quanyu_member_identity::SERVICE, "").await;
    let first = Link::start(sandbox.address("member-identity")).await;
    let second = Link::start(replica).await;
    let settings = format!(
        "identity_endpoint = \"http://{}, http://{}\"\nidentity_api_key = \"test-service\"\n",
        first.address(),
        second.address()
    );
    sandbox.start_another(&quanyu_loyalty_points::SERVICE, &settings).await;
    with_program(&sandbox, 0).await;
    let mut pos = sandbox.points(keys::ACME_POS).await;
    for n in 0..40 {
        let sold = sale(&format!("lb-{n}"), phone_buyer(&format!("1390000{n:04}")), 1_000);
        let results = record(&mut pos, vec![sold]).await;
        assert_eq!(results[0].outcome, pb::SaleOutcome::Applied as i32, "{results:?}");
    }
    let carried = (first.bytes_carried(), second.bytes_carried());
    assert!(
        carried.0 > 2_000 && carried.1 > 2_000,
        "bytes to each replica: {carried:?}"
    );
}

/// The figures analytics answers for today: new members, and active members of all members.
async fn today_in_analytics(suite: &Suite) -> [(i64, i64); 2] {
    use quanyu_proto::analytics::v1::{GetMetricsRequest, Metric};
    let today = quanyu_testkit::analytics_day(0);
    let answer = suite
        .analytics(keys::ACME_ANALYST)
        .await
        .get_metrics(GetMetricsRequest {
            metrics: vec![Metric::NewMembers as i32, Metric::ActiveMemberRate as i32],
            start_date: today.clone(),
            end_date: today,
            filter: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let pair = |index: usize| (answer.values[index].numerator, answer.values[index].denominator);
    [pair(0), pair(1)]
}

/// Polls analytics until today's figures are `expected` (they follow each commit of the other
/// services within about a second; ten are allowed here).
async fn analytics_reaches(suite: &Suite, expected: [(i64, i64); 2]) {
    let mut seen = today_in_analytics(suite).await;
    for _ in 0..100 {
        if seen == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = today_in_analytics(suite).await;
    }
    assert_eq!(seen, expected);
}

/// Two people enrol on two channels, one buys in a store and the other on Tmall; then
/// member-identity merges them. analytics follows each step, and counts the merged person once.
async fn analytics_follows_enrolments_sales_and_merges(suite: Suite) {
    use quanyu_proto::common::v1::Channel;
    with_program(&suite, 0).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let mut members = Vec::new();
    for (phone, channel) in [("13500135001", Channel::Store), ("13500135002", Channel::Tmall)] {
        let enrollment = identity_pb::Enrollment {
            channel: channel.into(),
            ..Default::default()
        };
        members.push(quanyu_testkit::enrol(&mut identity, phone, enrollment).await);
    }
    analytics_reaches(&suite, [(2, 1), (0, 2)]).await;

    let mut pos = suite.points(keys::ACME_POS).await;
    let in_store = sale("f-store", member_buyer(&members[0]), 10_000);
    let mut on_tmall = sale("f-tmall", member_buyer(&members[1]), 20_000);
    on_tmall.channel = Channel::Tmall.into();
    on_tmall.store_id.clear();
    record(&mut pos, vec![in_store, on_tmall]).await;
    analytics_reaches(&suite, [(2, 1), (2, 2)]).await;

    quanyu_testkit::merge(&mut identity, &members[0], &members[1]).await;
    analytics_reaches(&suite, [(1, 1), (1, 1)]).await;
}

/// A member claims a coupon in the mini-program and spends it at a till on the member day:
/// loyalty-points records the sale, campaign redeems the coupon for the same order and grants the
/// member-day bonus once; the order's refund, recorded at loyalty-points, gives the coupon back
/// and takes the bonus back, through its event. campaign's stream tells it all.
async fn a_coupon_claimed_online_is_redeemed_in_a_store_and_restored_by_the_refund(suite: Suite) {
    use quanyu_proto::campaign::v1 as campaign_pb;
    use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
    use quanyu_proto::events::v1::{SubscribeRequest, subscribe_response};
    use tokio_stream::StreamExt as _;

    let mut points = with_program(&suite, 0).await;
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let enrollment = identity_pb::Enrollment {
        channel: quanyu_proto::common::v1::Channel::WechatMall.into(),
        ..Default::default()
    };
    let member = quanyu_testkit::enrol(&mut identity, "13600136000", enrollment).await;
    let mut mall = suite.campaign(keys::ACME_PLATFORM).await;
    let template = campaign_pb::CouponTemplate {
        template_id: "store-50".into(),
        name: "50 off in store".into(),
        kind: campaign_pb::CouponKind::AmountOff.into(),
        amount_off: quanyu_testkit::points::cny(5_000),
        channels: vec![
            quanyu_proto::common::v1::Channel::WechatMall.into(),
            quanyu_proto::common::v1::Channel::Store.into(),
        ],
        valid_days: 7,
        ..Default::default()
    };
    mall.create_coupon_template(campaign_pb::CreateCouponTemplateRequest {
        template: Some(template),
    })
    .await
    .unwrap();
    let claimed = mall
        .claim_coupon(campaign_pb::ClaimCouponRequest {
            template_id: "store-50".into(),
            member_id: member.clone(),
            channel: quanyu_proto::common::v1::Channel::WechatMall.into(),
            idempotency_key: "mini-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .coupon
        .unwrap();

    // Today is the member day: one bonus point per yuan, once per member per member day.
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let weekday = chrono::Datelike::weekday(&today).number_from_monday();
    let to_proto = |at: chrono::DateTime<chrono::Utc>| Some(quanyu_runtime::clock::to_proto(at));
    let member_day = campaign_pb::Campaign {
        campaign_id: "member-day".into(),
        name: "Member day".into(),
        kind: campaign_pb::CampaignKind::MemberDay.into(),
        starts_at: to_proto(chrono::Utc::now() - chrono::Duration::days(1)),
        ends_at: to_proto(chrono::Utc::now() + chrono::Duration::days(1)),
        member_day: Some(campaign_pb::MemberDay {
            day: Some(campaign_pb::member_day::Day::Weekday(weekday)),
        }),
        bonus: Some(campaign_pb::PurchaseBonus {
            points_per_unit: 1,
            unit: quanyu_testkit::points::cny(100),
            min_spend: None,
        }),
        ..Default::default()
    };
    mall.create_campaign(campaign_pb::CreateCampaignRequest {
        campaign: Some(member_day),
    })
    .await
    .unwrap();
    mall.change_campaign_state(campaign_pb::ChangeCampaignStateRequest {
        campaign_id: "member-day".into(),
        state: campaign_pb::CampaignState::Scheduled.into(),
    })
    .await
    .unwrap();

    let mut pos = suite.points(keys::ACME_POS).await;
    let sold = record(&mut pos, vec![sale("s-1", phone_buyer("13600136000"), 25_000)]).await;
    assert_eq!(sold[0].member_id, member, "the till's buyer is the member who claimed");
    let mut till = suite.campaign(keys::ACME_POS).await;
    let order = campaign_pb::Order {
        source: "pos-sh".into(),
        order_id: "s-1".into(),
        channel: quanyu_proto::common::v1::Channel::Store.into(),
        store_id: "sh-01".into(),
        amount: quanyu_testkit::points::cny(30_000),
        member_id: member.clone(),
        ..Default::default()
    };
    let redeemed = till
        .redeem_coupons(campaign_pb::RedeemCouponsRequest {
            order: Some(order),
            codes: vec![claimed.code.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redeemed.discount, quanyu_testkit::points::cny(5_000));
    let [_, coupon] = campaign_results(&suite, |[_, coupon]| coupon.coupons_redeemed == 1).await;
    assert_eq!((coupon.members_reached, coupon.coupons_issued), (1, 1));
    assert!((coupon.redemption_rate - 1.0).abs() < f64::EPSILON, "{coupon:?}");
    let granted = member_day_run(&mut mall, |run| run.points_granted == 250 && run.pending == 0).await;
    assert_eq!((granted.rewards, granted.points_granted, granted.pending), (1, 250, 0));
    assert_eq!(
        balance(&mut pos, &member).await.balance,
        250 + 250,
        "earned, and the member-day bonus"
    );

    record(&mut points, vec![refund("s-1-back", "s-1", 25_000)]).await;
    let mut state = 0;
    for _ in 0..100 {
        let coupon = till
            .get_coupon(campaign_pb::GetCouponRequest {
                code: claimed.code.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .coupon
            .unwrap();
        state = coupon.state;
        if state == campaign_pb::CouponState::Available as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        state,
        campaign_pb::CouponState::Available as i32,
        "the refund gave the coupon back"
    );
    let reversed = member_day_run(&mut mall, |run| run.points_revoked == 250 && run.pending == 0).await;
    assert_eq!((reversed.points_revoked, reversed.pending), (250, 0));
    assert_eq!(
        balance(&mut pos, &member).await.balance,
        0,
        "the refund took back the bonus too"
    );
    let [day, coupon] =
        campaign_results(&suite, |[day, coupon]| day.rewards == 1 && coupon.coupons_restored == 1).await;
    assert_eq!(
        (day.members_reached, day.points_granted),
        (1, 250),
        "the member day's reach"
    );
    assert!(
        coupon.redemption_rate.abs() < f64::EPSILON,
        "a restored coupon is not a redemption kept"
    );

    let bearer = quanyu_runtime::auth::BearerKey::new(keys::ACME_ANALYST).unwrap();
    let mut events = EventStreamServiceClient::with_interceptor(suite.channel("campaign").await, bearer);
    let mut stream = events
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while let subscribe_response::Item::Event(event) = stream.next().await.unwrap().unwrap().item.unwrap() {
        types.push(event.event_type);
    }
    // CampaignStarted comes from campaign's sweep, on its own time (its own test checks it).
    types.retain(|event_type| event_type != "campaign.CampaignStarted");
    // The reward follows the sale's event while the till redeems: the two may come in any order.
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "campaign.CouponIssued",
            "campaign.CouponRedeemed",
            "campaign.CouponRestored",
            "campaign.RewardGranted"
        ]
    );
}

/// The member-day campaign's run, once `check` holds of it.
/// Analytics' results of the member-day campaign and of the store-50 coupons, once `check`
/// holds of them (they follow campaign's event stream).
async fn campaign_results(
    suite: &Suite,
    check: impl Fn(&[analytics_pb::CampaignResult; 2]) -> bool,
) -> [analytics_pb::CampaignResult; 2] {
    let mut analytics = suite.analytics(keys::ACME_ANALYST).await;
    let mut results = [
        analytics_pb::CampaignResult::default(),
        analytics_pb::CampaignResult::default(),
    ];
    for _ in 0..100 {
        let answer = analytics
            .get_campaign_results(analytics_pb::GetCampaignResultsRequest {
                campaign_ids: vec!["member-day".into()],
                coupon_template_ids: vec!["store-50".into()],
            })
            .await
            .unwrap()
            .into_inner();
        results = [answer.campaigns[0].clone(), answer.coupon_templates[0].clone()];
        if check(&results) {
            return results;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("analytics never showed the campaign's results: {results:?}");
}

async fn member_day_run(
    mall: &mut quanyu_testkit::CampaignClient,
    check: impl Fn(&quanyu_proto::campaign::v1::GetCampaignRunResponse) -> bool,
) -> quanyu_proto::campaign::v1::GetCampaignRunResponse {
    let request = quanyu_proto::campaign::v1::GetCampaignRunRequest {
        campaign_id: "member-day".into(),
    };
    let mut run = mall.get_campaign_run(request.clone()).await.unwrap().into_inner();
    for _ in 0..100 {
        if check(&run) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        run = mall.get_campaign_run(request.clone()).await.unwrap().into_inner();
    }
    run
}

/// A shares a code; B enrols with it in a store and C in the mini-program. B's purchase in the
/// store and C's online each pay a rung of A's ladder, once; C's refund within the return window
/// takes C's qualification and the second rung's points back (the campaign claws back); analytics
/// shows the invitees, those qualified and the K-factor.
async fn friends_brought_by_a_code_pay_the_inviters_ladder_once(suite: Suite) {
    use quanyu_proto::campaign::v1 as campaign_pb;
    use quanyu_proto::common::v1::Channel;

    let mut points = with_program(&suite, 0).await;
    let mut mall = suite.campaign(keys::ACME_PLATFORM).await;
    let rung = |invitees, points| campaign_pb::Rung {
        invitees,
        reward: Some(campaign_pb::Reward {
            points,
            ..Default::default()
        }),
    };
    let to_proto = |at: chrono::DateTime<chrono::Utc>| Some(quanyu_runtime::clock::to_proto(at));
    let friends = campaign_pb::Campaign {
        campaign_id: "bring-friends".into(),
        name: "Bring a friend".into(),
        kind: campaign_pb::CampaignKind::Referral.into(),
        starts_at: to_proto(chrono::Utc::now() - chrono::Duration::days(1)),
        ends_at: to_proto(chrono::Utc::now() + chrono::Duration::days(30)),
        referral: Some(campaign_pb::ReferralRules {
            rungs: vec![rung(1, 100), rung(2, 300)],
            qualify_within_days: 30,
            return_window_days: 7,
            claw_back: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    mall.create_campaign(campaign_pb::CreateCampaignRequest {
        campaign: Some(friends),
    })
    .await
    .unwrap();
    mall.change_campaign_state(campaign_pb::ChangeCampaignStateRequest {
        campaign_id: "bring-friends".into(),
        state: campaign_pb::CampaignState::Scheduled.into(),
    })
    .await
    .unwrap();

    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let inviter = quanyu_testkit::enrol(&mut identity, "13900139100", Default::default()).await;
    let code = mall
        .get_invite_code(campaign_pb::GetInviteCodeRequest {
            campaign_id: "bring-friends".into(),
            member_id: inviter.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .code;
    let with_code = |channel: Channel| identity_pb::Enrollment {
        channel: channel.into(),
        referral_code: code.clone(),
        ..Default::default()
    };
    let in_store = quanyu_testkit::enrol(&mut identity, "13900139101", with_code(Channel::Store)).await;
    let online = quanyu_testkit::enrol(&mut identity, "13900139102", with_code(Channel::WechatMall)).await;

    let mut pos = suite.points(keys::ACME_POS).await;
    // The store's till and the mini-program record each buyer's first purchase.
    record(&mut pos, vec![sale("f-1", member_buyer(&in_store), 10_000)]).await;
    let online_sale = pb::Sale {
        source: "wechat-mall".into(),
        channel: Channel::WechatMall.into(),
        store_id: String::new(),
        ..sale("f-2", member_buyer(&online), 20_000)
    };
    record(&mut points, vec![online_sale]).await;
    let mut paid = 0;
    for _ in 0..100 {
        paid = balance(&mut points, &inviter).await.balance;
        if paid == 400 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(paid, 100 + 300, "each rung paid once");

    let mut refund_online = refund("f-2-back", "f-2", 20_000);
    refund_online.source = "wechat-mall".into();
    record(&mut points, vec![refund_online]).await;
    let mut analytics = suite.analytics(keys::ACME_ANALYST).await;
    let mut result = analytics_pb::CampaignResult::default();
    for _ in 0..200 {
        result = analytics
            .get_campaign_results(analytics_pb::GetCampaignResultsRequest {
                campaign_ids: vec!["bring-friends".into()],
                coupon_template_ids: Vec::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .campaigns
            .remove(0);
        let clawed = balance(&mut points, &inviter).await.balance == 100;
        if clawed && result.invitees_qualified == 1 && result.invitees == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        balance(&mut points, &inviter).await.balance,
        100,
        "the second rung is clawed back"
    );
    assert_eq!(
        (result.inviters, result.invitees, result.invitees_qualified),
        (1, 2, 1),
        "{result:?}"
    );
    assert!(
        (result.k_factor - 1.0).abs() < f64::EPSILON,
        "one buying friend per inviter: {result:?}"
    );
    assert_eq!((result.rewards, result.points_granted), (2, 400));
}
