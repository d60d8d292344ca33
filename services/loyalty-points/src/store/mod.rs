//! loyalty-points' tables: rows to and from domain values, and the queries of the use cases.
//! Functions take the transaction of the use case that calls them (or a connection, for reads
//! that need none); no contract types here.

pub mod accounts;
pub mod aliases;
pub mod entity;
pub mod ledger_state;
pub mod programs;
pub mod sales;
