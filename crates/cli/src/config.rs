//! The configuration of a `quanyu` process: shared sections plus one per service.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use quanyu_runtime::auth::{AuthConfig, KeyRing};
use quanyu_runtime::db::DatabaseConfig;
use quanyu_runtime::server::{ServerConfig, ServiceContext};
use quanyu_runtime::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuanyuConfig {
    pub telemetry: TelemetryConfig,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub member_identity: quanyu_member_identity::Config,
    pub loyalty_points: quanyu_loyalty_points::Config,
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
        let config: QuanyuConfig = match &self.config {
            Some(path) => {
                quanyu_runtime::config::load(None, Some(path)).with_context(|| format!("loading {}", path.display()))?
            }
            None => quanyu_runtime::config::load(Some(DEV_CONFIG), None)?,
        };
        Ok(Loaded {
            config,
            development: self.config.is_none(),
        })
    }
}

impl QuanyuConfig {
    /// Checks the API keys and builds what every service shares.
    pub fn service_context(&self) -> anyhow::Result<ServiceContext> {
        let keys = KeyRing::from_config(&self.auth)
            .map_err(|problems| anyhow::anyhow!("invalid auth.api_keys:\n  {}", problems.join("\n  ")))?;
        Ok(ServiceContext {
            database: self.database.clone(),
            server: self.server.clone(),
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
    fn dumped_config_hides_database_passwords() {
        let mut config = QuanyuConfig::default();
        config.database.url = quanyu_runtime::config::Secret::new("postgres://quanyu:hunter2@db/quanyu");
        let dumped = toml::to_string(&config).unwrap();
        assert!(dumped.contains("postgres://quanyu:***@db/quanyu"), "{dumped}");
        assert!(!dumped.contains("hunter2"));
    }
}
