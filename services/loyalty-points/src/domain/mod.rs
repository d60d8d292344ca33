//! The rules of points and tiers, as pure functions: no I/O, no database or contract types.

pub mod account;
pub mod earning;
pub mod expiry;
pub mod ledger;
pub mod program;
pub mod sale;
pub mod tiers;
