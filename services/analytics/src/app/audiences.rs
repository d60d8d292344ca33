//! Audiences: rules checked, counted and listed as of today; saved by name.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use quanyu_proto::analytics::v1::audience_selector::Audience as Selected;
use quanyu_runtime::db::{begin_read, begin_write};
use quanyu_runtime::error::{FieldViolation, quote};
use sea_orm::DatabaseConnection;

use crate::domain::audience::{Rule, parse};
use crate::error::AnalyticsError;
use crate::store::audiences::{self, AsOf, Saved};

/// The rule an audience selector names: its own, or a saved audience's. `field` names the
/// selector in violations.
pub async fn rule_of(
    db: &DatabaseConnection,
    tenant_id: &str,
    selected: Option<&Selected>,
    field: &str,
) -> Result<Rule, AnalyticsError> {
    match selected {
        Some(Selected::Rule(rule)) => Ok(parse(&format!("{field}.rule"), rule)?),
        Some(Selected::Name(name)) => {
            let saved = audiences::find(db, tenant_id, name)
                .await?
                .ok_or_else(|| AnalyticsError::NotFound(format!("no audience is saved as {}", quote(name))))?;
            Ok(parse(&format!("{field}.name"), &saved.rule)?)
        }
        None => Err(FieldViolation::new(field, "name a rule or a saved audience").into()),
    }
}

/// Today in `offset`, the day audiences are read as of.
pub fn today(now: DateTime<Utc>, offset: FixedOffset) -> NaiveDate {
    now.with_timezone(&offset).date_naive()
}

pub async fn count(db: &DatabaseConnection, rule: &Rule, as_of: &AsOf) -> Result<i64, AnalyticsError> {
    let txn = begin_read(db).await?;
    let members = audiences::count(&txn, rule, as_of).await?;
    txn.commit().await?;
    Ok(members)
}

/// The most members one MatchAudience asks about.
pub const MAX_MATCHED: usize = 1_000;

/// Those of `member_ids` (1 to [`MAX_MATCHED`]) that `rule` selects, in the order asked.
pub async fn matching(
    db: &DatabaseConnection,
    rule: &Rule,
    as_of: &AsOf,
    member_ids: &[String],
) -> Result<Vec<String>, AnalyticsError> {
    if member_ids.is_empty() || member_ids.len() > MAX_MATCHED {
        let why = format!("must list 1-{MAX_MATCHED} members");
        return Err(FieldViolation::new("member_ids", why).into());
    }
    let txn = begin_read(db).await?;
    let selected = audiences::matching(&txn, rule, as_of, member_ids).await?;
    txn.commit().await?;
    let selected: std::collections::HashSet<String> = selected.into_iter().collect();
    Ok(member_ids
        .iter()
        .filter(|member_id| selected.contains(*member_id))
        .cloned()
        .collect())
}

/// A name an audience may be saved under.
fn check_name(name: &str) -> Result<(), FieldViolation> {
    let well_formed = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if well_formed {
        Ok(())
    } else {
        Err(FieldViolation::new(
            "name",
            "must be 1-64 letters, digits, '-', '_' and '.'",
        ))
    }
}

/// Saves a rule (checked first) under a name; the audience, and whether it is new.
pub async fn save(
    db: &DatabaseConnection,
    tenant_id: &str,
    (name, rule): (&str, &str),
    at: DateTime<Utc>,
) -> Result<(Saved, bool), AnalyticsError> {
    let mut violations = Vec::new();
    violations.extend(check_name(name).err());
    violations.extend(parse("rule", rule).err());
    if !violations.is_empty() {
        return Err(violations.into());
    }
    let txn = begin_write(db).await?;
    let saved = audiences::save(&txn, tenant_id, (name, rule), at).await?;
    txn.commit().await?;
    Ok(saved)
}

pub async fn list(
    db: &DatabaseConnection,
    tenant_id: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<Saved>, AnalyticsError> {
    Ok(audiences::list(db, tenant_id, after, limit).await?)
}

pub async fn delete(db: &DatabaseConnection, tenant_id: &str, name: &str) -> Result<(), AnalyticsError> {
    let txn = begin_write(db).await?;
    let deleted = audiences::delete(&txn, tenant_id, name).await?;
    txn.commit().await?;
    if deleted {
        Ok(())
    } else {
        Err(AnalyticsError::NotFound(format!(
            "no audience is saved as {}",
            quote(name)
        )))
    }
}

/// Sends the members `rule` selects after `after`, `batch` at a time, until there are no more or
/// the receiver hangs up. Each batch is read in a transaction of its own.
pub async fn drain(
    db: DatabaseConnection,
    rule: Rule,
    as_of: AsOf,
    mut after: String,
    batch: u64,
    outgoing: tokio::sync::mpsc::Sender<Result<Vec<String>, AnalyticsError>>,
) {
    loop {
        let read = async {
            let txn = begin_read(&db).await?;
            let members = audiences::members(&txn, &rule, &as_of, &after, batch).await?;
            txn.commit().await?;
            Ok::<_, AnalyticsError>(members)
        };
        let members = match read.await {
            Ok(members) => members,
            Err(error) => {
                let _ = outgoing.send(Err(error)).await;
                return;
            }
        };
        let Some(last) = members.last() else {
            return;
        };
        after.clone_from(last);
        let full = members.len() as u64 == batch;
        if outgoing.send(Ok(members)).await.is_err() || !full {
            return;
        }
    }
}
