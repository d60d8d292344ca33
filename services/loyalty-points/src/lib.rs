//! loyalty-points: one points balance and one tier per member across every channel.
//!
//! So far this crate holds the domain rules only (ledger, lots, holds, earning, tiers), pure and
//! tested; the gRPC service, its storage and POS sync are still to be built (issue 4).

pub mod domain;
