//! `quanyu`: runs Quanyu's services and manages their databases.

mod config;
mod migrate;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quanyu",
    version,
    about = "Quanyu omnichannel membership and loyalty services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves every service (or one, with --only), each on its own port.
    Serve(serve::Args),
    /// Creates or upgrades the services' database schemas, then exits.
    Migrate(migrate::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
    }
}
