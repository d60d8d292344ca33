//! API-key authentication and tenancy.
//!
//! Keys are configured as SHA-256 digests, never in plain text, and sent as
//! `authorization: Bearer <key>`. A key belongs to one tenant and has one role; a `service` key
//! (internal calls between Quanyu services) acts for the tenant named in `x-quanyu-tenant`. The
//! tenant always comes from the credential, never from a request field.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Code, Request, Status};

use crate::error::{ServiceError, into_status};

/// The metadata key with which a `service` key names the tenant it acts for.
pub const TENANT_HEADER: &str = "x-quanyu-tenant";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tenants; sees no tenant's members.
    Admin,
    /// Everything within its tenant.
    Platform,
    /// Store tills: resolve and enroll members (and, with later services, sync sales and redeem).
    Pos,
    /// Read only, within its tenant.
    Analyst,
    /// Another Quanyu service, acting for the tenant named in `x-quanyu-tenant`.
    Service,
}

/// What an RPC needs of its caller: a verb, and the roles it admits. The three verbs every
/// service has are here; a service declares its own beside them (a till's verbs, such as
/// member-identity's `RESOLVE` or loyalty-points' `REDEEM`), so that adding one touches only the
/// service that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub verb: &'static str,
    roles: &'static [Role],
}

impl Access {
    /// Tenant management.
    pub const ADMIN: Access = Access::new("admin", &[Role::Admin]);
    /// Reads within the tenant.
    pub const READ: Access = Access::new("read", &[Role::Platform, Role::Service, Role::Analyst]);
    /// Changes within the tenant.
    pub const WRITE: Access = Access::new("write", &[Role::Platform, Role::Service]);

    /// A verb that `roles` may call.
    pub const fn new(verb: &'static str, roles: &'static [Role]) -> Self {
        Self { verb, roles }
    }

    /// A verb of store tills: platform, service and pos keys may call it.
    pub const fn till(verb: &'static str) -> Self {
        Self::new(verb, &[Role::Platform, Role::Service, Role::Pos])
    }
}

impl Role {
    pub fn allows(self, access: Access) -> bool {
        access.roles.contains(&self)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for the key, recorded as the actor in audit trails.
    pub id: String,
    pub role: Role,
    /// The tenant of the key; required for platform, pos and analyst keys, absent for admin and
    /// service keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Lower-case hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
}

/// Returns the lower-case hex SHA-256 digest of a key, as configured.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// True for a tenant, brand or store slug: 2-40 characters of [a-z0-9-], starting with a letter.
pub fn is_slug(value: &str) -> bool {
    (2..=40).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Who is calling, as established from the API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Arc<str>,
    pub role: Role,
    tenant_id: Option<Arc<str>>,
}

/// A caller allowed to act within one tenant.
#[derive(Debug, Clone)]
pub struct TenantActor {
    pub tenant_id: Arc<str>,
    pub key_id: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing api key: send `authorization: Bearer <key>`")]
    MissingKey,
    #[error("unknown api key")]
    UnknownKey,
    #[error("a service key must name its tenant in `{TENANT_HEADER}`")]
    MissingTenantHeader,
    #[error("`{TENANT_HEADER}` is not a tenant id: {}", crate::error::quote(.0))]
    InvalidTenantHeader(String),
    #[error("role {role:?} may not call this method")]
    Forbidden { role: Role },
}

impl ServiceError for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::MissingKey | AuthError::UnknownKey => Code::Unauthenticated,
            AuthError::MissingTenantHeader | AuthError::InvalidTenantHeader(_) => Code::InvalidArgument,
            AuthError::Forbidden { .. } => Code::PermissionDenied,
        }
    }
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        into_status(&error)
    }
}

/// The configured keys, by digest.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_digest: HashMap<String, Caller>,
}

impl KeyRing {
    /// Checks the configured keys, listing every problem.
    pub fn from_config(config: &AuthConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_digest = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for key in &config.api_keys {
            let digest = key.sha256.to_ascii_lowercase();
            let is_digest = digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
            if !is_digest {
                problems.push(format!("api key {:?}: sha256 must be 64 hex digits", key.id));
            }
            if !ids.insert(key.id.as_str()) {
                problems.push(format!("api key {:?}: id used twice", key.id));
            }
            let needs_tenant = !matches!(key.role, Role::Admin | Role::Service);
            match (&key.tenant, needs_tenant) {
                (None, true) => problems.push(format!("api key {:?}: role {:?} needs a tenant", key.id, key.role)),
                (Some(_), false) => problems.push(format!(
                    "api key {:?}: role {:?} has no tenant of its own; remove `tenant`",
                    key.id, key.role
                )),
                (Some(tenant), true) if !is_slug(tenant) => {
                    problems.push(format!("api key {:?}: tenant {tenant:?} is not a tenant id", key.id))
                }
                _ => {}
            }
            let caller = Caller {
                key_id: key.id.as_str().into(),
                role: key.role,
                tenant_id: key.tenant.as_deref().map(Into::into),
            };
            if by_digest.insert(digest, caller).is_some() {
                problems.push(format!("api key {:?}: the same key is configured twice", key.id));
            }
        }
        if problems.is_empty() {
            Ok(Self { by_digest })
        } else {
            Err(problems)
        }
    }

    /// The tenants that keys are bound to, so that a service can make sure they exist.
    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .by_digest
            .values()
            .filter_map(|caller| caller.tenant_id.as_deref().map(str::to_owned))
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }

    fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, AuthError> {
        let key = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(AuthError::MissingKey)?;
        let caller = self.by_digest.get(&digest(key)).ok_or(AuthError::UnknownKey)?;
        if caller.role != Role::Service {
            return Ok(caller.clone());
        }
        // Without the header a service key acts for no tenant: it may read every tenant's event
        // stream, and tenant-scoped calls refuse it (see `authorize`).
        let Some(tenant) = metadata.get(TENANT_HEADER) else {
            return Ok(caller.clone());
        };
        let tenant = tenant.to_str().unwrap_or_default();
        if !is_slug(tenant) {
            return Err(AuthError::InvalidTenantHeader(tenant.to_owned()));
        }
        Ok(Caller {
            tenant_id: Some(tenant.into()),
            ..caller.clone()
        })
    }
}

/// The tonic interceptor that puts the [`Caller`] into each request's extensions.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<KeyRing>,
}

impl Authenticator {
    pub fn new(keys: Arc<KeyRing>) -> Self {
        Self { keys }
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.keys.authenticate(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

fn caller<T>(request: &Request<T>) -> Result<&Caller, AuthError> {
    // Absent only when a service is mounted without its Authenticator.
    request.extensions().get::<Caller>().ok_or(AuthError::MissingKey)
}

/// Admits a tenant-scoped call and names the tenant it acts in.
pub fn authorize<T>(request: &Request<T>, access: Access) -> Result<TenantActor, AuthError> {
    let caller = caller(request)?;
    match (&caller.tenant_id, caller.role.allows(access)) {
        (Some(tenant_id), true) => Ok(TenantActor {
            tenant_id: tenant_id.clone(),
            key_id: caller.key_id.clone(),
        }),
        (None, true) if caller.role == Role::Service => Err(AuthError::MissingTenantHeader),
        _ => Err(AuthError::Forbidden { role: caller.role }),
    }
}

/// Which tenants a reader of cross-tenant data (an event stream) may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// A service key without `x-quanyu-tenant`: every tenant.
    AllTenants,
    Tenant(Arc<str>),
}

/// Admits a reader of data that spans tenants, such as an event stream.
pub fn authorize_reader<T>(request: &Request<T>) -> Result<ReadScope, AuthError> {
    let caller = caller(request)?;
    match (&caller.tenant_id, caller.role.allows(Access::READ)) {
        (Some(tenant_id), true) => Ok(ReadScope::Tenant(tenant_id.clone())),
        (None, true) => Ok(ReadScope::AllTenants),
        _ => Err(AuthError::Forbidden { role: caller.role }),
    }
}

/// Admits a tenant-management call; returns the key id for the audit trail.
pub fn authorize_admin<T>(request: &Request<T>) -> Result<Arc<str>, AuthError> {
    let caller = caller(request)?;
    if caller.role.allows(Access::ADMIN) {
        Ok(caller.key_id.clone())
    } else {
        Err(AuthError::Forbidden { role: caller.role })
    }
}

/// A client-side interceptor that sends an API key (and, for service keys, the tenant).
#[derive(Clone)]
pub struct BearerKey {
    authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    tenant: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl BearerKey {
    pub fn new(key: &str) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        Ok(Self {
            authorization: format!("Bearer {key}").parse()?,
            tenant: None,
        })
    }

    pub fn for_tenant(self, tenant: &str) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        Ok(Self {
            tenant: Some(tenant.parse()?),
            ..self
        })
    }
}

impl tonic::service::Interceptor for BearerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.authorization.clone());
        if let Some(tenant) = &self.tenant {
            metadata.insert(TENANT_HEADER, tenant.clone());
        }
        crate::telemetry::inject_trace_context(metadata);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, role: Role, tenant: Option<&str>, secret: &str) -> ApiKeyConfig {
        ApiKeyConfig {
            id: id.into(),
            role,
            tenant: tenant.map(Into::into),
            sha256: digest(secret),
        }
    }

    #[test]
    fn role_matrix() {
        let resolve = Access::new("resolve", &[Role::Platform, Role::Service, Role::Pos, Role::Analyst]);
        let redeem = Access::till("redeem");
        let all = [Access::ADMIN, Access::READ, Access::WRITE, resolve, redeem];
        let allowed = |role: Role| {
            all.iter()
                .filter(|access| role.allows(**access))
                .map(|access| access.verb)
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(Role::Admin), vec!["admin"]);
        assert_eq!(allowed(Role::Platform), vec!["read", "write", "resolve", "redeem"]);
        assert_eq!(allowed(Role::Service), vec!["read", "write", "resolve", "redeem"]);
        assert_eq!(allowed(Role::Pos), vec!["resolve", "redeem"]);
        assert_eq!(allowed(Role::Analyst), vec!["read", "resolve"]);
    }

    #[test]
    fn rejects_bad_key_configuration() {
        let config = AuthConfig {
            api_keys: vec![
                key("a", Role::Platform, None, "k1"),
                key("b", Role::Admin, Some("acme"), "k2"),
                key("c", Role::Pos, Some("Acme!"), "k3"),
                ApiKeyConfig {
                    sha256: "abc".into(),
                    ..key("d", Role::Analyst, Some("acme"), "k4")
                },
                key("d", Role::Analyst, Some("acme"), "k1"),
            ],
        };
        let problems = KeyRing::from_config(&config).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }

    #[test]
    fn authenticates_by_digest_and_takes_service_tenant_from_header() {
        let config = AuthConfig {
            api_keys: vec![
                key("pos", Role::Pos, Some("acme"), "till-1"),
                key("svc", Role::Service, None, "internal"),
            ],
        };
        let keys = KeyRing::from_config(&config).unwrap();
        assert_eq!(keys.tenants(), vec!["acme".to_owned()]);
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(matches!(keys.authenticate(&metadata), Err(AuthError::MissingKey)));
        metadata.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(matches!(keys.authenticate(&metadata), Err(AuthError::UnknownKey)));
        metadata.insert("authorization", "Bearer till-1".parse().unwrap());
        let caller = keys.authenticate(&metadata).unwrap();
        assert_eq!((caller.role, caller.tenant_id.as_deref()), (Role::Pos, Some("acme")));

        metadata.insert("authorization", "Bearer internal".parse().unwrap());
        assert_eq!(
            keys.authenticate(&metadata).unwrap().tenant_id,
            None,
            "a service key may act for no tenant"
        );
        metadata.insert(TENANT_HEADER, "globex".parse().unwrap());
        assert_eq!(
            keys.authenticate(&metadata).unwrap().tenant_id.as_deref(),
            Some("globex")
        );
    }
}
