//! Analytics' use cases: facts from the events as they arrive, and the figures asked of them.

pub mod ingest;
pub mod metrics;
