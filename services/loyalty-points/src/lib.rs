//! loyalty-points: one points balance and one tier per member and program, fed by POS and
//! e-commerce sales that retry, arrive late and come twice.

pub mod api;
pub mod domain;
pub mod error;
pub mod merge;
pub mod migration;
pub mod program;
pub mod sales_writer;
pub mod store;

use std::net::SocketAddr;

use quanyu_outbox::subscribe::EventStream;
use quanyu_proto::events::v1::event_stream_service_server::EventStreamServiceServer;
use quanyu_proto::points::v1::points_service_server::PointsServiceServer;
use quanyu_runtime::auth::Authenticator;
use quanyu_runtime::config::Secret;
use quanyu_runtime::server::{Service, ServiceContext};
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;

/// The name of the service, as in `quanyu serve --only loyalty-points`.
pub const NAME: &str = "loyalty-points";
/// The name of its database schema (and of `{service}` in the database URL).
pub const SCHEMA: &str = "loyalty_points";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where member-identity answers, to resolve and enrol buyers.
    pub identity_endpoint: String,
    /// A `service` API key accepted by member-identity.
    pub identity_api_key: Secret,
    /// How often due lots are expired and lapsed holds released on accounts nobody touches.
    pub sweep_interval_secs: u64,
    /// How many transactions write small calls' sales at once; calls arriving meanwhile share
    /// the next one.
    pub sales_writers: usize,
    /// How many calls of more than 64 sales are written at once, each in its own transaction
    /// beside the shared ones; more wait their turn.
    pub batch_writers: usize,
    pub events: quanyu_outbox::subscribe::StreamConfig,
    pub retention: quanyu_outbox::retention::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            identity_endpoint: "http://127.0.0.1:50051".into(),
            identity_api_key: Secret::default(),
            sweep_interval_secs: 30,
            sales_writers: 1,
            batch_writers: 2,
            events: quanyu_outbox::subscribe::StreamConfig::default(),
            retention: quanyu_outbox::retention::RetentionConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("loyalty-points database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("loyalty-points.identity_endpoint: {0}")]
    Endpoint(String),
}

/// Connects and migrates the database and returns the service ready to serve.
pub async fn build(config: &Config, context: &ServiceContext) -> Result<Service, BuildError> {
    let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, SCHEMA).await?;
    let channel = tonic::transport::Channel::from_shared(config.identity_endpoint.clone())
        .map_err(|error| BuildError::Endpoint(error.to_string()))?
        .connect_lazy();
    let identity = api::IdentityClient::new(channel, config.identity_api_key.expose().to_owned());
    let every = std::time::Duration::from_secs(config.sweep_interval_secs.max(1));
    store::sweep::spawn_sweeper(db.clone(), context.clock.clone(), every, context.shutdown.clone());
    quanyu_outbox::retention::spawn_pruner(db.clone(), config.retention.clone(), context.shutdown.clone());
    quanyu_outbox::sequencer::spawn_sequencer(db.clone(), context.shutdown.clone());
    let merges = quanyu_outbox::consumer::ConsumerConfig {
        name: "loyalty-points.merges".into(),
        endpoint: config.identity_endpoint.clone(),
        api_key: config.identity_api_key.expose().to_owned(),
        event_types: vec!["identity.MembersMerged".into()],
        acknowledge_every: std::time::Duration::from_secs(5),
        max_backoff: std::time::Duration::from_secs(10),
    };
    let folding = quanyu_outbox::consumer::Consumer::new(
        merges,
        db.clone(),
        merge::MergeFolder {
            clock: context.clock.clone(),
        },
    );
    tokio::spawn(folding.run(context.shutdown.clone()));
    let authenticator = Authenticator::new(context.keys.clone());
    let points = PointsServiceServer::new(api::PointsApi::new(
        db.clone(),
        identity,
        context.clock.clone(),
        config.sales_writers,
        config.batch_writers,
    ))
    .max_decoding_message_size(context.server.max_decode_bytes)
    .max_encoding_message_size(context.server.max_encode_bytes);
    let events = EventStreamServiceServer::new(EventStream::new(db, config.events.clone()))
        .max_decoding_message_size(context.server.max_decode_bytes)
        .max_encoding_message_size(context.server.max_encode_bytes);
    let routes = tonic::service::Routes::new(InterceptedService::new(points, authenticator.clone()))
        .add_service(InterceptedService::new(events, authenticator));
    Ok(Service {
        name: NAME,
        grpc_names: vec!["quanyu.points.v1.PointsService", "quanyu.events.v1.EventStreamService"],
        routes,
    })
}
