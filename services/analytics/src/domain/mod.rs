//! Analytics' rules, free of I/O: which days a window covers, how a ratio is read, what an
//! interaction and an AIPL stage are.

pub mod aipl;
pub mod audience;
pub mod interaction;
pub mod lines;
pub mod rfm;
pub mod window;

/// Where a member enrolled, a sale was made or a consumer interacted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub brand_id: String,
    pub channel: i32,
    pub store_id: String,
}
