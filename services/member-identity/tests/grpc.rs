//! member-identity over real gRPC, every case run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use quanyu_proto::identity::v1 as pb;
use quanyu_testkit::{ACME, GLOBEX, IdentityClient, Suite, keys};
use tonic::Code;
use tonic_types::StatusExt;

quanyu_testkit::suite!(
    enroll_is_idempotent_by_identity,
    a_member_brought_over_keeps_the_day_they_joined,
    phone_hashes_find_members_enrolled_by_phone,
    every_bad_field_is_named,
    role_matrix,
    tenants_never_see_each_other,
    merge_moves_everything_to_the_survivor,
    merge_chains_collapse_and_remerging_is_a_no_op,
    concurrent_opposite_merges_leave_one_survivor,
    concurrent_enrolments_of_one_identity_make_one_member,
    erasure_removes_personal_data,
    link_and_unlink_identities,
    profiles_lists_and_paging,
    tags_in_batches,
    consent_keeps_the_latest_decision,
    guide_binding_keeps_history,
    audit_trail_names_actor_and_fields_only,
    tenant_administration,
    every_change_is_published_on_the_event_stream,
);

fn identity(kind: pb::IdentityKind, value: &str) -> pb::Identity {
    pb::Identity {
        kind: kind.into(),
        value: value.into(),
        namespace: String::new(),
    }
}

fn phone(value: &str) -> pb::Identity {
    identity(pb::IdentityKind::Phone, value)
}

fn email(value: &str) -> pb::Identity {
    identity(pb::IdentityKind::Email, value)
}

async fn enroll(client: &mut IdentityClient, identities: Vec<pb::Identity>, name: &str) -> pb::EnrollMemberResponse {
    client
        .enroll_member(pb::EnrollMemberRequest {
            identities,
            profile: Some(pb::Profile {
                name: name.into(),
                ..Default::default()
            }),
            enrollment: Some(pb::Enrollment {
                channel: quanyu_proto::common::v1::Channel::Store.into(),
                ..Default::default()
            }),
            enrolled_at: None,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn member_id_of(client: &mut IdentityClient, identities: Vec<pb::Identity>, name: &str) -> String {
    enroll(client, identities, name).await.member.unwrap().member_id
}

async fn resolve_one(client: &mut IdentityClient, identity: pb::Identity) -> pb::Resolution {
    let mut resolutions = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: vec![identity],
        })
        .await
        .unwrap()
        .into_inner()
        .resolutions;
    resolutions.remove(0)
}

async fn get(client: &mut IdentityClient, member_id: &str) -> Result<pb::Member, tonic::Status> {
    client
        .get_member(pb::GetMemberRequest {
            member_id: member_id.into(),
        })
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn merge(
    client: &mut IdentityClient,
    a: &str,
    b: &str,
    survivor: &str,
) -> Result<pb::MergeMembersResponse, tonic::Status> {
    client
        .merge_members(pb::MergeMembersRequest {
            member_id: a.into(),
            other_member_id: b.into(),
            survivor_id: survivor.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

/// A member brought over from another system keeps their enrolment time, and so survives a merge
/// with a member who joined here later.
async fn a_member_brought_over_keeps_the_day_they_joined(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let joined = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    let brought = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone("13800138123")],
            enrolled_at: Some(joined),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    assert_eq!(brought.enrolled_at, Some(joined));
    let newcomer = enroll(&mut client, vec![phone("13800138124")], "New")
        .await
        .member
        .unwrap();
    let merged = client
        .merge_members(pb::MergeMembersRequest {
            member_id: newcomer.member_id.clone(),
            other_member_id: brought.member_id.clone(),
            survivor_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        merged.survivor.unwrap().member_id,
        brought.member_id,
        "the member who joined first survives"
    );
}

async fn enroll_is_idempotent_by_identity(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let first = enroll(&mut client, vec![phone("138 0013 8000")], "Li Na").await;
    assert!(!first.already_enrolled);
    let member = first.member.unwrap();
    assert_eq!(member.status, pb::MemberStatus::Active as i32);
    assert_eq!(
        member.identities,
        vec![phone("+8613800138000")],
        "phone stored as E.164, digests hidden"
    );

    let again = enroll(
        &mut client,
        vec![phone("+86 13800138000"), email("Li.Na@Example.com")],
        "Other",
    )
    .await;
    assert!(again.already_enrolled);
    let again = again.member.unwrap();
    assert_eq!(again.member_id, member.member_id);
    assert_eq!(
        again.profile.unwrap().name,
        "Li Na",
        "an existing member's profile is not overwritten"
    );
    assert!(
        again.identities.contains(&email("li.na@example.com")),
        "the new identity was linked"
    );

    let other = member_id_of(&mut client, vec![email("zhang@example.com")], "Zhang").await;
    let conflict = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone("13800138000"), email("zhang@example.com")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition, "{conflict:?}");
    assert!(conflict.message().contains(&other), "{}", conflict.message());
}

async fn phone_hashes_find_members_enrolled_by_phone(suite: Suite) {
    use md5::Digest as _;
    let mut client = suite.identity(keys::ACME_POS).await;
    let member_id = member_id_of(&mut client, vec![phone("13900139000")], "").await;
    let md5 = hex::encode(md5::Md5::digest(b"+8613900139000"));
    let sha = hex::encode(sha2::Sha256::digest(b"+8613900139000"));
    for hash in [md5.to_uppercase(), sha.clone()] {
        let found = resolve_one(&mut client, identity(pb::IdentityKind::PhoneHash, &hash)).await;
        assert_eq!(found.outcome, pb::ResolveOutcome::Found as i32);
        assert_eq!(found.member_id, member_id);
    }
    // A Tmall shopper known only by hash enrols into the member who has the phone.
    let tmall = enroll(
        &mut client,
        vec![
            identity(pb::IdentityKind::PhoneHash, &sha),
            identity(pb::IdentityKind::TmallOuid, "AAH3k9-ouid"),
        ],
        "",
    )
    .await;
    assert!(tmall.already_enrolled);
    assert_eq!(tmall.member.unwrap().member_id, member_id);

    let batch = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: vec![
                phone("13900139000"),
                phone("12"),
                email("nobody@example.com"),
                identity(pb::IdentityKind::TmallOuid, "AAH3k9-ouid"),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .resolutions;
    let outcomes: Vec<i32> = batch.iter().map(|r| r.outcome).collect();
    use pb::ResolveOutcome::*;
    assert_eq!(
        outcomes,
        vec![Found as i32, Invalid as i32, NotFound as i32, Found as i32]
    );
    assert!(batch[1].error.contains("phone"), "{}", batch[1].error);
    assert_eq!(batch[3].member_id, member_id);
}

async fn every_bad_field_is_named(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let status = client
        .enroll_member(pb::EnrollMemberRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["identities"]);

    let status = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![
                phone("12345"),
                pb::Identity {
                    kind: 99,
                    value: "x".into(),
                    namespace: String::new(),
                },
                identity(pb::IdentityKind::Unspecified, "x"),
                identity(pb::IdentityKind::WechatOpenid, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
                email("not-an-email"),
            ],
            profile: Some(pb::Profile {
                birthday: "1990-13-01".into(),
                gender: 42,
                name: "x".repeat(101),
                attributes: [("Bad Key".to_owned(), "v".to_owned())].into(),
                ..Default::default()
            }),
            enrollment: Some(pb::Enrollment {
                brand_id: "Not A Slug".into(),
                channel: 77,
                ..Default::default()
            }),
            enrolled_at: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + 3_600,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    let mut fields = violations(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "enrolled_at",
            "enrollment.brand_id",
            "enrollment.channel",
            "identities[0].value",
            "identities[1].kind",
            "identities[2].kind",
            "identities[3].namespace",
            "identities[4].value",
            "profile.attributes[Bad Key]",
            "profile.birthday",
            "profile.gender",
            "profile.name",
        ],
        "{status:?}"
    );
    assert!(
        status.message().contains("not a valid phone number"),
        "{}",
        status.message()
    );

    let unknown_brand = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone("13800000001")],
            enrollment: Some(pb::Enrollment {
                brand_id: "no-such-brand".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&unknown_brand), vec!["enrollment.brand_id"]);

    let too_many = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: vec![phone("13800000001"); 1001],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&too_many), vec!["identities"]);

    let bad_page = client
        .list_members(pb::ListMembersRequest {
            page_size: -1,
            page_token: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_page), vec!["page_size", "page_token"]);

    let no_id = client.get_member(pb::GetMemberRequest::default()).await.unwrap_err();
    assert_eq!(violations(&no_id), vec!["member_id"]);

    let same = merge(&mut client, "a", "a", "").await.unwrap_err();
    assert_eq!(violations(&same), vec!["other_member_id"]);
    let bad_survivor = merge(&mut client, "a", "b", "c").await.unwrap_err();
    assert_eq!(violations(&bad_survivor), vec!["survivor_id"]);

    let bad_update = client
        .update_profile(pb::UpdateProfileRequest {
            member_id: "m".into(),
            birthday: Some("tomorrow".into()),
            life_stage: Some(99),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_update), vec!["life_stage", "birthday"]);

    let bad_link = client
        .link_identity(pb::LinkIdentityRequest {
            member_id: String::new(),
            identity: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_link), vec!["member_id", "identity"]);

    let bad_consent = client
        .set_consent(pb::SetConsentRequest {
            member_id: "m".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_consent), vec!["channel", "source"]);

    let bad_bind = client
        .bind_guide(pb::BindGuideRequest {
            member_id: "m".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_bind), vec!["store_id", "guide_id"]);

    let bad_tag = client
        .define_tag(pb::DefineTagRequest {
            name: "Skin Type".into(),
            kind: pb::TagKind::Enum.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_tag), vec!["name", "allowed_values"]);
    let no_kind = client
        .define_tag(pb::DefineTagRequest {
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&no_kind), vec!["kind"]);

    let bad_tags = client.set_tags(pb::SetTagsRequest::default()).await.unwrap_err();
    assert_eq!(violations(&bad_tags), vec!["member_ids", "tags"]);
    let undefined = client
        .set_tags(pb::SetTagsRequest {
            member_ids: vec!["m".into()],
            tags: vec![pb::TagValue {
                name: "undefined_tag".into(),
                value: String::new(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&undefined), vec!["tags[0].name"]);

    let mut admin = suite.identity(keys::ADMIN).await;
    let bad_tenant = admin
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "X".into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_tenant), vec!["tenant_id", "display_name"]);
}

async fn role_matrix(suite: Suite) {
    let mut platform = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(&mut platform, vec![phone("13700137000")], "Wang").await;

    let mut pos = suite.identity(keys::ACME_POS).await;
    assert!(enroll(&mut pos, vec![phone("13700137001")], "").await.member.is_some());
    assert_eq!(resolve_one(&mut pos, phone("13700137000")).await.member_id, member_id);
    assert_eq!(
        get(&mut pos, &member_id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let denied = merge(&mut pos, &member_id, "x", "").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut analyst = suite.identity(keys::ACME_ANALYST).await;
    assert_eq!(get(&mut analyst, &member_id).await.unwrap().member_id, member_id);
    assert_eq!(
        resolve_one(&mut analyst, phone("13700137000")).await.member_id,
        member_id
    );
    let denied = analyst
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone("13700137002")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = analyst
        .erase_member(pb::EraseMemberRequest {
            member_id: member_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut admin = suite.identity(keys::ADMIN).await;
    assert_eq!(
        get(&mut admin, &member_id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let denied = platform
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut anonymous = suite.identity("").await;
    assert_eq!(
        get(&mut anonymous, &member_id).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut stranger = suite.identity("not-a-configured-key").await;
    assert_eq!(
        get(&mut stranger, &member_id).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut service_without_tenant = suite.identity(keys::SERVICE).await;
    let status = get(&mut service_without_tenant, &member_id).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-quanyu-tenant"), "{}", status.message());
    let mut service = suite.identity_as_service(ACME).await;
    assert_eq!(get(&mut service, &member_id).await.unwrap().member_id, member_id);
    let mut service_for_globex = suite.identity_as_service(GLOBEX).await;
    assert_eq!(
        get(&mut service_for_globex, &member_id).await.unwrap_err().code(),
        Code::NotFound
    );
}

async fn tenants_never_see_each_other(suite: Suite) {
    let mut acme = suite.identity(keys::ACME_PLATFORM).await;
    let mut globex = suite.identity(keys::GLOBEX_PLATFORM).await;
    let acme_member = member_id_of(&mut acme, vec![phone("13600136000")], "Acme Member").await;
    let globex_member = member_id_of(&mut globex, vec![phone("13600136001")], "Globex Member").await;

    assert_eq!(get(&mut globex, &acme_member).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        resolve_one(&mut globex, phone("13600136000")).await.outcome,
        pb::ResolveOutcome::NotFound as i32
    );
    assert_eq!(
        merge(&mut globex, &globex_member, &acme_member, "")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        merge(&mut acme, &acme_member, &globex_member, "")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let erase = globex
        .erase_member(pb::EraseMemberRequest {
            member_id: acme_member.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(erase.code(), Code::NotFound);
    let update = globex
        .update_profile(pb::UpdateProfileRequest {
            member_id: acme_member.clone(),
            name: Some("x".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(update.code(), Code::NotFound);
    let link = globex
        .link_identity(pb::LinkIdentityRequest {
            member_id: acme_member.clone(),
            identity: Some(email("x@example.com")),
        })
        .await
        .unwrap_err();
    assert_eq!(link.code(), Code::NotFound);
    let bindings = globex
        .list_guide_bindings(pb::ListGuideBindingsRequest {
            member_id: acme_member.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(bindings.code(), Code::NotFound);

    // The same phone may be a member in each tenant, separately.
    let own = enroll(&mut globex, vec![phone("13600136000")], "").await;
    assert!(!own.already_enrolled);
    assert_ne!(own.member.unwrap().member_id, acme_member);

    globex
        .define_tag(pb::DefineTagRequest {
            name: "vip".into(),
            kind: pb::TagKind::Label.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let tagged = globex
        .set_tags(pb::SetTagsRequest {
            member_ids: vec![acme_member.clone()],
            tags: vec![pb::TagValue {
                name: "vip".into(),
                value: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tagged.results[0].outcome, pb::TagOutcome::MemberNotFound as i32);

    let listed = globex
        .list_members(pb::ListMembersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members;
    assert!(listed.iter().all(|member| member.member_id != acme_member));
    let audit = globex
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(audit.iter().all(|entry| entry.member_id != acme_member));
}

async fn merge_moves_everything_to_the_survivor(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let older = member_id_of(&mut client, vec![phone("13500135000")], "").await;
    let newer = enroll(&mut client, vec![email("mei@example.com")], "Mei")
        .await
        .member
        .unwrap()
        .member_id;
    client
        .update_profile(pb::UpdateProfileRequest {
            member_id: older.clone(),
            city: Some("Hangzhou".into()),
            set_attributes: [("size".to_owned(), "M".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .update_profile(pb::UpdateProfileRequest {
            member_id: newer.clone(),
            city: Some("Shanghai".into()),
            set_attributes: [
                ("size".to_owned(), "L".to_owned()),
                ("skin".to_owned(), "dry".to_owned()),
            ]
            .into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .define_tag(pb::DefineTagRequest {
            name: "tier_hint".into(),
            kind: pb::TagKind::Enum.into(),
            allowed_values: vec!["gold".into(), "silver".into()],
            description: String::new(),
        })
        .await
        .unwrap();
    let set = |member: &str, value: &str| pb::SetTagsRequest {
        member_ids: vec![member.to_owned()],
        tags: vec![pb::TagValue {
            name: "tier_hint".into(),
            value: value.into(),
        }],
    };
    client.set_tags(set(&older, "silver")).await.unwrap();
    client.set_tags(set(&newer, "gold")).await.unwrap();
    let consent = |member: &str, granted: bool, seconds: i64| pb::SetConsentRequest {
        member_id: member.to_owned(),
        channel: pb::ContactChannel::Sms.into(),
        granted,
        source: "test".into(),
        decided_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000 + seconds,
            nanos: 0,
        }),
    };
    client.set_consent(consent(&older, true, 0)).await.unwrap();
    client.set_consent(consent(&newer, false, 60)).await.unwrap();
    client
        .bind_guide(pb::BindGuideRequest {
            member_id: newer.clone(),
            store_id: "sh-01".into(),
            guide_id: "g-7".into(),
            source: String::new(),
        })
        .await
        .unwrap();

    let merged = merge(&mut client, &newer, &older, "").await.unwrap();
    assert!(!merged.already_merged);
    assert_eq!(merged.merged_member_id, newer, "the member enrolled first survives");
    let survivor = merged.survivor.unwrap();
    assert_eq!(survivor.member_id, older);
    let profile = survivor.profile.unwrap();
    assert_eq!(profile.name, "Mei", "empty survivor fields are filled from the loser");
    assert_eq!(profile.city, "Hangzhou", "the survivor's set fields win");
    assert_eq!(profile.attributes["size"], "M");
    assert_eq!(profile.attributes["skin"], "dry");
    assert!(survivor.identities.contains(&phone("+8613500135000")));
    assert!(survivor.identities.contains(&email("mei@example.com")));
    assert_eq!(survivor.tags.len(), 1);
    assert_eq!(survivor.tags[0].value, "silver", "the survivor's tag value wins");
    assert_eq!(survivor.consents.len(), 1);
    assert!(!survivor.consents[0].granted, "the later consent decision wins");
    assert_eq!(
        survivor.current_guide.unwrap().guide_id,
        "g-7",
        "the loser's guide is taken when the survivor has none"
    );

    let loser = get(&mut client, &newer).await.unwrap();
    assert_eq!(loser.status, pb::MemberStatus::Merged as i32);
    assert_eq!(loser.merged_into, older);
    assert!(loser.identities.is_empty());
    assert_eq!(loser.profile.unwrap().name, "", "the loser keeps no personal data");
    assert_eq!(
        resolve_one(&mut client, email("mei@example.com")).await.member_id,
        older
    );

    let status = client
        .update_profile(pb::UpdateProfileRequest {
            member_id: newer.clone(),
            name: Some("x".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains(&older), "{}", status.message());

    let explicit = member_id_of(&mut client, vec![email("explicit@example.com")], "").await;
    let outcome = merge(&mut client, &older, &explicit, &explicit).await.unwrap();
    assert_eq!(
        outcome.survivor.unwrap().member_id,
        explicit,
        "an explicit survivor wins over age"
    );
}

async fn merge_chains_collapse_and_remerging_is_a_no_op(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let a = member_id_of(&mut client, vec![phone("13400134000")], "").await;
    let b = member_id_of(&mut client, vec![phone("13400134001")], "").await;
    let c = member_id_of(&mut client, vec![phone("13400134002")], "").await;
    merge(&mut client, &a, &b, &a).await.unwrap();
    let again = merge(&mut client, &b, &a, "").await.unwrap();
    assert!(again.already_merged);
    assert_eq!(again.survivor.unwrap().member_id, a);

    merge(&mut client, &a, &c, &c).await.unwrap();
    assert_eq!(
        get(&mut client, &b).await.unwrap().merged_into,
        c,
        "b now points straight at c"
    );
    assert_eq!(get(&mut client, &a).await.unwrap().merged_into, c);
    assert_eq!(resolve_one(&mut client, phone("13400134001")).await.member_id, c);
    assert!(merge(&mut client, &b, &c, "").await.unwrap().already_merged);

    let erase = client
        .erase_member(pb::EraseMemberRequest {
            member_id: b.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        erase.code(),
        Code::FailedPrecondition,
        "erase the survivor, not a merged id"
    );
}

async fn concurrent_opposite_merges_leave_one_survivor(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    for round in 0..4 {
        let a = member_id_of(&mut client, vec![phone(&format!("1330013300{round}"))], "").await;
        let b = member_id_of(&mut client, vec![phone(&format!("1330013301{round}"))], "").await;
        let (mut left, mut right) = (client.clone(), client.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let first = tokio::spawn(async move { merge(&mut left, &a2, &b2, &a2).await });
        let (a3, b3) = (a.clone(), b.clone());
        let second = tokio::spawn(async move { merge(&mut right, &b3, &a3, &b3).await });
        let outcomes = [first.await.unwrap().unwrap(), second.await.unwrap().unwrap()];
        assert_eq!(
            outcomes.iter().filter(|o| o.already_merged).count(),
            1,
            "one merge happened"
        );
        let members = [get(&mut client, &a).await.unwrap(), get(&mut client, &b).await.unwrap()];
        let active: Vec<_> = members
            .iter()
            .filter(|m| m.status == pb::MemberStatus::Active as i32)
            .collect();
        assert_eq!(active.len(), 1, "exactly one survivor");
        let merged: Vec<_> = members
            .iter()
            .filter(|m| m.status == pb::MemberStatus::Merged as i32)
            .collect();
        assert_eq!(merged[0].merged_into, active[0].member_id);
        assert_eq!(active[0].identities.len(), 2);
    }
}

async fn concurrent_enrolments_of_one_identity_make_one_member(suite: Suite) {
    let client = suite.identity(keys::ACME_POS).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { enroll(&mut client, vec![phone("13200132000")], "").await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().member.unwrap().member_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

async fn erasure_removes_personal_data(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(
        &mut client,
        vec![phone("13100131000"), email("erase@example.com")],
        "To Erase",
    )
    .await;
    client
        .set_consent(pb::SetConsentRequest {
            member_id: member_id.clone(),
            channel: pb::ContactChannel::Email.into(),
            granted: true,
            source: "web".into(),
            decided_at: None,
        })
        .await
        .unwrap();
    let erased = client
        .erase_member(pb::EraseMemberRequest {
            member_id: member_id.clone(),
            reason: "pipl request 2026-118".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    assert_eq!(erased.status, pb::MemberStatus::Erased as i32);
    assert_eq!(erased.profile.unwrap(), pb::Profile::default());
    assert!(erased.identities.is_empty() && erased.consents.is_empty());
    assert_eq!(
        resolve_one(&mut client, phone("13100131000")).await.outcome,
        pb::ResolveOutcome::NotFound as i32
    );
    let hash = resolve_one(&mut client, identity(pb::IdentityKind::PhoneHash, &"0".repeat(32))).await;
    assert_eq!(hash.outcome, pb::ResolveOutcome::NotFound as i32);
    assert_eq!(
        get(&mut client, &member_id).await.unwrap().status,
        pb::MemberStatus::Erased as i32
    );
    let twice = client
        .erase_member(pb::EraseMemberRequest {
            member_id: member_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        twice.into_inner().member.unwrap().status,
        pb::MemberStatus::Erased as i32
    );
    let other = member_id_of(&mut client, vec![email("keep@example.com")], "").await;
    assert_eq!(
        merge(&mut client, &other, &member_id, "").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // The phone is free again: enrolling it makes a new member.
    let fresh = enroll(&mut client, vec![phone("13100131000")], "").await;
    assert!(!fresh.already_enrolled);
}

async fn link_and_unlink_identities(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(&mut client, vec![email("link@example.com")], "").await;
    let other = member_id_of(&mut client, vec![email("other@example.com")], "").await;
    let link = |member: &str, identity: pb::Identity| pb::LinkIdentityRequest {
        member_id: member.into(),
        identity: Some(identity),
    };
    let unlink = |member: &str, identity: pb::Identity| pb::UnlinkIdentityRequest {
        member_id: member.into(),
        identity: Some(identity),
    };

    let openid = pb::Identity {
        kind: pb::IdentityKind::WechatOpenid.into(),
        value: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
        namespace: "wx1234567890abcdef".into(),
    };
    let linked = client
        .link_identity(link(&member_id, phone("13000130000")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(linked.member.unwrap().identities.len(), 2);
    client.link_identity(link(&member_id, openid.clone())).await.unwrap();
    let repeat = client
        .link_identity(link(&member_id, openid.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repeat.member.unwrap().identities.len(), 3, "linking twice is a no-op");
    let taken = client.link_identity(link(&other, openid.clone())).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    use sha2::Digest as _;
    let sha = hex::encode(sha2::Sha256::digest(b"+8613000130000"));
    let derived = client
        .unlink_identity(unlink(&member_id, identity(pb::IdentityKind::PhoneHash, &sha)))
        .await
        .unwrap_err();
    assert_eq!(derived.code(), Code::FailedPrecondition);
    client
        .unlink_identity(unlink(&member_id, phone("13000130000")))
        .await
        .unwrap();
    let gone = resolve_one(&mut client, identity(pb::IdentityKind::PhoneHash, &sha)).await;
    assert_eq!(
        gone.outcome,
        pb::ResolveOutcome::NotFound as i32,
        "the phone's digests go with it"
    );
    let missing = client
        .unlink_identity(unlink(&member_id, phone("13000130000")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    client.unlink_identity(unlink(&member_id, openid)).await.unwrap();
    let last = client
        .unlink_identity(unlink(&member_id, email("link@example.com")))
        .await
        .unwrap_err();
    assert_eq!(last.code(), Code::FailedPrecondition);
    assert!(last.message().contains("last identity"), "{}", last.message());
}

async fn profiles_lists_and_paging(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    client
        .create_brand(pb::CreateBrandRequest {
            brand_id: "lumen".into(),
            display_name: "Lumen".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let response = client
            .enroll_member(pb::EnrollMemberRequest {
                identities: vec![email(&format!("page{n}@example.com"))],
                profile: Some(pb::Profile {
                    city: if n % 2 == 0 { "Chengdu".into() } else { "Xi'an".into() },
                    ..Default::default()
                }),
                enrollment: Some(pb::Enrollment {
                    brand_id: "lumen".into(),
                    ..Default::default()
                }),
                enrolled_at: None,
            })
            .await
            .unwrap();
        ids.push(response.into_inner().member.unwrap().member_id);
    }
    let updated = client
        .update_profile(pb::UpdateProfileRequest {
            member_id: ids[0].clone(),
            name: Some("  Chen Jie ".into()),
            gender: Some(pb::Gender::Female.into()),
            birthday: Some("1992-05-17".into()),
            life_stage: Some(pb::LifeStage::Parent.into()),
            set_attributes: [("skin".to_owned(), "oily".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .profile
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.birthday.as_str(), updated.city.as_str()),
        ("Chen Jie", "1992-05-17", "Chengdu")
    );
    assert_eq!(updated.gender, pb::Gender::Female as i32);
    let cleared = client
        .update_profile(pb::UpdateProfileRequest {
            member_id: ids[0].clone(),
            birthday: Some(String::new()),
            remove_attributes: vec!["skin".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .profile
        .unwrap();
    assert_eq!(cleared.birthday, "");
    assert!(cleared.attributes.is_empty());
    assert_eq!(cleared.name, "Chen Jie");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_members(pb::ListMembersRequest {
                page_size: 2,
                page_token: token.clone(),
                filter: Some(pb::MemberFilter {
                    brand_id: "lumen".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.members.len() <= 2);
        seen.extend(page.members.into_iter().map(|member| member.member_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids, "pages hold every member once, in id order");
    let chengdu = client
        .list_members(pb::ListMembersRequest {
            filter: Some(pb::MemberFilter {
                city: "Chengdu".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(chengdu.len(), 3);
    let future = client
        .list_members(pb::ListMembersRequest {
            filter: Some(pb::MemberFilter {
                enrolled_from: Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert!(future.is_empty());
    let brands = client
        .list_brands(pb::ListBrandsRequest {})
        .await
        .unwrap()
        .into_inner()
        .brands;
    assert_eq!(brands.len(), 1);
    let duplicate = client
        .create_brand(pb::CreateBrandRequest {
            brand_id: "lumen".into(),
            display_name: "Lumen".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
}

async fn tags_in_batches(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let skin = pb::DefineTagRequest {
        name: "skin_type".into(),
        kind: pb::TagKind::Enum.into(),
        allowed_values: vec!["dry".into(), "oily".into()],
        description: "from the skin test".into(),
    };
    client.define_tag(skin.clone()).await.unwrap();
    client
        .define_tag(skin.clone())
        .await
        .expect("the same definition again is a no-op");
    let changed = client
        .define_tag(pb::DefineTagRequest {
            allowed_values: vec!["dry".into()],
            ..skin
        })
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    client
        .define_tag(pb::DefineTagRequest {
            name: "spend_score".into(),
            kind: pb::TagKind::Number.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let definitions = client
        .list_tag_definitions(pb::ListTagDefinitionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(definitions.len(), 2);

    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(member_id_of(&mut client, vec![email(&format!("tag{n}@example.com"))], "").await);
    }
    let erased = ids[29].clone();
    client
        .erase_member(pb::EraseMemberRequest {
            member_id: erased.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let mut batch = ids.clone();
    batch.push("no-such-member".into());
    let results = client
        .set_tags(pb::SetTagsRequest {
            member_ids: batch.clone(),
            tags: vec![
                pb::TagValue {
                    name: "skin_type".into(),
                    value: "dry".into(),
                },
                pb::TagValue {
                    name: "spend_score".into(),
                    value: "88.50".into(),
                },
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 31);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.outcome == pb::TagOutcome::Applied as i32)
            .count(),
        29
    );
    assert_eq!(results[29].outcome, pb::TagOutcome::MemberErased as i32);
    assert_eq!(results[30].outcome, pb::TagOutcome::MemberNotFound as i32);

    let bad_value = client
        .set_tags(pb::SetTagsRequest {
            member_ids: vec![ids[0].clone()],
            tags: vec![pb::TagValue {
                name: "skin_type".into(),
                value: "wet".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad_value), vec!["tags[0].value"]);
    assert!(
        bad_value.message().contains("allowed: dry, oily"),
        "{}",
        bad_value.message()
    );

    let member = get(&mut client, &ids[0]).await.unwrap();
    let tags: Vec<(&str, &str)> = member
        .tags
        .iter()
        .map(|t| (t.name.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(tags, vec![("skin_type", "dry"), ("spend_score", "88.5")]);

    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_members_by_tag(pb::ListMembersByTagRequest {
                tag_name: "skin_type".into(),
                value: "dry".into(),
                page_size: 10,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.members.into_iter().map(|m| m.member_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, ids[..29].to_vec());

    let removed = client
        .remove_tags(pb::RemoveTagsRequest {
            member_ids: ids[..10].to_vec(),
            tag_names: vec!["skin_type".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(removed.iter().all(|r| r.outcome == pb::TagOutcome::Applied as i32));
    let left = client
        .list_members_by_tag(pb::ListMembersByTagRequest {
            tag_name: "skin_type".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(left.len(), 19);
}

async fn consent_keeps_the_latest_decision(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(&mut client, vec![email("consent@example.com")], "").await;
    let decide = |granted: bool, seconds: i64| pb::SetConsentRequest {
        member_id: member_id.clone(),
        channel: pb::ContactChannel::Wechat.into(),
        granted,
        source: format!("mini-program/{seconds}"),
        decided_at: Some(prost_types::Timestamp {
            seconds: 1_750_000_000 + seconds,
            nanos: 0,
        }),
    };
    assert!(
        client
            .set_consent(decide(true, 100))
            .await
            .unwrap()
            .into_inner()
            .applied
    );
    let late = client.set_consent(decide(false, 50)).await.unwrap().into_inner();
    assert!(!late.applied, "an older decision delivered late is kept out");
    assert!(late.consent.unwrap().granted);
    assert!(
        client
            .set_consent(decide(false, 200))
            .await
            .unwrap()
            .into_inner()
            .applied
    );
    let member = get(&mut client, &member_id).await.unwrap();
    assert_eq!(member.consents.len(), 1);
    assert!(!member.consents[0].granted);
    assert_eq!(member.consents[0].source, "mini-program/200");
    let future = client
        .set_consent(pb::SetConsentRequest {
            decided_at: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
            ..decide(true, 0)
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&future), vec!["decided_at"]);
}

async fn guide_binding_keeps_history(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(&mut client, vec![email("guide@example.com")], "").await;
    let bind = |store: &str, guide: &str| pb::BindGuideRequest {
        member_id: member_id.clone(),
        store_id: store.into(),
        guide_id: guide.into(),
        source: "wecom-qr".into(),
    };
    client.bind_guide(bind("bj-01", "g-1")).await.unwrap();
    client.bind_guide(bind("bj-01", "g-1")).await.unwrap();
    client.bind_guide(bind("bj-02", "g-2")).await.unwrap();
    let history = client
        .list_guide_bindings(pb::ListGuideBindingsRequest {
            member_id: member_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .bindings;
    assert_eq!(history.len(), 2, "binding the current guide again is a no-op");
    assert_eq!(history[0].guide_id, "g-2");
    assert!(history[0].unbound_at.is_none());
    assert!(history[1].unbound_at.is_some());
    assert_eq!(
        get(&mut client, &member_id)
            .await
            .unwrap()
            .current_guide
            .unwrap()
            .store_id,
        "bj-02"
    );
    let at_store = |store: &str| pb::ListMembersRequest {
        filter: Some(pb::MemberFilter {
            store_id: store.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        client
            .list_members(at_store("bj-02"))
            .await
            .unwrap()
            .into_inner()
            .members
            .len(),
        1
    );
    assert!(
        client
            .list_members(at_store("bj-01"))
            .await
            .unwrap()
            .into_inner()
            .members
            .is_empty()
    );
}

async fn audit_trail_names_actor_and_fields_only(suite: Suite) {
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let member_id = member_id_of(&mut client, vec![phone("15800158000")], "Secret Name").await;
    client
        .update_profile(pb::UpdateProfileRequest {
            member_id: member_id.clone(),
            city: Some("Wuhan".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = client
        .list_audit_entries(pb::ListAuditEntriesRequest {
            member_id: member_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["member.profile_updated", "member.enrolled"],
        "newest first"
    );
    assert!(entries.iter().all(|e| e.actor == keys::ACME_PLATFORM));
    assert_eq!(entries[0].changed, vec!["city"]);
    assert_eq!(entries[1].changed, vec!["identities.phone"]);
    let text = format!("{entries:?}");
    assert!(
        !text.contains("Wuhan") && !text.contains("15800158000") && !text.contains("Secret"),
        "{text}"
    );
}

async fn tenant_administration(suite: Suite) {
    let mut admin = suite.identity(keys::ADMIN).await;
    let created = admin
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "initech".into(),
            display_name: "Initech Group".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(created.display_name, "Initech Group");
    let duplicate = admin
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "initech".into(),
            display_name: "Again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let fetched = admin
        .get_tenant(pb::GetTenantRequest {
            tenant_id: "initech".into(),
        })
        .await
        .unwrap();
    assert_eq!(fetched.into_inner().tenant.unwrap().tenant_id, "initech");
    let missing = admin
        .get_tenant(pb::GetTenantRequest {
            tenant_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let listed = admin
        .list_tenants(pb::ListTenantsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // acme and globex exist because keys are bound to them.
    let ids: Vec<&str> = listed.tenants.iter().map(|t| t.tenant_id.as_str()).collect();
    assert_eq!(ids, vec!["acme", "globex"]);
    let rest = admin
        .list_tenants(pb::ListTenantsRequest {
            page_size: 2,
            page_token: listed.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.tenants[0].tenant_id, "initech");
}

async fn every_change_is_published_on_the_event_stream(suite: Suite) {
    use quanyu_proto::events::v1::event::Payload;
    use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
    use quanyu_proto::events::v1::{SubscribeRequest, subscribe_response};
    use tokio_stream::StreamExt as _;

    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let mut globex = suite.identity(keys::GLOBEX_PLATFORM).await;
    member_id_of(&mut globex, vec![email("other-tenant@example.com")], "").await;
    let enrolled = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![phone("13800138111")],
            enrollment: Some(pb::Enrollment {
                store_id: "sh-01".into(),
                guide_id: "g-1".into(),
                referral_code: "INV42".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .member_id;
    let other = member_id_of(&mut client, vec![email("events@example.com")], "").await;
    client
        .update_profile(pb::UpdateProfileRequest {
            member_id: enrolled.clone(),
            city: Some("Suzhou".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .link_identity(pb::LinkIdentityRequest {
            member_id: enrolled.clone(),
            identity: Some(email("linked@example.com")),
        })
        .await
        .unwrap();
    client
        .unlink_identity(pb::UnlinkIdentityRequest {
            member_id: enrolled.clone(),
            identity: Some(email("linked@example.com")),
        })
        .await
        .unwrap();
    client
        .define_tag(pb::DefineTagRequest {
            name: "koc".into(),
            kind: pb::TagKind::Label.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .set_tags(pb::SetTagsRequest {
            member_ids: vec![enrolled.clone()],
            tags: vec![pb::TagValue {
                name: "koc".into(),
                value: String::new(),
            }],
        })
        .await
        .unwrap();
    client
        .remove_tags(pb::RemoveTagsRequest {
            member_ids: vec![enrolled.clone()],
            tag_names: vec!["koc".into()],
        })
        .await
        .unwrap();
    client
        .set_consent(pb::SetConsentRequest {
            member_id: enrolled.clone(),
            channel: pb::ContactChannel::Sms.into(),
            granted: true,
            source: "till".into(),
            decided_at: None,
        })
        .await
        .unwrap();
    client
        .bind_guide(pb::BindGuideRequest {
            member_id: enrolled.clone(),
            store_id: "sh-02".into(),
            guide_id: "g-2".into(),
            source: String::new(),
        })
        .await
        .unwrap();
    merge(&mut client, &enrolled, &other, &enrolled).await.unwrap();
    client
        .erase_member(pb::EraseMemberRequest {
            member_id: enrolled.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    // Failed calls publish nothing.
    assert!(merge(&mut client, &enrolled, "missing", "").await.is_err());

    let bearer = quanyu_runtime::auth::BearerKey::new(keys::ACME_PLATFORM).unwrap();
    let mut events = EventStreamServiceClient::with_interceptor(suite.identity_channel().await, bearer);
    let mut stream = events
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    while let subscribe_response::Item::Event(event) = stream.next().await.unwrap().unwrap().item.unwrap() {
        received.push(event);
    }
    let types: Vec<&str> = received.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "identity.MemberEnrolled",
            "identity.IdentityLinked",
            "identity.MemberEnrolled",
            "identity.IdentityLinked",
            "identity.ProfileUpdated",
            "identity.IdentityLinked",
            "identity.IdentityUnlinked",
            "identity.TagsChanged",
            "identity.TagsChanged",
            "identity.ConsentChanged",
            "identity.GuideBound",
            "identity.MembersMerged",
            "identity.MemberErased",
        ]
    );
    assert!(received.iter().all(|e| e.tenant_id == ACME), "no other tenant's events");
    assert!(received.windows(2).all(|pair| pair[0].position < pair[1].position));
    let Some(Payload::MemberEnrolled(first)) = &received[0].payload else {
        panic!("{:?}", received[0])
    };
    let enrollment = first.enrollment.clone().unwrap();
    assert_eq!(
        (enrollment.store_id.as_str(), enrollment.referral_code.as_str()),
        ("sh-01", "INV42")
    );
    assert_eq!(first.identity_kinds, vec![pb::IdentityKind::Phone as i32]);
    let Some(Payload::IdentityLinked(linked_at_enrolment)) = &received[1].payload else {
        panic!("{:?}", received[1])
    };
    assert_eq!(
        (
            linked_at_enrolment.member_id.as_str(),
            linked_at_enrolment.identity.clone().unwrap().value.as_str()
        ),
        (enrolled.as_str(), "+8613800138111"),
        "a new member's identities are announced as linked"
    );
    let Some(Payload::ProfileUpdated(updated)) = &received[4].payload else {
        panic!()
    };
    assert_eq!(updated.changed_fields, vec!["city"]);
    assert_eq!(updated.profile.clone().unwrap().city, "Suzhou");
    let Some(Payload::IdentityUnlinked(unlinked)) = &received[6].payload else {
        panic!()
    };
    assert_eq!(unlinked.identity.clone().unwrap().value, "linked@example.com");
    let Some(Payload::MembersMerged(merged)) = &received[11].payload else {
        panic!()
    };
    assert_eq!(
        (merged.survivor_id.as_str(), merged.merged_member_id.as_str()),
        (enrolled.as_str(), other.as_str())
    );
}
