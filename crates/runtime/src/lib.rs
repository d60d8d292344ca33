//! What every Quanyu service shares: configuration, telemetry, the gRPC server builder, API-key
//! auth and tenancy, the one mapping of errors to `tonic::Status`, database connection and
//! migration, paging and graceful shutdown.

pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod money;
pub mod page;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;

/// Every binary that links the runtime allocates with mimalloc: a 1,000-sale batch makes and
/// frees some hundred thousand small strings and buffers, and glibc's allocator spent a third of
/// the service's CPU on them (with fastbin consolidation on each large free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
