//! `quanyu serve`: every service in one process, each on its own port, or one of them.

use anyhow::Context as _;
use quanyu_runtime::service::Configured;
use tokio::net::TcpListener;

use crate::config::{ConfigArgs, DEV_KEYS, SERVICES};

/// Which services a command acts on: all, or the one named by `--only`.
#[derive(clap::Args)]
pub struct Selection {
    /// Only this service (the container entrypoint uses this).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SERVICES.iter().map(|service| service.name())))]
    only: Option<String>,
}

impl Selection {
    /// The selected services among `services`, in their order.
    pub fn of<'a>(&'a self, services: &'a [Box<dyn Configured>]) -> impl Iterator<Item = &'a dyn Configured> {
        services
            .iter()
            .map(|service| &**service)
            .filter(|service| self.only.as_deref().is_none_or(|only| only == service.name()))
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
        print!("{}", loaded.config.dump()?);
        return Ok(());
    }
    let config = loaded.config;
    let context = config.service_context()?;
    let telemetry = quanyu_runtime::telemetry::init(&config.shared.telemetry)?;
    if loaded.development {
        print_development_keys();
    }
    let shutdown = context.shutdown.clone();
    shutdown.on_signals();
    let mut servers = tokio::task::JoinSet::new();
    for service in args.selection.of(&config.services) {
        let (name, address) = (service.name(), service.listen());
        let server = service
            .build(&context)
            .await
            .map_err(|error| anyhow::anyhow!("{name}: {error}"))?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("{name}: cannot listen on {address}"))?;
        tracing::info!(service = name, %address, "serving");
        let (server_config, shutdown) = (config.shared.server.clone(), shutdown.clone());
        servers.spawn(async move { quanyu_runtime::server::serve(listener, server, &server_config, shutdown).await });
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

fn print_development_keys() {
    println!("Using the bundled development configuration (tenant `demo`). Development API keys:");
    for (role, key) in DEV_KEYS {
        println!("  {role:<14} authorization: Bearer {key}");
    }
}
