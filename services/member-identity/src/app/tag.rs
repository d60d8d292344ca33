//! Tag definitions and the tags on members.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::convert::tag_to_pb;
use crate::domain::tags::TagDefinition;
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store::audit;
use crate::store::entity::{member_tags, tag_definitions};
use crate::store::tag::{TagTarget, applied_ids, definition_of, tag_targets};
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

type Result<T> = std::result::Result<T, IdentityError>;

pub async fn define_tag(
    db: &DatabaseConnection,
    actor: &TenantActor,
    definition: &TagDefinition,
    at: DateTime<Utc>,
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
    let created_at = at;
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

/// Sets tags (name, value) on members; unknown tags and bad values are rejected before anything.
pub async fn set_tags(
    db: &DatabaseConnection,
    actor: &TenantActor,
    member_ids: &[String],
    tags: &[(String, String)],
    at: DateTime<Utc>,
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
    audit(&txn, actor, "member.tags_set", &applied_refs, &changed, at).await?;
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
    at: DateTime<Utc>,
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
    audit(&txn, actor, "member.tags_removed", &applied_refs, &changed, at).await?;
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
