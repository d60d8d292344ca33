//! The use cases of member-identity, one database transaction each.
//!
//! Every query is filtered by the caller's tenant, so another tenant's ids are simply not found.
//! Identities always point at an active member (merges move them, erasure deletes them), so
//! resolving an identity needs no walk along merge chains; a merged member's `merged_into` always
//! names the member that finally survived (chains collapse on every merge).

pub mod entity;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, SubsecRound, Utc};
use quanyu_proto::identity::v1::{Gender, LifeStage};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use quanyu_outbox::NewEvent;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

use crate::convert::{binding_to_pb, consent_to_pb, enrollment_to_pb, identity_to_pb, profile_to_pb, tag_to_pb};
use crate::domain::identity::{Identity, IdentityKind, phone_digests};
use crate::domain::merge::{self, Candidate, ConsentDecision, TagAssignment};
use crate::domain::profile::{self, Profile, ProfilePatch};
use crate::domain::tags::{TagDefinition, TagKind};
use crate::error::IdentityError;
use entity::{
    audit_entries, brands, consents, guide_bindings, identities, member_tags, members, tag_definitions, tenants,
};

type Result<T> = std::result::Result<T, IdentityError>;

const ACTIVE: &str = "active";
const MERGED: &str = "merged";
const ERASED: &str = "erased";

/// Timestamps are kept to the microsecond, as PostgreSQL stores them, so that what is read back
/// compares equal to what was written on every backend.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A member with everything shown about it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub row: members::Model,
    pub identities: Vec<identities::Model>,
    pub tags: Vec<member_tags::Model>,
    pub consents: Vec<consents::Model>,
    pub current_guide: Option<guide_bindings::Model>,
}

impl MemberView {
    pub fn profile(&self) -> Profile {
        profile_of(&self.row)
    }
}

/// How and where a member enrolled, as stored.
#[derive(Debug, Clone, Default)]
pub struct Enrollment {
    pub channel: String,
    pub brand_id: String,
    pub store_id: String,
    pub guide_id: String,
    pub referral_code: String,
}

fn profile_of(row: &members::Model) -> Profile {
    Profile {
        name: row.name.clone(),
        gender: Gender::from_str_name(&row.gender).unwrap_or(Gender::Unspecified),
        birthday: row.birthday.as_deref().and_then(|date| date.parse().ok()),
        province: row.province.clone(),
        city: row.city.clone(),
        life_stage: LifeStage::from_str_name(&row.life_stage).unwrap_or(LifeStage::Unspecified),
        attributes: serde_json::from_str(&row.attributes).unwrap_or_default(),
    }
}

fn write_profile(row: &mut members::ActiveModel, profile: &Profile) {
    row.name = Set(profile.name.clone());
    row.gender = Set(profile.gender.as_str_name().to_owned());
    row.birthday = Set(profile.birthday.map(|date| date.to_string()));
    row.province = Set(profile.province.clone());
    row.city = Set(profile.city.clone());
    row.life_stage = Set(profile.life_stage.as_str_name().to_owned());
    row.attributes = Set(serde_json::to_string(&profile.attributes).unwrap_or_else(|_| "{}".into()));
}

async fn audit(
    txn: &DatabaseTransaction,
    actor: &TenantActor,
    action: &str,
    member_ids: &[&str],
    changed: &[String],
) -> Result<()> {
    if member_ids.is_empty() {
        return Ok(());
    }
    let changed = serde_json::to_string(changed).unwrap_or_else(|_| "[]".into());
    let at = now();
    let rows = member_ids.iter().map(|member_id| audit_entries::ActiveModel {
        tenant_id: Set(actor.tenant_id.to_string()),
        id: Set(uuid::Uuid::now_v7().to_string()),
        actor: Set(actor.key_id.to_string()),
        action: Set(action.to_owned()),
        member_id: Set((*member_id).to_owned()),
        changed: Set(changed.clone()),
        occurred_at: Set(at),
    });
    audit_entries::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

fn member_event(tenant_id: &str, member_id: &str, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "member",
        aggregate_id: member_id.to_owned(),
        payload,
    }
}

fn linked_events(tenant_id: &str, member_id: &str, linked: &[Identity]) -> Vec<NewEvent> {
    linked
        .iter()
        .map(|identity| {
            let payload = Payload::IdentityLinked(pb::IdentityLinked {
                member_id: member_id.to_owned(),
                identity: Some(identity_to_pb(identity)),
            });
            member_event(tenant_id, member_id, payload)
        })
        .collect()
}

fn kinds_changed(identities: &[Identity]) -> Vec<String> {
    identities
        .iter()
        .map(|identity| format!("identities.{}", identity.kind.as_str()))
        .collect()
}

// ---- tenants and brands ----

/// Makes sure the tenants that API keys are bound to exist.
pub async fn ensure_tenants(db: &DatabaseConnection, tenant_ids: &[String]) -> Result<()> {
    if tenant_ids.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows = tenant_ids.iter().map(|id| tenants::ActiveModel {
        id: Set(id.clone()),
        display_name: Set(id.clone()),
        created_at: Set(at),
    });
    tenants::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(tenants::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn create_tenant(db: &DatabaseConnection, id: &str, display_name: &str) -> Result<tenants::Model> {
    let txn = begin_write(db).await?;
    if tenants::Entity::find_by_id(id).one(&txn).await?.is_some() {
        return Err(IdentityError::TenantExists(id.to_owned()));
    }
    let tenant = tenants::Model {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: now(),
    };
    tenants::Entity::insert(tenants::ActiveModel::from(tenant.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(tenant)
}

pub async fn get_tenant(db: &DatabaseConnection, id: &str) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| IdentityError::TenantNotFound(id.to_owned()))
}

pub async fn list_tenants(db: &DatabaseConnection, after: Option<String>, limit: u64) -> Result<Vec<tenants::Model>> {
    let mut query = tenants::Entity::find().order_by_asc(tenants::Column::Id).limit(limit);
    if let Some(after) = after {
        query = query.filter(tenants::Column::Id.gt(after));
    }
    Ok(query.all(db).await?)
}

pub async fn create_brand(
    db: &DatabaseConnection,
    actor: &TenantActor,
    id: &str,
    display_name: &str,
) -> Result<brands::Model> {
    let txn = begin_write(db).await?;
    if brands::Entity::find_by_id((actor.tenant_id.to_string(), id.to_owned()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(IdentityError::BrandExists(id.to_owned()));
    }
    let brand = brands::Model {
        tenant_id: actor.tenant_id.to_string(),
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        created_at: now(),
    };
    brands::Entity::insert(brands::ActiveModel::from(brand.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(brand)
}

pub async fn list_brands(db: &DatabaseConnection, tenant_id: &str) -> Result<Vec<brands::Model>> {
    Ok(brands::Entity::find()
        .filter(brands::Column::TenantId.eq(tenant_id))
        .order_by_asc(brands::Column::Id)
        .all(db)
        .await?)
}

// ---- members ----

async fn load_views(txn: &DatabaseTransaction, rows: Vec<members::Model>) -> Result<Vec<MemberView>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let tenant_id = first.tenant_id.clone();
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut identities_of = group(
        identities::Entity::find()
            .filter(identities::Column::TenantId.eq(&tenant_id))
            .filter(identities::Column::MemberId.is_in(ids.clone()))
            .filter(identities::Column::DerivedFrom.is_null())
            .order_by_asc(identities::Column::Kind)
            .order_by_asc(identities::Column::Value)
            .all(txn)
            .await?,
        |identity| identity.member_id.clone(),
    );
    let mut tags_of = group(
        member_tags::Entity::find()
            .filter(member_tags::Column::TenantId.eq(&tenant_id))
            .filter(member_tags::Column::MemberId.is_in(ids.clone()))
            .order_by_asc(member_tags::Column::TagName)
            .all(txn)
            .await?,
        |tag| tag.member_id.clone(),
    );
    let mut consents_of = group(
        consents::Entity::find()
            .filter(consents::Column::TenantId.eq(&tenant_id))
            .filter(consents::Column::MemberId.is_in(ids.clone()))
            .order_by_asc(consents::Column::Channel)
            .all(txn)
            .await?,
        |consent| consent.member_id.clone(),
    );
    let mut guides_of = group(
        guide_bindings::Entity::find()
            .filter(guide_bindings::Column::TenantId.eq(&tenant_id))
            .filter(guide_bindings::Column::MemberId.is_in(ids))
            .filter(guide_bindings::Column::UnboundAt.is_null())
            .all(txn)
            .await?,
        |binding| binding.member_id.clone(),
    );
    Ok(rows
        .into_iter()
        .map(|row| MemberView {
            identities: identities_of.remove(&row.id).unwrap_or_default(),
            tags: tags_of.remove(&row.id).unwrap_or_default(),
            consents: consents_of.remove(&row.id).unwrap_or_default(),
            current_guide: guides_of.remove(&row.id).and_then(|mut bindings| bindings.pop()),
            row,
        })
        .collect())
}

fn group<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> HashMap<String, Vec<T>> {
    let mut groups: HashMap<String, Vec<T>> = HashMap::new();
    for item in items {
        groups.entry(key(&item)).or_default().push(item);
    }
    groups
}

async fn view(txn: &DatabaseTransaction, row: members::Model) -> Result<MemberView> {
    let mut views = load_views(txn, vec![row]).await?;
    views
        .pop()
        .ok_or_else(|| IdentityError::Database(sea_orm::DbErr::RecordNotFound("member".into())))
}

async fn find_member(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    lock: bool,
) -> Result<members::Model> {
    let mut query = members::Entity::find_by_id((tenant_id.to_owned(), member_id.to_owned()));
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(txn)
        .await?
        .ok_or_else(|| IdentityError::MemberNotFound(member_id.to_owned()))
}

/// Finds a member that can still change: not merged away, not erased. Locks its row.
async fn find_active(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<members::Model> {
    let row = find_member(txn, tenant_id, member_id, true).await?;
    match row.status.as_str() {
        MERGED => Err(IdentityError::MemberMerged {
            member_id: row.id,
            survivor_id: row.merged_into.unwrap_or_default(),
        }),
        ERASED => Err(IdentityError::MemberErased(row.id)),
        _ => Ok(row),
    }
}

/// Looks identities up by key, one query per kind and namespace.
async fn find_identities(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    wanted: &[&Identity],
) -> Result<Vec<identities::Model>> {
    let mut by_namespace: BTreeMap<(IdentityKind, &str), Vec<&str>> = BTreeMap::new();
    for identity in wanted {
        by_namespace
            .entry((identity.kind, identity.namespace.as_str()))
            .or_default()
            .push(identity.value.as_str());
    }
    if by_namespace.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for ((kind, namespace), values) in by_namespace {
        any = any.add(
            Condition::all()
                .add(identities::Column::Kind.eq(kind.as_str()))
                .add(identities::Column::Namespace.eq(namespace))
                .add(identities::Column::Value.is_in(values)),
        );
    }
    Ok(identities::Entity::find()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(any)
        .all(txn)
        .await?)
}

fn key_of(row: &identities::Model) -> Option<Identity> {
    Some(Identity {
        kind: IdentityKind::parse(&row.kind)?,
        namespace: row.namespace.clone(),
        value: row.value.clone(),
    })
}

/// The identities to store for the given ones: each, plus the digests of each phone.
fn with_phone_digests(identities: &[Identity]) -> Vec<(Identity, Option<String>)> {
    let mut expanded: Vec<(Identity, Option<String>)> = Vec::new();
    let mut seen = BTreeSet::new();
    let explicit = identities.iter().map(|identity| (identity.clone(), None));
    let derived = identities
        .iter()
        .filter(|identity| identity.kind == IdentityKind::Phone)
        .flat_map(|phone| phone_digests(&phone.value).map(|digest| (digest, Some(phone.value.clone()))));
    for (identity, derived_from) in explicit.chain(derived) {
        if seen.insert(identity.clone()) {
            expanded.push((identity, derived_from));
        }
    }
    expanded
}

async fn insert_identities(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    identities: Vec<(Identity, Option<String>)>,
) -> Result<()> {
    if identities.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows = identities
        .into_iter()
        .map(|(identity, derived_from)| identities::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            kind: Set(identity.kind.as_str().to_owned()),
            namespace: Set(identity.namespace),
            value: Set(identity.value),
            member_id: Set(member_id.to_owned()),
            derived_from: Set(derived_from),
            linked_at: Set(at),
        });
    identities::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Links what is missing of `wanted` to `member_id`; fails when a wanted identity is another's.
async fn link_missing(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    wanted: Vec<(Identity, Option<String>)>,
) -> Result<Vec<Identity>> {
    let keys: Vec<&Identity> = wanted.iter().map(|(identity, _)| identity).collect();
    let existing = find_identities(txn, tenant_id, &keys).await?;
    if let Some(taken) = existing.iter().find(|row| row.member_id != member_id) {
        let kind = IdentityKind::parse(&taken.kind).map_or("requested", IdentityKind::as_str);
        return Err(IdentityError::IdentityTaken { kind });
    }
    let present: BTreeSet<Identity> = existing.iter().filter_map(key_of).collect();
    let missing: Vec<(Identity, Option<String>)> = wanted
        .into_iter()
        .filter(|(identity, _)| !present.contains(identity))
        .collect();
    let linked = missing
        .iter()
        .filter(|(_, derived_from)| derived_from.is_none())
        .map(|(identity, _)| identity.clone())
        .collect();
    insert_identities(txn, tenant_id, member_id, missing).await?;
    Ok(linked)
}

pub struct EnrollCommand {
    pub identities: Vec<Identity>,
    pub profile: Profile,
    pub enrollment: Enrollment,
}

/// Enrols a member, or returns the one that already holds the given identities.
pub async fn enroll(
    db: &DatabaseConnection,
    actor: &TenantActor,
    command: &EnrollCommand,
) -> Result<(MemberView, bool)> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let brand_id = &command.enrollment.brand_id;
    if !brand_id.is_empty()
        && brands::Entity::find_by_id((tenant_id.to_owned(), brand_id.clone()))
            .one(&txn)
            .await?
            .is_none()
    {
        return Err(IdentityError::invalid(
            "enrollment.brand_id",
            format!("no brand {brand_id:?} in this tenant"),
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
        let linked = link_missing(&txn, tenant_id, &member_id, wanted).await?;
        if !linked.is_empty() {
            audit(
                &txn,
                actor,
                "member.identity_linked",
                &[&member_id],
                &kinds_changed(&linked),
            )
            .await?;
            quanyu_outbox::append(&txn, linked_events(tenant_id, &member_id, &linked)).await?;
        }
        let member = view(&txn, row).await?;
        txn.commit().await?;
        return Ok((member, true));
    }
    let at = now();
    let member_id = uuid::Uuid::now_v7().to_string();
    let enrollment = &command.enrollment;
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
        enrolled_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    };
    write_profile(&mut row, &command.profile);
    members::Entity::insert(row).exec_without_returning(&txn).await?;
    insert_identities(&txn, tenant_id, &member_id, wanted).await?;
    if !enrollment.guide_id.is_empty() || !enrollment.store_id.is_empty() {
        insert_binding(
            &txn,
            tenant_id,
            &member_id,
            &enrollment.store_id,
            &enrollment.guide_id,
            "enrollment",
        )
        .await?;
    }
    audit(
        &txn,
        actor,
        "member.enrolled",
        &[&member_id],
        &kinds_changed(&command.identities),
    )
    .await?;
    let member = view(&txn, find_member(&txn, tenant_id, &member_id, false).await?).await?;
    let enrolled = Payload::MemberEnrolled(pb::MemberEnrolled {
        member_id: member_id.clone(),
        enrollment: Some(enrollment_to_pb(&member.row)),
        identity_kinds: command
            .identities
            .iter()
            .map(|i| crate::convert::kind_to_pb(i.kind).into())
            .collect(),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, &member_id, enrolled)]).await?;
    txn.commit().await?;
    Ok((member, false))
}

pub async fn get_member(db: &DatabaseConnection, tenant_id: &str, member_id: &str) -> Result<MemberView> {
    let txn = db.begin().await?;
    let member = view(&txn, find_member(&txn, tenant_id, member_id, false).await?).await?;
    txn.commit().await?;
    Ok(member)
}

pub async fn update_profile(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    patch: ProfilePatch,
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
    active.updated_at = Set(now());
    let row = members::Entity::update(active).exec(&txn).await?;
    audit(&txn, actor, "member.profile_updated", &[member_id], &changed).await?;
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

#[derive(Debug, Default, Clone)]
pub struct MemberFilter {
    pub status: String,
    pub brand_id: String,
    pub store_id: String,
    pub guide_id: String,
    pub city: String,
    pub enrolled_from: Option<DateTime<Utc>>,
    pub enrolled_until: Option<DateTime<Utc>>,
}

pub async fn list_members(
    db: &DatabaseConnection,
    tenant_id: &str,
    filter: &MemberFilter,
    after: Option<String>,
    limit: u64,
) -> Result<Vec<MemberView>> {
    let mut query = members::Entity::find()
        .filter(members::Column::TenantId.eq(tenant_id))
        .filter(members::Column::Status.eq(filter.status.as_str()));
    let exact = [
        (members::Column::BrandId, &filter.brand_id),
        (members::Column::City, &filter.city),
    ];
    for (column, value) in exact {
        if !value.is_empty() {
            query = query.filter(column.eq(value.as_str()));
        }
    }
    if !filter.store_id.is_empty() || !filter.guide_id.is_empty() {
        // The current binding decides a member's store and guide.
        let mut bound = guide_bindings::Entity::find()
            .select_only()
            .column(guide_bindings::Column::MemberId)
            .filter(guide_bindings::Column::TenantId.eq(tenant_id))
            .filter(guide_bindings::Column::UnboundAt.is_null());
        if !filter.store_id.is_empty() {
            bound = bound.filter(guide_bindings::Column::StoreId.eq(filter.store_id.as_str()));
        }
        if !filter.guide_id.is_empty() {
            bound = bound.filter(guide_bindings::Column::GuideId.eq(filter.guide_id.as_str()));
        }
        query = query.filter(members::Column::Id.in_subquery(sea_orm::QueryTrait::into_query(bound)));
    }
    if let Some(from) = filter.enrolled_from {
        query = query.filter(members::Column::EnrolledAt.gte(from));
    }
    if let Some(until) = filter.enrolled_until {
        query = query.filter(members::Column::EnrolledAt.lt(until));
    }
    if let Some(after) = after {
        query = query.filter(members::Column::Id.gt(after));
    }
    let txn = db.begin().await?;
    let rows = query.order_by_asc(members::Column::Id).limit(limit).all(&txn).await?;
    let members = load_views(&txn, rows).await?;
    txn.commit().await?;
    Ok(members)
}

/// Resolves identities to their members; `None` where an identity belongs to nobody.
pub async fn resolve(db: &DatabaseConnection, tenant_id: &str, wanted: &[&Identity]) -> Result<Vec<Option<String>>> {
    let txn = db.begin().await?;
    let found: HashMap<Identity, String> = find_identities(&txn, tenant_id, wanted)
        .await?
        .into_iter()
        .filter_map(|row| Some((key_of(&row)?, row.member_id)))
        .collect();
    txn.commit().await?;
    Ok(wanted.iter().map(|identity| found.get(*identity).cloned()).collect())
}

pub async fn link_identity(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    identity: &Identity,
) -> Result<MemberView> {
    let txn = begin_write(db).await?;
    let row = find_active(&txn, &actor.tenant_id, member_id).await?;
    let linked = link_missing(
        &txn,
        &actor.tenant_id,
        member_id,
        with_phone_digests(std::slice::from_ref(identity)),
    )
    .await?;
    if !linked.is_empty() {
        audit(
            &txn,
            actor,
            "member.identity_linked",
            &[member_id],
            &kinds_changed(&linked),
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
    let own = identities::Entity::find()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(member_id))
        .filter(identities::Column::DerivedFrom.is_null())
        .count(&txn)
        .await?;
    if own <= 1 {
        return Err(IdentityError::LastIdentity);
    }
    let mut removed = Condition::all()
        .add(identities::Column::Kind.eq(linked.kind.as_str()))
        .add(identities::Column::Namespace.eq(linked.namespace.as_str()))
        .add(identities::Column::Value.eq(linked.value.as_str()));
    if identity.kind == IdentityKind::Phone {
        removed = Condition::any()
            .add(removed)
            .add(identities::Column::DerivedFrom.eq(linked.value.as_str()));
    }
    identities::Entity::delete_many()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(member_id))
        .filter(removed)
        .exec(&txn)
        .await?;
    audit(
        &txn,
        actor,
        "member.identity_unlinked",
        &[member_id],
        &[format!("identities.{}", identity.kind.as_str())],
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

pub struct MergeOutcome {
    pub survivor: MemberView,
    pub merged_member_id: String,
    pub already_merged: bool,
}

/// Follows a merged member to the member that survived it.
async fn root_of(txn: &DatabaseTransaction, row: members::Model) -> Result<members::Model> {
    match (row.status.as_str(), &row.merged_into) {
        (MERGED, Some(survivor_id)) => find_member(txn, &row.tenant_id, survivor_id, true).await,
        _ => Ok(row),
    }
}

pub async fn merge(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    other_member_id: &str,
    explicit_survivor: Option<&str>,
) -> Result<MergeOutcome> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    // Rows are locked in id order, so that concurrent merges of the same pair cannot deadlock.
    let (first_id, second_id) = if member_id <= other_member_id {
        (member_id, other_member_id)
    } else {
        (other_member_id, member_id)
    };
    let first = find_member(&txn, tenant_id, first_id, true).await?;
    let second = find_member(&txn, tenant_id, second_id, true).await?;
    let (asked, other) = if first.id == member_id {
        (first, second)
    } else {
        (second, first)
    };
    let explicit = explicit_survivor.map(|id| {
        if id == asked.id {
            asked.merged_into.clone().unwrap_or_else(|| id.to_owned())
        } else if id == other.id {
            other.merged_into.clone().unwrap_or_else(|| id.to_owned())
        } else {
            id.to_owned()
        }
    });
    let (asked_root, other_root) = (root_of(&txn, asked).await?, root_of(&txn, other).await?);
    if asked_root.id == other_root.id {
        let survivor = view(&txn, asked_root).await?;
        txn.commit().await?;
        let merged_member_id = if member_id == survivor.row.id {
            other_member_id
        } else {
            member_id
        };
        return Ok(MergeOutcome {
            survivor,
            merged_member_id: merged_member_id.to_owned(),
            already_merged: true,
        });
    }
    for root in [&asked_root, &other_root] {
        if root.status == ERASED {
            return Err(IdentityError::MemberErased(root.id.clone()));
        }
    }
    let (survivor_id, loser_id) = merge::choose_survivor(
        Candidate {
            id: &asked_root.id,
            enrolled_at: asked_root.enrolled_at,
        },
        Candidate {
            id: &other_root.id,
            enrolled_at: other_root.enrolled_at,
        },
        explicit.as_deref(),
    )?;
    let (survivor, loser) = if survivor_id == asked_root.id {
        (asked_root.clone(), other_root.clone())
    } else {
        (other_root.clone(), asked_root.clone())
    };
    debug_assert_eq!(loser.id, loser_id);
    let at = now();

    let mut survivor_row: members::ActiveModel = survivor.clone().into();
    write_profile(
        &mut survivor_row,
        &profile::survive(&profile_of(&survivor), &profile_of(&loser)),
    );
    if loser.enrolled_at < survivor.enrolled_at {
        survivor_row.enrolled_at = Set(loser.enrolled_at);
        survivor_row.channel = Set(loser.channel.clone());
        survivor_row.brand_id = Set(loser.brand_id.clone());
        survivor_row.store_id = Set(loser.store_id.clone());
        survivor_row.guide_id = Set(loser.guide_id.clone());
        survivor_row.referral_code = Set(loser.referral_code.clone());
    }
    survivor_row.updated_at = Set(at);
    members::Entity::update(survivor_row).exec(&txn).await?;

    let mut loser_row: members::ActiveModel = loser.clone().into();
    write_profile(&mut loser_row, &Profile::default());
    loser_row.status = Set(MERGED.into());
    loser_row.merged_into = Set(Some(survivor.id.clone()));
    loser_row.updated_at = Set(at);
    members::Entity::update(loser_row).exec(&txn).await?;

    members::Entity::update_many()
        .col_expr(members::Column::MergedInto, Expr::value(survivor.id.clone()))
        .filter(members::Column::TenantId.eq(tenant_id))
        .filter(members::Column::MergedInto.eq(loser.id.as_str()))
        .exec(&txn)
        .await?;
    identities::Entity::update_many()
        .col_expr(identities::Column::MemberId, Expr::value(survivor.id.clone()))
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(loser.id.as_str()))
        .exec(&txn)
        .await?;
    merge_tags_and_consents(&txn, tenant_id, &survivor.id, &loser.id).await?;
    merge_guide_bindings(&txn, tenant_id, &survivor.id, &loser.id, at).await?;

    let changed = vec![format!("merged_member:{}", loser.id)];
    audit(&txn, actor, "member.merged", &[&survivor.id], &changed).await?;
    audit(
        &txn,
        actor,
        "member.merged_away",
        &[&loser.id],
        &[format!("survivor:{}", survivor.id)],
    )
    .await?;
    let merged = Payload::MembersMerged(pb::MembersMerged {
        survivor_id: survivor.id.clone(),
        merged_member_id: loser.id.clone(),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, &survivor.id, merged)]).await?;
    let survivor = view(&txn, find_member(&txn, tenant_id, &survivor.id, false).await?).await?;
    txn.commit().await?;
    Ok(MergeOutcome {
        survivor,
        merged_member_id: loser.id,
        already_merged: false,
    })
}

async fn merge_tags_and_consents(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    survivor_id: &str,
    loser_id: &str,
) -> Result<()> {
    let pair = [survivor_id, loser_id];
    let tags = member_tags::Entity::find()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.is_in(pair))
        .all(txn)
        .await?;
    let (survivor_tags, loser_tags): (Vec<_>, Vec<_>) = tags.into_iter().partition(|tag| tag.member_id == survivor_id);
    let as_assignment = |tag: member_tags::Model| TagAssignment {
        name: tag.tag_name,
        value: tag.value,
        tagged_at: tag.tagged_at,
    };
    let merged_tags = merge::merge_tags(
        survivor_tags.into_iter().map(as_assignment).collect(),
        loser_tags.into_iter().map(as_assignment).collect(),
    );
    member_tags::Entity::delete_many()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.is_in(pair))
        .exec(txn)
        .await?;
    if !merged_tags.is_empty() {
        member_tags::Entity::insert_many(merged_tags.into_iter().map(|tag| member_tags::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            member_id: Set(survivor_id.to_owned()),
            tag_name: Set(tag.name),
            value: Set(tag.value),
            tagged_at: Set(tag.tagged_at),
        }))
        .exec_without_returning(txn)
        .await?;
    }

    let decisions = consents::Entity::find()
        .filter(consents::Column::TenantId.eq(tenant_id))
        .filter(consents::Column::MemberId.is_in(pair))
        .all(txn)
        .await?;
    let (survivor_decisions, loser_decisions): (Vec<_>, Vec<_>) = decisions
        .into_iter()
        .partition(|consent| consent.member_id == survivor_id);
    let merged_consents = merge::merge_consents(
        survivor_decisions.into_iter().map(decision_of).collect(),
        loser_decisions.into_iter().map(decision_of).collect(),
    );
    consents::Entity::delete_many()
        .filter(consents::Column::TenantId.eq(tenant_id))
        .filter(consents::Column::MemberId.is_in(pair))
        .exec(txn)
        .await?;
    if !merged_consents.is_empty() {
        consents::Entity::insert_many(
            merged_consents
                .into_iter()
                .map(|decision| consent_row(tenant_id, survivor_id, decision)),
        )
        .exec_without_returning(txn)
        .await?;
    }
    Ok(())
}

/// The survivor keeps its current guide (else takes the loser's); the loser's history moves over.
async fn merge_guide_bindings(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    survivor_id: &str,
    loser_id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let survivor_has_guide = guide_bindings::Entity::find()
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(survivor_id))
        .filter(guide_bindings::Column::UnboundAt.is_null())
        .one(txn)
        .await?
        .is_some();
    if survivor_has_guide {
        guide_bindings::Entity::update_many()
            .col_expr(guide_bindings::Column::UnboundAt, Expr::value(at))
            .filter(guide_bindings::Column::TenantId.eq(tenant_id))
            .filter(guide_bindings::Column::MemberId.eq(loser_id))
            .filter(guide_bindings::Column::UnboundAt.is_null())
            .exec(txn)
            .await?;
    }
    guide_bindings::Entity::update_many()
        .col_expr(guide_bindings::Column::MemberId, Expr::value(survivor_id.to_owned()))
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(loser_id))
        .exec(txn)
        .await?;
    Ok(())
}

pub async fn erase(db: &DatabaseConnection, actor: &TenantActor, member_id: &str, reason: &str) -> Result<MemberView> {
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
    erased.updated_at = Set(now());
    let row = members::Entity::update(erased).exec(&txn).await?;
    identities::Entity::delete_many()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(member_id))
        .exec(&txn)
        .await?;
    member_tags::Entity::delete_many()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.eq(member_id))
        .exec(&txn)
        .await?;
    consents::Entity::delete_many()
        .filter(consents::Column::TenantId.eq(tenant_id))
        .filter(consents::Column::MemberId.eq(member_id))
        .exec(&txn)
        .await?;
    let changed = ["profile", "identities", "tags", "consents"]
        .map(str::to_owned)
        .to_vec();
    let changed = [changed, vec![format!("reason:{reason}")]].concat();
    audit(&txn, actor, "member.erased", &[member_id], &changed).await?;
    let erased = Payload::MemberErased(pb::MemberErased {
        member_id: member_id.to_owned(),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, erased)]).await?;
    let member = view(&txn, row).await?;
    txn.commit().await?;
    Ok(member)
}

// ---- tags ----

fn definition_of(row: &tag_definitions::Model) -> TagDefinition {
    TagDefinition {
        name: row.name.clone(),
        kind: TagKind::parse(&row.kind).unwrap_or(TagKind::Label),
        allowed_values: serde_json::from_str(&row.allowed_values).unwrap_or_default(),
        description: row.description.clone(),
    }
}

pub async fn define_tag(
    db: &DatabaseConnection,
    actor: &TenantActor,
    definition: &TagDefinition,
) -> Result<(TagDefinition, DateTime<Utc>)> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let existing = tag_definitions::Entity::find_by_id((tenant_id.to_owned(), definition.name.clone()))
        .one(&txn)
        .await?;
    if let Some(existing) = existing {
        txn.commit().await?;
        return if definition_of(&existing) == *definition {
            Ok((definition.clone(), existing.created_at))
        } else {
            Err(IdentityError::TagDefinedDifferently(definition.name.clone()))
        };
    }
    let created_at = now();
    tag_definitions::Entity::insert(tag_definitions::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(definition.name.clone()),
        kind: Set(definition.kind.as_str().to_owned()),
        allowed_values: Set(serde_json::to_string(&definition.allowed_values).unwrap_or_else(|_| "[]".into())),
        description: Set(definition.description.clone()),
        created_at: Set(created_at),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok((definition.clone(), created_at))
}

pub async fn list_tag_definitions(
    db: &DatabaseConnection,
    tenant_id: &str,
) -> Result<Vec<(TagDefinition, DateTime<Utc>)>> {
    Ok(tag_definitions::Entity::find()
        .filter(tag_definitions::Column::TenantId.eq(tenant_id))
        .order_by_asc(tag_definitions::Column::Name)
        .all(db)
        .await?
        .iter()
        .map(|row| (definition_of(row), row.created_at))
        .collect())
}

/// What a batch tag change did to one requested member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget {
    Applied(String),
    NotFound,
    Erased,
}

/// Maps each requested member id to the active member a tag change applies to.
async fn tag_targets(txn: &DatabaseTransaction, tenant_id: &str, member_ids: &[String]) -> Result<Vec<TagTarget>> {
    let rows: HashMap<String, members::Model> = members::Entity::find()
        .filter(members::Column::TenantId.eq(tenant_id))
        .filter(members::Column::Id.is_in(member_ids.iter().cloned()))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let survivor_ids: BTreeSet<String> = rows.values().filter_map(|row| row.merged_into.clone()).collect();
    let survivors: HashMap<String, members::Model> = members::Entity::find()
        .filter(members::Column::TenantId.eq(tenant_id))
        .filter(members::Column::Id.is_in(survivor_ids))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    Ok(member_ids
        .iter()
        .map(|id| {
            let root = rows.get(id).map(|row| match &row.merged_into {
                Some(survivor_id) => survivors.get(survivor_id).unwrap_or(row),
                None => row,
            });
            match root {
                None => TagTarget::NotFound,
                Some(root) if root.status == ERASED => TagTarget::Erased,
                Some(root) => TagTarget::Applied(root.id.clone()),
            }
        })
        .collect())
}

fn applied_ids(targets: &[TagTarget]) -> Vec<String> {
    let ids: BTreeSet<String> = targets
        .iter()
        .filter_map(|target| match target {
            TagTarget::Applied(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.into_iter().collect()
}

/// Sets tags (name, value) on members; unknown tags and bad values are rejected before anything.
pub async fn set_tags(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_ids: &[String],
    tags: &[(String, String)],
) -> Result<Vec<TagTarget>> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let definitions: HashMap<String, TagDefinition> = tag_definitions::Entity::find()
        .filter(tag_definitions::Column::TenantId.eq(tenant_id))
        .filter(tag_definitions::Column::Name.is_in(tags.iter().map(|(name, _)| name.clone())))
        .all(&txn)
        .await?
        .iter()
        .map(|row| (row.name.clone(), definition_of(row)))
        .collect();
    let mut violations = quanyu_runtime::error::Violations::default();
    let mut values = Vec::new();
    for (index, (name, value)) in tags.iter().enumerate() {
        match definitions.get(name) {
            None => violations.add(format!("tags[{index}].name"), format!("no tag {name:?} is defined")),
            Some(definition) => match definition.check_value(value) {
                Ok(stored) => values.push((name.clone(), stored)),
                Err(why) => violations.add(format!("tags[{index}].value"), why),
            },
        }
    }
    violations.into_result()?;
    let targets = tag_targets(&txn, tenant_id, member_ids).await?;
    let applied = applied_ids(&targets);
    let at = now();
    let rows: Vec<member_tags::ActiveModel> = applied
        .iter()
        .flat_map(|member_id| {
            values.iter().map(move |(name, value)| member_tags::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                member_id: Set(member_id.clone()),
                tag_name: Set(name.clone()),
                value: Set(value.clone()),
                tagged_at: Set(at),
            })
        })
        .collect();
    if !rows.is_empty() {
        member_tags::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    member_tags::Column::TenantId,
                    member_tags::Column::MemberId,
                    member_tags::Column::TagName,
                ])
                .update_columns([member_tags::Column::Value, member_tags::Column::TaggedAt])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    let changed: Vec<String> = values.iter().map(|(name, _)| format!("tags.{name}")).collect();
    let applied_refs: Vec<&str> = applied.iter().map(String::as_str).collect();
    audit(&txn, actor, "member.tags_set", &applied_refs, &changed).await?;
    let set: Vec<pb::MemberTag> = values
        .iter()
        .map(|(name, value)| {
            tag_to_pb(&member_tags::Model {
                tenant_id: tenant_id.to_owned(),
                member_id: String::new(),
                tag_name: name.clone(),
                value: value.clone(),
                tagged_at: at,
            })
        })
        .collect();
    let events = applied
        .iter()
        .map(|member_id| {
            let changed = Payload::TagsChanged(pb::TagsChanged {
                member_id: member_id.clone(),
                set: set.clone(),
                removed: Vec::new(),
            });
            member_event(tenant_id, member_id, changed)
        })
        .collect();
    quanyu_outbox::append(&txn, events).await?;
    txn.commit().await?;
    Ok(targets)
}

pub async fn remove_tags(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_ids: &[String],
    tag_names: &[String],
) -> Result<Vec<TagTarget>> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    let targets = tag_targets(&txn, tenant_id, member_ids).await?;
    let applied = applied_ids(&targets);
    member_tags::Entity::delete_many()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.is_in(applied.clone()))
        .filter(member_tags::Column::TagName.is_in(tag_names.iter().cloned()))
        .exec(&txn)
        .await?;
    let changed: Vec<String> = tag_names.iter().map(|name| format!("tags.{name}")).collect();
    let applied_refs: Vec<&str> = applied.iter().map(String::as_str).collect();
    audit(&txn, actor, "member.tags_removed", &applied_refs, &changed).await?;
    let events = applied
        .iter()
        .map(|member_id| {
            let changed = Payload::TagsChanged(pb::TagsChanged {
                member_id: member_id.clone(),
                set: Vec::new(),
                removed: tag_names.to_vec(),
            });
            member_event(tenant_id, member_id, changed)
        })
        .collect();
    quanyu_outbox::append(&txn, events).await?;
    txn.commit().await?;
    Ok(targets)
}

pub async fn list_members_by_tag(
    db: &DatabaseConnection,
    tenant_id: &str,
    tag_name: &str,
    value: &str,
    after: Option<String>,
    limit: u64,
) -> Result<Vec<member_tags::Model>> {
    let mut query = member_tags::Entity::find()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::TagName.eq(tag_name));
    if !value.is_empty() {
        query = query.filter(member_tags::Column::Value.eq(value));
    }
    if let Some(after) = after {
        query = query.filter(member_tags::Column::MemberId.gt(after));
    }
    Ok(query
        .order_by_asc(member_tags::Column::MemberId)
        .limit(limit)
        .all(db)
        .await?)
}

// ---- consent ----

fn decision_of(row: consents::Model) -> ConsentDecision {
    ConsentDecision {
        channel: row.channel,
        granted: row.granted,
        decided_at: row.decided_at,
        source: row.source,
    }
}

fn consent_row(tenant_id: &str, member_id: &str, decision: ConsentDecision) -> consents::ActiveModel {
    consents::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        member_id: Set(member_id.to_owned()),
        channel: Set(decision.channel),
        granted: Set(decision.granted),
        decided_at: Set(decision.decided_at),
        source: Set(decision.source),
    }
}

/// Records a consent decision unless a later one is stored; returns the one in force.
pub async fn set_consent(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    decision: ConsentDecision,
) -> Result<(ConsentDecision, bool)> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    find_active(&txn, tenant_id, member_id).await?;
    let stored = consents::Entity::find_by_id((tenant_id.to_owned(), member_id.to_owned(), decision.channel.clone()))
        .one(&txn)
        .await?
        .map(decision_of);
    if !merge::supersedes(&decision, stored.as_ref()) {
        txn.commit().await?;
        return Ok((stored.unwrap_or(decision), false));
    }
    consents::Entity::insert(consent_row(tenant_id, member_id, decision.clone()))
        .on_conflict(
            OnConflict::columns([
                consents::Column::TenantId,
                consents::Column::MemberId,
                consents::Column::Channel,
            ])
            .update_columns([
                consents::Column::Granted,
                consents::Column::DecidedAt,
                consents::Column::Source,
            ])
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    audit(
        &txn,
        actor,
        "member.consent_changed",
        &[member_id],
        &[format!("consents.{}", decision.channel)],
    )
    .await?;
    let changed = Payload::ConsentChanged(pb::ConsentChanged {
        member_id: member_id.to_owned(),
        consent: Some(consent_to_pb(&decision)),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, changed)]).await?;
    txn.commit().await?;
    Ok((decision, true))
}

// ---- guides ----

async fn insert_binding(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    store_id: &str,
    guide_id: &str,
    source: &str,
) -> Result<guide_bindings::Model> {
    let binding = guide_bindings::Model {
        tenant_id: tenant_id.to_owned(),
        id: uuid::Uuid::now_v7().to_string(),
        member_id: member_id.to_owned(),
        store_id: store_id.to_owned(),
        guide_id: guide_id.to_owned(),
        source: source.to_owned(),
        bound_at: now(),
        unbound_at: None,
    };
    guide_bindings::Entity::insert(guide_bindings::ActiveModel::from(binding.clone()))
        .exec_without_returning(txn)
        .await?;
    Ok(binding)
}

pub async fn bind_guide(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    store_id: &str,
    guide_id: &str,
    source: &str,
) -> Result<guide_bindings::Model> {
    let tenant_id = actor.tenant_id.as_ref();
    let txn = begin_write(db).await?;
    find_active(&txn, tenant_id, member_id).await?;
    let current = guide_bindings::Entity::find()
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(member_id))
        .filter(guide_bindings::Column::UnboundAt.is_null())
        .one(&txn)
        .await?;
    if let Some(current) = current {
        if current.store_id == store_id && current.guide_id == guide_id {
            txn.commit().await?;
            return Ok(current);
        }
        let mut closed: guide_bindings::ActiveModel = current.into();
        closed.unbound_at = Set(Some(now()));
        guide_bindings::Entity::update(closed).exec(&txn).await?;
    }
    let binding = insert_binding(&txn, tenant_id, member_id, store_id, guide_id, source).await?;
    audit(
        &txn,
        actor,
        "member.guide_bound",
        &[member_id],
        &["store_id".into(), "guide_id".into()],
    )
    .await?;
    let bound = Payload::GuideBound(pb::GuideBound {
        member_id: member_id.to_owned(),
        binding: Some(binding_to_pb(&binding)),
    });
    quanyu_outbox::append(&txn, vec![member_event(tenant_id, member_id, bound)]).await?;
    txn.commit().await?;
    Ok(binding)
}

pub async fn list_guide_bindings(
    db: &DatabaseConnection,
    tenant_id: &str,
    member_id: &str,
) -> Result<Vec<guide_bindings::Model>> {
    let txn = db.begin().await?;
    find_member(&txn, tenant_id, member_id, false).await?;
    let bindings = guide_bindings::Entity::find()
        .filter(guide_bindings::Column::TenantId.eq(tenant_id))
        .filter(guide_bindings::Column::MemberId.eq(member_id))
        .order_by_desc(guide_bindings::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(bindings)
}

// ---- audit ----

pub async fn list_audit_entries(
    db: &DatabaseConnection,
    tenant_id: &str,
    member_id: &str,
    before: Option<String>,
    limit: u64,
) -> Result<Vec<audit_entries::Model>> {
    let mut query = audit_entries::Entity::find().filter(audit_entries::Column::TenantId.eq(tenant_id));
    if !member_id.is_empty() {
        query = query.filter(audit_entries::Column::MemberId.eq(member_id));
    }
    if let Some(before) = before {
        query = query.filter(audit_entries::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(audit_entries::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
