//! member-identity's tables: rows, the member view read with them, and the queries the use cases
//! share; no contract types here.
//!
//! Identities always point at an active member (merges move them, erasure deletes them), so
//! resolving an identity needs no walk along merge chains; a merged member's `merged_into` always
//! names the member that finally survived (chains collapse on every merge).

pub mod audit;
pub mod consent;
pub mod entity;
pub mod guide;
pub mod member;
pub mod merge;
pub mod tag;
pub mod tenant;

use crate::domain::merge::{self as merge_rules};
use crate::domain::profile::{Gender, LifeStage, Profile};
use crate::error::IdentityError;
use chrono::{DateTime, Utc};
use entity::{audit_entries, consents, guide_bindings, identities, member_tags, members};
use quanyu_runtime::auth::TenantActor;
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};

type Result<T> = std::result::Result<T, IdentityError>;

pub const ACTIVE: &str = "active";
pub const MERGED: &str = "merged";
pub const ERASED: &str = "erased";

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
    /// A member as its enrolment wrote it, without reading it back: its row, the identities
    /// inserted (phone digests not shown), its binding if any, and no tags or consents yet.
    pub fn enrolled(
        row: members::Model,
        mut identities: Vec<identities::Model>,
        current_guide: Option<guide_bindings::Model>,
    ) -> Self {
        identities.retain(|identity| identity.derived_from.is_none());
        identities.sort_by(member::in_shown_order);
        Self {
            row,
            identities,
            tags: Vec::new(),
            consents: Vec::new(),
            current_guide,
        }
    }

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

/// Genders as stored (the contract's names, which rows were first written with).
const GENDERS: [(Gender, &str); 4] = [
    (Gender::Unspecified, "GENDER_UNSPECIFIED"),
    (Gender::Female, "GENDER_FEMALE"),
    (Gender::Male, "GENDER_MALE"),
    (Gender::Other, "GENDER_OTHER"),
];

/// Life stages as stored.
const LIFE_STAGES: [(LifeStage, &str); 7] = [
    (LifeStage::Unspecified, "LIFE_STAGE_UNSPECIFIED"),
    (LifeStage::Student, "LIFE_STAGE_STUDENT"),
    (LifeStage::Single, "LIFE_STAGE_SINGLE"),
    (LifeStage::Couple, "LIFE_STAGE_COUPLE"),
    (LifeStage::Expecting, "LIFE_STAGE_EXPECTING"),
    (LifeStage::Parent, "LIFE_STAGE_PARENT"),
    (LifeStage::Retired, "LIFE_STAGE_RETIRED"),
];

fn name_of<T: PartialEq>(names: &[(T, &'static str)], value: T) -> &'static str {
    names
        .iter()
        .find(|(known, _)| *known == value)
        .map_or("", |(_, name)| name)
}

/// The value stored under `name`; the default for a name not known.
fn stored<T: Copy + Default>(names: &[(T, &str)], name: &str) -> T {
    names
        .iter()
        .find(|(_, known)| *known == name)
        .map_or_else(T::default, |(value, _)| *value)
}

pub fn profile_of(row: &members::Model) -> Profile {
    Profile {
        name: row.name.clone(),
        gender: stored(&GENDERS, &row.gender),
        birthday: row.birthday.as_deref().and_then(|date| date.parse().ok()),
        province: row.province.clone(),
        city: row.city.clone(),
        life_stage: stored(&LIFE_STAGES, &row.life_stage),
        attributes: serde_json::from_str(&row.attributes).unwrap_or_default(),
    }
}

pub fn enrolment_of(row: &members::Model) -> merge_rules::Enrolment {
    merge_rules::Enrolment {
        at: row.enrolled_at,
        channel: row.channel.clone(),
        brand_id: row.brand_id.clone(),
        store_id: row.store_id.clone(),
        guide_id: row.guide_id.clone(),
        referral_code: row.referral_code.clone(),
    }
}

pub fn write_profile(row: &mut members::ActiveModel, profile: &Profile) {
    row.name = Set(profile.name.clone());
    row.gender = Set(name_of(&GENDERS, profile.gender).to_owned());
    row.birthday = Set(profile.birthday.map(|date| date.to_string()));
    row.province = Set(profile.province.clone());
    row.city = Set(profile.city.clone());
    row.life_stage = Set(name_of(&LIFE_STAGES, profile.life_stage).to_owned());
    row.attributes = Set(serde_json::to_string(&profile.attributes).unwrap_or_else(|_| "{}".into()));
}

pub async fn audit(
    txn: &DatabaseTransaction,
    actor: &TenantActor,
    action: &str,
    member_ids: &[&str],
    changed: &[String],
    at: DateTime<Utc>,
) -> Result<()> {
    if member_ids.is_empty() {
        return Ok(());
    }
    let changed = serde_json::to_string(changed).unwrap_or_else(|_| "[]".into());
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
