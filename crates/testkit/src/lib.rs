//! Starts Quanyu services in-process on ephemeral ports, each against a fresh database: a SQLite
//! file in a temporary directory, or a new PostgreSQL database on the server named by
//! `TEST_DATABASE_URL` (else the local one at 127.0.0.1:5432, when it answers).
//!
//! When no PostgreSQL can be found the PostgreSQL tests pass without running and say so once on
//! stderr; with `TEST_REQUIRE_POSTGRES=1` (set by CI) they fail instead.

mod postgres;

use std::net::SocketAddr;
use std::sync::Arc;

use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_proto::points::v1::points_service_client::PointsServiceClient;
use quanyu_runtime::auth::{ApiKeyConfig, AuthConfig, BearerKey, KeyRing, Role, digest};
use quanyu_runtime::db::DatabaseConfig;
use quanyu_runtime::server::{ServerConfig, Service, ServiceContext};
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

/// Running services, stopped when dropped.
pub struct Suite {
    pub backend: Backend,
    pub identity_addr: SocketAddr,
    pub points_addr: SocketAddr,
    pub context: ServiceContext,
    shutdown: Shutdown,
    servers: Vec<JoinHandle<()>>,
    // Dropped last: the database outlives the servers that use it.
    _database: TestDatabase,
}

impl Suite {
    /// Starts every service on `backend`; `None` when PostgreSQL is not available (and not
    /// required).
    pub async fn start(backend: Backend) -> Option<Suite> {
        let database = TestDatabase::create(backend).await?;
        let keys = KeyRing::from_config(&auth_config()).expect("test keys are valid");
        let context = ServiceContext {
            database: database.config(),
            server: ServerConfig {
                shutdown_grace_secs: 2,
                ..ServerConfig::default()
            },
            keys: Arc::new(keys),
            shutdown: Shutdown::new(),
            clock: quanyu_runtime::clock::Clock::default(),
        };
        let shutdown = context.shutdown.clone();
        let identity = quanyu_member_identity::build(&quanyu_member_identity::Config::default(), &context)
            .await
            .expect("member-identity builds");
        let (identity_addr, identity_server) = start(identity, &context, &shutdown).await;
        let points_config = quanyu_loyalty_points::Config {
            identity_endpoint: format!("http://{identity_addr}"),
            identity_api_key: quanyu_runtime::config::Secret::new(keys::SERVICE),
            sweep_interval_secs: 1,
            ..quanyu_loyalty_points::Config::default()
        };
        let points = quanyu_loyalty_points::build(&points_config, &context)
            .await
            .expect("loyalty-points builds");
        let (points_addr, points_server) = start(points, &context, &shutdown).await;
        Some(Suite {
            backend,
            identity_addr,
            points_addr,
            context,
            shutdown,
            servers: vec![identity_server, points_server],
            _database: database,
        })
    }

    /// A channel to member-identity.
    pub async fn identity_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.identity_addr))
            .expect("valid address")
            .connect()
            .await
            .expect("member-identity accepts connections")
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
        Channel::from_shared(format!("http://{}", self.points_addr))
            .expect("valid address")
            .connect()
            .await
            .expect("loyalty-points accepts connections")
    }

    /// A loyalty-points client that calls with `key`.
    pub async fn points(&self, key: &str) -> PointsClient {
        let bearer = BearerKey::new(key).expect("test keys are ASCII");
        PointsServiceClient::with_interceptor(self.points_channel().await, bearer)
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

    /// The shutdown trigger of the suite's servers.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(service: Service, context: &ServiceContext, shutdown: &Shutdown) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("bound address");
    let server_config = context.server.clone();
    let shutdown = shutdown.clone();
    let name = service.name;
    let server = tokio::spawn(async move {
        if let Err(error) = quanyu_runtime::server::serve(listener, service, &server_config, shutdown).await {
            panic!("{name} server failed: {error}");
        }
    });
    (addr, server)
}

/// Writes the database config a test database is reached with.
fn database_config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        url: quanyu_runtime::config::Secret::new(url),
        max_connections: 5,
        min_connections: 0,
        ..DatabaseConfig::default()
    }
}

/// Stamps each listed `async fn(Suite)` into two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $crate::stamp!($crate::Suite::start; $($name),*);
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
