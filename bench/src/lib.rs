//! Shared helpers of the benchmarks in `src/bin`.

use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database};

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A duration in milliseconds, as the benchmarks print them.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// The PostgreSQL server the benchmarks run on: `TEST_DATABASE_URL`, else the local one.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with_database(url: &str, name: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    format!("{root}/{name}")
}

/// What pgbench runs: its TPC-B, its select-only variant (`-S`: one primary-key lookup a
/// transaction), or a script of ours after a setup.
pub enum Workload {
    TpcB,
    SelectOnly,
    Script { setup: &'static str, script: &'static str },
}

/// Transactions per second pgbench reaches with `clients` for `run_for`, on a scratch database
/// of the benchmarks' server.
pub async fn pgbench(clients: u32, workload: Workload, run_for: Duration) -> anyhow::Result<f64> {
    let admin = Database::connect(server_url()).await?;
    let name = "quanyu_bench_pgbench";
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    let url = with_database(&server_url(), name);
    let script_file = std::env::temp_dir().join(format!("quanyu-pgbench-{}.sql", std::process::id()));
    let mut run_args = vec!["-c".to_owned(), clients.to_string(), "-j".into(), "2".into()];
    run_args.extend(["-T".into(), run_for.as_secs().to_string()]);
    if matches!(workload, Workload::SelectOnly) {
        run_args.push("-S".into());
    }
    match workload {
        Workload::TpcB | Workload::SelectOnly => {
            let init = Command::new("pgbench")
                .args(["-i", "-q", "-s", "10", &url])
                .output()
                .context("pgbench")?;
            anyhow::ensure!(
                init.status.success(),
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        Workload::Script { setup, script } => {
            let scratch = Database::connect(url.as_str()).await?;
            scratch.execute_unprepared(setup).await?;
            scratch.close().await?;
            std::fs::write(&script_file, script)?;
            run_args.extend(["-n".into(), "-f".into(), script_file.display().to_string()]);
        }
    }
    run_args.push(url.clone());
    let run = Command::new("pgbench").args(&run_args).output()?;
    let _ = std::fs::remove_file(&script_file);
    anyhow::ensure!(
        run.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    let report = String::from_utf8_lossy(&run.stdout);
    report
        .lines()
        .find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .context("no tps in pgbench's report")
}
