//! Analytics' rules, free of I/O: which days a window covers and how a ratio is read.

pub mod lines;
pub mod window;
