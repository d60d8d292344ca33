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
}

/// Builds the status for a service error.
pub fn into_status(error: &dyn ServiceError) -> Status {
    let code = error.code();
    if code == Code::Internal || code == Code::Unknown {
        tracing::error!(error = %error, "request failed");
        return Status::internal("internal error");
    }
    let violations = error.field_violations();
    if violations.is_empty() {
        return Status::new(code, error.to_string());
    }
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    Status::with_error_details(code, error.to_string(), details)
}

/// Formats violations as one message: "invalid request: a: why; b: why".
pub fn describe(violations: &[FieldViolation]) -> String {
    let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!("invalid request: {}", listed.join("; "))
}

/// True when a statement failed on a unique constraint.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// True when the transaction lost a race that a retry can win: a PostgreSQL serialization failure
/// or deadlock, SQLite's busy or locked database, or a unique key another transaction just took.
pub fn is_transient(error: &DbErr) -> bool {
    if is_unique_violation(error) {
        return true;
    }
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx_error)) | DbErr::Query(RuntimeErr::SqlxError(sqlx_error))) = error
    else {
        return false;
    };
    let Some(database_error) = sqlx_error.as_database_error() else {
        return false;
    };
    matches!(
        database_error.code().as_deref(),
        // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY, LOCKED and their
        // extended codes (BUSY_SNAPSHOT = 517 when a read transaction cannot be upgraded).
        Some("40001" | "40P01" | "5" | "6" | "261" | "262" | "517")
    )
}
