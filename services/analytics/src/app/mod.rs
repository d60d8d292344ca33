//! Analytics' use cases: facts from the events as they arrive, interactions as they are sent,
//! and the figures asked of them.

pub mod audiences;
pub mod campaigns;
pub mod index;
pub mod ingest;
pub mod interactions;
pub mod metrics;
