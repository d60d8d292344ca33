//! Layered configuration: struct defaults < TOML files, each over the one before < `QUANYU_*`
//! environment variables (`QUANYU_DATABASE__URL` sets `database.url`). Unknown keys and type
//! errors name their path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// The environment variable that names the configuration files (comma-separated).
pub const CONFIG_PATH_VARIABLE: &str = "QUANYU_CONFIG";

/// The environment variables the `quanyu` client commands read (where to call, with which key):
/// they are not server settings, so a shell that sets them can still run `quanyu serve`.
pub const CLIENT_VARIABLES: &[&str] = &["QUANYU_ENDPOINT", "QUANYU_API_KEY", "QUANYU_PROFILE"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid configuration at `{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// The layered configuration, by section (`[database]`, `[member_identity]`, …): each part of the
/// program takes the sections it owns, and a section nobody takes is refused.
#[derive(Debug)]
pub struct Sections(BTreeMap<String, config::Value>);

impl Sections {
    /// Layers the TOML text given, then the files in order (a later file wins where two set a
    /// key: secrets can come in a file of their own), then the environment.
    pub fn load(toml_text: Option<&str>, files: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(text) = toml_text {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        for path in files {
            builder = builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
        }
        // `QUANYU_CONFIG` names the files; it is not a setting of its own.
        let environment = std::env::vars()
            .filter(|(name, _)| {
                name.starts_with("QUANYU_")
                    && name != CONFIG_PATH_VARIABLE
                    && !CLIENT_VARIABLES.contains(&name.as_str())
            })
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
        Ok(Self(layered.try_deserialize()?))
    }

    /// Reads TOML text alone, without the environment.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let layered = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?;
        Ok(Self(layered.try_deserialize()?))
    }

    /// Takes section `name` as `T`: its defaults where the section, or a key of it, is absent.
    ///
    /// `T` is expected to carry `#[serde(default)]`, so that a file names only what it changes.
    pub fn take<T: DeserializeOwned + Default>(&mut self, name: &str) -> Result<T, ConfigError> {
        match self.0.remove(name) {
            Some(section) => from_section(name, section),
            None => Ok(T::default()),
        }
    }

    /// Takes section `name` as it is, if present.
    pub fn take_raw(&mut self, name: &str) -> Option<config::Value> {
        self.0.remove(name)
    }

    /// Refuses the sections nobody took.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.0.into_keys().next() {
            None => Ok(()),
            Some(name) => Err(ConfigError::Invalid {
                path: name,
                message: "unknown section".into(),
            }),
        }
    }
}

/// Reads section `name` as `T`; errors name their path from the section (`database.url`).
pub fn from_section<T: DeserializeOwned>(name: &str, section: config::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(section).map_err(|error| {
        let inner = error.path().to_string();
        let path = if inner == "." {
            name.to_owned()
        } else {
            format!("{name}.{inner}")
        };
        ConfigError::Invalid {
            path,
            message: error.inner().to_string(),
        }
    })
}

/// A secret in the configuration: `Debug` and `Serialize` (so `--dump-config`) show it redacted
/// as its kind says, so no secret is printed whatever field holds it.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<Kind: Redaction = Opaque> {
    value: String,
    #[serde(skip)]
    kind: std::marker::PhantomData<Kind>,
}

/// A URL whose password is the secret (a database URL): shown with the password redacted.
pub type SecretUrl = Secret<UrlPassword>;

/// How a kind of secret is shown.
pub trait Redaction {
    fn redact(value: &str) -> String;
}

/// A secret shown as `***` whole (an API key).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Opaque;

impl Redaction for Opaque {
    fn redact(value: &str) -> String {
        if value.is_empty() {
            String::new()
        } else {
            "***".to_owned()
        }
    }
}

/// A URL shown with its password, if any, replaced by `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UrlPassword;

impl Redaction for UrlPassword {
    fn redact(value: &str) -> String {
        redact_url_password(value)
    }
}

impl<Kind: Redaction> Secret<Kind> {
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            kind: std::marker::PhantomData,
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn redacted(&self) -> String {
        Kind::redact(&self.value)
    }
}

impl<Kind: Redaction> std::fmt::Debug for Secret<Kind> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<Kind: Redaction> serde::Serialize for Secret<Kind> {
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct SampleDatabase {
        url: SecretUrl,
        max_connections: u32,
    }

    impl Default for SampleDatabase {
        fn default() -> Self {
            Self {
                url: SecretUrl::new("sqlite::memory:"),
                max_connections: 4,
            }
        }
    }

    #[test]
    fn redacts_the_password_of_a_url() {
        let secret = SecretUrl::new("postgres://app:s3cret@db:5432/quanyu");
        assert_eq!(format!("{secret:?}"), "postgres://app:***@db:5432/quanyu");
        assert_eq!(
            SecretUrl::new("postgres://app@db/quanyu").redacted(),
            "postgres://app@db/quanyu"
        );
        assert_eq!(SecretUrl::new("sqlite://data/x.db").redacted(), "sqlite://data/x.db");
    }

    #[test]
    fn redacts_an_opaque_secret_whole_whatever_it_looks_like() {
        for key in ["k3y", "http://user:pass@host/", "no-password://host"] {
            let secret: Secret = Secret::new(key);
            assert_eq!(format!("{secret:?}"), "***");
            assert_eq!(
                toml::Value::try_from(&secret).unwrap(),
                toml::Value::String("***".into())
            );
        }
        assert_eq!(Secret::<Opaque>::default().redacted(), "", "unset shows as unset");
    }

    #[test]
    fn file_overrides_defaults_and_names_bad_paths() {
        let load = |text: &str| -> Result<SampleDatabase, ConfigError> {
            let mut sections = Sections::load(Some(text), &[])?;
            let database = sections.take("database")?;
            sections.finish()?;
            Ok(database)
        };
        let loaded = load("[database]\nmax_connections = 9\n").unwrap();
        assert_eq!(loaded.max_connections, 9);
        assert_eq!(loaded.url.expose(), "sqlite::memory:");

        let error = load("[database]\nmax_connections = \"many\"\n").unwrap_err();
        assert!(error.to_string().contains("database.max_connections"), "{error}");
        let error = load("[database]\nurll = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("urll"), "{error}");
        let error = load("[databse]\nurl = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("`databse`: unknown section"), "{error}");
    }
}
