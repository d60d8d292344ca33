//! Tag definitions and the tags on members.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::begin_write;
use quanyu_runtime::error::quote;
use sea_orm::DatabaseConnection;

use crate::convert::tag_to_pb;
use crate::domain::tags::TagDefinition;
use crate::error::IdentityError;
use crate::events::member_event;
use crate::store;
use crate::store::audit;
use crate::store::entity::member_tags;
use crate::store::tag::{TagTarget, applied_ids, tag_targets};
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
    if let Some((existing, created_at)) = store::tag::definition(&txn, tenant_id, &definition.name).await? {
        txn.commit().await?;
        return if existing == *definition {
            Ok((existing, created_at))
        } else {
            Err(IdentityError::TagDefinedDifferently(definition.name.clone()))
        };
    }
    store::tag::insert_definition(&txn, tenant_id, definition, at).await?;
    txn.commit().await?;
    Ok((definition.clone(), at))
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
    let names = tags.iter().map(|(name, _)| name.clone()).collect();
    let definitions: HashMap<String, TagDefinition> = store::tag::definitions(&txn, tenant_id, Some(names))
        .await?
        .into_iter()
        .map(|(definition, _)| (definition.name.clone(), definition))
        .collect();
    let mut violations = quanyu_runtime::error::Violations::default();
    let mut values = Vec::new();
    for (index, (name, value)) in tags.iter().enumerate() {
        match definitions.get(name) {
            None => violations.add(
                format!("tags[{index}].name"),
                format!("no tag {} is defined", quote(name)),
            ),
            Some(definition) => match definition.check_value(value) {
                Ok(stored) => values.push((name.clone(), stored)),
                Err(why) => violations.add(format!("tags[{index}].value"), why),
            },
        }
    }
    violations.into_result()?;
    let targets = tag_targets(&txn, tenant_id, member_ids).await?;
    let applied = applied_ids(&targets);
    store::tag::set(&txn, tenant_id, &applied, &values, at).await?;
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
    store::tag::remove(&txn, tenant_id, &applied, tag_names).await?;
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
