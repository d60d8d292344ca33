//! Members and their identities: enrolment, profile, lookup, linking and erasure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::entity::{consents, guide_bindings, identities, member_tags, members};
use super::{ERASED, MERGED, MemberView};
use crate::domain::identity::{Identity, IdentityKind, phone_digests};
use crate::error::IdentityError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Asterisk, Query, UnionType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

type Result<T> = std::result::Result<T, IdentityError>;

pub async fn load_views(txn: &DatabaseTransaction, rows: Vec<members::Model>) -> Result<Vec<MemberView>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let tenant_id = first.tenant_id.clone();
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    // Sorted here, not by ORDER BY kind, value: that order is the primary key's, and SQLite,
    // without statistics, took the primary key on the tenant alone over `identities_by_member`,
    // reading every identity of the tenant for each member shown (enrolment slowed from 450/s to
    // 70/s over its first 5,000 members).
    let mut found = identities::Entity::find()
        .filter(identities::Column::TenantId.eq(&tenant_id))
        .filter(identities::Column::MemberId.is_in(ids.clone()))
        .filter(identities::Column::DerivedFrom.is_null())
        .all(txn)
        .await?;
    found.sort_by(in_shown_order);
    let mut identities_of = group(found, |identity| identity.member_id.clone());
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

/// The order a member's identities are shown in: by kind, then value.
pub fn in_shown_order(a: &identities::Model, b: &identities::Model) -> std::cmp::Ordering {
    (&a.kind, &a.value).cmp(&(&b.kind, &b.value))
}

pub fn group<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> HashMap<String, Vec<T>> {
    let mut groups: HashMap<String, Vec<T>> = HashMap::new();
    for item in items {
        groups.entry(key(&item)).or_default().push(item);
    }
    groups
}

pub async fn view(txn: &DatabaseTransaction, row: members::Model) -> Result<MemberView> {
    let mut views = load_views(txn, vec![row]).await?;
    views
        .pop()
        .ok_or_else(|| IdentityError::Database(sea_orm::DbErr::RecordNotFound("member".into())))
}

pub async fn find_member(
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
pub async fn find_active(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<members::Model> {
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

/// Looks identities up by key, in one statement whose every key is one probe of the primary key
/// (tenant, kind, namespace, value), whatever the table's statistics say.
pub async fn find_identities<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    wanted: &[&Identity],
) -> Result<Vec<identities::Model>> {
    let backend = db.get_database_backend();
    // One key is an equality on the whole primary key: an index probe in any plan, and a lighter
    // statement than the arrays.
    let statement = if backend == DbBackend::Postgres && wanted.len() > 1 {
        // The keys as arrays, each probed by a LATERAL subquery (OFFSET 0 keeps it from being
        // flattened into a join): an IN list is planned from statistics, and a table filled faster
        // than autovacuum analyses it was taken for small, the list became a filter over every
        // identity of the tenant, and a 1,000-identity resolve took seconds.
        let column = |pick: fn(&Identity) -> String| wanted.iter().map(|identity| pick(identity)).collect::<Vec<_>>();
        let values: Vec<sea_orm::Value> = vec![
            tenant_id.into(),
            column(|identity| identity.kind.as_str().to_owned()).into(),
            column(|identity| identity.namespace.clone()).into(),
            column(|identity| identity.value.clone()).into(),
        ];
        Statement::from_sql_and_values(
            backend,
            "SELECT probed.* FROM unnest($2::text[], $3::text[], $4::text[]) AS wanted(kind, namespace, value) \
             CROSS JOIN LATERAL (SELECT * FROM identities WHERE tenant_id = $1 AND kind = wanted.kind \
             AND namespace = wanted.namespace AND value = wanted.value OFFSET 0) AS probed",
            values,
        )
    } else {
        // No identities, no statement.
        match union_by_namespace(tenant_id, wanted) {
            Some(union) => backend.build(&union),
            None => return Ok(Vec::new()),
        }
    };
    Ok(identities::Entity::find().from_raw_sql(statement).all(db).await?)
}

/// For SQLite (and one key on PostgreSQL): one SELECT per kind and namespace, joined by UNION ALL. Each names the whole
/// primary key, so the planner looks the values up in it; written as one SELECT with OR, SQLite
/// took the `identities_by_member` index on the tenant alone and read every identity of the
/// tenant, and enrolment slowed as the tenant grew.
fn union_by_namespace(tenant_id: &str, wanted: &[&Identity]) -> Option<sea_orm::sea_query::SelectStatement> {
    let mut by_namespace: BTreeMap<(IdentityKind, &str), Vec<&str>> = BTreeMap::new();
    for identity in wanted {
        by_namespace
            .entry((identity.kind, identity.namespace.as_str()))
            .or_default()
            .push(identity.value.as_str());
    }
    let mut lookups = by_namespace.into_iter().map(|((kind, namespace), values)| {
        Query::select()
            .column(Asterisk)
            .from(identities::Entity)
            .and_where(identities::Column::TenantId.eq(tenant_id))
            .and_where(identities::Column::Kind.eq(kind.as_str()))
            .and_where(identities::Column::Namespace.eq(namespace))
            .and_where(identities::Column::Value.is_in(values))
            .to_owned()
    });
    let mut query = lookups.next()?;
    for lookup in lookups {
        query.union(UnionType::All, lookup);
    }
    Some(query)
}

pub fn key_of(row: &identities::Model) -> Option<Identity> {
    Some(Identity {
        kind: IdentityKind::parse(&row.kind)?,
        namespace: row.namespace.clone(),
        value: row.value.clone(),
    })
}

/// The identities to store for the given ones: each, plus the digests of each phone.
pub fn with_phone_digests(identities: &[Identity]) -> Vec<(Identity, Option<String>)> {
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

pub async fn insert_identities(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    identities: Vec<(Identity, Option<String>)>,
    at: DateTime<Utc>,
) -> Result<Vec<identities::Model>> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
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
    Ok(identities::Entity::insert_many(rows).exec_with_returning(txn).await?)
}

/// Links what is missing of `wanted` to `member_id`; fails when a wanted identity is another's.
pub async fn link_missing(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    wanted: Vec<(Identity, Option<String>)>,
    at: DateTime<Utc>,
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
    insert_identities(txn, tenant_id, member_id, missing, at).await?;
    Ok(linked)
}

/// What members are listed by: their status, and any of brand, store, guide, city and enrolment
/// window (empty for any).
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

/// Members matching `filter`, by id, after `after` when given, with their identities, tags,
/// consents and guide.
pub async fn list(
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

/// Inserts a member: the row as stored.
pub async fn insert(txn: &DatabaseTransaction, row: members::ActiveModel) -> Result<members::Model> {
    Ok(members::Entity::insert(row).exec_with_returning(txn).await?)
}

pub async fn update(txn: &DatabaseTransaction, row: members::ActiveModel) -> Result<members::Model> {
    Ok(members::Entity::update(row).exec(txn).await?)
}

/// How many identities were linked to the member (not derived from another, as phone digests are).
pub async fn own_identities(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<u64> {
    Ok(identities::Entity::find()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(member_id))
        .filter(identities::Column::DerivedFrom.is_null())
        .count(txn)
        .await?)
}

/// Removes a linked identity from its member, and with a phone the digests derived from it.
pub async fn unlink(txn: &DatabaseTransaction, linked: &identities::Model, with_derived: bool) -> Result<()> {
    let mut removed = Condition::all()
        .add(identities::Column::Kind.eq(linked.kind.as_str()))
        .add(identities::Column::Namespace.eq(linked.namespace.as_str()))
        .add(identities::Column::Value.eq(linked.value.as_str()));
    if with_derived {
        removed = Condition::any()
            .add(removed)
            .add(identities::Column::DerivedFrom.eq(linked.value.as_str()));
    }
    identities::Entity::delete_many()
        .filter(identities::Column::TenantId.eq(linked.tenant_id.as_str()))
        .filter(identities::Column::MemberId.eq(linked.member_id.as_str()))
        .filter(removed)
        .exec(txn)
        .await?;
    Ok(())
}

/// Deletes what identifies a person or was said about them: identities, tags and consents (an
/// erasure; the member's row stays, as ERASED).
pub async fn delete_personal_data(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<()> {
    identities::Entity::delete_many()
        .filter(identities::Column::TenantId.eq(tenant_id))
        .filter(identities::Column::MemberId.eq(member_id))
        .exec(txn)
        .await?;
    member_tags::Entity::delete_many()
        .filter(member_tags::Column::TenantId.eq(tenant_id))
        .filter(member_tags::Column::MemberId.eq(member_id))
        .exec(txn)
        .await?;
    consents::Entity::delete_many()
        .filter(consents::Column::TenantId.eq(tenant_id))
        .filter(consents::Column::MemberId.eq(member_id))
        .exec(txn)
        .await?;
    Ok(())
}
