//! Campaign's rules, free of I/O: campaigns, coupon codes, templates, and the use of a coupon.

pub mod assist;
pub mod campaign;
pub mod code;
pub mod coupon;
pub mod referral;
pub mod template;
