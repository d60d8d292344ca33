//! The rules of points and tiers, as pure functions: no I/O, no database types.

pub mod earning;
pub mod expiry;
pub mod ledger;
pub mod tiers;
