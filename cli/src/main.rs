//! `quanyu`: runs Quanyu's services, manages their databases, and calls them.

mod admin;
mod client;
mod config;
mod demo;
mod migrate;
mod names;
mod output;
mod pos;
mod report;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::ClientArgs;

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
    /// Members: get, resolve identities, merge, erase.
    Member {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: admin::MemberCommand,
    },
    /// Points: a member's balance and history.
    Points {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: admin::PointsCommand,
    },
    /// Coupons: a member's wallet, one coupon, issue, void.
    Coupon {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: admin::CouponCommand,
    },
    /// Generates a demo group through the services' APIs (100,000 members by default) and
    /// prints its FAST report; run it again to resume.
    Demo {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: demo::DemoArgs,
    },
    /// Analytics' figures: FAST over time, metrics, channel overlap, cohorts, AIPL flow,
    /// campaign results; --chart draws them.
    Report {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Store tills' sales from a POS export file.
    Pos {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: pos::PosCommand,
    },
}

/// Runs the command; a failure is one line on stderr and exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Member { client, command } => admin::member(&client, command).await?.print(client.format),
        Command::Points { client, command } => admin::points(&client, command).await?.print(client.format),
        Command::Coupon { client, command } => admin::coupon(&client, command).await?.print(client.format),
        Command::Demo { client, args } => demo::run(&client, args).await,
        Command::Report { client, command } => report::run(&client, command).await?.print(client.format),
        Command::Pos { client, command } => pos::run(&client, command).await,
    }
}
