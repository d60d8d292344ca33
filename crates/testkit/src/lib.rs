//! Starts Quanyu services in-process on ephemeral ports, each against a fresh database: a SQLite
//! file in a temporary directory, or a new PostgreSQL database on the server named by
//! `TEST_DATABASE_URL`, else the local one at 127.0.0.1:5432 when it answers, else a private
//! cluster the tests start themselves (installing Debian's `postgresql` when missing, as root).
//!
//! Only when none of these can be had do the PostgreSQL tests pass without running, saying so on
//! stderr; with `TEST_REQUIRE_POSTGRES=1` (set by CI) they fail instead.

pub mod fault;
pub mod points;
mod postgres;
mod private_cluster;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use quanyu_analytics::Analytics;
use quanyu_campaign::Campaign;
use quanyu_loyalty_points::LoyaltyPoints;
use quanyu_member_identity::MemberIdentity;
use quanyu_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use quanyu_proto::campaign::v1::campaign_service_client::CampaignServiceClient;
use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_proto::points::v1::points_service_client::PointsServiceClient;
use quanyu_runtime::auth::{ApiKeyConfig, AuthConfig, BearerKey, KeyRing, Role, digest};
use quanyu_runtime::db::DatabaseConfig;
use quanyu_runtime::server::{Server, ServerConfig, ServiceContext};
use quanyu_runtime::service::{Declared, Service};
use quanyu_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use postgres::TestDatabase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The API keys every suite is started with: two tenants, every role.
pub mod keys {
    pub const ADMIN: &str = "test-admin";
    pub const SERVICE: &str = "test-service";
    pub const ACME_PLATFORM: &str = "test-acme-platform";
    pub const ACME_POS: &str = "test-acme-pos";
    pub const ACME_ANALYST: &str = "test-acme-analyst";
    pub const GLOBEX_PLATFORM: &str = "test-globex-platform";
}

pub const ACME: &str = "acme";
pub const GLOBEX: &str = "globex";

/// The configuration of the test keys in [`keys`].
pub fn auth_config() -> AuthConfig {
    let key = |id: &str, role, tenant: Option<&str>| ApiKeyConfig {
        id: id.to_owned(),
        role,
        tenant: tenant.map(str::to_owned),
        sha256: digest(id),
    };
    AuthConfig {
        api_keys: vec![
            key(keys::ADMIN, Role::Admin, None),
            key(keys::SERVICE, Role::Service, None),
            key(keys::ACME_PLATFORM, Role::Platform, Some(ACME)),
            key(keys::ACME_POS, Role::Pos, Some(ACME)),
            key(keys::ACME_ANALYST, Role::Analyst, Some(ACME)),
            key(keys::GLOBEX_PLATFORM, Role::Platform, Some(GLOBEX)),
        ],
    }
}

pub type PointsClient = PointsServiceClient<InterceptedService<Channel, BearerKey>>;

pub type IdentityClient = MemberIdentityServiceClient<InterceptedService<Channel, BearerKey>>;

pub type AnalyticsClient = AnalyticsServiceClient<InterceptedService<Channel, BearerKey>>;

pub type CampaignClient = CampaignServiceClient<InterceptedService<Channel, BearerKey>>;

/// The whole suite as the tests start it: every service, wired to each other with the test
/// service key, the points sweep every second.
pub type Suite = Sandbox;

/// Services running in-process on ephemeral ports against one fresh database, stopped when
/// dropped.
pub struct Sandbox {
    pub backend: Backend,
    pub context: ServiceContext,
    addresses: HashMap<&'static str, SocketAddr>,
    /// Ports bound for services not started yet, so that services started before them can be
    /// told where they will answer (campaign calls analytics, which reads campaign's stream).
    reserved: HashMap<&'static str, TcpListener>,
    shutdown: Shutdown,
    servers: Vec<JoinHandle<()>>,
    /// The breakable link the services reach PostgreSQL through, when asked for.
    database_link: Option<fault::Link>,
    // Dropped last: the database outlives the servers that use it.
    _database: TestDatabase,
}

/// The services of a sandbox, each with the settings of its configuration section that the
/// sandbox gives it (TOML, where `{member-identity}` stands for that service's address).
pub struct SandboxBuilder {
    backend: Backend,
    services: Vec<(&'static dyn Declared, &'static str)>,
    through_link: bool,
}

impl SandboxBuilder {
    /// Adds a service. Each service added has its port before any starts, so that `{name}` in
    /// settings stands for any of them, whichever starts first.
    pub fn service(mut self, service: &'static dyn Declared, settings: &'static str) -> Self {
        self.services.push((service, settings));
        self
    }

    /// Has the services reach PostgreSQL through a [`fault::Link`] the test can break
    /// ([`Sandbox::database_link`]).
    pub fn database_through_link(mut self) -> Self {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "only PostgreSQL is reached over a network"
        );
        self.through_link = true;
        self
    }

    /// Starts the services; `None` when PostgreSQL is not available (and not required).
    pub async fn start(self) -> Option<Sandbox> {
        let database = TestDatabase::create(self.backend).await?;
        let keys = KeyRing::from_config(&auth_config()).expect("test keys are valid");
        let mut database_config = database.config();
        let mut database_link = None;
        if self.through_link {
            let url = database_config.url.expose().to_owned();
            let upstream = postgres::server_address(&url).expect("a PostgreSQL URL with host and port");
            let link = fault::Link::start(upstream).await;
            let through = url.replacen(&upstream.to_string(), &link.address().to_string(), 1);
            database_config.url = quanyu_runtime::config::SecretUrl::new(through);
            database_link = Some(link);
        }
        let context = ServiceContext {
            database: database_config,
            server: ServerConfig {
                shutdown_grace_secs: 2,
                database_check_interval_ms: 100,
                database_check_timeout_ms: 300,
                ..ServerConfig::default()
            },
            keys: Arc::new(keys),
            shutdown: Shutdown::new(),
            clock: quanyu_runtime::clock::Clock::default(),
        };
        let mut sandbox = Sandbox {
            backend: self.backend,
            shutdown: context.shutdown.clone(),
            context,
            addresses: HashMap::new(),
            reserved: HashMap::new(),
            servers: Vec::new(),
            database_link,
            _database: database,
        };
        for (service, _) in &self.services {
            if !sandbox.addresses.contains_key(service.name()) {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
                let address = listener.local_addr().expect("bound address");
                sandbox.addresses.insert(service.name(), address);
                sandbox.reserved.insert(service.name(), listener);
            }
        }
        for (service, settings) in self.services {
            sandbox.start_another(service, settings).await;
        }
        Some(sandbox)
    }
}

impl Sandbox {
    /// The services to start, on `backend`.
    pub fn builder(backend: Backend) -> SandboxBuilder {
        SandboxBuilder {
            backend,
            services: Vec::new(),
            through_link: false,
        }
    }

    /// Starts `services` with their defaults.
    pub async fn start(backend: Backend, services: &[&'static dyn Declared]) -> Option<Sandbox> {
        let builder = services
            .iter()
            .fold(Self::builder(backend), |builder, service| builder.service(*service, ""));
        builder.start().await
    }

    /// Starts the whole suite ([`Suite`]).
    pub async fn suite(backend: Backend) -> Option<Sandbox> {
        Self::builder(backend)
            .service(&quanyu_member_identity::SERVICE, "")
            .service(&quanyu_loyalty_points::SERVICE, POINTS_SETTINGS)
            .service(&quanyu_campaign::SERVICE, CAMPAIGN_SETTINGS)
            .service(&quanyu_analytics::SERVICE, ANALYTICS_SETTINGS)
            .start()
            .await
    }

    /// Starts one more instance of `service` (a replica, or a service configured by the test)
    /// against the sandbox's database, with `settings` as [`SandboxBuilder::service`] takes
    /// them; it answers at the address returned (and under its name, if none did before).
    pub async fn start_another(&mut self, service: &'static dyn Declared, settings: &str) -> SocketAddr {
        let configured = service
            .configure(Some(self.section(service.schema(), settings)))
            .unwrap_or_else(|error| panic!("{}: invalid sandbox settings: {error}", service.name()));
        let server = configured
            .build(&self.context)
            .await
            .unwrap_or_else(|error| panic!("{} builds: {error}", service.name()));
        let listener = match self.reserved.remove(service.name()) {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port"),
        };
        let (address, handle) = start(server, listener, &self.context);
        self.addresses.entry(service.name()).or_insert(address);
        self.servers.push(handle);
        address
    }

    /// A service's configuration section from its sandbox settings.
    fn section(&self, schema: &str, settings: &str) -> config::Value {
        let settings = self
            .addresses
            .iter()
            .fold(settings.to_owned(), |text, (name, address)| {
                text.replace(&format!("{{{name}}}"), &address.to_string())
            });
        let mut sections = quanyu_runtime::config::Sections::from_toml(&format!("[{schema}]\n{settings}"))
            .unwrap_or_else(|error| panic!("{schema}: sandbox settings are not TOML: {error}"));
        sections
            .take_raw(schema)
            .unwrap_or_else(|| config::Value::new(None, config::Map::<String, config::Value>::new()))
    }

    /// The names of the services running, sorted.
    pub fn running(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.addresses.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Where the service named `name` listens.
    pub fn address(&self, name: &str) -> SocketAddr {
        *self
            .addresses
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not running in this sandbox"))
    }

    /// A channel to the service named `name`.
    pub async fn channel(&self, name: &str) -> Channel {
        Channel::from_shared(format!("http://{}", self.address(name)))
            .expect("valid address")
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{name} accepts no connections: {error}"))
    }

    /// A channel to member-identity.
    pub async fn identity_channel(&self) -> Channel {
        self.channel(MemberIdentity::NAME).await
    }

    /// A member-identity client that calls with `key`.
    pub async fn identity(&self, key: &str) -> IdentityClient {
        let bearer = BearerKey::new(key).expect("test keys are ASCII");
        MemberIdentityServiceClient::with_interceptor(self.identity_channel().await, bearer)
    }

    /// A member-identity client with the service key, acting for `tenant`.
    pub async fn identity_as_service(&self, tenant: &str) -> IdentityClient {
        let bearer = BearerKey::new(keys::SERVICE)
            .and_then(|bearer| bearer.for_tenant(tenant))
            .expect("test keys are ASCII");
        MemberIdentityServiceClient::with_interceptor(self.identity_channel().await, bearer)
    }

    /// A channel to loyalty-points.
    pub async fn points_channel(&self) -> Channel {
        self.channel(LoyaltyPoints::NAME).await
    }

    /// A loyalty-points client that calls with `key`.
    pub async fn points(&self, key: &str) -> PointsClient {
        let bearer = BearerKey::new(key).expect("test keys are ASCII");
        PointsServiceClient::with_interceptor(self.points_channel().await, bearer)
    }

    /// An analytics client that calls with `key`.
    pub async fn analytics(&self, key: &str) -> AnalyticsClient {
        let bearer = BearerKey::new(key).expect("test keys are ASCII");
        AnalyticsServiceClient::with_interceptor(self.channel(Analytics::NAME).await, bearer)
    }

    /// A campaign client that calls with `key`.
    pub async fn campaign(&self, key: &str) -> CampaignClient {
        let bearer = BearerKey::new(key).expect("test keys are ASCII");
        CampaignServiceClient::with_interceptor(self.channel(Campaign::NAME).await, bearer)
    }

    /// A connection to one service's database (`schema`), as the service sees it: for looking
    /// under the API.
    pub async fn database(&self, schema: &str) -> sea_orm::DatabaseConnection {
        let mut options = sea_orm::ConnectOptions::new(self.context.database.url_for(schema));
        options.max_connections(1).sqlx_logging(false);
        if self.backend == Backend::Postgres {
            options.set_schema_search_path(schema);
        }
        sea_orm::Database::connect(options)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to the {schema} database: {error}"))
    }

    /// Triggers graceful shutdown and waits until every server has stopped.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
    }

    /// The link to PostgreSQL, when the sandbox was built
    /// [through one](SandboxBuilder::database_through_link).
    pub fn database_link(&self) -> &fault::Link {
        self.database_link
            .as_ref()
            .expect("the sandbox was built with database_through_link")
    }

    /// The shutdown trigger of the sandbox's servers.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn start(server: Server, listener: TcpListener, context: &ServiceContext) -> (SocketAddr, JoinHandle<()>) {
    let addr = listener.local_addr().expect("bound address");
    let server_config = context.server.clone();
    let shutdown = context.shutdown.clone();
    let name = server.name;
    let handle = tokio::spawn(async move {
        if let Err(error) = quanyu_runtime::server::serve(listener, server, &server_config, shutdown).await {
            panic!("{name} server failed: {error}");
        }
    });
    (addr, handle)
}

/// Writes the database config a test database is reached with.
fn database_config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        url: quanyu_runtime::config::SecretUrl::new(url),
        min_connections: 0,
        ..DatabaseConfig::default()
    }
}

/// The day `days_ago` days before now, as analytics names days in its default time zone.
pub fn analytics_day(days_ago: i64) -> String {
    let offset = quanyu_analytics::Config::default()
        .utc_offset
        .parse()
        .expect("the default offset is valid");
    quanyu_analytics::domain::window::day_of(chrono::Utc::now() - chrono::Duration::days(days_ago), offset)
}

/// Enrols a member with one phone number where `enrollment` says; the member's id.
pub async fn enrol(
    client: &mut IdentityClient,
    phone: &str,
    enrollment: quanyu_proto::identity::v1::Enrollment,
) -> String {
    use quanyu_proto::identity::v1 as pb;
    let enrolled = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![pb::Identity {
                kind: pb::IdentityKind::Phone.into(),
                value: phone.into(),
                namespace: String::new(),
            }],
            enrollment: Some(enrollment),
            ..Default::default()
        })
        .await
        .expect("the member enrols")
        .into_inner();
    enrolled.member.expect("an enrolled member").member_id
}

/// Merges `other` into `survivor`.
pub async fn merge(client: &mut IdentityClient, survivor: &str, other: &str) {
    client
        .merge_members(quanyu_proto::identity::v1::MergeMembersRequest {
            member_id: survivor.to_owned(),
            other_member_id: other.to_owned(),
            survivor_id: survivor.to_owned(),
        })
        .await
        .expect("the members merge");
}

/// loyalty-points' settings in a sandbox: it calls the sandbox's member-identity.
pub const POINTS_SETTINGS: &str = "identity_endpoint = \"http://{member-identity}\"\n\
                                   identity_api_key = \"test-service\"\n\
                                   sweep_interval_secs = 1\n";

/// campaign's settings in a sandbox: it reads the sandbox's member-identity and loyalty-points,
/// asks its analytics, and sweeps every second.
pub const CAMPAIGN_SETTINGS: &str = "identity_endpoint = \"http://{member-identity}\"\n\
                                     points_endpoint = \"http://{loyalty-points}\"\n\
                                     analytics_endpoint = \"http://{analytics}\"\n\
                                     api_key = \"test-service\"\n\
                                     sweep_interval_secs = 1\n";

/// analytics' settings in a sandbox: it reads the sandbox's member-identity, loyalty-points and
/// campaign.
pub const ANALYTICS_SETTINGS: &str = "identity_endpoint = \"http://{member-identity}\"\n\
                                      points_endpoint = \"http://{loyalty-points}\"\n\
                                      campaign_endpoint = \"http://{campaign}\"\n\
                                      api_key = \"test-service\"\n";

/// Stamps each listed `async fn(Suite)` into two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $crate::stamp!($crate::Sandbox::suite; $($name),*);
    };
}

/// Stamps each listed `async fn(TestDatabase)` into two tests, one per backend, for code that
/// needs a fresh database but no running service.
#[macro_export]
macro_rules! database_suite {
    ($($name:ident),* $(,)?) => {
        $crate::stamp!($crate::TestDatabase::create; $($name),*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! stamp {
    ($start:path; $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = $start($crate::Backend::Sqlite).await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = $start($crate::Backend::Postgres).await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
}
