//! `quanyu migrate`: brings each service's schema up to date and exits, so that an upgrade can
//! migrate once (a Kubernetes Job) before the new replicas start.

use crate::config::{ConfigArgs, QuanyuConfig};
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
    for name in args.selection.services() {
        match name {
            quanyu_member_identity::NAME => {
                up::<quanyu_member_identity::migration::Migrator>(&config, quanyu_member_identity::SCHEMA).await?;
            }
            quanyu_loyalty_points::NAME => {
                up::<quanyu_loyalty_points::migration::Migrator>(&config, quanyu_loyalty_points::SCHEMA).await?;
            }
            other => anyhow::bail!("unknown service {other:?}"),
        }
        println!("{name}: schema up to date");
    }
    Ok(())
}

async fn up<M: sea_orm_migration::MigratorTrait>(config: &QuanyuConfig, schema: &str) -> anyhow::Result<()> {
    let db = quanyu_runtime::db::connect::<M>(&config.database, schema).await?;
    db.close().await?;
    Ok(())
}
