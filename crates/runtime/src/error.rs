//! The one place where service errors become `tonic::Status`.
//!
//! Each service has a `thiserror` enum implementing [`ServiceError`]; its `From<E> for Status`
//! calls [`into_status`]. Bad input becomes INVALID_ARGUMENT with `google.rpc.BadRequest` field
//! violations; anything the caller cannot act on becomes INTERNAL "internal error", with the cause
//! logged, never sent.

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field of a request, named by its path (`identities[2].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// Returns the violation with its field path put under `prefix` (`identity` + `value`).
    pub fn under(self, prefix: &str) -> Self {
        let field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        Self { field, ..self }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Collects field violations while a request is validated.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of a check that passed, records the violation of one that failed.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        result.map_err(|violation| self.push(violation)).ok()
    }

    /// Checks a text field: present when `required`, at most `max` characters, no control
    /// characters. The field's name is formatted only for a violation.
    pub fn text(&mut self, field: impl std::fmt::Display, value: &str, max: usize, required: bool) {
        if required && value.is_empty() {
            self.add(field.to_string(), "is required");
        } else if value.chars().count() > max || value.chars().any(char::is_control) {
            self.add(
                field.to_string(),
                format!("must be at most {max} characters without control characters"),
            );
        }
    }

    pub fn into_result(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// A service's error: its gRPC code, and the field violations when the input was bad.
pub trait ServiceError: std::error::Error {
    fn code(&self) -> Code;

    fn field_violations(&self) -> &[FieldViolation] {
        &[]
    }

    /// The database's error, when the database failed: one that cannot be reached is
    /// UNAVAILABLE whatever [`code`](Self::code) says.
    fn database_error(&self) -> Option<&DbErr> {
        None
    }

    /// For a refusal a caller acts on by its reason: the `google.rpc.ErrorInfo` reason
    /// (`WRONG_STORE`) and domain (`campaign.quanyu`) the status carries.
    fn error_info(&self) -> Option<(&str, &'static str)> {
        None
    }
}

/// A caller's value quoted in an error: at most [`QUOTED_CHARS`] of it, so that an error never
/// grows with its input (statuses travel in HTTP/2 trailers, which clients cap at 16 KiB).
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

/// How many characters of a caller's value an error quotes.
pub const QUOTED_CHARS: usize = 64;

pub struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(QUOTED_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}… ({} characters)", &self.0[..end], self.0.chars().count()),
        }
    }
}

/// The longest status message, and field violation description, a caller is sent, in bytes: a
/// bound on top of [`quote`] for any message that still grows with its input, keeping a status
/// (message and base64 details) well under the 16 KiB of trailers clients accept.
const MAX_MESSAGE_BYTES: usize = 1024;
const MAX_DESCRIPTION_BYTES: usize = 256;
/// The most field violations one status carries.
const MAX_VIOLATIONS: usize = 20;

fn bounded(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let end = (0..=max_bytes - 3)
            .rev()
            .find(|&at| text.is_char_boundary(at))
            .unwrap_or(0);
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Builds the status for a service error.
pub fn into_status(error: &dyn ServiceError) -> Status {
    if error.database_error().is_some_and(is_unreachable) {
        tracing::warn!(error = %error, "the database cannot be reached");
        return Status::unavailable(
            "the database cannot be reached; the call was not applied (a retry with the same \
             idempotency key is safe)",
        );
    }
    let code = error.code();
    if code == Code::Internal || code == Code::Unknown {
        tracing::error!(error = %error, "request failed");
        return Status::internal("internal error");
    }
    let message = bounded(error.to_string(), MAX_MESSAGE_BYTES);
    let violations = error.field_violations();
    let info = error.error_info();
    if violations.is_empty() && info.is_none() {
        return Status::new(code, message);
    }
    let mut details = ErrorDetails::new();
    if let Some((reason, domain)) = info {
        details.set_error_info(reason, domain, std::collections::HashMap::<String, String>::new());
    }
    for violation in violations.iter().take(MAX_VIOLATIONS) {
        details.add_bad_request_violation(
            bounded(violation.field.clone(), MAX_DESCRIPTION_BYTES),
            bounded(violation.description.clone(), MAX_DESCRIPTION_BYTES),
        );
    }
    Status::with_error_details(code, message, details)
}

/// Formats violations as one message: "invalid request: a: why; b: why".
pub fn describe(violations: &[FieldViolation]) -> String {
    let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!("invalid request: {}", listed.join("; "))
}

/// The driver's error under sea-orm's, when a statement or a connection failed in the driver.
fn sqlx_error(error: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(error))
        | DbErr::Query(RuntimeErr::SqlxError(error))
        | DbErr::Conn(RuntimeErr::SqlxError(error)) => Some(error),
        _ => None,
    }
}

/// True when the database could not be reached or went away: no connection within the pool's
/// timeout, a connection reset or refused, or the server shutting down or refusing connections.
pub fn is_unreachable(error: &DbErr) -> bool {
    let Some(sqlx_error) = sqlx_error(error) else {
        return matches!(error, DbErr::ConnectionAcquire(_));
    };
    match sqlx_error {
        sea_orm::sqlx::Error::Io(_)
        | sea_orm::sqlx::Error::Tls(_)
        | sea_orm::sqlx::Error::Protocol(_)
        | sea_orm::sqlx::Error::PoolTimedOut
        | sea_orm::sqlx::Error::PoolClosed
        | sea_orm::sqlx::Error::WorkerCrashed => true,
        sea_orm::sqlx::Error::Database(database_error) => database_error.code().is_some_and(|code| {
            // connection_exception (class 08), admin/crash shutdown, cannot_connect_now,
            // too_many_connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// True when a statement failed on a unique constraint.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// True when the transaction lost a race that a retry can win: a PostgreSQL serialization failure
/// or deadlock, SQLite's busy or locked database (also when connecting: the first connection
/// turns on WAL, which takes the database whole), or a unique key another transaction just took.
pub fn is_transient(error: &DbErr) -> bool {
    if is_unique_violation(error) {
        return true;
    }
    let Some(database_error) = sqlx_error(error).and_then(|error| error.as_database_error()) else {
        return false;
    };
    matches!(
        database_error.code().as_deref(),
        // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY, LOCKED and their
        // extended codes (BUSY_SNAPSHOT = 517 when a read transaction cannot be upgraded).
        Some("40001" | "40P01" | "5" | "6" | "261" | "262" | "517")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{}", describe(.0))]
    struct Invalid(Vec<FieldViolation>);

    impl ServiceError for Invalid {
        fn code(&self) -> Code {
            Code::InvalidArgument
        }

        fn field_violations(&self) -> &[FieldViolation] {
            &self.0
        }
    }

    #[test]
    fn a_quote_keeps_a_short_prefix_and_says_how_long_the_value_was() {
        assert_eq!(quote("13900001111").to_string(), "\"13900001111\"");
        let long = "9".repeat(5_000);
        assert_eq!(
            quote(&long).to_string(),
            format!("\"{}\"… (5000 characters)", "9".repeat(64))
        );
        assert_eq!(
            quote(&"手".repeat(70)).to_string(),
            format!("\"{}\"… (70 characters)", "手".repeat(64))
        );
    }

    #[test]
    fn a_status_stays_small_whatever_the_error_says() {
        let huge = "手".repeat(5_000);
        let violations = (0..200)
            .map(|i| FieldViolation::new(format!("f{i}"), huge.clone()))
            .collect();
        let status = into_status(&Invalid(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let details = status.get_error_details();
        let sent = &details.bad_request().unwrap().field_violations;
        assert_eq!(sent.len(), MAX_VIOLATIONS);
        assert!(sent.iter().all(|v| v.description.len() <= MAX_DESCRIPTION_BYTES));
        // Trailers carry the details in base64 and the message percent-encoded (3 bytes a byte).
        let trailers = status.details().len() * 4 / 3 + status.message().len() * 3;
        assert!(trailers < 12 * 1024, "{trailers} bytes of trailers");
    }
}
