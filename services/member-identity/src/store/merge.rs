//! Merging two members into one.

use super::MERGED;
use super::consent::{consent_row, decision_of};
use super::entity::{consents, guide_bindings, identities, member_tags, members};
use super::member::find_member;
use crate::domain::merge::{self as merge_rules, TagAssignment};
use crate::error::IdentityError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

type Result<T> = std::result::Result<T, IdentityError>;

/// Follows a merged member to the member that survived it.
pub async fn root_of(txn: &DatabaseTransaction, row: members::Model) -> Result<members::Model> {
    match (row.status.as_str(), &row.merged_into) {
        (MERGED, Some(survivor_id)) => find_member(txn, &row.tenant_id, survivor_id, true).await,
        _ => Ok(row),
    }
}

pub async fn merge_tags_and_consents(
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
    let merged_tags = merge_rules::merge_tags(
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
    let merged_consents = merge_rules::merge_consents(
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
pub async fn merge_guide_bindings(
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

/// Points what named the loser at the survivor: members merged into it before (chains collapse)
/// and its identities.
pub async fn repoint(txn: &DatabaseTransaction, tenant_id: &str, survivor_id: &str, loser_id: &str) -> Result<()> {
    members::Entity::update_many()
        .col_expr(members::Column::MergedInto, Expr::value(survivor_id.to_owned()))
        .filter(members::Column::TenantId.eq(tenant_id))
        .filter(members::Column::MergedInto.eq(loser_id))
        .exec(txn)
        .await?;
    identities::Entity::update_many()
        .col_expr(identities::Column::MemberId, Expr::value(survivor_id.to_owned()))
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(loser_id))
        .exec(txn)
        .await?;
    Ok(())
}
