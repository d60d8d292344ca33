//! The configuration of a `quanyu` process: shared sections plus one per service.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use quanyu_runtime::auth::{AuthConfig, KeyRing};
use quanyu_runtime::config::{ConfigError, Sections};
use quanyu_runtime::db::DatabaseConfig;
use quanyu_runtime::server::{ServerConfig, ServiceContext};
use quanyu_runtime::service::{Configured, Declared};
use quanyu_runtime::telemetry::TelemetryConfig;
use serde::Serialize;

/// The bundled development configuration, used when no file is given.
const DEV_CONFIG: &str = include_str!("../dev.toml");

/// The plain development keys whose digests `dev.toml` holds, printed when it is used.
pub const DEV_KEYS: &[(&str, &str)] = &[
    ("admin", "dev-admin"),
    ("service", "dev-service"),
    ("demo platform", "dev-demo-platform"),
    ("demo pos", "dev-demo-pos"),
    ("demo analyst", "dev-demo-analyst"),
];

/// The services `quanyu` runs, in the order they start: a service after those it calls.
pub const SERVICES: &[&dyn Declared] = &[
    &quanyu_member_identity::SERVICE,
    &quanyu_loyalty_points::SERVICE,
    &quanyu_campaign::SERVICE,
    &quanyu_analytics::SERVICE,
];

/// The sections every service shares.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SharedConfig {
    pub telemetry: TelemetryConfig,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
}

pub struct QuanyuConfig {
    pub shared: SharedConfig,
    /// Every service of [`SERVICES`] with its own section.
    pub services: Vec<Box<dyn Configured>>,
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// A TOML configuration file; without one, the bundled development configuration is used.
    /// Environment variables override both: QUANYU_DATABASE__URL sets database.url.
    #[arg(long, env = quanyu_runtime::config::CONFIG_PATH_VARIABLE)]
    pub config: Option<PathBuf>,
}

pub struct Loaded {
    pub config: QuanyuConfig,
    /// True when the bundled development configuration is in use.
    pub development: bool,
}

impl ConfigArgs {
    /// Loads and validates the configuration.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let config = match &self.config {
            Some(path) => {
                QuanyuConfig::load(None, Some(path)).with_context(|| format!("loading {}", path.display()))?
            }
            None => QuanyuConfig::load(Some(DEV_CONFIG), None)?,
        };
        Ok(Loaded {
            config,
            development: self.config.is_none(),
        })
    }
}

impl QuanyuConfig {
    fn load(toml_text: Option<&str>, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut sections = Sections::load(toml_text, file)?;
        let shared = SharedConfig {
            telemetry: sections.take("telemetry")?,
            server: sections.take("server")?,
            database: sections.take("database")?,
            auth: sections.take("auth")?,
        };
        let services = SERVICES
            .iter()
            .map(|service| service.configure(sections.take_raw(service.schema())))
            .collect::<Result<_, _>>()?;
        sections.finish()?;
        Ok(Self { shared, services })
    }

    /// The configuration in effect as TOML, secrets redacted.
    pub fn dump(&self) -> anyhow::Result<String> {
        let mut table = match toml::Value::try_from(&self.shared)? {
            toml::Value::Table(table) => table,
            _ => toml::Table::new(),
        };
        for service in &self.services {
            table.insert(service.schema().to_owned(), service.dump()?);
        }
        Ok(toml::to_string_pretty(&table)?)
    }

    /// Checks the API keys and builds what every service shares.
    pub fn service_context(&self) -> anyhow::Result<ServiceContext> {
        let keys = KeyRing::from_config(&self.shared.auth)
            .map_err(|problems| anyhow::anyhow!("invalid auth.api_keys:\n  {}", problems.join("\n  ")))?;
        Ok(ServiceContext {
            database: self.shared.database.clone(),
            server: self.shared.server.clone(),
            keys: Arc::new(keys),
            shutdown: quanyu_runtime::shutdown::Shutdown::new(),
            clock: quanyu_runtime::clock::Clock::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_config_is_valid_and_its_keys_are_the_printed_ones() {
        let loaded = ConfigArgs { config: None }.load().unwrap();
        assert!(loaded.development);
        let configured: Vec<&str> = loaded
            .config
            .shared
            .auth
            .api_keys
            .iter()
            .map(|key| key.sha256.as_str())
            .collect();
        let printed: Vec<String> = DEV_KEYS
            .iter()
            .map(|(_, key)| quanyu_runtime::auth::digest(key))
            .collect();
        assert_eq!(configured, printed);
        assert!(loaded.config.service_context().is_ok());
    }

    #[test]
    fn dumped_config_hides_every_secret() {
        let text = "[database]\nurl = \"postgres://quanyu:hunter2@db/quanyu\"\n\
                    [loyalty_points]\nidentity_api_key = \"plain-service-key\"\n";
        let dumped = QuanyuConfig::load(Some(text), None).unwrap().dump().unwrap();
        assert!(dumped.contains("postgres://quanyu:***@db/quanyu"), "{dumped}");
        assert!(dumped.contains("identity_api_key = \"***\""), "{dumped}");
        assert!(
            !dumped.contains("hunter2") && !dumped.contains("plain-service-key"),
            "{dumped}"
        );
    }
}
