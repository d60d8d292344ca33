//! campaign: coupon templates and coupons — claimed online, redeemed in the store, never
//! oversold — kept in step with member-identity's merges and loyalty-points' refunds.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
mod events;
pub mod migration;
pub mod store;

use std::net::SocketAddr;
use std::time::Duration;

use quanyu_outbox::consumer::{Consumer, ConsumerConfig};
use quanyu_proto::campaign::v1::campaign_service_server::CampaignServiceServer;
use quanyu_runtime::config::Secret;
use quanyu_runtime::server::{Server, ServiceContext};
use quanyu_runtime::service::{BuildError, Declaration, Service};
use serde::{Deserialize, Serialize};

/// The service, as `quanyu` and the testkit list it.
pub struct Campaign;

pub const SERVICE: Declaration<Campaign> = Declaration::new();

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where member-identity's event stream is read (the first URL, if several are listed).
    pub identity_endpoint: String,
    /// Where loyalty-points' event stream is read.
    pub points_endpoint: String,
    /// A `service` API key both accept.
    pub api_key: Secret,
    pub events: quanyu_outbox::subscribe::StreamConfig,
    pub retention: quanyu_outbox::retention::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50053)),
            identity_endpoint: "http://127.0.0.1:50051".into(),
            points_endpoint: "http://127.0.0.1:50052".into(),
            api_key: Secret::default(),
            events: quanyu_outbox::subscribe::StreamConfig::default(),
            retention: quanyu_outbox::retention::RetentionConfig::default(),
        }
    }
}

impl Service for Campaign {
    const NAME: &'static str = "campaign";
    const SCHEMA: &'static str = "campaign";
    type Config = Config;
    type Migrator = migration::Migrator;

    fn listen(config: &Config) -> SocketAddr {
        config.listen
    }

    /// Connects and migrates the database, starts reading merges and refunds, and returns the
    /// service with its event stream, ready to serve.
    async fn build(config: &Config, context: &ServiceContext) -> Result<Server, BuildError> {
        let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, Self::SCHEMA).await?;
        let streams = [
            (
                "campaign.identity",
                quanyu_runtime::client::first_endpoint(&config.identity_endpoint),
                app::ingest::identity_event_types(),
            ),
            (
                "campaign.points",
                config.points_endpoint.as_str(),
                app::ingest::points_event_types(),
            ),
        ];
        for (name, endpoint, event_types) in streams {
            let stream = ConsumerConfig {
                name: name.into(),
                endpoint: endpoint.to_owned(),
                api_key: config.api_key.expose().to_owned(),
                event_types,
                acknowledge_every: Duration::from_secs(5),
                max_backoff: Duration::from_secs(10),
            };
            let effects = app::ingest::Effects {
                clock: context.clock.clone(),
            };
            tokio::spawn(Consumer::new(stream, db.clone(), effects).run(context.shutdown.clone()));
        }
        let campaign = CampaignServiceServer::new(api::CampaignApi::new(db.clone(), context.clock.clone()));
        let server = context
            .server(Self::NAME, &db)
            .mount(quanyu_runtime::limited!(campaign, context));
        Ok(quanyu_outbox::serve_events(server, &db, &config.events, &config.retention, context).build())
    }
}
