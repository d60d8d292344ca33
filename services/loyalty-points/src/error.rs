//! The failures of loyalty-points' use cases, each mapped to one gRPC code.

use quanyu_runtime::db::Transient;
use quanyu_runtime::error::{FieldViolation, ServiceError, describe, into_status, quote};
use sea_orm::DbErr;
use tonic::{Code, Status};

use crate::domain::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("{}", describe(.0))]
    InvalidInput(Vec<FieldViolation>),
    #[error("{0}")]
    Ledger(LedgerError),
    #[error("program {} not found", quote(&.0))]
    ProgramNotFound(String),
    /// A hold id no PlaceHold returned (ids are opaque to the caller).
    #[error("hold {} not found", quote(&.0))]
    UnknownHold(String),
    #[error("brand {} already earns in program {}", quote(.brand_id), quote(.program_id))]
    BrandTaken { brand_id: String, program_id: String },
    #[error("idempotency key {} was used for a request with a different {}", quote(.key), .field.field)]
    IdempotencyConflict { key: String, field: FieldViolation },
    #[error("member-identity is unavailable: {0}")]
    IdentityUnavailable(String),
    #[error("member-identity failed: {0}")]
    Identity(String),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Unavailable(String),
}

impl PointsError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidInput(vec![FieldViolation::new(field, description)])
    }
}

/// Every use case that moves points takes them in a field named `points`: a refusal for their
/// size names it.
impl From<LedgerError> for PointsError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::NotPositive(_) | LedgerError::TooManyPoints(_) | LedgerError::BalanceOutOfRange { .. } => {
                Self::invalid("points", error.to_string())
            }
            other => Self::Ledger(other),
        }
    }
}

impl From<Vec<FieldViolation>> for PointsError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidInput(violations)
    }
}

impl From<tonic::Status> for PointsError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Self::IdentityUnavailable(status.message().to_owned())
            }
            _ => Self::Identity(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

impl ServiceError for PointsError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidInput(_)
            | Self::Ledger(
                LedgerError::NotPositive(_)
                | LedgerError::TooManyPoints(_)
                | LedgerError::BalanceOutOfRange { .. }
                | LedgerError::ExpiryNotAfterEarning,
            ) => Code::InvalidArgument,
            Self::Ledger(LedgerError::InsufficientPoints { .. } | LedgerError::HoldEnded(_)) => {
                Code::FailedPrecondition
            }
            Self::Ledger(LedgerError::HoldNotFound(_)) | Self::UnknownHold(_) | Self::ProgramNotFound(_) => {
                Code::NotFound
            }
            Self::BrandTaken { .. } | Self::IdempotencyConflict { .. } => Code::AlreadyExists,
            Self::IdentityUnavailable(_) | Self::Unavailable(_) => Code::Unavailable,
            Self::Identity(_) | Self::Database(_) | Self::Ledger(LedgerError::MergeOverflow) => Code::Internal,
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidInput(violations) => violations,
            Self::IdempotencyConflict { field, .. } => std::slice::from_ref(field),
            _ => &[],
        }
    }

    fn database_error(&self) -> Option<&DbErr> {
        match self {
            Self::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl Transient for PointsError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Database(error) if error.is_transient())
    }
}

impl From<PointsError> for Status {
    fn from(error: PointsError) -> Self {
        into_status(&error)
    }
}
