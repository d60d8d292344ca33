//! Campaign's tables. Reads and plain writes go through sea-orm's entities; the writes that must
//! hold under concurrency (taking stock, a member's place under a limit) are single conditional
//! statements, so that the row's lock is the only serialization.

pub mod assists;
pub mod campaigns;
pub mod coupons;
pub mod drops;
pub mod entity;
pub mod members;
pub mod referrals;
pub mod rewards;
pub mod templates;
