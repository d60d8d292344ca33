//! Running a transaction again when it lost a race.

use std::future::Future;
use std::time::Duration;

use sea_orm::DbErr;

/// An error that a fresh attempt of the same transaction may not meet.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for DbErr {
    fn is_transient(&self) -> bool {
        crate::error::is_transient(self)
    }
}

const ATTEMPTS: u32 = 8;

/// Runs a use case's transaction again while it fails transiently (serialization failure,
/// deadlock, busy SQLite, a unique key taken by a concurrent transaction), with growing pauses.
/// Each attempt is a whole transaction, so a retry re-reads what the lost race changed.
pub async fn with_retries<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && tries < ATTEMPTS => {
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos()
                        % 5,
                );
                tokio::time::sleep(Duration::from_millis((2 << tries.min(6)) + jitter)).await;
                tries += 1;
            }
            result => return result,
        }
    }
}
