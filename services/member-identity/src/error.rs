//! The failures of member-identity's use cases, each mapped to one gRPC code.

use quanyu_runtime::db::Transient;
use quanyu_runtime::error::{FieldViolation, ServiceError, describe, into_status, quote};
use sea_orm::DbErr;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{}", describe(.0))]
    InvalidInput(Vec<FieldViolation>),
    #[error("tenant {} not found", quote(&.0))]
    TenantNotFound(String),
    #[error("tenant {} already exists", quote(&.0))]
    TenantExists(String),
    #[error("brand {} already exists", quote(&.0))]
    BrandExists(String),
    #[error("tag {} is already defined differently", quote(&.0))]
    TagDefinedDifferently(String),
    #[error("member {} not found", quote(&.0))]
    MemberNotFound(String),
    #[error("member {} was merged into {}; use the surviving member", quote(.member_id), quote(.survivor_id))]
    MemberMerged { member_id: String, survivor_id: String },
    #[error("member {} was erased", quote(&.0))]
    MemberErased(String),
    #[error("the {kind} identity belongs to another member; merge the two members first")]
    IdentityTaken { kind: &'static str },
    #[error("the identities belong to different members ({}); merge them first", .0.join(", "))]
    IdentitiesOfDifferentMembers(Vec<String>),
    #[error("the {kind} identity is not linked to member {}", quote(.member_id))]
    IdentityNotLinked { kind: &'static str, member_id: String },
    #[error("the phone_hash identity is kept for the member's phone; unlink the phone instead")]
    DerivedIdentity,
    #[error("cannot unlink a member's last identity")]
    LastIdentity,
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl IdentityError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidInput(vec![FieldViolation::new(field, description)])
    }
}

impl From<Vec<FieldViolation>> for IdentityError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidInput(violations)
    }
}

impl From<FieldViolation> for IdentityError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidInput(vec![violation])
    }
}

impl ServiceError for IdentityError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidInput(_) => Code::InvalidArgument,
            Self::TenantNotFound(_) | Self::MemberNotFound(_) | Self::IdentityNotLinked { .. } => Code::NotFound,
            Self::TenantExists(_)
            | Self::BrandExists(_)
            | Self::TagDefinedDifferently(_)
            | Self::IdentityTaken { .. } => Code::AlreadyExists,
            Self::MemberMerged { .. }
            | Self::MemberErased(_)
            | Self::IdentitiesOfDifferentMembers(_)
            | Self::DerivedIdentity
            | Self::LastIdentity => Code::FailedPrecondition,
            Self::Database(_) => Code::Internal,
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidInput(violations) => violations,
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

impl Transient for IdentityError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Database(error) if error.is_transient())
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        into_status(&error)
    }
}
