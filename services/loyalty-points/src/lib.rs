//! loyalty-points: one points balance and one tier per member and program, fed by POS and
//! e-commerce sales that retry, arrive late and come twice.

pub mod api;
pub mod app;
mod convert;
pub mod domain;
pub mod error;
mod events;
pub mod migration;
pub mod store;

use std::net::SocketAddr;

use quanyu_proto::points::v1::points_service_server::PointsServiceServer;
use quanyu_runtime::config::Secret;
use quanyu_runtime::server::{Server, ServiceContext};
use quanyu_runtime::service::{BuildError, Declaration, Service};
use serde::{Deserialize, Serialize};

/// The service, as `quanyu` and the testkit list it.
pub struct LoyaltyPoints;

pub const SERVICE: Declaration<LoyaltyPoints> = Declaration::new();

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where member-identity answers, to resolve and enrol buyers: a URL whose host names every
    /// replica (a headless Service), or several URLs separated by commas. Calls are balanced
    /// over every address; the merge events are read from the first URL.
    pub identity_endpoint: String,
    /// How often the names of `identity_endpoint` are resolved again, to follow replicas.
    pub identity_resolve_interval_secs: u64,
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
            identity_resolve_interval_secs: 10,
            identity_api_key: Secret::default(),
            sweep_interval_secs: 30,
            sales_writers: 1,
            batch_writers: 2,
            events: quanyu_outbox::subscribe::StreamConfig::default(),
            retention: quanyu_outbox::retention::RetentionConfig::default(),
        }
    }
}

impl Service for LoyaltyPoints {
    const NAME: &'static str = "loyalty-points";
    const SCHEMA: &'static str = "loyalty_points";
    type Config = Config;
    type Migrator = migration::Migrator;

    fn listen(config: &Config) -> SocketAddr {
        config.listen
    }

    /// Connects and migrates the database, starts the sweep and the merge folding, and returns
    /// the service ready to serve.
    async fn build(config: &Config, context: &ServiceContext) -> Result<Server, BuildError> {
        let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, Self::SCHEMA).await?;
        let channel = quanyu_runtime::client::balanced_channel(
            &config.identity_endpoint,
            std::time::Duration::from_secs(config.identity_resolve_interval_secs.max(1)),
            context.shutdown.clone(),
        )
        .map_err(|error| format!("loyalty_points.identity_endpoint: {error}"))?;
        let identity = app::identity::IdentityClient::new(channel, config.identity_api_key.expose().to_owned());
        let every = std::time::Duration::from_secs(config.sweep_interval_secs.max(1));
        app::sweep::spawn_sweeper(db.clone(), context.clock.clone(), every, context.shutdown.clone());
        let merges = quanyu_outbox::consumer::ConsumerConfig::new(
            "loyalty-points.merges",
            quanyu_runtime::client::first_endpoint(&config.identity_endpoint),
            config.identity_api_key.expose(),
            vec![quanyu_proto::events::event_type_of::<
                quanyu_proto::identity::v1::MembersMerged,
            >()],
        );
        let folder = app::merge::MergeFolder {
            clock: context.clock.clone(),
        };
        let folding = quanyu_outbox::consumer::Consumer::new(merges, db.clone(), folder);
        tokio::spawn(folding.run(context.shutdown.clone()));
        let points = PointsServiceServer::new(api::PointsApi::new(
            db.clone(),
            identity,
            context.clock.clone(),
            config.sales_writers,
            config.batch_writers,
        ));
        let server = context
            .server(Self::NAME, &db)
            .mount(quanyu_runtime::limited!(points, context));
        Ok(quanyu_outbox::serve_events(server, &db, &config.events, &config.retention, context).build())
    }
}
