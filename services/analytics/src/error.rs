//! The failures of analytics' use cases, each mapped to one gRPC code.

use quanyu_runtime::db::Transient;
use quanyu_runtime::error::{FieldViolation, ServiceError, describe, into_status};
use sea_orm::DbErr;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{}", describe(.0))]
    InvalidInput(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    /// More than analytics holds in memory.
    #[error("{0}")]
    OverCapacity(String),
    #[error("{0}")]
    Internal(String),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl From<Vec<FieldViolation>> for AnalyticsError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidInput(violations)
    }
}

impl From<FieldViolation> for AnalyticsError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidInput(vec![violation])
    }
}

impl ServiceError for AnalyticsError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidInput(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::OverCapacity(_) => Code::ResourceExhausted,
            Self::Internal(_) | Self::Database(_) => Code::Internal,
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidInput(violations) => violations,
            Self::NotFound(_) | Self::OverCapacity(_) | Self::Internal(_) | Self::Database(_) => &[],
        }
    }

    fn database_error(&self) -> Option<&DbErr> {
        match self {
            Self::Database(error) => Some(error),
            Self::InvalidInput(_) | Self::NotFound(_) | Self::OverCapacity(_) | Self::Internal(_) => None,
        }
    }
}

impl Transient for AnalyticsError {
    fn is_transient(&self) -> bool {
        self.database_error().is_some_and(Transient::is_transient)
    }
}

impl From<AnalyticsError> for Status {
    fn from(error: AnalyticsError) -> Self {
        into_status(&error)
    }
}
