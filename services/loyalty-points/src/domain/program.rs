//! A program's rules as the other rules use them: earning, expiry, the tier ladder and holds.

use std::collections::HashMap;

use chrono::FixedOffset;

use super::earning::EarningRules;
use super::expiry::ExpiryPolicy;
use super::tiers::TierLadder;

pub const DEFAULT_HOLD_TTL_SECONDS: i32 = 900;

/// A program, validated.
#[derive(Debug, Clone)]
pub struct ProgramRules {
    pub id: String,
    pub brand_id: String,
    pub earning: EarningRules,
    pub expiry: ExpiryPolicy,
    pub ladder: TierLadder,
    pub hold_ttl: chrono::Duration,
    pub auto_enroll: bool,
    pub offset: FixedOffset,
}

/// The programs of a tenant by id, with their current rules version.
pub type Programs = HashMap<String, (ProgramRules, u32)>;
