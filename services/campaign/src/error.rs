//! The failures of campaign's use cases, each mapped to one gRPC code.

use quanyu_runtime::db::Transient;
use quanyu_runtime::error::{FieldViolation, ServiceError, describe, into_status};
use sea_orm::DbErr;
use tonic::{Code, Status};

/// The `google.rpc.ErrorInfo` domain of campaign's refusals.
pub const DOMAIN: &str = "campaign.quanyu";

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{}", describe(.0))]
    InvalidInput(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    /// An id or idempotency key used before for something else.
    #[error("{message}")]
    AlreadyExists { message: String, field: FieldViolation },
    /// A rule refuses the call (a coupon that cannot be used, an empty stock): FAILED_PRECONDITION
    /// with the reason as ErrorInfo and the field at fault.
    #[error("{}", .field)]
    Refused {
        reason: &'static str,
        field: FieldViolation,
    },
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("the random source failed: {0}")]
    Random(#[from] getrandom::Error),
    /// Analytics, which reads audiences, did not answer.
    #[error("analytics did not answer: {}", .0.message())]
    Analytics(tonic::Status),
}

impl CampaignError {
    pub fn refused(reason: &'static str, field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            field: FieldViolation::new(field, description),
        }
    }
}

impl From<Vec<FieldViolation>> for CampaignError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidInput(violations)
    }
}

impl From<FieldViolation> for CampaignError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidInput(vec![violation])
    }
}

impl ServiceError for CampaignError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidInput(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Refused { .. } => Code::FailedPrecondition,
            Self::Database(_) | Self::Random(_) => Code::Internal,
            Self::Analytics(_) => Code::Unavailable,
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidInput(violations) => violations,
            Self::AlreadyExists { field, .. } | Self::Refused { field, .. } => std::slice::from_ref(field),
            Self::NotFound(_) | Self::Database(_) | Self::Random(_) | Self::Analytics(_) => &[],
        }
    }

    fn database_error(&self) -> Option<&DbErr> {
        match self {
            Self::Database(error) => Some(error),
            _ => None,
        }
    }

    fn error_info(&self) -> Option<(&str, &'static str)> {
        match self {
            Self::Refused { reason, .. } => Some((reason, DOMAIN)),
            _ => None,
        }
    }
}

impl Transient for CampaignError {
    fn is_transient(&self) -> bool {
        self.database_error().is_some_and(Transient::is_transient)
    }
}

impl From<CampaignError> for Status {
    fn from(error: CampaignError) -> Self {
        into_status(&error)
    }
}
