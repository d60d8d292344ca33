//! The gRPC server every service runs on: health, reflection, per-RPC spans that continue the
//! caller's trace, Prometheus metrics, deadlines, request size limits, concurrency limits with
//! load shedding, and graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
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
}

/// Mounts a service's gRPC services behind the API-key authenticator; health and reflection are
/// added when it is served.
pub struct ServerBuilder {
    name: &'static str,
    authenticator: Authenticator,
    grpc_names: Vec<&'static str>,
    routes: Routes,
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
pub async fn serve(
    listener: TcpListener,
    service: Server,
    config: &ServerConfig,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let health_names: Vec<&'static str> = service.grpc_names.iter().copied().chain([""]).collect();
    for name in &health_names {
        health.set_service_status(name, ServingStatus::Serving).await;
    }
    let routes = service
        .routes
        .add_service(health_service)
        .add_service(reflection(&service.grpc_names).build_v1()?)
        .add_service(reflection(&service.grpc_names).build_v1alpha()?);
    let layers = ServiceBuilder::new()
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(RpcSpan)
                .on_failure(()),
        )
        .layer(tower::layer::layer_fn(|inner| RpcMetrics { inner }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(config.max_in_flight_requests))
        .into_inner();
    let drain_delay = Duration::from_millis(config.drain_delay_ms);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let grpc_name = service.name;
    let (draining, drained) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        shutdown.wait().await;
        for name in &health_names {
            health.set_service_status(name, ServingStatus::NotServing).await;
        }
        tracing::info!(service = grpc_name, "not serving; draining in-flight calls");
        tokio::time::sleep(drain_delay).await;
        let _ = draining.send(());
    };
    let server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(config.request_timeout_secs))
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

/// Reflection that lists exactly what this port serves: its own services, health and
/// reflection itself (v1 and v1alpha: grpcurl speaks v1, Python's grpcio-reflection only v1alpha).
fn reflection(grpc_names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let listed = grpc_names.iter().copied().chain([
        HEALTH_SERVICE,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]);
    listed.fold(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(quanyu_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
        |builder, name| builder.with_service_name(name),
    )
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

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

/// Counts RPCs by method and gRPC status code and records their latency.
#[derive(Clone)]
struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, ResponseBody> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            // Errors are sent trailers-only, so their status is in the headers; a success puts
            // it in the trailers, which have not arrived yet.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "14".to_owned(),
            };
            metrics::histogram!("grpc_server_handling_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("grpc_server_handled_total", "method" => method, "code" => code).increment(1);
            result
        })
    }
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
    /// Starts the server of the service named `name` (`member-identity`).
    pub fn server(&self, name: &'static str) -> ServerBuilder {
        ServerBuilder {
            name,
            authenticator: Authenticator::new(self.keys.clone()),
            grpc_names: Vec::new(),
            routes: Routes::default(),
        }
    }
}
