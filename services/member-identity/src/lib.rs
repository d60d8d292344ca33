//! member-identity: tenants and brands, members and their channel identities, merges, erasure,
//! profiles, tags, consent and shopping-guide binding, with an audit trail of every change.

pub mod api;
mod convert;
pub mod domain;
pub mod error;
pub mod migration;
pub mod store;

use std::net::SocketAddr;

use quanyu_outbox::subscribe::EventStream;
use quanyu_proto::events::v1::event_stream_service_server::EventStreamServiceServer;
use quanyu_proto::identity::v1::member_identity_service_server::MemberIdentityServiceServer;
use quanyu_runtime::auth::Authenticator;
use quanyu_runtime::server::{Service, ServiceContext};
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;

/// The name of the service, as in `quanyu serve --only member-identity`.
pub const NAME: &str = "member-identity";
/// The name of its database schema (and of `{service}` in the database URL).
pub const SCHEMA: &str = "member_identity";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// ISO 3166-1 region in which phone numbers without a country code are read.
    pub default_region: String,
    pub events: quanyu_outbox::subscribe::StreamConfig,
    pub retention: quanyu_outbox::retention::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            default_region: "CN".into(),
            events: quanyu_outbox::subscribe::StreamConfig::default(),
            retention: quanyu_outbox::retention::RetentionConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("member-identity.default_region: {0}")]
    Region(String),
    #[error("member-identity database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("member-identity: {0}")]
    Setup(#[from] error::IdentityError),
}

/// Connects and migrates the database, makes sure the tenants of the configured keys exist, and
/// returns the service ready to serve.
pub async fn build(config: &Config, context: &ServiceContext) -> Result<Service, BuildError> {
    let normaliser = domain::identity::Normaliser::new(&config.default_region).map_err(BuildError::Region)?;
    let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, SCHEMA).await?;
    store::ensure_tenants(&db, &context.keys.tenants()).await?;
    quanyu_outbox::retention::spawn_pruner(db.clone(), config.retention.clone(), context.shutdown.clone());
    quanyu_outbox::sequencer::spawn_sequencer(db.clone(), context.shutdown.clone());
    let authenticator = Authenticator::new(context.keys.clone());
    let identity = MemberIdentityServiceServer::new(api::MemberIdentityApi::new(db.clone(), normaliser))
        .max_decoding_message_size(context.server.max_decode_bytes)
        .max_encoding_message_size(context.server.max_encode_bytes);
    let events = EventStreamServiceServer::new(EventStream::new(db, config.events.clone()))
        .max_decoding_message_size(context.server.max_decode_bytes)
        .max_encoding_message_size(context.server.max_encode_bytes);
    let routes = tonic::service::Routes::new(InterceptedService::new(identity, authenticator.clone()))
        .add_service(InterceptedService::new(events, authenticator));
    Ok(Service {
        name: NAME,
        grpc_names: vec![
            "quanyu.identity.v1.MemberIdentityService",
            "quanyu.events.v1.EventStreamService",
        ],
        routes,
    })
}
