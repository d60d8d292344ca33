//! Merging two members into one.

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::{ActiveValue::Set, DatabaseConnection};

use crate::domain::merge::{self as merge_rules, Candidate};
use crate::domain::profile::{self, Profile};
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store;
use crate::store::entity::members;
use crate::store::member::{find_member, view};
use crate::store::merge::{merge_guide_bindings, merge_tags_and_consents, root_of};
use crate::store::{ERASED, MERGED, MemberView, audit, enrolment_of, profile_of, write_profile};
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

type Result<T> = std::result::Result<T, IdentityError>;

pub struct MergeOutcome {
    pub survivor: MemberView,
    pub merged_member_id: String,
    pub already_merged: bool,
}

pub async fn merge(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_id: &str,
    other_member_id: &str,
    explicit_survivor: Option<&str>,
    at: DateTime<Utc>,
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
    let (survivor_id, loser_id) = merge_rules::choose_survivor(
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

    let mut survivor_row: members::ActiveModel = survivor.clone().into();
    write_profile(
        &mut survivor_row,
        &profile::survive(&profile_of(&survivor), &profile_of(&loser)),
    );
    let enrolment = merge_rules::surviving_enrolment(enrolment_of(&survivor), enrolment_of(&loser));
    survivor_row.enrolled_at = Set(enrolment.at);
    survivor_row.channel = Set(enrolment.channel);
    survivor_row.brand_id = Set(enrolment.brand_id);
    survivor_row.store_id = Set(enrolment.store_id);
    survivor_row.guide_id = Set(enrolment.guide_id);
    survivor_row.referral_code = Set(enrolment.referral_code);
    survivor_row.updated_at = Set(at);
    store::member::update(&txn, survivor_row).await?;

    let mut loser_row: members::ActiveModel = loser.clone().into();
    write_profile(&mut loser_row, &Profile::default());
    loser_row.status = Set(MERGED.into());
    loser_row.merged_into = Set(Some(survivor.id.clone()));
    loser_row.updated_at = Set(at);
    store::member::update(&txn, loser_row).await?;
    store::merge::repoint(&txn, tenant_id, &survivor.id, &loser.id).await?;
    merge_tags_and_consents(&txn, tenant_id, &survivor.id, &loser.id).await?;
    merge_guide_bindings(&txn, tenant_id, &survivor.id, &loser.id, at).await?;

    let changed = vec![format!("merged_member:{}", loser.id)];
    audit(&txn, actor, "member.merged", &[&survivor.id], &changed, at).await?;
    audit(
        &txn,
        actor,
        "member.merged_away",
        &[&loser.id],
        &[format!("survivor:{}", survivor.id)],
        at,
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
