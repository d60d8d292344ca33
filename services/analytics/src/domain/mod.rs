//! Analytics' rules, free of I/O: which days a window covers, how a ratio is read, what an
//! interaction and an AIPL stage are.

pub mod aipl;
pub mod audience;
pub mod fast;
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

impl Place {
    /// Whether this place, read as a filter (each field empty, or 0 for the channel, selects
    /// every value), selects `place`.
    pub fn selects(&self, place: &Place) -> bool {
        (self.brand_id.is_empty() || self.brand_id == place.brand_id)
            && (self.channel == 0 || self.channel == place.channel)
            && (self.store_id.is_empty() || self.store_id == place.store_id)
    }
}
