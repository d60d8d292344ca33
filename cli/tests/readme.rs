//! The README's walkthrough, run as a newcomer would: its first block (build, then `quanyu serve`)
//! is stood in for by this build's `quanyu serve` on the development configuration, and every
//! command of the blocks after it runs in a shell against it. The one change: the demo is
//! generated with 300 members, not the walkthrough's thousands, to keep the test short.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::process::Command;

const SECTION: &str = "## Try it: from a fresh clone to a FAST chart";

/// The `sh` blocks of the README's walkthrough.
fn walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme.find(SECTION).expect("the README has its walkthrough");
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block[..block.find("```").unwrap()].to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_from_a_served_suite_to_its_charts() {
    let blocks = walkthrough();
    assert_eq!(blocks.len(), 2, "a block that builds and serves, and one that calls");
    assert_eq!(
        blocks[0], "cargo build --release -p quanyu\n./target/release/quanyu serve\n",
        "the test stands in for exactly this block"
    );
    assert!(blocks[1].contains("quanyu demo --members 20000"), "{}", blocks[1]);

    let server = support::serve();
    support::connect(server.ports.analytics).await;
    let home = tempfile::tempdir().unwrap();
    let url = |port: u16| format!("\"http://127.0.0.1:{port}\"");
    let profile = format!(
        "[default]\nidentity = {}\npoints = {}\ncampaign = {}\nanalytics = {}\n",
        url(server.ports.identity),
        url(server.ports.points),
        url(server.ports.campaign),
        url(server.ports.analytics)
    );
    std::fs::create_dir_all(home.path().join("config/quanyu")).unwrap();
    std::fs::write(home.path().join("config/quanyu/profiles.toml"), profile).unwrap();
    // The commands run from a checkout: the examples are where the README says.
    let checkout = home.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
        checkout.join("examples"),
    )
    .unwrap();
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_quanyu")).parent().unwrap().to_owned();
    let path = format!("{}:{}", binary_dir.display(), std::env::var("PATH").unwrap_or_default());

    let script = blocks[1].replace("quanyu demo --members 20000", "quanyu demo --members 300");
    let mut shell = Command::new("bash");
    shell
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&checkout)
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("QUANYU_ENDPOINT")
        .env_remove("QUANYU_PROFILE")
        .env_remove("QUANYU_API_KEY");
    let ran = tokio::task::spawn_blocking(move || shell.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
    );
    assert!(ran.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("period_end") && stdout.contains("fertility"),
        "the demo printed FAST: {stdout}"
    );
    assert!(stdout.contains("member_share_of_sales"), "{stdout}");
    assert!(stdout.contains("found"), "the imported buyer resolves: {stdout}");
    for chart in ["fast.svg", "overlap.svg", "cohorts.png"] {
        let drawn = std::fs::metadata(checkout.join(chart))
            .map(|file| file.len())
            .unwrap_or(0);
        assert!(drawn > 1_000, "{chart} was drawn");
    }
    drop(server);
}
