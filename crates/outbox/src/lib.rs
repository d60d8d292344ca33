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
//! and never see that event. Here positions are handed out in commit order instead: `append`
//! increments the single row of `outbox_sequence` and keeps its row lock until the transaction
//! ends, so a second writer cannot take a position until the first has committed (or rolled back,
//! returning its positions). The events a reader can see are therefore always a gap-free prefix of
//! the stream, and a reader that has seen position N can never later find an event below N.
//! Appending last in a use case's transaction keeps that lock short. SQLite has one writer at a
//! time, which gives the same order.

pub mod consumer;
pub mod migration;
pub mod retention;
pub mod subscribe;
pub mod writer;

mod entity;

pub use writer::{NewEvent, append};
