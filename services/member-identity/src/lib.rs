//! member-identity: tenants and brands, members and their channel identities, merges, erasure,
//! profiles, tags, consent and shopping-guide binding, with an audit trail of every change.

pub mod api;
pub mod domain;
pub mod error;
pub mod migration;
pub mod store;

use std::net::SocketAddr;

use quanyu_proto::identity::v1::member_identity_service_server::MemberIdentityServiceServer;
use quanyu_runtime::auth::Authenticator;
use quanyu_runtime::server::{Service, ServiceContext};
use serde::{Deserialize, Serialize};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            default_region: "CN".into(),
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
    let server = MemberIdentityServiceServer::new(api::MemberIdentityApi::new(db, normaliser))
        .max_decoding_message_size(context.server.max_decode_bytes)
        .max_encoding_message_size(context.server.max_encode_bytes);
    let authenticated =
        tonic::service::interceptor::InterceptedService::new(server, Authenticator::new(context.keys.clone()));
    Ok(Service {
        name: NAME,
        grpc_name: "quanyu.identity.v1.MemberIdentityService",
        routes: tonic::service::Routes::new(authenticated),
    })
}
