//! Members and their identities: enrolment, profile, lookup, linking and erasure.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{begin_read, begin_write};
use quanyu_runtime::error::quote;
use sea_orm::{ActiveValue::Set, DatabaseConnection};

use super::kinds_changed;
use crate::convert::{enrollment_to_pb, identity_to_pb, profile_to_pb};
use crate::domain::identity::{Identity, IdentityKind};
use crate::domain::profile::{Profile, ProfilePatch};
use crate::error::IdentityError;
use crate::events::{linked_events, member_event};
use crate::store;
use crate::store::entity::members;
use crate::store::guide::insert_binding;
use crate::store::member::{
    find_active, find_identities, find_member, insert_identities, key_of, link_missing, view, with_phone_digests,
};
use crate::store::{ACTIVE, ERASED, Enrollment, MERGED, MemberView, audit, profile_of, write_profile};
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

type Result<T> = std::result::Result<T, IdentityError>;

pub struct EnrollCommand {
    pub identities: Vec<Identity>,
    pub profile: Profile,
    pub enrollment: Enrollment,
    /// When the member joined elsewhere, if before now.
    pub enrolled_at: Option<DateTime<Utc>>,
}

/// Enrols a member, or returns the one that already holds the given identities.
pub async fn enroll(
    db: &DatabaseConnection,
    actor: &TenantActor,
    command: &EnrollCommand,
    at: DateTime<Utc>,
) -> Result<(MemberView, bool)> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let brand_id = &command.enrollment.brand_id;
    if !brand_id.is_empty() && store::tenant::find_brand(&txn, tenant_id, brand_id).await?.is_none() {
        return Err(IdentityError::invalid(
            "enrollment.brand_id",
            format!("no brand {} in this tenant", quote(brand_id)),
        ));
    }
    let wanted = with_phone_digests(&command.identities);
    let keys: Vec<&Identity> = wanted.iter().map(|(identity, _)| identity).collect();
    let owners: BTreeSet<String> = find_identities(&txn, tenant_id, &keys)
        .await?
        .into_iter()
        .map(|row| row.member_id)
        .collect();
    if owners.len() > 1 {
        return Err(IdentityError::IdentitiesOfDifferentMembers(
            owners.into_iter().collect(),
        ));
    }
    if let Some(member_id) = owners.into_iter().next() {
        let row = find_active(&txn, tenant_id, &member_id).await?;
        let linked = link_missing(&txn, tenant_id, &member_id, wanted, at).await?;
        if !linked.is_empty() {
            audit(
                &txn,
                actor,
                "member.identity_linked",
                &[&member_id],
                &kinds_changed(&linked),
                at,
            )
            .await?;
            quanyu_outbox::append(&txn, linked_events(tenant_id, &member_id, &linked)).await?;
        }
        let member = view(&txn, row).await?;
        txn.commit().await?;
        return Ok((member, true));
    }
    let member_id = uuid::Uuid::now_v7().to_string();
    let enrollment = &command.enrollment;
    let enrolled_at = command.enrolled_at.unwrap_or(at);
    let mut row = members::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        id: Set(member_id.clone()),
        status: Set(ACTIVE.into()),
        merged_into: Set(None),
        channel: Set(enrollment.channel.clone()),
        brand_id: Set(enrollment.brand_id.clone()),
        store_id: Set(enrollment.store_id.clone()),
        guide_id: Set(enrollment.guide_id.clone()),
        referral_code: Set(enrollment.referral_code.clone()),
        enrolled_at: Set(enrolled_at),
        updated_at: Set(at),
        ..Default::default()
    };
    write_profile(&mut row, &command.profile);
    let row = store::member::insert(&txn, row).await?;
    let identities = insert_identities(&txn, tenant_id, &member_id, wanted, at).await?;
    let binding = if !enrollment.guide_id.is_empty() || !enrollment.store_id.is_empty() {
        let bound = insert_binding(
            &txn,
            tenant_id,
            &member_id,
            &enrollment.store_id,
            &enrollment.guide_id,
            "enrollment",
            at,
        )
        .await?;
        Some(bound)
    } else {
        None
    };
    audit(
        &txn,
        actor,
        "member.enrolled",
        &[&member_id],
        &kinds_changed(&command.identities),
        at,
    )
    .await?;
    // Built from what was written, not read back: five statements fewer an enrolment.
    let member = MemberView::enrolled(row, identities, binding);
    let enrolled = Payload::MemberEnrolled(pb::MemberEnrolled {
        member_id: member_id.clone(),
        enrollment: Some(enrollment_to_pb(&member.row)),
        identity_kinds: command
            .identities
            .iter()
            .map(|i| crate::convert::kind_to_pb(i.kind).into())
            .collect(),
        enrolled_at: Some(quanyu_runtime::clock::to_proto(enrolled_at)),
    });
    // Each identity is announced as linked too, so that a consumer keyed by identities (analytics'
    // interactions) learns whom they now stand for, whether linked at enrolment or later.
    let mut events = vec![member_event(tenant_id, &member_id, enrolled)];
    events.extend(linked_events(tenant_id, &member_id, &command.identities));
    quanyu_outbox::append(&txn, events).await?;
    txn.commit().await?;
    Ok((member, false))
}

pub async fn get_member(db: &DatabaseConnection, tenant_id: &str, member_id: &str) -> Result<MemberView> {
    let txn = begin_read(db).await?;
    let member = view(&txn, find_member(&txn, tenant_id, member_id, false).await?).await?;
    txn.commit().await?;
    Ok(member)
}

pub async fn update_profile(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    patch: ProfilePatch,
    at: DateTime<Utc>,
) -> Result<MemberView> {
    let txn = begin_write(db).await?;
    let row = find_active(&txn, &actor.tenant_id, member_id).await?;
    let mut profile = profile_of(&row);
    let changed = profile.apply(patch)?;
    if changed.is_empty() {
        let member = view(&txn, row).await?;
        txn.commit().await?;
        return Ok(member);
    }
    let mut active: members::ActiveModel = row.into();
    write_profile(&mut active, &profile);
    active.updated_at = Set(at);
    let row = store::member::update(&txn, active).await?;
    audit(&txn, actor, "member.profile_updated", &[member_id], &changed, at).await?;
    let updated = Payload::ProfileUpdated(pb::ProfileUpdated {
        member_id: member_id.to_owned(),
        changed_fields: changed,
        profile: Some(profile_to_pb(&profile)),
    });
    quanyu_outbox::append(&txn, vec![member_event(&actor.tenant_id, member_id, updated)]).await?;
    let member = view(&txn, row).await?;
    txn.commit().await?;
    Ok(member)
}

/// Resolves identities to their members; `None` where an identity belongs to nobody.
pub async fn resolve(db: &DatabaseConnection, tenant_id: &str, wanted: &[&Identity]) -> Result<Vec<Option<String>>> {
    // One statement reads one snapshot: a transaction around it would add BEGIN and COMMIT, two
    // round trips a call. A call without a valid identity sends no statement at all.
    let found: HashMap<Identity, String> = find_identities(db, tenant_id, wanted)
        .await?
        .into_iter()
        .filter_map(|row| Some((key_of(&row)?, row.member_id)))
        .collect();
    Ok(wanted.iter().map(|identity| found.get(*identity).cloned()).collect())
}

pub async fn link_identity(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    identity: &Identity,
    at: DateTime<Utc>,
) -> Result<MemberView> {
    let txn = begin_write(db).await?;
    let row = find_active(&txn, &actor.tenant_id, member_id).await?;
    let linked = link_missing(
        &txn,
        &actor.tenant_id,
        member_id,
        with_phone_digests(std::slice::from_ref(identity)),
        at,
    )
    .await?;
    if !linked.is_empty() {
        audit(
            &txn,
            actor,
            "member.identity_linked",
            &[member_id],
            &kinds_changed(&linked),
            at,
        )
        .await?;
        quanyu_outbox::append(&txn, linked_events(&actor.tenant_id, member_id, &linked)).await?;
    }
    let member = view(&txn, row).await?;
    txn.commit().await?;
    Ok(member)
}

pub async fn unlink_identity(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    identity: &Identity,
    at: DateTime<Utc>,
) -> Result<MemberView> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let row = find_active(&txn, tenant_id, member_id).await?;
    let linked = find_identities(&txn, tenant_id, &[identity])
        .await?
        .into_iter()
        .find(|linked| linked.member_id == member_id)
        .ok_or_else(|| IdentityError::IdentityNotLinked {
            kind: identity.kind.as_str(),
            member_id: member_id.to_owned(),
        })?;
    if linked.derived_from.is_some() {
        return Err(IdentityError::DerivedIdentity);
    }
    if store::member::own_identities(&txn, tenant_id, member_id).await? <= 1 {
        return Err(IdentityError::LastIdentity);
    }
    store::member::unlink(&txn, &linked, identity.kind == IdentityKind::Phone).await?;
    audit(
        &txn,
        actor,
        "member.identity_unlinked",
        &[member_id],
        &[format!("identities.{}", identity.kind.as_str())],
        at,
    )
    .await?;
    let unlinked = Payload::IdentityUnlinked(pb::IdentityUnlinked {
        member_id: member_id.to_owned(),
        identity: Some(identity_to_pb(identity)),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, unlinked)]).await?;
    let member = view(&txn, row).await?;
    txn.commit().await?;
    Ok(member)
}

pub async fn erase(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<MemberView> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let row = find_member(&txn, tenant_id, member_id, true).await?;
    match row.status.as_str() {
        MERGED => {
            return Err(IdentityError::MemberMerged {
                member_id: row.id,
                survivor_id: row.merged_into.unwrap_or_default(),
            });
        }
        ERASED => {
            let member = view(&txn, row).await?;
            txn.commit().await?;
            return Ok(member);
        }
        _ => {}
    }
    let mut erased: members::ActiveModel = row.into();
    write_profile(&mut erased, &Profile::default());
    erased.status = Set(ERASED.into());
    erased.referral_code = Set(String::new());
    erased.updated_at = Set(at);
    let row = store::member::update(&txn, erased).await?;
    store::member::delete_personal_data(&txn, tenant_id, member_id).await?;
    let changed = ["profile", "identities", "tags", "consents"]
        .map(str::to_owned)
        .to_vec();
    let changed = [changed, vec![format!("reason:{reason}")]].concat();
    audit(&txn, actor, "member.erased", &[member_id], &changed, at).await?;
    let erased = Payload::MemberErased(pb::MemberErased {
        member_id: member_id.to_owned(),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, erased)]).await?;
    let member = view(&txn, row).await?;
    txn.commit().await?;
    Ok(member)
}
