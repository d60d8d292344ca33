//! `quanyu migrate`: brings each service's schema up to date and exits, so that an upgrade can
//! migrate once (a Kubernetes Job) before the new replicas start.

use crate::config::ConfigArgs;
use crate::serve::Selection;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    selection: Selection,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?.config;
    for service in args.selection.of(&config.services) {
        service.migrate(&config.shared.database).await?;
        println!("{}: schema up to date", service.name());
    }
    Ok(())
}
