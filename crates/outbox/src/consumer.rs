//! A consumer of another service's event stream that applies each event exactly once: the effects
//! of the events that arrive together and the new cursor are written in one transaction of the
//! consumer's own database.

use std::time::Duration;

use chrono::Utc;
use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
use quanyu_proto::events::v1::{AcknowledgeRequest, Event, SubscribeRequest, subscribe_response};
use quanyu_runtime::auth::BearerKey;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait};
use tokio_stream::StreamExt as _;

use crate::entity::cursors;

/// What a consumer does with each event, inside the transaction that also moves its cursor.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr>;

    /// Applies a burst of events, in stream order. A handler that can write several events'
    /// effects in one statement overrides it: on SQLite each statement costs a thread hand-off.
    async fn apply_all(&self, txn: &DatabaseTransaction, events: &[Event]) -> Result<(), DbErr> {
        for event in events {
            self.apply(txn, event).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Names the cursor, and registers the consumer with the producer's retention.
    pub name: String,
    /// The producer, e.g. `http://member-identity:50051`.
    pub endpoint: String,
    /// A `service` key (every tenant) or a tenant's key.
    pub api_key: String,
    pub event_types: Vec<String>,
    /// How often the position is acknowledged to the producer.
    pub acknowledge_every: Duration,
    /// Longest pause between reconnection attempts.
    pub max_backoff: Duration,
}

impl ConsumerConfig {
    /// How a service reads another's stream: acknowledged every 5 seconds, reconnecting at most
    /// 10 seconds apart.
    pub fn new(name: &str, endpoint: &str, api_key: &str, event_types: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            api_key: api_key.to_owned(),
            event_types,
            acknowledge_every: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("cannot reach the producer: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("stream failed: {0}")]
    Stream(#[from] tonic::Status),
    #[error("cannot apply an event: {0}")]
    Database(#[from] DbErr),
    #[error("invalid api key: {0}")]
    Key(#[from] tonic::metadata::errors::InvalidMetadataValue),
}

/// Returns how far the consumer has applied its stream.
pub async fn cursor<C: ConnectionTrait>(db: &C, name: &str) -> Result<u64, DbErr> {
    let row = cursors::Entity::find_by_id(name.to_owned()).one(db).await?;
    Ok(row.map_or(0, |row| row.position.unsigned_abs()))
}

/// Moves the cursor forward to `position`; never back, so that an instance that is behind (an old
/// pod beside its replacement) cannot undo what another applied.
async fn store_cursor<C: ConnectionTrait>(db: &C, name: &str, position: u64) -> Result<(), DbErr> {
    let row = cursors::ActiveModel {
        consumer: Set(name.to_owned()),
        position: Set(i64::try_from(position).map_err(|_| DbErr::Custom("position out of range".into()))?),
        updated_at: Set(Utc::now()),
    };
    let stored = sea_orm::sea_query::Expr::col((cursors::Entity, cursors::Column::Position));
    let wanted = i64::try_from(position).map_err(|_| DbErr::Custom("position out of range".into()))?;
    cursors::Entity::insert(row)
        .on_conflict(
            OnConflict::column(cursors::Column::Consumer)
                .update_columns([cursors::Column::Position, cursors::Column::UpdatedAt])
                .action_and_where(sea_orm::sea_query::ExprTrait::lt(stored, wanted))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The most events applied in one transaction.
const MAX_BATCH: usize = 200;
/// How long a batch waits for more events once one has arrived: short, since it delays the
/// first event's effect by as much when the stream is quiet.
const BATCH_WAIT: Duration = Duration::from_millis(2);

pub struct Consumer<H> {
    config: ConsumerConfig,
    db: DatabaseConnection,
    handler: H,
}

impl<H: EventHandler> Consumer<H> {
    pub fn new(config: ConsumerConfig, db: DatabaseConnection, handler: H) -> Self {
        Self { config, db, handler }
    }

    /// Consumes until shutdown, reconnecting with growing pauses whenever the producer is down or
    /// an event cannot be applied (it is retried from the stored cursor).
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let outcome = tokio::select! {
                outcome = self.consume() => outcome,
                () = shutdown.wait() => return,
            };
            match outcome {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(consumer = %self.config.name, %error, ?backoff, "event stream interrupted; reconnecting");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.wait() => return,
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// One connection's worth of consuming; returns when the stream ends or fails.
    async fn consume(&self) -> Result<(), ConsumeError> {
        let name = self.config.name.as_str();
        let mut position = cursor(&self.db, name).await?;
        let channel = tonic::transport::Channel::from_shared(self.config.endpoint.clone())
            .map_err(|error| tonic::Status::invalid_argument(error.to_string()))?
            .connect()
            .await?;
        let mut client = EventStreamServiceClient::with_interceptor(channel, BearerKey::new(&self.config.api_key)?);
        let request = SubscribeRequest {
            after_position: position,
            event_types: self.config.event_types.clone(),
            tenant_id: String::new(),
            consumer: name.to_owned(),
        };
        let stream = client.subscribe(request).await?.into_inner();
        tracing::info!(consumer = name, position, "subscribed");
        let mut acknowledged = position;
        let mut last_ack = tokio::time::Instant::now();
        // Events that arrive together are applied in one transaction: one commit (and one cursor
        // write) for a burst instead of one per event, which is what bounds a consumer's rate.
        let mut batches = std::pin::pin!(stream.chunks_timeout(MAX_BATCH, BATCH_WAIT));
        while let Some(items) = batches.next().await {
            let mut events = Vec::new();
            let mut heartbeat = None;
            for item in items {
                match item?.item {
                    Some(subscribe_response::Item::Event(event)) if event.position > position => events.push(event),
                    Some(subscribe_response::Item::Heartbeat(beat)) => heartbeat = Some(beat.position),
                    // Redelivered after a reconnect: already applied.
                    Some(subscribe_response::Item::Event(_)) | None => {}
                }
            }
            if let Some(last) = events.last() {
                let txn = quanyu_runtime::db::begin_write(&self.db).await?;
                // Read under the consumer's lock (SQLite's write lock is one already): another
                // instance of this consumer may have applied some of the events meanwhile.
                quanyu_runtime::db::lock_keys(&txn, &[format!("consumer:{name}")]).await?;
                let applied = cursor(&txn, name).await?;
                let unapplied = events.partition_point(|event| event.position <= applied);
                self.handler.apply_all(&txn, &events[unapplied..]).await?;
                store_cursor(&txn, name, last.position).await?;
                txn.commit().await?;
                position = last.position;
                let lag = last.occurred_at.map_or(0.0, |at| {
                    (Utc::now().timestamp_millis() - at.seconds * 1000) as f64 / 1000.0
                });
                metrics::gauge!("outbox_consumer_lag_seconds", "consumer" => name.to_owned()).set(lag.max(0.0));
            }
            if let Some(beat) = heartbeat {
                if beat > position {
                    store_cursor(&self.db, name, beat).await?;
                    position = beat;
                }
                metrics::gauge!("outbox_consumer_lag_seconds", "consumer" => name.to_owned()).set(0.0);
            }
            if position > acknowledged && last_ack.elapsed() >= self.config.acknowledge_every {
                client
                    .acknowledge(AcknowledgeRequest {
                        consumer: name.to_owned(),
                        position,
                    })
                    .await?;
                acknowledged = position;
                last_ack = tokio::time::Instant::now();
            }
        }
        Ok(())
    }
}
