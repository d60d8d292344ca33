//! Tag definitions and the tags on members.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::ERASED;
use super::entity::{member_tags, members, tag_definitions};
use crate::domain::tags::{TagDefinition, TagKind};
use crate::error::IdentityError;

type Result<T> = std::result::Result<T, IdentityError>;

/// What a batch tag change did to one requested member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget {
    Applied(String),
    NotFound,
    Erased,
}

pub fn definition_of(row: &tag_definitions::Model) -> TagDefinition {
    TagDefinition {
        name: row.name.clone(),
        kind: TagKind::parse(&row.kind).unwrap_or(TagKind::Label),
        allowed_values: serde_json::from_str(&row.allowed_values).unwrap_or_default(),
        description: row.description.clone(),
    }
}

/// Maps each requested member id to the active member a tag change applies to.
pub async fn tag_targets(txn: &DatabaseTransaction, tenant_id: &str, member_ids: &[String]) -> Result<Vec<TagTarget>> {
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

pub fn applied_ids(targets: &[TagTarget]) -> Vec<String> {
    let ids: BTreeSet<String> = targets
        .iter()
        .filter_map(|target| match target {
            TagTarget::Applied(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.into_iter().collect()
}

/// A tag's definition, with when it was made, if it is defined.
pub async fn definition(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    name: &str,
) -> std::result::Result<Option<(TagDefinition, DateTime<Utc>)>, DbErr> {
    let row = tag_definitions::Entity::find_by_id((tenant_id.to_owned(), name.to_owned()))
        .one(txn)
        .await?;
    Ok(row.map(|row| (definition_of(&row), row.created_at)))
}

pub async fn insert_definition(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    definition: &TagDefinition,
    at: DateTime<Utc>,
) -> std::result::Result<(), DbErr> {
    tag_definitions::Entity::insert(tag_definitions::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(definition.name.clone()),
        kind: Set(definition.kind.as_str().to_owned()),
        allowed_values: Set(serde_json::to_string(&definition.allowed_values).unwrap_or_else(|_| "[]".into())),
        description: Set(definition.description.clone()),
        created_at: Set(at),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// A tenant's tag definitions (those named, when `names` is given), by name, with when each was
/// made.
pub async fn definitions<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    names: Option<Vec<String>>,
) -> std::result::Result<Vec<(TagDefinition, DateTime<Utc>)>, DbErr> {
    let mut query = tag_definitions::Entity::find().filter(tag_definitions::Column::TenantId.eq(tenant_id));
    if let Some(names) = names {
        query = query.filter(tag_definitions::Column::Name.is_in(names));
    }
    let rows = query.order_by_asc(tag_definitions::Column::Name).all(db).await?;
    Ok(rows.iter().map(|row| (definition_of(row), row.created_at)).collect())
}

/// Sets each of `tags` (name, value) on each of `member_ids`, replacing the value there.
pub async fn set(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_ids: &[String],
    tags: &[(String, String)],
    at: DateTime<Utc>,
) -> std::result::Result<(), DbErr> {
    let rows: Vec<member_tags::ActiveModel> = member_ids
        .iter()
        .flat_map(|member_id| {
            tags.iter().map(move |(name, value)| member_tags::ActiveModel {
                tenant_id: Set(tenant_id.to_owned()),
                member_id: Set(member_id.clone()),
                tag_name: Set(name.clone()),
                value: Set(value.clone()),
                tagged_at: Set(at),
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
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
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Takes the tags named `tag_names` off `member_ids`.
pub async fn remove(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_ids: &[String],
    tag_names: &[String],
) -> std::result::Result<(), DbErr> {
    member_tags::Entity::delete_many()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.is_in(member_ids.to_vec()))
        .filter(member_tags::Column::TagName.is_in(tag_names.iter().cloned()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The members carrying a tag (with one value, when given), by member id, after `after`.
pub async fn members_with<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    tag_name: &str,
    value: &str,
    after: Option<String>,
    limit: u64,
) -> std::result::Result<Vec<member_tags::Model>, DbErr> {
    let mut query = member_tags::Entity::find()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::TagName.eq(tag_name));
    if !value.is_empty() {
        query = query.filter(member_tags::Column::Value.eq(value));
    }
    if let Some(after) = after {
        query = query.filter(member_tags::Column::MemberId.gt(after));
    }
    query
        .order_by_asc(member_tags::Column::MemberId)
        .limit(limit)
        .all(db)
        .await
}
