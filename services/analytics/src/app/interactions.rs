//! Recording consumers' interactions: each checked on its own, the batch applied in one
//! transaction, each (source, event id) once.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset, Utc};
use prost::Message as _;
use quanyu_proto::analytics::v1 as pb;
use quanyu_runtime::db::{Writes, begin_write, with_retries};
use quanyu_runtime::error::FieldViolation;
use quanyu_runtime::idempotency::{self, NewRecord, Record, Replay, RequestDigest, field_name};
use sea_orm::DatabaseConnection;

use crate::domain::Place;
use crate::domain::interaction::{CheckedInteraction, anonymous_consumer, check};
use crate::error::AnalyticsError;
use crate::store::changes;
use crate::store::consumers::{self, InteractionDay};

/// The most interactions one call records.
pub const MAX_BATCH: usize = 1_000;

/// Records `interactions` for the tenant; days are read in `offset`. Answers one result per
/// interaction, in their order.
pub async fn record(
    db: &DatabaseConnection,
    tenant_id: &str,
    interactions: &[pb::Interaction],
    now: DateTime<Utc>,
    offset: FixedOffset,
) -> Result<Vec<pb::InteractionResult>, AnalyticsError> {
    if interactions.is_empty() || interactions.len() > MAX_BATCH {
        let why = format!("must hold 1-{MAX_BATCH} interactions, got {}", interactions.len());
        return Err(vec![FieldViolation::new("interactions", why)].into());
    }
    let mut results = vec![pb::InteractionResult::default(); interactions.len()];
    let mut checked = Vec::with_capacity(interactions.len());
    for (index, interaction) in interactions.iter().enumerate() {
        match check(interaction, now, offset) {
            Ok(ok) => checked.push((index, ok)),
            Err(violations) => results[index] = rejected(violations),
        }
    }
    let applied = with_retries(|| apply(db, tenant_id, interactions, &checked, now)).await?;
    for (index, result) in applied {
        results[index] = result;
    }
    for (index, result) in results.iter_mut().enumerate() {
        result.index = i32::try_from(index).unwrap_or(i32::MAX);
    }
    Ok(results)
}

/// The scope of the idempotency records of one source's interactions.
fn scope(source: &str) -> String {
    format!("interaction:{source}")
}

fn rejected(violations: Vec<FieldViolation>) -> pb::InteractionResult {
    pb::InteractionResult {
        outcome: pb::InteractionOutcome::Rejected.into(),
        violations: violations
            .into_iter()
            .map(|violation| pb::FieldViolation {
                field: violation.field,
                description: violation.description,
            })
            .collect(),
        ..Default::default()
    }
}

/// One attempt at the batch's transaction: the results of the checked interactions, by index.
async fn apply(
    db: &DatabaseConnection,
    tenant_id: &str,
    interactions: &[pb::Interaction],
    checked: &[(usize, CheckedInteraction)],
    now: DateTime<Utc>,
) -> Result<Vec<(usize, pb::InteractionResult)>, AnalyticsError> {
    let txn = begin_write(db).await?;
    let mut keys: Vec<String> = checked.iter().map(|(_, ok)| ok.identity_key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    consumers::lock_identities(&txn, tenant_id, &keys).await?;
    let members = consumers::members_of(&txn, tenant_id, &keys).await?;
    let mut event_ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, _) in checked {
        let interaction = &interactions[*index];
        event_ids
            .entry(&interaction.source)
            .or_default()
            .push(interaction.event_id.clone());
    }
    let mut recorded: HashMap<(String, String), Record> = HashMap::new();
    for (source, ids) in event_ids {
        for (event_id, record) in idempotency::find(&txn, tenant_id, &scope(source), ids, false).await? {
            recorded.insert((source.to_owned(), event_id), record);
        }
    }
    // Each consumer's day at a place, once: exposures and engagements.
    let mut days: BTreeMap<(String, String, Place), (i64, i64)> = BTreeMap::new();
    let mut new_records = Vec::new();
    let mut results = Vec::with_capacity(checked.len());
    for (index, ok) in checked {
        let interaction = &interactions[*index];
        let request = RequestDigest::of(interaction);
        let key = (interaction.source.clone(), interaction.event_id.clone());
        let result = match idempotency::replay(recorded.get(&key), &request) {
            Replay::Same(response) => pb::InteractionResult {
                outcome: pb::InteractionOutcome::Duplicate.into(),
                ..pb::InteractionResult::decode(response).unwrap_or_default()
            },
            Replay::Conflict { field } => rejected(vec![FieldViolation::new(
                "event_id",
                format!(
                    "was recorded before with another {}",
                    field_name::<pb::Interaction>(field)
                ),
            )]),
            Replay::First => {
                let member_id = members.get(&ok.identity_key).cloned();
                let consumer_id = member_id
                    .clone()
                    .unwrap_or_else(|| anonymous_consumer(&ok.identity_key));
                let counts = days.entry((consumer_id, ok.day.clone(), ok.place.clone())).or_default();
                if ok.exposure {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
                let result = pb::InteractionResult {
                    outcome: pb::InteractionOutcome::Applied.into(),
                    member_id: member_id.unwrap_or_default(),
                    ..Default::default()
                };
                let response = result.encode_to_vec();
                new_records.push(NewRecord {
                    scope: scope(&key.0),
                    key: key.1.clone(),
                    request: request.clone(),
                    response: response.clone(),
                });
                // A second interaction of the batch with the same id is told against this one.
                recorded.insert(key, Record { request, response });
                result
            }
        };
        results.push((*index, result));
    }
    let days: Vec<InteractionDay> = days
        .into_iter()
        .map(|((consumer_id, day, place), (exposures, engagements))| InteractionDay {
            consumer_id,
            day,
            place,
            exposures,
            engagements,
        })
        .collect();
    consumers::add_interactions(&txn, tenant_id, &days).await?;
    let mut writes = Writes::new(&txn);
    idempotency::record(&mut writes, tenant_id, new_records, now);
    writes.execute(&txn).await?;
    let changed = days
        .into_iter()
        .map(|day| (tenant_id.to_owned(), day.consumer_id))
        .collect();
    changes::record(&txn, &changed).await?;
    txn.commit().await?;
    Ok(results)
}
