//! What every Quanyu service shares: configuration, telemetry, the gRPC server builder, API-key
//! auth and tenancy, the one mapping of errors to `tonic::Status`, database connection and
//! migration, paging and graceful shutdown.

pub mod auth;
pub mod client;
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

/// FNV-1a, 64 bits: a stable, cheap hash where a collision costs nothing but a little time (a
/// request field's hash only names the field that differs; an advisory lock's key only makes two
/// transactions take turns). A SHA-256 per request field cost a 1,000-sale batch a sixth of its
/// throughput.
pub(crate) fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
