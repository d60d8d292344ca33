//! What every Quanyu service shares: configuration, telemetry, the gRPC server builder, API-key
//! auth and tenancy, the one mapping of errors to `tonic::Status`, database connection and
//! migration, paging and graceful shutdown.

pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod page;
pub mod server;
pub mod shutdown;
pub mod telemetry;
