//! Layered configuration: struct defaults < optional TOML file < `QUANYU_*` environment variables
//! (`QUANYU_DATABASE__URL` sets `database.url`). Unknown keys and type errors name their path.

use std::path::Path;

use serde::de::DeserializeOwned;

/// The environment variable that names the configuration file.
pub const CONFIG_PATH_VARIABLE: &str = "QUANYU_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid configuration at `{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// Loads `T` from its defaults, then the TOML text or file given, then the environment.
///
/// Every struct of `T` is expected to carry `#[serde(default)]`, so that a file names only what it
/// changes.
pub fn load<T: DeserializeOwned>(toml_text: Option<&str>, file: Option<&Path>) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(text) = toml_text {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    // `QUANYU_CONFIG` names the file; it is not a setting of its own.
    let environment = std::env::vars()
        .filter(|(name, _)| name.starts_with("QUANYU_") && name != CONFIG_PATH_VARIABLE)
        .collect();
    let layered = builder
        .add_source(
            config::Environment::with_prefix("QUANYU")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(environment)),
        )
        .build()?;
    serde_path_to_error::deserialize(layered).map_err(|error| ConfigError::Invalid {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// A secret string (a password-bearing URL): `Debug` and `Serialize` show it redacted.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the value with any URL password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url_password(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &authority[..colon],
        &url[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        database: SampleDatabase,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct SampleDatabase {
        url: Secret,
        max_connections: u32,
    }

    impl Default for SampleDatabase {
        fn default() -> Self {
            Self {
                url: Secret::new("sqlite::memory:"),
                max_connections: 4,
            }
        }
    }

    #[test]
    fn redacts_the_password_of_a_url() {
        let secret = Secret::new("postgres://app:s3cret@db:5432/quanyu");
        assert_eq!(format!("{secret:?}"), "postgres://app:***@db:5432/quanyu");
        assert_eq!(
            Secret::new("postgres://app@db/quanyu").redacted(),
            "postgres://app@db/quanyu"
        );
        assert_eq!(Secret::new("sqlite://data/x.db").redacted(), "sqlite://data/x.db");
    }

    #[test]
    fn file_overrides_defaults_and_names_bad_paths() {
        let loaded: Sample = load(Some("[database]\nmax_connections = 9\n"), None).unwrap();
        assert_eq!(loaded.database.max_connections, 9);
        assert_eq!(loaded.database.url.expose(), "sqlite::memory:");

        let error = load::<Sample>(Some("[database]\nmax_connections = \"many\"\n"), None).unwrap_err();
        assert!(error.to_string().contains("database.max_connections"), "{error}");
        let error = load::<Sample>(Some("[database]\nurll = \"x\"\n"), None).unwrap_err();
        assert!(error.to_string().contains("urll"), "{error}");
    }
}
