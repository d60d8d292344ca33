//! The configuration of a `quanyu` process: shared sections plus one per service.

use std::path::PathBuf;
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
    /// Given more than once, each file is layered over the ones before (keep secrets such as the
    /// API keys in a file of their own). Environment variables override them all:
    /// QUANYU_DATABASE__URL sets database.url.
    #[arg(long, env = quanyu_runtime::config::CONFIG_PATH_VARIABLE, value_delimiter = ',')]
    pub config: Vec<PathBuf>,
}

pub struct Loaded {
    pub config: QuanyuConfig,
    /// True when the bundled development configuration is in use.
    pub development: bool,
}

impl ConfigArgs {
    /// Loads and validates the configuration.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let development = self.config.is_empty();
        let config = if development {
            QuanyuConfig::load(Some(DEV_CONFIG), &[])?
        } else {
            let files: Vec<String> = self.config.iter().map(|path| path.display().to_string()).collect();
            QuanyuConfig::load(None, &self.config).with_context(|| format!("loading {}", files.join(", ")))?
        };
        Ok(Loaded { config, development })
    }
}

impl QuanyuConfig {
    fn load(toml_text: Option<&str>, files: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut sections = Sections::load(toml_text, files)?;
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
        let loaded = ConfigArgs { config: Vec::new() }.load().unwrap();
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

    /// As Kubernetes gives them: the shared settings from a ConfigMap, the API keys from a Secret.
    #[test]
    fn each_config_file_is_layered_over_the_ones_before() {
        let directory = tempfile::tempdir().unwrap();
        let shared = directory.path().join("quanyu.toml");
        let keys = directory.path().join("api-keys.toml");
        std::fs::write(&shared, "[database]\nmax_connections = 7\nmin_connections = 2\n").unwrap();
        let digest = quanyu_runtime::auth::digest("mall-key");
        std::fs::write(
            &keys,
            format!(
                "[database]\nmax_connections = 9\n\n[[auth.api_keys]]\nid = \"mall\"\nrole = \"platform\"\n\
                 tenant = \"lumen\"\nsha256 = \"{digest}\"\n"
            ),
        )
        .unwrap();
        let loaded = ConfigArgs {
            config: vec![shared.clone(), keys],
        }
        .load()
        .unwrap();
        assert!(!loaded.development);
        let shared_config = &loaded.config.shared;
        assert_eq!(shared_config.database.max_connections, Some(9), "the later file wins");
        assert_eq!(
            shared_config.database.min_connections, 2,
            "the earlier file's other keys stay"
        );
        let ids: Vec<&str> = shared_config.auth.api_keys.iter().map(|key| key.id.as_str()).collect();
        assert_eq!(ids, ["mall"]);

        let missing = directory.path().join("missing.toml");
        let error = ConfigArgs {
            config: vec![shared, missing],
        }
        .load()
        .err()
        .unwrap();
        assert!(format!("{error:#}").contains("missing.toml"), "{error:#}");
    }

    #[test]
    fn dumped_config_hides_every_secret() {
        let text = "[database]\nurl = \"postgres://quanyu:hunter2@db/quanyu\"\n\
                    [loyalty_points]\nidentity_api_key = \"plain-service-key\"\n";
        let dumped = QuanyuConfig::load(Some(text), &[]).unwrap().dump().unwrap();
        assert!(dumped.contains("postgres://quanyu:***@db/quanyu"), "{dumped}");
        assert!(dumped.contains("identity_api_key = \"***\""), "{dumped}");
        assert!(
            !dumped.contains("hunter2") && !dumped.contains("plain-service-key"),
            "{dumped}"
        );
    }
}
