//! loyalty-points over real gRPC, with member-identity beside it, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use quanyu_proto::common::v1::Money;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::service::Service as _;
use quanyu_testkit::points::{
    account, balance, cny, member_buyer, phone_buyer, program, record, refund, sale, with_program,
};
use quanyu_testkit::{ACME, Suite, keys};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

quanyu_testkit::suite!(
    programs_are_validated_and_versioned,
    sales_earn_and_replays_change_nothing,
    a_batch_applies_the_good_sales_and_reports_the_bad,
    refunds_reverse_proportionally_and_may_leave_a_debt,
    holds_reserve_points_until_confirmed_released_or_expired,
    concurrent_redeems_never_overspend,
    tiers_upgrade_at_once,
    tenants_never_see_each_other,
    every_change_is_published_and_lapsed_holds_settle_by_themselves,
    offline_backlogs_stream_in_chunks,
    every_bad_field_is_named,
    many_tills_crediting_one_member_lose_nothing,
    expiry_and_tiers_follow_the_calendar_year,
    reading_a_balance_creates_no_account,
    first_changes_to_a_new_account_race_and_lose_nothing,
    large_batches_of_members_and_non_members_land_whole,
    keyed_writes_are_answered_as_they_were_the_first_time,
    a_program_earns_in_its_own_currency_only,
    concurrent_uploads_creating_the_same_accounts_apply_each_sale_once,
    an_account_two_transactions_create_at_once_is_created_once,
    a_replayed_batch_is_answered_whole_as_it_would_be_sale_by_sale,
    uploads_at_once_apply_each_sale_once,
    a_sale_sent_again_by_a_till_gets_its_first_answer,
    amounts_past_their_bounds_are_refused_naming_the_field,
    grants_are_credited_once_and_taken_back_from_their_lot,
    two_replicas_sweeping_at_once_expire_each_lot_once,
);

async fn rows_in(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    let count = Statement::from_string(
        db.get_database_backend(),
        format!("SELECT count(*) AS count FROM {table}"),
    );
    let row = db.query_one_raw(count).await.unwrap().unwrap();
    row.try_get("", "count").unwrap()
}

async fn programs_are_validated_and_versioned(suite: Suite) {
    let mut client = suite.points(keys::ACME_PLATFORM).await;
    let first = client
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(0)),
        })
        .await
        .unwrap();
    assert_eq!(first.into_inner().program.unwrap().rules_version, 1);
    let second = client
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(0)),
        })
        .await
        .unwrap();
    assert_eq!(second.into_inner().program.unwrap().rules_version, 2);
    let fetched = client
        .get_program(pb::GetProgramRequest {
            program_id: "lumen-club".into(),
        })
        .await
        .unwrap();
    assert_eq!(fetched.into_inner().program.unwrap().rules_version, 2);

    let bad = pb::Program {
        program_id: "X".into(),
        earning: None,
        expiry: None,
        tiers: vec![pb::Tier {
            code: "gold".into(),
            growth_threshold: 5,
            multiplier_bp: 10_000,
        }],
        ..program(0)
    };
    let status = client
        .upsert_program(pb::UpsertProgramRequest { program: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    for field in ["program_id", "earning", "expiry", "tiers"] {
        assert!(status.message().contains(field), "{field} in {}", status.message());
    }
    let mut pos = suite.points(keys::ACME_POS).await;
    let denied = pos
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(0)),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn sales_earn_and_replays_change_nothing(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let batch = vec![
        sale("t-1", phone_buyer("13800138000"), 12_345),
        sale("t-2", None, 5_000),
    ];
    let first_sale_time = batch[0].occurred_at;
    let results = record(&mut pos, batch.clone()).await;
    assert_eq!(results[0].outcome, pb::SaleOutcome::Applied as i32);
    assert_eq!(results[0].points_earned, 123);
    assert!(!results[0].member_id.is_empty(), "the unknown buyer was enrolled");
    assert_eq!(results[1].outcome, pb::SaleOutcome::Applied as i32);
    assert!(
        results[1].member_id.is_empty(),
        "an anonymous sale is kept without points"
    );
    let member_id = results[0].member_id.clone();

    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let resolved = identity
        .resolve_identities(identity_pb::ResolveIdentitiesRequest {
            identities: vec![identity_pb::Identity {
                kind: identity_pb::IdentityKind::Phone.into(),
                value: "+8613800138000".into(),
                namespace: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.resolutions[0].member_id, member_id);

    let enrolled_before = identity
        .list_members(identity_pb::ListMembersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members
        .len();
    let replay = record(&mut pos, batch).await;
    assert_eq!(replay[0].outcome, pb::SaleOutcome::Duplicate as i32);
    let enrolled_after = identity
        .list_members(identity_pb::ListMembersRequest::default())
        .await
        .unwrap();
    assert_eq!(
        enrolled_after.into_inner().members.len(),
        enrolled_before,
        "a replay enrols nobody"
    );
    let original = replay[0].original.clone().unwrap();
    assert_eq!(*original, results[0], "a replay answers with the original result");
    assert_eq!(balance(&mut pos, &member_id).await.balance, 123, "nothing earned twice");

    let mut changed = sale("t-1", phone_buyer("13800138000"), 99_999);
    changed.lines[0].amount = cny(99_999);
    changed.occurred_at = first_sale_time;
    let conflict = record(&mut pos, vec![changed]).await;
    assert_eq!(conflict[0].outcome, pb::SaleOutcome::Rejected as i32);
    assert_eq!(conflict[0].violations[0].field, "amount");

    let entries = pos
        .list_entries(pb::ListEntriesRequest {
            account: account(&member_id),
            ..Default::default()
        })
        .await;
    assert_eq!(
        entries.unwrap_err().code(),
        Code::PermissionDenied,
        "pos keys do not read history"
    );
    let mut analyst = suite.points(keys::ACME_ANALYST).await;
    let entries = analyst
        .list_entries(pb::ListEntriesRequest {
            account: account(&member_id),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].kind, entries[0].points, entries[0].rules_version),
        (pb::EntryKind::Earn as i32, 123, 1)
    );
    let shown = balance(&mut pos, &member_id).await;
    assert_eq!(shown.expiring.len(), 1);
    assert_eq!(shown.expiring[0].points, 123);
}

async fn a_batch_applies_the_good_sales_and_reports_the_bad(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let mut sales: Vec<pb::Sale> = (0..1000)
        .map(|n| sale(&format!("b-{n}"), phone_buyer(&format!("1390000{n:04}")), 1_000))
        .collect();
    sales[10].amount = cny(-5);
    sales[500].occurred_at = None;
    sales[999].lines[0].quantity = 0;
    let results = record(&mut pos, sales).await;
    assert_eq!(results.len(), 1000);
    let rejected: Vec<(i32, String)> = results
        .iter()
        .filter(|r| r.outcome == pb::SaleOutcome::Rejected as i32)
        .map(|r| (r.index, r.violations[0].field.clone()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (10, "amount.amount_minor".into()),
            (500, "occurred_at".into()),
            (999, "lines[0].quantity".into())
        ]
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.outcome == pb::SaleOutcome::Applied as i32)
            .count(),
        997
    );
}

async fn refunds_reverse_proportionally_and_may_leave_a_debt(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("r-1", phone_buyer("13700137000"), 30_000)]).await;
    let member_id = earned[0].member_id.clone();
    assert_eq!(earned[0].points_earned, 300);
    pos.redeem(pb::RedeemRequest {
        account: account(&member_id),
        points: 250,
        idempotency_key: "till-9".into(),
    })
    .await
    .unwrap();
    let first = record(&mut pos, vec![refund("r-1-a", "r-1", 10_000)]).await;
    assert_eq!(first[0].points_reversed, 100);
    let rest = record(&mut pos, vec![refund("r-1-b", "r-1", 20_000)]).await;
    assert_eq!(rest[0].points_reversed, 200);
    assert_eq!(rest[0].balance_after, -250, "points already spent leave a debt");
    let later = record(&mut pos, vec![sale("r-2", phone_buyer("13700137000"), 40_000)]).await;
    assert_eq!(later[0].balance_after, 150, "later earnings pay the debt first");
    let unknown = record(&mut pos, vec![refund("r-x", "never-sold", 100)]).await;
    assert_eq!(unknown[0].violations[0].field, "original_transaction_id");
}

async fn holds_reserve_points_until_confirmed_released_or_expired(suite: Suite) {
    with_program(&suite, 1).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("h-1", phone_buyer("13600136000"), 50_000)]).await;
    let member_id = earned[0].member_id.clone();
    let hold = pos
        .place_hold(pb::PlaceHoldRequest {
            account: account(&member_id),
            points: 400,
            idempotency_key: "h-a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.balance.unwrap().available, 100);
    let too_much = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: 101,
            idempotency_key: "r-a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Code::FailedPrecondition);
    let first_hold = hold.hold_id.clone();
    let confirmed = pos
        .confirm_hold(pb::ConfirmHoldRequest {
            account: account(&member_id),
            hold_id: hold.hold_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .balance
        .unwrap();
    assert_eq!((confirmed.balance, confirmed.held), (100, 0));

    let hold = pos
        .place_hold(pb::PlaceHoldRequest {
            account: account(&member_id),
            points: 60,
            idempotency_key: "h-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.balance.unwrap().available, 40);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let after_ttl = balance(&mut pos, &member_id).await;
    assert_eq!(
        (after_ttl.available, after_ttl.held),
        (100, 0),
        "the hold released itself after its TTL"
    );
    // A till is told that its hold lapsed (or ended otherwise), not that it never existed.
    let late = pos
        .confirm_hold(pb::ConfirmHoldRequest {
            account: account(&member_id),
            hold_id: hold.hold_id,
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("expired at"), "{late:?}");
    let released_after_confirm = pos
        .release_hold(pb::ReleaseHoldRequest {
            account: account(&member_id),
            hold_id: first_hold.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(released_after_confirm.code(), Code::FailedPrecondition);
    assert!(
        released_after_confirm.message().contains("was confirmed at"),
        "{released_after_confirm:?}"
    );
    for never in ["999", "abc"] {
        let unknown = pos
            .confirm_hold(pb::ConfirmHoldRequest {
                account: account(&member_id),
                hold_id: never.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{never}: {unknown:?}");
    }
}

async fn concurrent_redeems_never_overspend(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("c-1", phone_buyer("13500135000"), 10_000)]).await;
    let member_id = earned[0].member_id.clone();
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let mut client = pos.clone();
            let member_id = member_id.clone();
            tokio::spawn(async move {
                client
                    .redeem(pb::RedeemRequest {
                        account: account(&member_id),
                        points: 3,
                        idempotency_key: format!("c-{n}"),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|status| status.code())
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => succeeded += 1,
            Err(code) => assert_eq!(code, Code::FailedPrecondition),
        }
    }
    assert_eq!(succeeded, 33, "100 points buy 33 redemptions of 3");
    assert_eq!(balance(&mut pos, &member_id).await.balance, 1);
}

async fn tiers_upgrade_at_once(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let first = record(&mut pos, vec![sale("g-1", phone_buyer("13400134000"), 100_000)]).await;
    let member_id = first[0].member_id.clone();
    assert_eq!(first[0].points_earned, 1_000);
    assert_eq!(
        balance(&mut pos, &member_id).await.tier,
        "gold",
        "1,000 growth reaches gold at once"
    );
    let second = record(&mut pos, vec![sale("g-2", phone_buyer("13400134000"), 10_000)]).await;
    assert_eq!(second[0].points_earned, 200, "gold earns double");
}

async fn tenants_never_see_each_other(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("x-1", phone_buyer("13300133000"), 10_000)]).await;
    let member_id = earned[0].member_id.clone();
    let mut globex = suite.points(keys::GLOBEX_PLATFORM).await;
    let status = globex
        .get_balance(pb::GetBalanceRequest {
            account: account(&member_id),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "globex has no program, let alone acme's accounts"
    );
    globex
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(0)),
        })
        .await
        .unwrap();
    let empty = globex
        .get_balance(pb::GetBalanceRequest {
            account: account(&member_id),
        })
        .await
        .unwrap();
    assert_eq!(
        empty.into_inner().balance.unwrap().balance,
        0,
        "acme's points are not globex's"
    );
    let replayed = record(&mut globex, vec![sale("x-1", None, 10_000)]).await;
    assert_eq!(
        replayed[0].outcome,
        pb::SaleOutcome::Applied as i32,
        "keys are per tenant"
    );
}

async fn every_change_is_published_and_lapsed_holds_settle_by_themselves(suite: Suite) {
    use quanyu_proto::events::v1::event::Payload;
    use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
    use quanyu_proto::events::v1::{Event, SubscribeRequest, subscribe_response};
    use tokio_stream::StreamExt as _;

    with_program(&suite, 1).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("e-1", phone_buyer("13200132000"), 150_000)]).await;
    let member_id = earned[0].member_id.clone();
    pos.place_hold(pb::PlaceHoldRequest {
        account: account(&member_id),
        points: 10,
        idempotency_key: "e-h".into(),
    })
    .await
    .unwrap();
    // Nobody touches the account again: the sweeper releases the hold when its TTL lapses.
    tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;

    let bearer = quanyu_runtime::auth::BearerKey::new(keys::ACME_ANALYST).unwrap();
    let mut events = EventStreamServiceClient::with_interceptor(suite.points_channel().await, bearer);
    let mut stream = events
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut received: Vec<Event> = Vec::new();
    while let subscribe_response::Item::Event(event) = stream.next().await.unwrap().unwrap().item.unwrap() {
        received.push(event);
    }
    let types: Vec<&str> = received.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "points.PointsChanged",
            "points.TierChanged",
            "points.SaleRecorded",
            "points.HoldPlaced",
            "points.HoldReleased",
        ]
    );
    let Some(Payload::PointsChanged(changed)) = &received[0].payload else {
        panic!()
    };
    assert_eq!((changed.points, changed.kind), (1_500, pb::EntryKind::Earn as i32));
    let Some(Payload::TierChanged(tier)) = &received[1].payload else {
        panic!()
    };
    assert_eq!((tier.from_tier.as_str(), tier.to_tier.as_str()), ("member", "gold"));
    let Some(Payload::SaleRecorded(recorded)) = &received[2].payload else {
        panic!()
    };
    assert_eq!(
        (recorded.member_id.as_str(), recorded.points_earned),
        (member_id.as_str(), 1_500)
    );
    let lines: Vec<(&str, &str, i64, i64)> = recorded
        .lines
        .iter()
        .map(|line| {
            let amount = line.amount.as_ref().map_or(0, |amount| amount.amount_minor);
            (line.sku.as_str(), line.category.as_str(), line.quantity, amount)
        })
        .collect();
    assert_eq!(
        lines,
        [("serum", "skincare", 1, 150_000)],
        "the lines go out with the sale"
    );
    let Some(Payload::HoldReleased(released)) = &received[4].payload else {
        panic!()
    };
    assert_eq!(released.end, pb::HoldEnd::Expired as i32);
    assert_eq!(received[0].aggregate_id, format!("lumen-club/{member_id}"));
}

async fn offline_backlogs_stream_in_chunks(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let mut backlog: Vec<pb::Sale> = (0..2_500)
        .map(|n| {
            sale(
                &format!("off-{n}"),
                phone_buyer(&format!("1370000{:04}", n % 50)),
                1_000,
            )
        })
        .collect();
    backlog[1_234].amount = cny(-1);
    backlog[2_499].kind = 42;
    let chunks = |sales: &[pb::Sale]| {
        let chunks: Vec<pb::UploadSalesRequest> = sales
            .chunks(1_000)
            .map(|chunk| pb::UploadSalesRequest { sales: chunk.to_vec() })
            .collect();
        tokio_stream::iter(chunks)
    };
    let summary = pos.upload_sales(chunks(&backlog)).await.unwrap().into_inner();
    assert_eq!((summary.applied, summary.duplicates, summary.rejected), (2_498, 0, 2));
    let indexes: Vec<i32> = summary.rejections.iter().map(|r| r.index).collect();
    assert_eq!(indexes, vec![1_234, 2_499], "indexes count across the whole upload");

    let replay = pos.upload_sales(chunks(&backlog)).await.unwrap().into_inner();
    assert_eq!(
        (replay.applied, replay.duplicates, replay.rejected),
        (0, 2_498, 2),
        "a replayed backlog changes nothing"
    );
    let too_big = pos
        .upload_sales(tokio_stream::iter([pb::UploadSalesRequest {
            sales: backlog[..1_001].to_vec(),
        }]))
        .await;
    assert_eq!(too_big.unwrap_err().code(), Code::InvalidArgument);
}

async fn every_bad_field_is_named(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let good = sale("f-0", phone_buyer("13900001111"), 1_000);
    let bad = |change: fn(&mut pb::Sale)| {
        let mut sale = good.clone();
        change(&mut sale);
        sale
    };
    let cases: Vec<(pb::Sale, &str)> = vec![
        (bad(|s| s.source.clear()), "source"),
        (bad(|s| s.transaction_id = "x".repeat(129)), "transaction_id"),
        (bad(|s| s.kind = 0), "kind"),
        (bad(|s| s.channel = 99), "channel"),
        (bad(|s| s.store_id = "\u{7}".into()), "store_id"),
        (
            bad(|s| {
                s.occurred_at = Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                })
            }),
            "occurred_at",
        ),
        (bad(|s| s.amount = None), "amount"),
        (
            bad(|s| {
                s.amount = Some(Money {
                    amount_minor: 1,
                    currency: "rmb".into(),
                })
            }),
            "amount.currency",
        ),
        (
            bad(|s| {
                s.lines[0].amount = Some(Money {
                    amount_minor: 1,
                    currency: "USD".into(),
                })
            }),
            "lines[0].amount.currency",
        ),
        (bad(|s| s.lines[0].quantity = -1), "lines[0].quantity"),
        (bad(|s| s.lines[0].category = "c".repeat(65)), "lines[0].category"),
        (bad(|s| s.lines = vec![s.lines[0].clone(); 1_001]), "lines"),
        (bad(|s| s.points_redeemed = -5), "points_redeemed"),
        (bad(|s| s.brand_id = "Not A Brand".into()), "brand_id"),
        (bad(|s| s.buyer = Some(pb::Buyer { who: None })), "buyer"),
        (
            bad(|s| {
                s.buyer = Some(pb::Buyer {
                    who: Some(pb::buyer::Who::MemberId(String::new())),
                })
            }),
            "buyer.member_id",
        ),
        (bad(|s| s.buyer = phone_buyer("12")), "buyer.identity"),
        (bad(|s| s.points_redeemed = 1_000_000), "points_redeemed"),
        (
            bad(|s| {
                s.kind = pb::SaleKind::Refund.into();
                s.original_transaction_id.clear();
            }),
            "original_transaction_id",
        ),
    ];
    let (sales, fields): (Vec<pb::Sale>, Vec<&str>) = cases
        .into_iter()
        .enumerate()
        .map(|(n, (mut sale, field))| {
            if field != "transaction_id" {
                sale.transaction_id = format!("f-{}", n + 1);
            }
            (sale, field)
        })
        .unzip();
    let results = record(&mut pos, sales).await;
    for (result, field) in results.iter().zip(&fields) {
        assert_eq!(result.outcome, pb::SaleOutcome::Rejected as i32, "{field}: {result:?}");
        assert_eq!(result.violations[0].field, *field, "{result:?}");
    }

    let twice = record(&mut pos, vec![good.clone(), good.clone()]).await;
    assert_eq!(twice[0].outcome, pb::SaleOutcome::Applied as i32);
    assert_eq!(
        twice[1].outcome,
        pb::SaleOutcome::Duplicate as i32,
        "the same key twice in one batch applies once"
    );

    let empty = pos
        .record_sales(pb::RecordSalesRequest { sales: Vec::new() })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let member_id = twice[0].member_id.clone();
    let no_key = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: 1,
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_key.code(), Code::InvalidArgument);
    let zero = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: 0,
            idempotency_key: "z".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    let no_member = pos
        .redeem(pb::RedeemRequest {
            account: account(""),
            points: 1,
            idempotency_key: "z2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_member.code(), Code::InvalidArgument);
    let bad_hold = pos
        .confirm_hold(pb::ConfirmHoldRequest {
            account: account(&member_id),
            hold_id: "abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_hold.code(),
        Code::NotFound,
        "hold ids are opaque: one never returned is not found"
    );
    let mut platform = suite.points(keys::ACME_PLATFORM).await;
    let bad_adjust = platform
        .adjust(pb::AdjustRequest {
            account: account(&member_id),
            points: 0,
            reason: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_adjust.code(), Code::InvalidArgument);
    for field in ["idempotency_key", "points", "reason"] {
        assert!(
            bad_adjust.message().contains(field),
            "{field}: {}",
            bad_adjust.message()
        );
    }
    let reused = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: 1,
            idempotency_key: "k".into(),
        })
        .await;
    assert!(reused.is_ok());
    let conflict = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: 2,
            idempotency_key: "k".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        conflict.code(),
        Code::AlreadyExists,
        "one key, two different redemptions"
    );
    let adjusted = platform
        .adjust(pb::AdjustRequest {
            account: account(&member_id),
            points: -3,
            reason: "goodwill reversal".into(),
            idempotency_key: "a-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .balance
        .unwrap();
    assert_eq!(adjusted.balance, 10 - 1 - 3);
    let denied = pos
        .adjust(pb::AdjustRequest {
            account: account(&member_id),
            points: 5,
            reason: "x".into(),
            idempotency_key: "a-2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "only platform keys adjust");
}

async fn many_tills_crediting_one_member_lose_nothing(suite: Suite) {
    with_program(&suite, 0).await;
    let pos = suite.points(keys::ACME_POS).await;
    let tills: Vec<_> = (0..16)
        .map(|till| {
            let mut client = pos.clone();
            tokio::spawn(async move {
                let mut applied = 0;
                for n in 0..5 {
                    let results = record(
                        &mut client,
                        vec![sale(&format!("hot-{till}-{n}"), phone_buyer("13811112222"), 1_000)],
                    )
                    .await;
                    assert_eq!(results[0].outcome, pb::SaleOutcome::Applied as i32, "{results:?}");
                    applied += results[0].points_earned;
                }
                applied
            })
        })
        .collect();
    let mut earned = 0;
    for till in tills {
        earned += till.await.unwrap();
    }
    assert_eq!(earned, 16 * 5 * 10);
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = identity
        .resolve_identities(identity_pb::ResolveIdentitiesRequest {
            identities: vec![identity_pb::Identity {
                kind: identity_pb::IdentityKind::Phone.into(),
                value: "13811112222".into(),
                namespace: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .resolutions[0]
        .member_id
        .clone();
    let mut pos = pos;
    assert_eq!(
        balance(&mut pos, &member_id).await.balance,
        earned,
        "no credit was lost"
    );
}

/// A program whose points expire at the end of the year they were earned in.
async fn with_year_end_program(suite: &Suite) {
    let year_end = pb::Program {
        expiry: Some(pb::ExpiryPolicy {
            policy: Some(pb::expiry_policy::Policy::EndOfYearAfter(0)),
        }),
        ..program(0)
    };
    suite
        .points(keys::ACME_PLATFORM)
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(year_end),
        })
        .await
        .unwrap();
}

/// The points of each expiry entry of the member's account.
async fn expired_points(suite: &Suite, member_id: &str) -> Vec<i64> {
    let mut analyst = suite.points(keys::ACME_ANALYST).await;
    let expired = analyst
        .list_entries(pb::ListEntriesRequest {
            account: account(member_id),
            kind: pb::EntryKind::Expire.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    expired.iter().map(|entry| entry.points).collect()
}

async fn expiry_and_tiers_follow_the_calendar_year(suite: Suite) {
    use chrono::TimeZone;
    with_year_end_program(&suite).await;
    let clock = &suite.context.clock;
    // 23:58 on New Year's Eve in the program's time zone (UTC+8).
    clock.set(chrono::Utc.with_ymd_and_hms(2026, 12, 31, 15, 58, 0).unwrap());
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("ny-1", phone_buyer("13822223333"), 100_000)]).await;
    let member_id = earned[0].member_id.clone();
    let before = balance(&mut pos, &member_id).await;
    assert_eq!((before.balance, before.tier.as_str()), (1_000, "gold"));
    let expires = before.expiring[0].expires_at.unwrap();
    assert_eq!(
        expires.seconds,
        chrono::Utc
            .with_ymd_and_hms(2026, 12, 31, 15, 59, 59)
            .unwrap()
            .timestamp()
    );

    clock.advance(chrono::Duration::minutes(2));
    let new_year = balance(&mut pos, &member_id).await;
    assert_eq!(new_year.balance, 0, "the year's points expired at midnight local time");
    assert_eq!(new_year.tier, "gold", "2026's growth keeps gold through 2027");
    assert_eq!((new_year.growth_this_period, new_year.growth_lifetime), (0, 1_000));
    assert_eq!(expired_points(&suite, &member_id).await, [-1_000]);

    clock.advance(chrono::Duration::days(366));
    let a_year_later = balance(&mut pos, &member_id).await;
    assert_eq!(
        a_year_later.tier, "member",
        "no growth in 2027: down a tier when 2027 closes"
    );
}

/// Two replicas sweeping at once, each through a pool of its own as two pods do, settle each
/// account once: no lot expires twice, and neither sweep fails on the other's work.
async fn two_replicas_sweeping_at_once_expire_each_lot_once(suite: Suite) {
    use chrono::TimeZone;
    use quanyu_loyalty_points::app::sweep::sweep;
    with_year_end_program(&suite).await;
    let clock = suite.context.clock.clone();
    clock.set(chrono::Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap());
    let mut pos = suite.points(keys::ACME_POS).await;
    let sales = (0..30)
        .map(|n| sale(&format!("sweep-{n}"), phone_buyer(&format!("1382222{n:04}")), 10_000))
        .collect();
    let earned = record(&mut pos, sales).await;

    clock.advance(chrono::Duration::hours(6));
    let schema = quanyu_loyalty_points::LoyaltyPoints::SCHEMA;
    let (first, second) = (suite.database(schema).await, suite.database(schema).await);
    let (one, other) = tokio::join!(sweep(&first, &clock), sweep(&second, &clock));
    assert!(
        one.unwrap() + other.unwrap() >= earned.len(),
        "every account was due to one sweep or both"
    );
    for result in &earned {
        let points = expired_points(&suite, &result.member_id).await;
        assert_eq!(points, [-100], "{}", result.member_id);
    }
}

async fn reading_a_balance_creates_no_account(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let empty = balance(&mut pos, "no-sale-yet").await;
    assert_eq!(
        (empty.member_id.as_str(), empty.balance, empty.tier.as_str()),
        ("no-sale-yet", 0, "member")
    );
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    assert_eq!(rows_in(&db, "accounts").await, 0);

    record(&mut pos, vec![sale("r-1", member_buyer("no-sale-yet"), 10_000)]).await;
    assert_eq!(balance(&mut pos, "no-sale-yet").await.balance, 100);
}

/// A new account is created by the first save: concurrent first changes (adjustments run in
/// transactions of their own, sales beside them in the writer's) all find no row, one insert
/// wins and the others are retried against the row it created.
async fn first_changes_to_a_new_account_race_and_lose_nothing(suite: Suite) {
    with_program(&suite, 0).await;
    let platform = suite.points(keys::ACME_PLATFORM).await;
    let pos = suite.points(keys::ACME_POS).await;
    let mut changes = Vec::new();
    for n in 0..12 {
        let mut client = platform.clone();
        changes.push(tokio::spawn(async move {
            let adjusted = client
                .adjust(pb::AdjustRequest {
                    account: account("m-brand-new"),
                    points: 7,
                    reason: "welcome".into(),
                    idempotency_key: format!("welcome-{n}"),
                })
                .await
                .unwrap();
            assert!(adjusted.into_inner().balance.is_some());
        }));
        let mut client = pos.clone();
        changes.push(tokio::spawn(async move {
            let results = record(
                &mut client,
                vec![sale(&format!("first-{n}"), member_buyer("m-brand-new"), 1_000)],
            )
            .await;
            assert_eq!(results[0].outcome, pb::SaleOutcome::Applied as i32, "{results:?}");
        }));
    }
    for change in changes {
        change.await.unwrap();
    }
    let mut pos = pos;
    let after = balance(&mut pos, "m-brand-new").await;
    assert_eq!(
        after.balance,
        12 * 7 + 12 * 10,
        "every adjustment and every sale counted once"
    );
}

/// Batches large enough to be inserted from arrays on PostgreSQL: non-member sales (no member on
/// their record) beside members' first sales, then more sales to the same, now existing, accounts.
async fn large_batches_of_members_and_non_members_land_whole(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let mixed: Vec<pb::Sale> = (0..200)
        .map(|n| {
            let buyer = (n % 2 == 0).then(|| member_buyer(&format!("m-{}", n / 2))).flatten();
            sale(&format!("mixed-{n}"), buyer, 1_000)
        })
        .collect();
    let results = record(&mut pos, mixed.clone()).await;
    assert!(
        results.iter().all(|r| r.outcome == pb::SaleOutcome::Applied as i32),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| r.member_id.is_empty()).count(),
        100,
        "half without a member"
    );
    let again: Vec<pb::Sale> = (0..200)
        .map(|n| sale(&format!("again-{n}"), member_buyer(&format!("m-{}", n % 100)), 1_000))
        .collect();
    let results = record(&mut pos, again).await;
    assert!(
        results.iter().all(|r| r.outcome == pb::SaleOutcome::Applied as i32),
        "{results:?}"
    );
    for member in ["m-0", "m-17", "m-99"] {
        assert_eq!(
            balance(&mut pos, member).await.balance,
            30,
            "{member}: one sale, then two"
        );
    }
    let replayed = record(&mut pos, mixed).await;
    assert!(
        replayed.iter().all(|r| r.outcome == pb::SaleOutcome::Duplicate as i32),
        "{replayed:?}"
    );
}

/// A batch whose every sale is recorded keeps the answer its replay gets; one with a rejected
/// sale does not, as that sale may apply when the batch comes again.
async fn a_replayed_batch_is_answered_whole_as_it_would_be_sale_by_sale(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    let mut batch: Vec<pb::Sale> = (0..100)
        .map(|n| sale(&format!("whole-{n}"), member_buyer(&format!("w-{}", n % 10)), 1_000))
        .collect();
    batch[99].buyer = member_buyer("w-late");
    batch[99].points_redeemed = 50;
    let first = record(&mut pos, batch.clone()).await;
    assert_eq!(first[99].outcome, pb::SaleOutcome::Rejected as i32, "{:?}", first[99]);
    assert_eq!(rows_in(&db, "idempotency WHERE scope = 'sales-batch'").await, 0);

    record(&mut pos, vec![sale("earns-first", member_buyer("w-late"), 10_000)]).await;
    let second = record(&mut pos, batch.clone()).await;
    assert_eq!(second[99].outcome, pb::SaleOutcome::Applied as i32, "{:?}", second[99]);
    assert!(
        second[..99]
            .iter()
            .all(|r| r.outcome == pb::SaleOutcome::Duplicate as i32)
    );
    assert_eq!(rows_in(&db, "idempotency WHERE scope = 'sales-batch'").await, 1);

    let whole = record(&mut pos, batch.clone()).await;
    db.execute_unprepared("DELETE FROM idempotency WHERE scope = 'sales-batch'")
        .await
        .unwrap();
    let sale_by_sale = record(&mut pos, batch.clone()).await;
    assert_eq!(whole, sale_by_sale);
    assert_eq!(whole[99].original.as_deref(), Some(&second[99]));
    assert!(whole.iter().all(|r| r.outcome == pb::SaleOutcome::Duplicate as i32));
    assert_eq!(balance(&mut pos, "w-late").await.balance, 100 - 50 + 10);

    // Kept again by the replay answered sale by sale, and read instead of the recorded sales:
    // with one of those gone, the replay still finds it recorded.
    assert_eq!(rows_in(&db, "idempotency WHERE scope = 'sales-batch'").await, 1);
    db.execute_unprepared("DELETE FROM sales WHERE key = 'whole-0'")
        .await
        .unwrap();
    assert_eq!(record(&mut pos, batch.clone()).await, whole);

    // Another tenant sending the same batch is not answered from this one's.
    let mut globex = suite.points(keys::GLOBEX_PLATFORM).await;
    let theirs = record(&mut globex, batch).await;
    assert!(
        theirs.iter().all(|r| r.outcome == pb::SaleOutcome::Rejected as i32),
        "{theirs:?}"
    );
}

/// Large calls are written at once, each in its own transaction. Four uploads crediting the same
/// members, each sent twice, all at the same time: every sale applies once, and every other
/// answer is a duplicate carrying that result.
async fn uploads_at_once_apply_each_sale_once(suite: Suite) {
    with_program(&suite, 0).await;
    let pos = suite.points(keys::ACME_POS).await;
    let upload = |upload: usize| -> Vec<pb::Sale> {
        (0..100)
            .map(|n| {
                let member = member_buyer(&format!("m-{}", n % 50));
                sale(&format!("up-{upload}-{n}"), member, 1_000)
            })
            .collect()
    };
    let calls: Vec<_> = (0..8)
        .map(|call| {
            let mut client = pos.clone();
            let sales = upload(call % 4);
            tokio::spawn(async move {
                let results = record(&mut client, sales.clone()).await;
                (sales, results)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        let (sales, results) = call.await.unwrap();
        assert_eq!(results.len(), sales.len());
        answers.extend(sales.into_iter().map(|sale| sale.transaction_id).zip(results));
    }
    let applied_answers: Vec<&(String, pb::SaleResult)> = answers
        .iter()
        .filter(|(_, result)| result.outcome == pb::SaleOutcome::Applied as i32)
        .collect();
    let applied: std::collections::HashMap<&String, &pb::SaleResult> =
        applied_answers.iter().map(|(key, result)| (key, result)).collect();
    assert_eq!(
        (applied.len(), applied_answers.len()),
        (400, 400),
        "each sale applied once"
    );
    for (key, result) in &answers {
        if result.outcome != pb::SaleOutcome::Applied as i32 {
            assert_eq!(result.outcome, pb::SaleOutcome::Duplicate as i32, "{key}: {result:?}");
            assert_eq!(result.original.as_deref(), applied.get(key).copied(), "{key}");
        }
    }
    let mut pos = pos;
    for member in ["m-0", "m-25", "m-49"] {
        assert_eq!(
            balance(&mut pos, member).await.balance,
            4 * 2 * 10,
            "{member}: two sales in each upload"
        );
    }
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    assert_eq!(rows_in(&db, "sales").await, 400);
}

/// A call of a few sales is written without looking its keys up first: a sale sent again fails
/// its insert, and the transaction's retry answers it from what was recorded.
async fn a_sale_sent_again_by_a_till_gets_its_first_answer(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let first_sale = sale("till-1", member_buyer("m-till"), 5_000);
    let first = record(&mut pos, vec![first_sale.clone()]).await;
    assert_eq!(first[0].outcome, pb::SaleOutcome::Applied as i32);
    let again = record(
        &mut pos,
        vec![first_sale.clone(), sale("till-2", member_buyer("m-till"), 1_000)],
    )
    .await;
    assert_eq!(again[0].outcome, pb::SaleOutcome::Duplicate as i32);
    assert_eq!(again[0].original.as_deref(), Some(&first[0]));
    assert_eq!(
        (again[1].outcome, again[1].balance_after),
        (pb::SaleOutcome::Applied as i32, 60),
        "the new sale beside it applies"
    );
    let other_buyer = pb::Sale {
        buyer: member_buyer("m-other"),
        ..first_sale
    };
    let changed = record(&mut pos, vec![other_buyer]).await;
    assert_eq!(changed[0].outcome, pb::SaleOutcome::Rejected as i32);
    assert_eq!(changed[0].violations[0].field, "buyer");
    assert_eq!(balance(&mut pos, "m-till").await.balance, 60, "nothing applied twice");
    assert_eq!(balance(&mut pos, "m-other").await.balance, 0);
}

async fn keyed_writes_are_answered_as_they_were_the_first_time(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let earned = record(&mut pos, vec![sale("k-1", phone_buyer("13600136000"), 50_000)]).await;
    let member_id = earned[0].member_id.clone();
    let redeem = pb::RedeemRequest {
        account: account(&member_id),
        points: 100,
        idempotency_key: "till-1".into(),
    };
    let first = pos.redeem(redeem.clone()).await.unwrap().into_inner();
    assert_eq!(first.balance.as_ref().unwrap().balance, 400);
    let hold = pb::PlaceHoldRequest {
        account: account(&member_id),
        points: 50,
        idempotency_key: "till-2".into(),
    };
    let placed = pos.place_hold(hold.clone()).await.unwrap().into_inner();
    assert!(!placed.hold_id.is_empty());

    // Sent again after the balance moved: the first answers, unchanged, and nothing happens twice.
    let again = pos.redeem(redeem.clone()).await.unwrap().into_inner();
    assert_eq!(again, first, "the recorded response, not the balance now");
    let placed_again = pos.place_hold(hold).await.unwrap().into_inner();
    assert_eq!(placed_again, placed, "the same hold, by its id");
    let balance = pos
        .get_balance(pb::GetBalanceRequest {
            account: account(&member_id),
        })
        .await
        .unwrap()
        .into_inner()
        .balance
        .unwrap();
    assert_eq!((balance.balance, balance.held), (400, 50));

    let conflict = pos.redeem(pb::RedeemRequest { points: 7, ..redeem }).await.unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let details = tonic_types::StatusExt::get_error_details(&conflict);
    let violations = details.bad_request().unwrap().field_violations.clone();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "points", "{conflict:?}");
}

async fn a_program_earns_in_its_own_currency_only(suite: Suite) {
    let mut platform = with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let in_currency = |key: &str, currency: &str| {
        let mut sold = sale(key, phone_buyer("13500135000"), 1_000);
        sold.amount = Some(Money {
            amount_minor: 1_000,
            currency: currency.into(),
        });
        sold.lines.clear();
        sold
    };
    let results = record(
        &mut pos,
        vec![
            in_currency("c-1", "XYZ"),
            in_currency("c-2", "USD"),
            in_currency("c-3", "CNY"),
        ],
    )
    .await;
    let refusal = |result: &pb::SaleResult| {
        assert_eq!(result.outcome, pb::SaleOutcome::Rejected as i32, "{result:?}");
        assert_eq!(result.violations[0].field, "amount.currency");
        result.violations[0].description.clone()
    };
    assert!(refusal(&results[0]).contains("XYZ is not an ISO 4217 currency"));
    assert!(refusal(&results[1]).contains("earns in CNY"), "{:?}", results[1]);
    assert_eq!(results[2].outcome, pb::SaleOutcome::Applied as i32);
    assert_eq!(results[2].points_earned, 10);

    let mut unknown = program(0);
    unknown.earning.as_mut().unwrap().currency = "XYZ".into();
    let refused = platform
        .upsert_program(pb::UpsertProgramRequest { program: Some(unknown) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("program.earning.currency"), "{refused:?}");

    let mut in_dollars = program(0);
    in_dollars.earning.as_mut().unwrap().currency = "USD".into();
    platform
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(in_dollars),
        })
        .await
        .unwrap();
    let results = record(&mut pos, vec![in_currency("c-4", "USD"), in_currency("c-5", "CNY")]).await;
    assert_eq!(results[0].outcome, pb::SaleOutcome::Applied as i32);
    assert!(refusal(&results[1]).contains("earns in USD"));
}

/// Four uploads at once whose buyers overlap and have no account yet: every transaction creates
/// some of the same accounts. Each sale is applied once, and no call fails.
async fn concurrent_uploads_creating_the_same_accounts_apply_each_sale_once(suite: Suite) {
    with_program(&suite, 0).await;
    let (clients, batches, per_batch, buyers) = (4usize, 5usize, 200usize, 150usize);
    let mut uploads = Vec::new();
    for client in 0..clients {
        let mut pos = suite.points(keys::ACME_POS).await;
        uploads.push(tokio::spawn(async move {
            let mut applied = 0;
            for batch in 0..batches {
                let sales = (0..per_batch)
                    .map(|n| {
                        let buyer = (client * 7_919 + batch * 104_729 + n * 31) % buyers;
                        let key = format!("o-{client}-{batch}-{n}");
                        sale(&key, member_buyer(&format!("new-{buyer}")), 1_000)
                    })
                    .collect();
                let results = record(&mut pos, sales).await;
                applied += results
                    .iter()
                    .filter(|result| result.outcome == pb::SaleOutcome::Applied as i32)
                    .count();
            }
            applied
        }));
    }
    let mut applied = 0;
    for upload in uploads {
        applied += upload.await.unwrap();
    }
    assert_eq!(applied, clients * batches * per_batch, "every sale applied");
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    assert_eq!(
        rows_in(&db, "sales").await,
        i64::try_from(applied).unwrap(),
        "each once"
    );
    assert_eq!(rows_in(&db, "accounts").await, i64::try_from(buyers).unwrap());
    let earned: i64 = rows_of_sum(&db).await;
    assert_eq!(
        earned,
        i64::try_from(applied * 10).unwrap(),
        "10 points a sale, in the accounts"
    );
}

async fn rows_of_sum(db: &sea_orm::DatabaseConnection) -> i64 {
    let sum = Statement::from_string(
        db.get_database_backend(),
        "SELECT CAST(SUM(balance) AS BIGINT) AS total FROM accounts",
    );
    let row = db.query_one_raw(sum).await.unwrap().unwrap();
    row.try_get("", "total").unwrap()
}

/// Two transactions that both find an account missing: the second waits for the first to create
/// it and then sees what the first wrote, instead of opening an empty account of its own (whose
/// insert then failed at commit, and a race of many such uploads ran out of retries).
async fn an_account_two_transactions_create_at_once_is_created_once(suite: Suite) {
    use quanyu_loyalty_points::domain::ledger::Credit;
    use quanyu_loyalty_points::store::accounts;
    use quanyu_runtime::db::{Writes, begin_write};

    with_program(&suite, 0).await;
    let db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    let programs = quanyu_loyalty_points::app::programs::load(&db, ACME).await.unwrap();
    let id = ("lumen-club".to_owned(), "m-race".to_owned());
    let at = chrono::Utc::now();

    let first = begin_write(&db).await.unwrap();
    let mut loaded = accounts::load(&first, ACME, &programs, [id.clone()], at).await.unwrap();
    let account = loaded.get_mut(&id).unwrap();
    account
        .ledger
        .credit(Credit::Earn, 10, at, at + chrono::Duration::days(365), "t-1")
        .unwrap();

    let second_db = suite.database(quanyu_loyalty_points::LoyaltyPoints::SCHEMA).await;
    let (programs_2, id_2) = (programs.clone(), id.clone());
    let second = tokio::spawn(async move {
        let txn = begin_write(&second_db).await.unwrap();
        let loaded = accounts::load(&txn, ACME, &programs_2, [id_2.clone()], at)
            .await
            .unwrap();
        let balance = loaded[&id_2].ledger.balance();
        txn.commit().await.unwrap();
        balance
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut writes = Writes::new(&first);
    accounts::save(&mut writes, ACME, &programs, &mut [account], at);
    writes.execute(&first).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap(),
        10,
        "the second transaction sees the account the first made"
    );
}

/// The fields a refusal names, from its `google.rpc.BadRequest`.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = tonic_types::StatusExt::get_error_details(status);
    let violations = details.bad_request().map(|request| request.field_violations.clone());
    violations.unwrap_or_default().into_iter().map(|v| v.field).collect()
}

/// Adjustments and sales at and past `i64`'s ends are refused naming their field; the balance
/// bound holds however many adjustments pile up; nothing wraps.
async fn amounts_past_their_bounds_are_refused_naming_the_field(suite: Suite) {
    with_program(&suite, 0).await;
    let mut pos = suite.points(keys::ACME_POS).await;
    let mut platform = suite.points(keys::ACME_PLATFORM).await;
    let earned = record(&mut pos, vec![sale("x-0", phone_buyer("13700137000"), 1_000)]).await;
    let member_id = earned[0].member_id.clone();
    let adjust = |points: i64, key: &str| pb::AdjustRequest {
        account: account(&member_id),
        points,
        reason: "bound check".into(),
        idempotency_key: key.into(),
    };
    for (points, key) in [(i64::MAX, "x-max"), (i64::MIN, "x-min"), (1_000_000_000_001, "x-over")] {
        let refused = platform.adjust(adjust(points, key)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{points}: {refused:?}");
        assert_eq!(violated_fields(&refused), ["points"], "{points}");
    }
    for step in 0..999 {
        platform
            .adjust(adjust(1_000_000_000_000, &format!("x-{step}")))
            .await
            .unwrap();
    }
    let past = platform.adjust(adjust(1_000_000_000_000, "x-past")).await.unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument, "{past:?}");
    assert_eq!(violated_fields(&past), ["points"]);
    assert!(past.message().contains("balance"), "{past:?}");
    let held = balance(&mut pos, &member_id).await.balance;
    assert_eq!(held, 999_000_000_000_000 + 10, "up to the bound, not past it");
    let over_redeem = pos
        .redeem(pb::RedeemRequest {
            account: account(&member_id),
            points: i64::MAX,
            idempotency_key: "x-redeem".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&over_redeem), ["points"]);

    let mut huge = sale("x-huge", member_buyer(&member_id), 1_000);
    huge.amount.as_mut().unwrap().amount_minor = i64::MAX;
    huge.lines[0].amount.as_mut().unwrap().amount_minor = i64::MAX;
    let mut many_lines = sale("x-lines", member_buyer(&member_id), 9_000_000_000_000);
    many_lines.lines = vec![many_lines.lines[0].clone(); 2];
    let mut greedy = sale("x-greedy", member_buyer(&member_id), 1_000);
    greedy.points_redeemed = i64::MAX;
    let results = record(&mut pos, vec![huge, many_lines, greedy]).await;
    let fields: Vec<Vec<String>> = results
        .iter()
        .map(|result| {
            assert_eq!(result.outcome, pb::SaleOutcome::Rejected as i32, "{result:?}");
            result.violations.iter().map(|v| v.field.clone()).collect()
        })
        .collect();
    assert_eq!(
        fields,
        [
            vec!["amount.amount_minor", "lines[0].amount.amount_minor", "lines"],
            vec!["lines"],
            vec!["points_redeemed"],
        ]
    );
    assert_eq!(balance(&mut pos, &member_id).await.balance, held, "nothing applied");
}

/// Another service's grant is a GRANT entry under its reference, once per key; its revocation a
/// REVERSE entry that takes from the grant's lot first.
async fn grants_are_credited_once_and_taken_back_from_their_lot(suite: Suite) {
    let mut platform = with_program(&suite, 0).await;
    let grant = |points: i64, key: &str| pb::GrantPointsRequest {
        account: account("m-1"),
        points,
        reference: "campaign:day:2026-12-08".into(),
        idempotency_key: key.into(),
    };
    let granted = platform.grant_points(grant(300, "g-1")).await.unwrap().into_inner();
    assert_eq!(granted.balance.as_ref().unwrap().balance, 300);
    let again = platform.grant_points(grant(300, "g-1")).await.unwrap().into_inner();
    assert_eq!(again, granted, "the same key grants once");
    let other = platform.grant_points(grant(400, "g-1")).await.unwrap_err();
    assert_eq!(
        (other.code(), violated_fields(&other)),
        (Code::AlreadyExists, vec!["points".to_owned()])
    );

    let revoke = pb::RevokeGrantRequest {
        account: account("m-1"),
        points: 100,
        reference: "campaign:day:2026-12-08".into(),
        idempotency_key: "r-1".into(),
    };
    let revoked = platform.revoke_grant(revoke.clone()).await.unwrap().into_inner();
    assert_eq!(revoked.balance.as_ref().unwrap().balance, 200);
    assert_eq!(platform.revoke_grant(revoke).await.unwrap().into_inner(), revoked);
    let entries = platform
        .list_entries(pb::ListEntriesRequest {
            account: account("m-1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let kinds: Vec<(i32, i64, &str)> = entries
        .iter()
        .map(|entry| (entry.kind, entry.points, entry.reference.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (pb::EntryKind::Reverse as i32, -100, "campaign:day:2026-12-08"),
            (pb::EntryKind::Grant as i32, 300, "campaign:day:2026-12-08"),
        ]
    );

    let mut pos = suite.points(keys::ACME_POS).await;
    let denied = pos.grant_points(grant(1, "g-2")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = platform
        .grant_points(pb::GrantPointsRequest {
            account: account("m-1"),
            points: 0,
            reference: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["idempotency_key", "points", "reference"]);
}
