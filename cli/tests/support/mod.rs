//! The `quanyu` binary as a process: `quanyu serve` on the bundled development configuration
//! (SQLite under a temporary directory) with every port moved to a free one, logging JSON as in
//! production to `serve.log` in that directory.

#![allow(dead_code)] // each test binary uses its part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use tonic::transport::Channel;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The binary, run in `dir`, with no configuration from the caller's environment.
pub fn quanyu(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quanyu"));
    command
        .current_dir(dir)
        .env_remove("QUANYU_CONFIG")
        .env_remove("RUST_LOG")
        // A shell set up for the client commands still serves: these are not settings.
        .env("QUANYU_ENDPOINT", "http://elsewhere")
        .env("QUANYU_API_KEY", "dev-demo-platform");
    command
}

/// The file in a served suite's directory that holds its logs.
pub const LOG: &str = "serve.log";

/// Where a served suite listens.
pub struct Ports {
    pub identity: u16,
    pub points: u16,
    pub campaign: u16,
    pub analytics: u16,
    pub metrics: u16,
}

/// A running `quanyu serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub ports: Ports,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `quanyu serve` in a new directory, each service and the metrics on a free port and
/// each told where the others are.
pub fn serve() -> Server {
    serve_with(&[])
}

/// [`serve`] with more settings, as environment variables.
pub fn serve_with(settings: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        identity: free_port(),
        points: free_port(),
        campaign: free_port(),
        analytics: free_port(),
        metrics: free_port(),
    };
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join(LOG)).unwrap();
    let child = quanyu(dir.path())
        .arg("serve")
        .env("QUANYU_MEMBER_IDENTITY__LISTEN", listen(ports.identity))
        .env("QUANYU_LOYALTY_POINTS__LISTEN", listen(ports.points))
        .env("QUANYU_CAMPAIGN__LISTEN", listen(ports.campaign))
        .env("QUANYU_ANALYTICS__LISTEN", listen(ports.analytics))
        .env("QUANYU_TELEMETRY__METRICS_LISTEN", listen(ports.metrics))
        .env("QUANYU_LOYALTY_POINTS__IDENTITY_ENDPOINT", url(ports.identity))
        .env("QUANYU_CAMPAIGN__IDENTITY_ENDPOINT", url(ports.identity))
        .env("QUANYU_CAMPAIGN__POINTS_ENDPOINT", url(ports.points))
        .env("QUANYU_CAMPAIGN__ANALYTICS_ENDPOINT", url(ports.analytics))
        .env("QUANYU_ANALYTICS__IDENTITY_ENDPOINT", url(ports.identity))
        .env("QUANYU_ANALYTICS__POINTS_ENDPOINT", url(ports.points))
        .env("QUANYU_ANALYTICS__CAMPAIGN_ENDPOINT", url(ports.campaign))
        .env("QUANYU_TELEMETRY__LOG_FORMAT", "json")
        .envs(settings.iter().copied())
        // A file, not a pipe: a pipe nobody reads would fill and stop the server.
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Server { child, ports, dir }
}

/// A channel to `port`, once something listens there.
pub async fn connect(port: u16) -> Channel {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("quanyu serve did not start listening on {port}");
}
