//! Pruning the outbox: events older than the retention go once every registered consumer has
//! acknowledged them, and unconditionally once older than the maximum retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::entity::{consumers, events};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events older than this go once every registered consumer has passed them.
    pub retention_hours: u64,
    /// Events older than this go even if a registered consumer has not passed them.
    pub max_retention_hours: u64,
    pub prune_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            retention_hours: 24 * 7,
            max_retention_hours: 24 * 30,
            prune_interval_secs: 300,
        }
    }
}

fn hours_before(now: DateTime<Utc>, hours: u64) -> DateTime<Utc> {
    let hours = i64::try_from(hours).unwrap_or(i64::MAX / 3600);
    now - chrono::Duration::hours(hours)
}

/// Deletes what the retention allows at `now`; returns how many events went.
pub async fn prune(db: &DatabaseConnection, config: &RetentionConfig, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let slowest: Option<Option<i64>> = consumers::Entity::find()
        .select_only()
        .column_as(consumers::Column::Position.min(), "slowest")
        .into_tuple()
        .one(db)
        .await?;
    let mut expired = Condition::all().add(events::Column::OccurredAt.lt(hours_before(now, config.retention_hours)));
    if let Some(slowest) = slowest.flatten() {
        expired = expired.add(events::Column::Position.lte(slowest));
    }
    let too_old = events::Column::OccurredAt.lt(hours_before(now, config.max_retention_hours));
    let deleted = events::Entity::delete_many()
        .filter(Condition::any().add(expired).add(too_old))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// Prunes every `prune_interval_secs` until shutdown.
pub fn spawn_pruner(db: DatabaseConnection, config: RetentionConfig, shutdown: Shutdown) {
    tokio::spawn(async move {
        let every = Duration::from_secs(config.prune_interval_secs.max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => return,
            }
            match prune(&db, &config, Utc::now()).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "outbox pruned"),
                Err(error) => tracing::warn!(%error, "outbox pruning failed; will retry"),
            }
        }
    });
}
