//! The member-identity rules, as pure functions: no I/O, no database types.

pub mod identity;
pub mod merge;
pub mod profile;
pub mod tags;
