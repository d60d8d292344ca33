//! analytics: operating metrics over every channel a brand sells on, kept current from
//! member-identity's and loyalty-points' event streams (never their tables), and what campaigns
//! achieved, from campaign's.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod migration;
pub mod store;

use std::net::SocketAddr;

use quanyu_outbox::consumer::{Consumer, ConsumerConfig};
use quanyu_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use quanyu_runtime::config::Secret;
use quanyu_runtime::server::{Server, ServiceContext};
use quanyu_runtime::service::{BuildError, Declaration, Service};
use serde::{Deserialize, Serialize};

/// The service, as `quanyu` and the testkit list it.
pub struct Analytics;

pub const SERVICE: Declaration<Analytics> = Declaration::new();

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where member-identity's event stream is read (the first URL, if several are listed).
    pub identity_endpoint: String,
    /// Where loyalty-points' event stream is read.
    pub points_endpoint: String,
    /// Where campaign's event stream is read.
    pub campaign_endpoint: String,
    /// A `service` API key both accept.
    pub api_key: Secret,
    /// The time zone whose calendar days windows name, as `+08:00`.
    pub utc_offset: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50054)),
            identity_endpoint: "http://127.0.0.1:50051".into(),
            points_endpoint: "http://127.0.0.1:50052".into(),
            campaign_endpoint: "http://127.0.0.1:50053".into(),
            api_key: Secret::default(),
            utc_offset: "+08:00".into(),
        }
    }
}

impl Service for Analytics {
    const NAME: &'static str = "analytics";
    const SCHEMA: &'static str = "analytics";
    type Config = Config;
    type Migrator = migration::Migrator;

    fn listen(config: &Config) -> SocketAddr {
        config.listen
    }

    /// Connects and migrates the database, starts reading the event streams into facts, and
    /// returns the service ready to serve.
    async fn build(config: &Config, context: &ServiceContext) -> Result<Server, BuildError> {
        let offset = config.utc_offset.parse::<chrono::FixedOffset>().map_err(|error| {
            format!(
                "analytics.utc_offset: {:?} is not an offset such as +08:00: {error}",
                config.utc_offset
            )
        })?;
        let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, Self::SCHEMA).await?;
        let streams = [
            (
                "analytics.identity",
                quanyu_runtime::client::first_endpoint(&config.identity_endpoint),
                app::ingest::identity_event_types(),
            ),
            (
                "analytics.points",
                config.points_endpoint.as_str(),
                app::ingest::points_event_types(),
            ),
            (
                "analytics.campaign",
                quanyu_runtime::client::first_endpoint(&config.campaign_endpoint),
                app::ingest::campaign_event_types(),
            ),
        ];
        for (name, endpoint, event_types) in streams {
            let stream = ConsumerConfig::new(name, endpoint, config.api_key.expose(), event_types);
            let consumer = Consumer::new(stream, db.clone(), app::ingest::Facts { offset });
            tokio::spawn(consumer.run(context.shutdown.clone()));
        }
        let index = app::index::FactIndex::new(db.clone());
        tokio::spawn(index.clone().keep_current(context.shutdown.clone()));
        let analytics =
            AnalyticsServiceServer::new(api::AnalyticsApi::new(db.clone(), index, context.clock.clone(), offset));
        Ok(context
            .server(Self::NAME, &db)
            .mount(quanyu_runtime::limited!(analytics, context))
            .build())
    }
}
