//! The use cases of member-identity, one database transaction each: they read and lock through
//! `store`, apply `domain` rules, and write the change with its audit entries and the events that
//! describe it in the same transaction.
//!
//! Every query is filtered by the caller's tenant, so another tenant's ids are simply not found.

pub mod consent;
pub mod guide;
pub mod member;
pub mod merge;
pub mod tag;
pub mod tenant;

use crate::domain::identity::Identity;

/// The audit trail's names of the identities a change touched (never their values).
fn kinds_changed(identities: &[Identity]) -> Vec<String> {
    identities
        .iter()
        .map(|identity| format!("identities.{}", identity.kind.as_str()))
        .collect()
}
