//! member-identity: tenants and brands, members and their channel identities, merges, erasure,
//! profiles, tags, consent and shopping-guide binding, with an audit trail of every change.

pub mod api;
pub mod app;
mod convert;
pub mod domain;
pub mod error;
mod events;
pub mod migration;
pub mod store;

use std::net::SocketAddr;

use quanyu_proto::identity::v1::member_identity_service_server::MemberIdentityServiceServer;
use quanyu_runtime::server::{Server, ServiceContext};
use quanyu_runtime::service::{BuildError, Declaration, Service};
use serde::{Deserialize, Serialize};

/// The service, as `quanyu` and the testkit list it.
pub struct MemberIdentity;

pub const SERVICE: Declaration<MemberIdentity> = Declaration::new();

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

impl Service for MemberIdentity {
    const NAME: &'static str = "member-identity";
    const SCHEMA: &'static str = "member_identity";
    type Config = Config;
    type Migrator = migration::Migrator;

    fn listen(config: &Config) -> SocketAddr {
        config.listen
    }

    /// Connects and migrates the database, makes sure the tenants of the configured keys exist,
    /// and returns the service ready to serve.
    async fn build(config: &Config, context: &ServiceContext) -> Result<Server, BuildError> {
        let normaliser = domain::identity::Normaliser::new(&config.default_region)
            .map_err(|error| format!("member_identity.default_region: {error}"))?;
        let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, Self::SCHEMA).await?;
        app::tenant::ensure_tenants(&db, &context.keys.tenants(), context.clock.now()).await?;
        let identity = MemberIdentityServiceServer::new(api::MemberIdentityApi::new(
            db.clone(),
            normaliser,
            context.clock.clone(),
        ));
        let server = context
            .server(Self::NAME, &db)
            .mount(quanyu_runtime::limited!(identity, context));
        Ok(quanyu_outbox::serve_events(server, &db, &config.events, &config.retention, context).build())
    }
}
