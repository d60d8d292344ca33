//! campaign: campaigns that reward enrolments, purchases and tiers with points and coupons, and
//! coupons — claimed online, redeemed in the store, never oversold — kept in step with
//! member-identity's merges and loyalty-points' refunds.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
mod events;
pub mod migration;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Where loyalty-points answers (campaigns' points are granted there) and its event stream
    /// is read (from the first URL): a URL whose host names every replica, or several URLs
    /// separated by commas.
    pub points_endpoint: String,
    /// How often the names of `points_endpoint` and `analytics_endpoint` are resolved again, to
    /// follow replicas.
    pub points_resolve_interval_secs: u64,
    /// Where analytics answers: audiences are read there.
    pub analytics_endpoint: String,
    /// A `service` API key the other services accept.
    pub api_key: Secret,
    /// The key of the hashes campaign keeps of members' identities (to know a person referred
    /// before, erased or merged and enrolled again). Set it once and keep it: hashes under
    /// another key match nothing. Empty: the `api_key`.
    pub identity_hash_key: Secret,
    /// How often scheduled campaigns whose window opened are looked for (CampaignStarted),
    /// birthdays are celebrated and drops not done are run.
    pub sweep_interval_secs: u64,
    pub events: quanyu_outbox::subscribe::StreamConfig,
    pub retention: quanyu_outbox::retention::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50053)),
            identity_endpoint: "http://127.0.0.1:50051".into(),
            points_endpoint: "http://127.0.0.1:50052".into(),
            points_resolve_interval_secs: 10,
            analytics_endpoint: "http://127.0.0.1:50054".into(),
            api_key: Secret::default(),
            identity_hash_key: Secret::default(),
            sweep_interval_secs: 5,
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

    /// Connects and migrates the database, starts reading the events campaigns reward (and
    /// merges and refunds), running drops and sending points grants, and returns the service
    /// with its event stream, ready to serve.
    async fn build(config: &Config, context: &ServiceContext) -> Result<Server, BuildError> {
        let db = quanyu_runtime::db::connect::<migration::Migrator>(&context.database, Self::SCHEMA).await?;
        let resolve_every = Duration::from_secs(config.points_resolve_interval_secs.max(1));
        let analytics = quanyu_runtime::client::balanced_channel(
            &config.analytics_endpoint,
            resolve_every,
            context.shutdown.clone(),
        )
        .map_err(|error| format!("campaign.analytics_endpoint: {error}"))?;
        let audiences: Arc<dyn app::audiences::AudienceSource> = Arc::new(app::audiences::Analytics {
            channel: analytics,
            service_key: config.api_key.expose().to_owned(),
        });
        let streams = [
            (
                "campaign.identity",
                quanyu_runtime::client::first_endpoint(&config.identity_endpoint),
                app::ingest::identity_event_types(),
            ),
            (
                "campaign.points",
                quanyu_runtime::client::first_endpoint(&config.points_endpoint),
                app::ingest::points_event_types(),
            ),
        ];
        let identity_hash_key = match config.identity_hash_key.expose() {
            "" => config.api_key.expose(),
            key => key,
        };
        for (name, endpoint, event_types) in streams {
            let stream = ConsumerConfig::new(name, endpoint, config.api_key.expose(), event_types);
            let effects = app::ingest::Effects {
                clock: context.clock.clone(),
                audiences: audiences.clone(),
                identity_hash_key: identity_hash_key.to_owned(),
            };
            tokio::spawn(Consumer::new(stream, db.clone(), effects).run(context.shutdown.clone()));
        }
        let points =
            quanyu_runtime::client::balanced_channel(&config.points_endpoint, resolve_every, context.shutdown.clone())
                .map_err(|error| format!("campaign.points_endpoint: {error}"))?;
        let every = Duration::from_secs(config.sweep_interval_secs.max(1));
        let sweep = (db.clone(), audiences.clone());
        app::campaigns::spawn_sweep(sweep, context.clock.clone(), every, context.shutdown.clone());
        let (clock, shutdown) = (context.clock.clone(), context.shutdown.clone());
        app::drops::spawn_runner(db.clone(), audiences.clone(), clock, every, shutdown);
        app::rewards::spawn_granter(
            db.clone(),
            points,
            config.api_key.expose().to_owned(),
            context.shutdown.clone(),
        );
        let campaign = CampaignServiceServer::new(api::CampaignApi::new(db.clone(), context.clock.clone(), audiences));
        let server = context
            .server(Self::NAME, &db)
            .mount(quanyu_runtime::limited!(campaign, context));
        Ok(quanyu_outbox::serve_events(server, &db, &config.events, &config.retention, context).build())
    }
}
