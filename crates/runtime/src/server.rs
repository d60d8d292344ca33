//! The gRPC server every service runs on: health (liveness, and readiness that follows the
//! database), reflection, per-RPC spans that continue the caller's trace, Prometheus metrics,
//! deadlines, request size limits, concurrency limits with load shedding, and graceful shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::auth::Authenticator;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Deadline for calls that bring none (a caller's shorter `grpc-timeout` wins).
    pub request_timeout_secs: u64,
    pub concurrency_limit_per_connection: usize,
    /// Requests in flight across all connections; beyond it new ones are shed with UNAVAILABLE.
    pub max_in_flight_requests: usize,
    pub max_decode_bytes: usize,
    pub max_encode_bytes: usize,
    /// How long health reports NOT_SERVING before the listener closes, so that load balancers
    /// stop routing here first.
    pub drain_delay_ms: u64,
    /// How long in-flight calls may take to finish after the listener closes; streams still
    /// open then (a health watch, say) are cut.
    pub shutdown_grace_secs: u64,
    /// How often readiness checks that the database answers, and how long it may take to.
    pub database_check_interval_ms: u64,
    pub database_check_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            concurrency_limit_per_connection: 64,
            max_in_flight_requests: 1024,
            max_decode_bytes: 4 * 1024 * 1024,
            max_encode_bytes: 16 * 1024 * 1024,
            drain_delay_ms: 0,
            shutdown_grace_secs: 10,
            database_check_interval_ms: 1000,
            database_check_timeout_ms: 1000,
        }
    }
}

/// One service, ready to be served: built with [`ServiceContext::server`].
pub struct Server {
    /// Short name, as in `quanyu serve --only member-identity`.
    pub name: &'static str,
    /// Full names of the gRPC services it serves: reported by health, listed by reflection.
    pub grpc_names: Vec<&'static str>,
    pub routes: Routes,
    /// The service's database: while it does not answer, the server reports itself not ready.
    pub database: DatabaseConnection,
}

/// Mounts a service's gRPC services behind the API-key authenticator; health and reflection are
/// added when it is served.
pub struct ServerBuilder {
    name: &'static str,
    authenticator: Authenticator,
    grpc_names: Vec<&'static str>,
    routes: Routes,
    database: DatabaseConnection,
}

impl ServerBuilder {
    /// Adds a generated gRPC server (`FooServiceServer::new(api)`): the configured message size
    /// limits are applied by [`limited`](crate::limited) before it comes here.
    pub fn mount<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.grpc_names.push(S::NAME);
        self.routes = self
            .routes
            .add_service(InterceptedService::new(service, self.authenticator.clone()));
        self
    }

    pub fn build(self) -> Server {
        Server {
            name: self.name,
            grpc_names: self.grpc_names,
            routes: self.routes,
            database: self.database,
        }
    }
}

/// A generated gRPC server with the configured message size limits (`ServerConfig`); generated
/// servers share no trait to set them through.
#[macro_export]
macro_rules! limited {
    ($server:expr, $context:expr) => {
        $server
            .max_decoding_message_size($context.server.max_decode_bytes)
            .max_encoding_message_size($context.server.max_encode_bytes)
    };
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `service` on `listener` until `shutdown` fires; then health turns NOT_SERVING, the
/// listener closes after the drain delay, and in-flight calls finish before this returns.
///
/// Health: [`LIVENESS`] is SERVING while the process runs; `""` and each service's name are its
/// readiness, SERVING while its database answers and it is not shutting down.
pub async fn serve(
    listener: TcpListener,
    service: Server,
    config: &ServerConfig,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(LIVENESS, ServingStatus::Serving).await;
    let readiness_names: Vec<&'static str> = service.grpc_names.iter().copied().chain([""]).collect();
    let readiness = Arc::new(Readiness::new(health, readiness_names));
    readiness.set(ServingStatus::NotServing).await;
    let check_timeout = Duration::from_millis(config.database_check_timeout_ms.max(10));
    check_database(service.name, &service.database, &readiness, check_timeout).await;
    tokio::spawn(watch_database(
        service.name,
        service.database.clone(),
        readiness.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    let methods = Arc::new(known_methods(&service.grpc_names));
    let routes = service
        .routes
        .add_service(health_service)
        .add_service(reflection(&service.grpc_names).build_v1()?)
        .add_service(reflection(&service.grpc_names).build_v1alpha()?);
    let default_deadline = Duration::from_secs(config.request_timeout_secs);
    let layers = ServiceBuilder::new()
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(RpcSpan)
                .on_failure(()),
        )
        .layer(tower::layer::layer_fn(move |inner| Rpc {
            inner,
            methods: methods.clone(),
            default_deadline,
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(config.max_in_flight_requests))
        .into_inner();
    let drain_delay = Duration::from_millis(config.drain_delay_ms);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let grpc_name = service.name;
    let (draining, drained) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        shutdown.wait().await;
        readiness.drain().await;
        tracing::info!(service = grpc_name, "not serving; draining in-flight calls");
        tokio::time::sleep(drain_delay).await;
        let _ = draining.send(());
    };
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(config.concurrency_limit_per_connection)
        .layer(layers)
        .add_routes(routes)
        // Without TCP_NODELAY a reply longer than one TCP segment waits for the client's delayed
        // ACK (40 ms on Linux) before its last segment leaves.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stopping);
    let grace_over = async move {
        match drained.await {
            Ok(()) => tokio::time::sleep(grace).await,
            // The server ended before shutdown began; the other branch has its result.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served?,
        () = grace_over => tracing::warn!(service = grpc_name, "calls still open after the grace period were cut"),
    }
    tracing::info!(service = grpc_name, "stopped");
    Ok(())
}

/// The health name a liveness probe asks for: SERVING as long as the process serves at all, so
/// that a database outage takes pods out of rotation without restarting them.
pub const LIVENESS: &str = "liveness";

/// The readiness a server reports: serving while its database answers, until it drains.
struct Readiness {
    health: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    /// Whether the database answered last, or `None` once draining (which nothing undoes).
    database_answered: tokio::sync::Mutex<Option<bool>>,
}

impl Readiness {
    fn new(health: tonic_health::server::HealthReporter, names: Vec<&'static str>) -> Self {
        Self {
            health,
            names,
            database_answered: tokio::sync::Mutex::new(Some(false)),
        }
    }

    async fn set(&self, status: ServingStatus) {
        for name in &self.names {
            self.health.set_service_status(name, status).await;
        }
    }

    async fn database_answers(&self, answers: bool) {
        let mut answered = self.database_answered.lock().await;
        if *answered == Some(!answers) {
            *answered = Some(answers);
            if answers {
                tracing::info!("the database answers again: ready");
                self.set(ServingStatus::Serving).await;
            } else {
                tracing::warn!("the database does not answer: not ready");
                self.set(ServingStatus::NotServing).await;
            }
        }
    }

    async fn drain(&self) {
        *self.database_answered.lock().await = None;
        self.set(ServingStatus::NotServing).await;
    }
}

/// Checks the database at every interval until shutdown, for readiness and the pool's gauges.
async fn watch_database(
    service: &'static str,
    db: DatabaseConnection,
    readiness: Arc<Readiness>,
    config: ServerConfig,
    shutdown: Shutdown,
) {
    let interval = Duration::from_millis(config.database_check_interval_ms.max(10));
    let timeout = Duration::from_millis(config.database_check_timeout_ms.max(10));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        check_database(service, &db, &readiness, timeout).await;
    }
}

async fn check_database(service: &'static str, db: &DatabaseConnection, readiness: &Readiness, timeout: Duration) {
    let answers = matches!(tokio::time::timeout(timeout, db.ping()).await, Ok(Ok(())));
    readiness.database_answers(answers).await;
    crate::db::record_pool_gauges(db, service);
}

/// Reflection that lists exactly what this port serves: its own services, health and
/// reflection itself (v1 and v1alpha: grpcurl speaks v1, Python's grpcio-reflection only v1alpha).
fn reflection(grpc_names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let listed = grpc_names.iter().copied().chain(RUNTIME_SERVICES);
    listed.fold(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(quanyu_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
        |builder, name| builder.with_service_name(name),
    )
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// The services every port serves beside its own.
const RUNTIME_SERVICES: [&str; 3] = [
    HEALTH_SERVICE,
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// A span per RPC, named after the method and parented on the caller's W3C trace context.
#[derive(Clone, Copy)]
struct RpcSpan;

impl<B> tower_http::trace::MakeSpan<B> for RpcSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> tracing::Span {
        let span = tracing::info_span!("rpc", otel.name = %request.uri().path(), rpc.system = "grpc");
        crate::telemetry::adopt_trace_context(&span, request.headers());
        span
    }
}

/// `/package.Service/Method` of every method the port serves, from the contract's descriptors:
/// a request for any other path is counted as [`UNKNOWN_METHOD`], so that callers cannot grow
/// the metrics without bound.
fn known_methods(grpc_names: &[&'static str]) -> HashSet<String> {
    let listed: HashSet<&str> = grpc_names.iter().copied().chain(RUNTIME_SERVICES).collect();
    let descriptor_sets = [
        quanyu_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let files = descriptor_sets
        .iter()
        .filter_map(|encoded| <prost_types::FileDescriptorSet as prost::Message>::decode(*encoded).ok())
        .flat_map(|set| set.file);
    let mut methods = HashSet::new();
    for file in files {
        for service in &file.service {
            let full_name = format!("{}.{}", file.package(), service.name());
            if listed.contains(full_name.as_str()) {
                methods.extend(
                    service
                        .method
                        .iter()
                        .map(|method| format!("/{full_name}/{}", method.name())),
                );
            }
        }
    }
    methods
}

/// The label of requests for a method this port does not serve.
const UNKNOWN_METHOD: &str = "unknown";

/// Bounds each RPC by its deadline and measures it.
///
/// Deadline: DEADLINE_EXCEEDED when a call outlives the caller's `grpc-timeout` (answered just
/// before it), or the server's default when it sent none (tonic's own timeout answers
/// CANCELLED, which tells the caller nothing about why). The call's work is dropped with it.
///
/// Metrics: RPCs counted by method and gRPC status name (`NOT_FOUND`), latency recorded in a
/// histogram (buckets set where the recorder is installed, in `telemetry`).
#[derive(Clone)]
struct Rpc<S> {
    inner: S,
    methods: Arc<HashSet<String>>,
    default_deadline: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.methods.contains(path) {
            path.to_owned()
        } else {
            UNKNOWN_METHOD.to_owned()
        };
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        // A caller's deadline is met a little early (a tenth, at most 200 ms), so that the answer
        // reaches it before its own timer fires and it learns why: dropping a call blocked in
        // PostgreSQL took some tens of milliseconds.
        let deadline = asked.map_or(self.default_deadline, |asked| {
            (asked - (asked / 10).min(Duration::from_millis(200))).min(self.default_deadline)
        });
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = match tokio::time::timeout(deadline, response).await {
                Ok(result) => result,
                Err(_) => {
                    let why = format!("the deadline of {} ms passed", deadline.as_millis());
                    Ok(tonic::Status::deadline_exceeded(why).into_http())
                }
            };
            // Errors are sent trailers-only, so their status is in the headers; a success puts
            // it in the trailers, which have not arrived yet.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32),
                Err(_) => Code::Unavailable,
            };
            metrics::histogram!("grpc_server_handling_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("grpc_server_handled_total", "method" => method, "code" => code_name(code)).increment(1);
            result
        })
    }
}

/// The canonical name of a gRPC status code, as the gRPC specification spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A `grpc-timeout` header: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// What a service is built from, besides its own section of the configuration.
#[derive(Clone)]
pub struct ServiceContext {
    pub database: crate::db::DatabaseConfig,
    pub server: ServerConfig,
    pub keys: std::sync::Arc<crate::auth::KeyRing>,
    /// Stops the services' background work (such as outbox pruning) too.
    pub shutdown: Shutdown,
    /// Business time (expiry, holds, tier periods); tests move it.
    pub clock: crate::clock::Clock,
}

impl ServiceContext {
    /// Starts the server of the service named `name` (`member-identity`), whose readiness
    /// follows `database`.
    pub fn server(&self, name: &'static str, database: &DatabaseConnection) -> ServerBuilder {
        ServerBuilder {
            name,
            authenticator: Authenticator::new(self.keys.clone()),
            grpc_names: Vec::new(),
            routes: Routes::default(),
            database: database.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nonsense_does_not() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_port_knows_its_own_methods_and_no_other() {
        let methods = known_methods(&["quanyu.identity.v1.MemberIdentityService"]);
        assert!(methods.contains("/quanyu.identity.v1.MemberIdentityService/EnrollMember"));
        assert!(methods.contains("/grpc.health.v1.Health/Check"));
        assert!(methods.contains("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!methods.contains("/quanyu.points.v1.PointsService/RecordSales"));
    }
}
