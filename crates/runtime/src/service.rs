//! A Quanyu service as one declaration: its name, schema, configuration section, migrations and
//! how it is built. `quanyu serve`, `quanyu migrate`, `--dump-config` and the testkit iterate over
//! declarations, so adding a service is implementing [`Service`] and listing it once.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;

use sea_orm::DbErr;
use sea_orm_migration::MigratorTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{ConfigError, from_section};
use crate::db::DatabaseConfig;
use crate::server::{Server, ServiceContext};

/// Why a service could not be built (its configuration, its database, a peer's address).
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One service of the suite.
pub trait Service: Send + Sync + 'static {
    /// Short name, as in `quanyu serve --only member-identity`.
    const NAME: &'static str;
    /// Its database schema, `{service}` in the database URL, and its configuration section.
    const SCHEMA: &'static str;
    type Config: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static;
    type Migrator: MigratorTrait;

    /// The address it serves on.
    fn listen(config: &Self::Config) -> SocketAddr;

    /// Connects and migrates its database, starts its background work, and returns its server.
    fn build(
        config: &Self::Config,
        context: &ServiceContext,
    ) -> impl Future<Output = Result<Server, BuildError>> + Send;
}

/// A [`Service`] as a value, so that different services can be listed together.
pub trait Declared: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> &'static str;
    /// Reads this service's configuration section (defaults when absent).
    fn configure(&self, section: Option<config::Value>) -> Result<Box<dyn Configured>, ConfigError>;
}

/// A service with its configuration, ready to migrate or build.
pub trait Configured: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> &'static str;
    fn listen(&self) -> SocketAddr;
    /// The configuration section as it is in effect (secrets redacted), for `--dump-config`.
    fn dump(&self) -> Result<toml::Value, toml::ser::Error>;
    /// Brings the service's schema up to date.
    fn migrate<'a>(&'a self, database: &'a DatabaseConfig) -> Boxed<'a, Result<(), DbErr>>;
    fn build<'a>(&'a self, context: &'a ServiceContext) -> Boxed<'a, Result<Server, BuildError>>;
}

/// The declaration of `S`: `pub const SERVICE: Declaration<MemberIdentity> = Declaration::new();`.
pub struct Declaration<S>(PhantomData<fn() -> S>);

impl<S> Declaration<S> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Default for Declaration<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Service> Declared for Declaration<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn schema(&self) -> &'static str {
        S::SCHEMA
    }

    fn configure(&self, section: Option<config::Value>) -> Result<Box<dyn Configured>, ConfigError> {
        let config = match section {
            Some(section) => from_section(S::SCHEMA, section)?,
            None => S::Config::default(),
        };
        Ok(Box::new(Configuration::<S>(config)))
    }
}

/// A service's configuration, typed.
pub struct Configuration<S: Service>(pub S::Config);

impl<S: Service> Configured for Configuration<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn schema(&self) -> &'static str {
        S::SCHEMA
    }

    fn listen(&self) -> SocketAddr {
        S::listen(&self.0)
    }

    fn dump(&self) -> Result<toml::Value, toml::ser::Error> {
        toml::Value::try_from(&self.0)
    }

    fn migrate<'a>(&'a self, database: &'a DatabaseConfig) -> Boxed<'a, Result<(), DbErr>> {
        Box::pin(async move {
            crate::db::connect::<S::Migrator>(database, S::SCHEMA)
                .await?
                .close()
                .await
        })
    }

    fn build<'a>(&'a self, context: &'a ServiceContext) -> Boxed<'a, Result<Server, BuildError>> {
        Box::pin(S::build(&self.0, context))
    }
}
