//! Conversions from stored and domain values to their proto form, shared by the API and the
//! events the store publishes.

use quanyu_proto::common::v1::Channel;
use quanyu_proto::identity::v1 as pb;
use quanyu_runtime::clock::to_proto;

use crate::domain::identity::{Identity, IdentityKind};
use crate::domain::merge::ConsentDecision;
use crate::domain::profile::{Gender, LifeStage, Profile};
use crate::store::{MemberView, entity};

pub(crate) fn kind_to_pb(kind: IdentityKind) -> pb::IdentityKind {
    match kind {
        IdentityKind::Phone => pb::IdentityKind::Phone,
        IdentityKind::Email => pb::IdentityKind::Email,
        IdentityKind::WechatUnionid => pb::IdentityKind::WechatUnionid,
        IdentityKind::WechatOpenid => pb::IdentityKind::WechatOpenid,
        IdentityKind::TmallOuid => pb::IdentityKind::TmallOuid,
        IdentityKind::PhoneHash => pb::IdentityKind::PhoneHash,
        IdentityKind::JdPin => pb::IdentityKind::JdPin,
        IdentityKind::DouyinOpenid => pb::IdentityKind::DouyinOpenid,
        IdentityKind::PosCard => pb::IdentityKind::PosCard,
        IdentityKind::External => pb::IdentityKind::External,
    }
}

pub(crate) fn identity_to_pb(identity: &Identity) -> pb::Identity {
    pb::Identity {
        kind: kind_to_pb(identity.kind).into(),
        value: identity.value.clone(),
        namespace: identity.namespace.clone(),
    }
}

pub(crate) fn profile_to_pb(profile: &Profile) -> pb::Profile {
    pb::Profile {
        name: profile.name.clone(),
        gender: gender_to_pb(profile.gender).into(),
        birthday: profile.birthday.map(|date| date.to_string()).unwrap_or_default(),
        province: profile.province.clone(),
        city: profile.city.clone(),
        life_stage: life_stage_to_pb(profile.life_stage).into(),
        attributes: profile.attributes.clone().into_iter().collect(),
    }
}

pub(crate) fn status_to_pb(status: &str) -> pb::MemberStatus {
    match status {
        "merged" => pb::MemberStatus::Merged,
        "erased" => pb::MemberStatus::Erased,
        _ => pb::MemberStatus::Active,
    }
}

pub(crate) fn binding_to_pb(binding: &entity::guide_bindings::Model) -> pb::GuideBinding {
    pb::GuideBinding {
        store_id: binding.store_id.clone(),
        guide_id: binding.guide_id.clone(),
        bound_at: Some(to_proto(binding.bound_at)),
        unbound_at: binding.unbound_at.map(to_proto),
        source: binding.source.clone(),
    }
}

pub(crate) fn consent_to_pb(decision: &ConsentDecision) -> pb::Consent {
    pb::Consent {
        channel: pb::ContactChannel::from_str_name(&decision.channel)
            .unwrap_or(pb::ContactChannel::Unspecified)
            .into(),
        granted: decision.granted,
        decided_at: Some(to_proto(decision.decided_at)),
        source: decision.source.clone(),
    }
}

pub(crate) fn member_to_pb(member: &MemberView) -> pb::Member {
    let row = &member.row;
    pb::Member {
        member_id: row.id.clone(),
        status: status_to_pb(&row.status).into(),
        merged_into: row.merged_into.clone().unwrap_or_default(),
        profile: Some(profile_to_pb(&member.profile())),
        identities: member
            .identities
            .iter()
            .filter_map(|identity| {
                Some(pb::Identity {
                    kind: kind_to_pb(IdentityKind::parse(&identity.kind)?).into(),
                    value: identity.value.clone(),
                    namespace: identity.namespace.clone(),
                })
            })
            .collect(),
        tags: member.tags.iter().map(tag_to_pb).collect(),
        consents: member.consents.iter().map(consent_row_to_pb).collect(),
        current_guide: member.current_guide.as_ref().map(binding_to_pb),
        enrollment: Some(enrollment_to_pb(row)),
        enrolled_at: Some(to_proto(row.enrolled_at)),
        updated_at: Some(to_proto(row.updated_at)),
    }
}

pub(crate) fn tag_to_pb(tag: &entity::member_tags::Model) -> pb::MemberTag {
    pb::MemberTag {
        name: tag.tag_name.clone(),
        value: tag.value.clone(),
        tagged_at: Some(to_proto(tag.tagged_at)),
    }
}

pub(crate) fn enrollment_to_pb(row: &entity::members::Model) -> pb::Enrollment {
    pb::Enrollment {
        channel: Channel::from_str_name(&row.channel)
            .unwrap_or(Channel::Unspecified)
            .into(),
        brand_id: row.brand_id.clone(),
        store_id: row.store_id.clone(),
        guide_id: row.guide_id.clone(),
        referral_code: row.referral_code.clone(),
    }
}

pub(crate) fn consent_row_to_pb(consent: &entity::consents::Model) -> pb::Consent {
    consent_to_pb(&ConsentDecision {
        channel: consent.channel.clone(),
        granted: consent.granted,
        decided_at: consent.decided_at,
        source: consent.source.clone(),
    })
}

/// Genders as the contract and the domain name them, side by side.
const GENDERS: [(Gender, pb::Gender); 4] = [
    (Gender::Unspecified, pb::Gender::Unspecified),
    (Gender::Female, pb::Gender::Female),
    (Gender::Male, pb::Gender::Male),
    (Gender::Other, pb::Gender::Other),
];

/// Life stages as the contract and the domain name them, side by side.
const LIFE_STAGES: [(LifeStage, pb::LifeStage); 7] = [
    (LifeStage::Unspecified, pb::LifeStage::Unspecified),
    (LifeStage::Student, pb::LifeStage::Student),
    (LifeStage::Single, pb::LifeStage::Single),
    (LifeStage::Couple, pb::LifeStage::Couple),
    (LifeStage::Expecting, pb::LifeStage::Expecting),
    (LifeStage::Parent, pb::LifeStage::Parent),
    (LifeStage::Retired, pb::LifeStage::Retired),
];

/// The value paired with `value` in `table`, either way round.
fn paired<A: Copy + PartialEq, B: Copy + Default>(table: &[(A, B)], value: A) -> B {
    table
        .iter()
        .find(|(a, _)| *a == value)
        .map_or_else(B::default, |(_, b)| *b)
}

fn flipped<A: Copy, B: Copy, const N: usize>(table: [(A, B); N]) -> [(B, A); N] {
    table.map(|(a, b)| (b, a))
}

pub(crate) fn gender_to_pb(gender: Gender) -> pb::Gender {
    paired(&GENDERS, gender)
}

pub(crate) fn gender_from_pb(gender: pb::Gender) -> Gender {
    paired(&flipped(GENDERS), gender)
}

pub(crate) fn life_stage_to_pb(stage: LifeStage) -> pb::LifeStage {
    paired(&LIFE_STAGES, stage)
}

pub(crate) fn life_stage_from_pb(stage: pb::LifeStage) -> LifeStage {
    paired(&flipped(LIFE_STAGES), stage)
}
