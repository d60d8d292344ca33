//! The `EventStreamService`: streams a service's outbox to its subscribers.

use std::time::Duration;

use chrono::Utc;
use quanyu_proto::events::v1::event_stream_service_server::EventStreamService;
use quanyu_proto::events::v1::{
    AcknowledgeRequest, AcknowledgeResponse, Heartbeat, SubscribeRequest, SubscribeResponse, subscribe_response,
};
use quanyu_runtime::auth::{ReadScope, authorize_reader};
use quanyu_runtime::error::{FieldViolation, ServiceError, Violations, describe, into_status};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::entity::{consumers, events};
use crate::writer::decode;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// How often an idle subscription looks for new events.
    pub poll_interval_ms: u64,
    /// How often an idle subscription sends a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Events read per query.
    pub batch_size: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 50,
            heartbeat_interval_ms: 5_000,
            batch_size: 1_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{}", describe(.0))]
    InvalidInput(Vec<FieldViolation>),
    #[error("a {role} key may only read its own tenant's events")]
    OtherTenant { role: &'static str },
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl ServiceError for StreamError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidInput(_) => Code::InvalidArgument,
            Self::OtherTenant { .. } => Code::PermissionDenied,
            Self::Database(_) => Code::Internal,
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidInput(violations) => violations,
            _ => &[],
        }
    }
}

impl From<StreamError> for Status {
    fn from(error: StreamError) -> Self {
        into_status(&error)
    }
}

/// Serves one service's outbox.
pub struct EventStream {
    db: DatabaseConnection,
    config: StreamConfig,
}

impl EventStream {
    pub fn new(db: DatabaseConnection, config: StreamConfig) -> Self {
        Self { db, config }
    }
}

/// What one subscription reads.
#[derive(Debug, Clone)]
struct Subscription {
    after: i64,
    event_types: Vec<String>,
    tenant: Option<String>,
}

fn consumer_name(name: &str) -> Result<(), FieldViolation> {
    let well_formed = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if well_formed {
        Ok(())
    } else {
        Err(FieldViolation::new(
            "consumer",
            "must be 1-64 characters of [a-z0-9_.-]",
        ))
    }
}

fn position(field: &str, value: u64) -> Result<i64, FieldViolation> {
    i64::try_from(value).map_err(|_| FieldViolation::new(field, "is beyond the stream"))
}

/// Narrows the requested tenant to what the caller may read.
fn tenant_of(scope: ReadScope, requested: &str) -> Result<Option<String>, StreamError> {
    match scope {
        ReadScope::AllTenants if requested.is_empty() => Ok(None),
        ReadScope::AllTenants => Ok(Some(requested.to_owned())),
        ReadScope::Tenant(own) if requested.is_empty() || requested == own.as_ref() => Ok(Some(own.to_string())),
        ReadScope::Tenant(_) => Err(StreamError::OtherTenant { role: "tenant" }),
    }
}

async fn register(db: &DatabaseConnection, name: &str, at: i64) -> Result<(), DbErr> {
    let row = consumers::ActiveModel {
        name: Set(name.to_owned()),
        position: Set(at),
        updated_at: Set(Utc::now()),
    };
    consumers::Entity::insert(row)
        .on_conflict(
            OnConflict::column(consumers::Column::Name)
                .update_columns([consumers::Column::Position, consumers::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The highest committed position; every position up to it is committed too.
async fn head(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let head: Option<Option<i64>> = events::Entity::find()
        .select_only()
        .column_as(events::Column::Position.max(), "head")
        .into_tuple()
        .one(db)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}

async fn batch(
    db: &DatabaseConnection,
    subscription: &Subscription,
    up_to: i64,
    limit: u64,
) -> Result<Vec<events::Model>, DbErr> {
    let mut query = events::Entity::find()
        .filter(events::Column::Position.gt(subscription.after))
        .filter(events::Column::Position.lte(up_to));
    if let Some(tenant) = &subscription.tenant {
        query = query.filter(events::Column::TenantId.eq(tenant.as_str()));
    }
    if !subscription.event_types.is_empty() {
        query = query.filter(events::Column::EventType.is_in(subscription.event_types.clone()));
    }
    query.order_by_asc(events::Column::Position).limit(limit).all(db).await
}

type Outgoing = mpsc::Sender<Result<SubscribeResponse, Status>>;

/// Feeds one subscriber until it goes away: backlog first, then new events as they commit.
async fn pump(db: DatabaseConnection, config: StreamConfig, mut subscription: Subscription, outgoing: Outgoing) {
    let poll = Duration::from_millis(config.poll_interval_ms);
    let heartbeat_every = Duration::from_millis(config.heartbeat_interval_ms);
    // The first time the subscription catches up it says so at once.
    let mut last_sent = tokio::time::Instant::now()
        .checked_sub(heartbeat_every)
        .unwrap_or_else(tokio::time::Instant::now);
    loop {
        // Read the head first: every event up to it is committed, so once the batch below is
        // exhausted the subscription has seen everything it matches up to the head.
        let step = async {
            // Number what has committed, so the subscription need not wait for the sequencer.
            if let Err(error) = crate::sequencer::sequence(&db).await {
                tracing::warn!(%error, "outbox sequencing failed; reading what is numbered");
            }
            let up_to = head(&db).await?;
            let rows = batch(&db, &subscription, up_to, config.batch_size).await?;
            Ok::<_, DbErr>((up_to, rows))
        };
        let (up_to, rows) = match step.await {
            Ok(step) => step,
            Err(error) => {
                tracing::error!(%error, "event stream read failed");
                let _ = outgoing
                    .send(Err(Status::unavailable("event stream interrupted; resubscribe")))
                    .await;
                return;
            }
        };
        let full = rows.len() as u64 == config.batch_size;
        for row in rows {
            let position = row.position;
            let event = match decode(row) {
                Ok(event) => event,
                Err(error) => {
                    tracing::error!(%error, position, "skipping an undecodable event");
                    continue;
                }
            };
            let item = subscribe_response::Item::Event(event);
            if outgoing.send(Ok(SubscribeResponse { item: Some(item) })).await.is_err() {
                return;
            }
            subscription.after = position;
            last_sent = tokio::time::Instant::now();
        }
        if full {
            continue;
        }
        let caught_up = subscription.after < up_to;
        subscription.after = subscription.after.max(up_to);
        if caught_up || last_sent.elapsed() >= heartbeat_every {
            let heartbeat = Heartbeat {
                position: subscription.after.unsigned_abs(),
                sent_at: Some(prost_types::Timestamp {
                    seconds: Utc::now().timestamp(),
                    nanos: 0,
                }),
            };
            let item = subscribe_response::Item::Heartbeat(heartbeat);
            if outgoing.send(Ok(SubscribeResponse { item: Some(item) })).await.is_err() {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = outgoing.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl EventStreamService for EventStream {
    type SubscribeStream = ReceiverStream<Result<SubscribeResponse, Status>>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let scope = authorize_reader(&request).map_err(Status::from)?;
        let input = request.into_inner();
        let mut violations = Violations::default();
        let after = violations.check(position("after_position", input.after_position));
        if !input.consumer.is_empty() {
            violations.check(consumer_name(&input.consumer));
        }
        violations.into_result().map_err(StreamError::InvalidInput)?;
        let after = after.unwrap_or_default();
        let tenant = tenant_of(scope, &input.tenant_id)?;
        if !input.consumer.is_empty() {
            register(&self.db, &input.consumer, after)
                .await
                .map_err(StreamError::from)?;
        }
        let subscription = Subscription {
            after,
            event_types: input.event_types,
            tenant,
        };
        let (outgoing, incoming) = mpsc::channel(256);
        tokio::spawn(pump(self.db.clone(), self.config.clone(), subscription, outgoing));
        Ok(Response::new(ReceiverStream::new(incoming)))
    }

    async fn acknowledge(&self, request: Request<AcknowledgeRequest>) -> Result<Response<AcknowledgeResponse>, Status> {
        authorize_reader(&request).map_err(Status::from)?;
        let input = request.into_inner();
        let mut violations = Violations::default();
        violations.check(consumer_name(&input.consumer));
        let at = violations.check(position("position", input.position));
        violations.into_result().map_err(StreamError::InvalidInput)?;
        register(&self.db, &input.consumer, at.unwrap_or_default())
            .await
            .map_err(StreamError::from)?;
        Ok(Response::new(AcknowledgeResponse {}))
    }
}
