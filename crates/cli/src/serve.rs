//! `quanyu serve`: every service in one process, each on its own port, or one of them.

use anyhow::Context as _;
use quanyu_runtime::server::Service;
use tokio::net::TcpListener;

use crate::config::{ConfigArgs, DEV_KEYS, QuanyuConfig};

/// The services `quanyu` can run.
pub const SERVICES: &[&str] = &[quanyu_member_identity::NAME, quanyu_loyalty_points::NAME];

/// Which services a command acts on: all, or the one named by `--only`.
#[derive(clap::Args)]
pub struct Selection {
    /// Only this service (the container entrypoint uses this).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SERVICES))]
    only: Option<String>,
}

impl Selection {
    pub fn services(&self) -> Vec<&'static str> {
        SERVICES
            .iter()
            .copied()
            .filter(|name| self.only.as_deref().is_none_or(|only| only == *name))
            .collect()
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    selection: Selection,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    dump_config: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let loaded = args.config.load()?;
    if args.dump_config {
        print!("{}", toml::to_string_pretty(&loaded.config)?);
        return Ok(());
    }
    let config = loaded.config;
    let context = config.service_context()?;
    let telemetry = quanyu_runtime::telemetry::init(&config.telemetry)?;
    if loaded.development {
        print_development_keys();
    }
    let shutdown = context.shutdown.clone();
    shutdown.on_signals();
    let mut servers = tokio::task::JoinSet::new();
    for name in args.selection.services() {
        let (address, service) = build(name, &config, &context).await?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("{name}: cannot listen on {address}"))?;
        tracing::info!(service = name, %address, "serving");
        let (server_config, shutdown) = (config.server.clone(), shutdown.clone());
        servers.spawn(async move { quanyu_runtime::server::serve(listener, service, &server_config, shutdown).await });
    }
    let mut failure = None;
    while let Some(finished) = servers.join_next().await {
        if let Err(error) = finished
            .map_err(anyhow::Error::from)
            .and_then(|served| served.map_err(Into::into))
        {
            tracing::error!(%error, "a server stopped; shutting the others down");
            shutdown.trigger();
            failure.get_or_insert(error);
        }
    }
    telemetry.shutdown().await;
    failure.map_or(Ok(()), Err)
}

async fn build(
    name: &str,
    config: &QuanyuConfig,
    context: &quanyu_runtime::server::ServiceContext,
) -> anyhow::Result<(std::net::SocketAddr, Service)> {
    match name {
        quanyu_member_identity::NAME => Ok((
            config.member_identity.listen,
            quanyu_member_identity::build(&config.member_identity, context).await?,
        )),
        quanyu_loyalty_points::NAME => Ok((
            config.loyalty_points.listen,
            quanyu_loyalty_points::build(&config.loyalty_points, context).await?,
        )),
        other => anyhow::bail!("unknown service {other:?}"),
    }
}

fn print_development_keys() {
    println!("Using the bundled development configuration (tenant `demo`). Development API keys:");
    for (role, key) in DEV_KEYS {
        println!("  {role:<14} authorization: Bearer {key}");
    }
}
