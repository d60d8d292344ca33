//! Tag definitions and the tags on members.

use std::collections::{BTreeSet, HashMap};

use super::ERASED;
use super::entity::{members, tag_definitions};
use crate::domain::tags::{TagDefinition, TagKind};
use crate::error::IdentityError;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

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
