//! Where the client commands call and with which key: flags, then the environment, then a profile
//! file, then the services' standard ports on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use quanyu_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use quanyu_proto::campaign::v1::campaign_service_client::CampaignServiceClient;
use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_proto::points::v1::points_service_client::PointsServiceClient;
use quanyu_runtime::auth::BearerKey;
use serde::Deserialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt as _;

use crate::output::Format;

pub type Authorized = InterceptedService<Channel, BearerKey>;
pub type IdentityClient = MemberIdentityServiceClient<Authorized>;
pub type PointsClient = PointsServiceClient<Authorized>;
pub type CampaignClient = CampaignServiceClient<Authorized>;
pub type AnalyticsClient = AnalyticsServiceClient<Authorized>;

/// A service the client calls, with its standard port.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Identity,
    Points,
    Campaign,
    Analytics,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Identity => "member-identity",
            Target::Points => "loyalty-points",
            Target::Campaign => "campaign",
            Target::Analytics => "analytics",
        }
    }

    /// The flag (and profile key) that gives its URL.
    fn flag(self) -> &'static str {
        match self {
            Target::Identity => "identity",
            Target::Points => "points",
            Target::Campaign => "campaign",
            Target::Analytics => "analytics",
        }
    }

    fn port(self) -> u16 {
        match self {
            Target::Identity => 50051,
            Target::Points => 50052,
            Target::Campaign => 50053,
            Target::Analytics => 50054,
        }
    }
}

/// The options every client command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The host of the suite, every service at its standard port (50051-50054).
    #[arg(long, global = true, env = "QUANYU_ENDPOINT")]
    endpoint: Option<String>,
    /// member-identity's URL, when it is not at the endpoint's standard port.
    #[arg(long, global = true, value_name = "URL")]
    identity: Option<String>,
    /// loyalty-points' URL, when it is not at the endpoint's standard port.
    #[arg(long, global = true, value_name = "URL")]
    points: Option<String>,
    /// campaign's URL, when it is not at the endpoint's standard port.
    #[arg(long, global = true, value_name = "URL")]
    campaign: Option<String>,
    /// analytics' URL, when it is not at the endpoint's standard port.
    #[arg(long, global = true, value_name = "URL")]
    analytics: Option<String>,
    /// The API key (the development platform key is `dev-demo-platform`).
    #[arg(long, global = true, env = "QUANYU_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A profile of the profile file (~/.config/quanyu/profiles.toml): its endpoints and key
    /// apply where no flag or variable gives them.
    #[arg(long, global = true, env = "QUANYU_PROFILE", default_value = "default")]
    profile: String,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One profile of the profile file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    identity: Option<String>,
    points: Option<String>,
    campaign: Option<String>,
    analytics: Option<String>,
    api_key: Option<String>,
}

fn profile_file() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_home.join("quanyu").join("profiles.toml"))
}

impl ClientArgs {
    /// Fills what the flags and environment left unset from the profile, and checks the key.
    pub fn connect(&self) -> anyhow::Result<Clients> {
        let profile = self.load_profile()?;
        let endpoint = self
            .endpoint
            .clone()
            .or(profile.endpoint)
            .unwrap_or_else(|| "http://127.0.0.1".to_owned());
        let api_key = self.api_key.clone().or(profile.api_key).context(
            "no API key: pass --api-key, set QUANYU_API_KEY, or write api_key in a profile \
             (`quanyu serve` prints the development keys)",
        )?;
        let key = BearerKey::new(&api_key).context("the API key is not a valid header value")?;
        let host = endpoint.trim_end_matches('/').to_owned();
        let url = |flag: &Option<String>, profiled: Option<String>, target: Target| {
            flag.clone()
                .or(profiled)
                .unwrap_or_else(|| format!("{host}:{}", target.port()))
        };
        Ok(Clients {
            urls: [
                url(&self.identity, profile.identity, Target::Identity),
                url(&self.points, profile.points, Target::Points),
                url(&self.campaign, profile.campaign, Target::Campaign),
                url(&self.analytics, profile.analytics, Target::Analytics),
            ],
            key,
        })
    }

    fn load_profile(&self) -> anyhow::Result<Profile> {
        let Some(path) = profile_file().filter(|path| path.exists()) else {
            return Ok(Profile::default());
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut profiles: BTreeMap<String, Profile> =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        match profiles.remove(&self.profile) {
            Some(profile) => Ok(profile),
            None if self.profile == "default" => Ok(Profile::default()),
            None => anyhow::bail!("{}: no profile [{}]", path.display(), self.profile),
        }
    }
}

/// Where each service is, and the key to call it with.
pub struct Clients {
    urls: [String; 4],
    key: BearerKey,
}

impl Clients {
    async fn channel(&self, target: Target) -> anyhow::Result<Authorized> {
        let url = &self.urls[target as usize];
        let channel = Endpoint::from_shared(url.clone())
            .with_context(|| format!("{url} is not a URL for {}", target.name()))?
            .connect()
            .await
            .with_context(|| {
                format!(
                    "cannot reach {} at {url}: is `quanyu serve` running? (--endpoint or --{} moves it)",
                    target.name(),
                    target.flag()
                )
            })?;
        Ok(InterceptedService::new(channel, self.key.clone()))
    }

    pub async fn identity(&self) -> anyhow::Result<IdentityClient> {
        Ok(MemberIdentityServiceClient::new(self.channel(Target::Identity).await?))
    }

    pub async fn points(&self) -> anyhow::Result<PointsClient> {
        Ok(PointsServiceClient::new(self.channel(Target::Points).await?))
    }

    pub async fn campaign(&self) -> anyhow::Result<CampaignClient> {
        Ok(CampaignServiceClient::new(self.channel(Target::Campaign).await?))
    }

    pub async fn analytics(&self) -> anyhow::Result<AnalyticsClient> {
        Ok(AnalyticsServiceClient::new(self.channel(Target::Analytics).await?))
    }
}

/// A refused call as one line: what was called, the code, the message and every bad field.
pub fn refused(call: &str, status: tonic::Status) -> anyhow::Error {
    let code = quanyu_runtime::server::code_name(status.code());
    let mut line = format!("{call}: {code}: {}", status.message());
    // Quanyu's services name every violation in the message too; another server may not.
    if let Some(bad_request) = status.get_details_bad_request() {
        for violation in bad_request.field_violations {
            let named = format!("{}: {}", violation.field, violation.description);
            if !line.contains(&named) {
                line.push_str(&format!("; {named}"));
            }
        }
    }
    anyhow::anyhow!(line)
}

/// Calls and turns a refusal into [`refused`]'s line.
#[macro_export]
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {
        $client
            .$method($request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| $crate::client::refused(stringify!($method), status))
    };
}
