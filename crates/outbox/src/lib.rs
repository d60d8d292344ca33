//! Event streams between Quanyu services.
//!
//! A service writes its domain events into its own `outbox_events` table in the same transaction
//! as the change ([`writer::append`]), serves them with the `EventStreamService` ([`subscribe`]),
//! and prunes them after its retention ([`retention`]). A consuming service keeps its cursor in
//! its own database, in the same transaction as the effect of each event ([`consumer`]): delivery
//! is at least once, the effect exactly once.
//!
//! # Positions without gaps
//!
//! On PostgreSQL transactions commit in another order than the one in which they took sequence
//! numbers, so a reader tailing by a sequence can pass a number whose transaction commits later,
//! and never see that event. Here positions are handed out only to committed events instead:
//! `append` writes unnumbered rows into `outbox_pending`, and the [`sequencer`] moves committed
//! ones into `outbox_events` under the next positions, holding the lock of the single
//! `outbox_sequence` row while it does. Sequencers (one per replica, and each subscription before
//! it reads) therefore take turns, each numbering what had committed when it got the lock, above
//! every position already given. The events a reader can see are always a gap-free prefix of the
//! stream, a reader that has seen position N never later finds an event below N, and events of
//! one aggregate (written by transactions that lock it) keep their commit order.
//!
//! Writers take no shared lock: a sale's transaction commits (and waits for its WAL flush)
//! alongside others instead of queueing behind every other writer's commit, which an earlier
//! design, numbering inside the writing transaction, did. The price is one more write per event
//! and a short wait for the sequencer before subscribers see it. SQLite has one writer at a time
//! and uses the same path.

pub mod consumer;
pub mod migration;
pub mod retention;
pub mod sequencer;
pub mod subscribe;
pub mod writer;

mod entity;

pub use writer::{NewEvent, append, append_to};

use quanyu_proto::events::v1::event_stream_service_server::EventStreamServiceServer;
use quanyu_runtime::server::{ServerBuilder, ServiceContext};
use sea_orm::DatabaseConnection;

/// Serves a service's event stream beside its own API, and starts what keeps the stream: the
/// sequencer that numbers committed events and the pruner that applies retention.
pub fn serve_events(
    server: ServerBuilder,
    db: &DatabaseConnection,
    stream: &subscribe::StreamConfig,
    retention: &retention::RetentionConfig,
    context: &ServiceContext,
) -> ServerBuilder {
    retention::spawn_pruner(db.clone(), retention.clone(), context.shutdown.clone());
    sequencer::spawn_sequencer(db.clone(), context.shutdown.clone());
    let events = subscribe::EventStream::new(db.clone(), stream.clone());
    server.mount(quanyu_runtime::limited!(EventStreamServiceServer::new(events), context))
}
