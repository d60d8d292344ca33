//! Campaign's rules, free of I/O: coupon codes, templates, and the use of a coupon.

pub mod code;
pub mod coupon;
pub mod template;
