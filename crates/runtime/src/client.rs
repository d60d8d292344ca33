//! Channels to other Quanyu services, balanced over every address their endpoints name: a
//! Kubernetes headless Service resolves to each pod, and every call picks the less loaded of two
//! (tower's power of two choices). The names are resolved again at every refresh, so pods that
//! come and go are followed; when resolution fails, the addresses known before are kept.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

use crate::shutdown::Shutdown;

/// One endpoint as configured: `http://member-identity:50051`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|error| format!("{url:?} is not a URL: {error}"))?;
        let scheme = uri.scheme_str().ok_or_else(|| format!("{url:?} names no scheme"))?;
        let host = uri.host().ok_or_else(|| format!("{url:?} names no host"))?;
        let port = uri.port_u16().ok_or_else(|| format!("{url:?} names no port"))?;
        Ok(Self {
            scheme: scheme.to_owned(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
        })
    }
}

/// A channel balanced over every address of `endpoints` (one URL, or several separated by
/// commas), resolved now and every `refresh` until `shutdown`.
pub fn balanced_channel(endpoints: &str, refresh: Duration, shutdown: Shutdown) -> Result<Channel, String> {
    let targets = endpoints
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(Target::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err("no endpoint is configured".into());
    }
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(follow(targets, changes, refresh, shutdown));
    Ok(channel)
}

/// The first of `endpoints`, for a long-lived stream that needs one server, not a balance.
pub fn first_endpoint(endpoints: &str) -> &str {
    endpoints.split(',').map(str::trim).next().unwrap_or_default()
}

async fn follow(
    targets: Vec<Target>,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
    refresh: Duration,
    shutdown: Shutdown,
) {
    let mut current = HashSet::new();
    loop {
        if let Some(found) = resolve(&targets).await {
            let (gone, new) = differences(&current, &found);
            for address in gone {
                let _ = changes.send(Change::Remove(address)).await;
            }
            for address in new {
                let scheme = &targets[0].scheme;
                match Endpoint::from_shared(format!("{scheme}://{address}")) {
                    Ok(endpoint) => {
                        let endpoint = endpoint.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true);
                        let _ = changes.send(Change::Insert(address, endpoint)).await;
                    }
                    Err(error) => tracing::warn!(%address, %error, "cannot call this address"),
                }
            }
            current = found;
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(refresh) => {}
        }
    }
}

/// Every address the targets name now; `None` when any name does not resolve (a DNS hiccup
/// must not empty the balance).
async fn resolve(targets: &[Target]) -> Option<HashSet<SocketAddr>> {
    let mut found = HashSet::new();
    for target in targets {
        match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(addresses) => found.extend(addresses),
            Err(error) => {
                tracing::warn!(host = %target.host, %error, "cannot resolve; keeping the addresses known");
                return None;
            }
        }
    }
    Some(found)
}

/// What left the balance and what joined it.
fn differences(current: &HashSet<SocketAddr>, found: &HashSet<SocketAddr>) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    (
        current.difference(found).copied().collect(),
        found.difference(current).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_scheme_host_and_port() {
        assert_eq!(
            Target::parse("http://member-identity:50051").unwrap(),
            Target {
                scheme: "http".into(),
                host: "member-identity".into(),
                port: 50051
            }
        );
        assert_eq!(Target::parse("http://[::1]:7").unwrap().host, "::1");
        assert!(Target::parse("http://member-identity").unwrap_err().contains("no port"));
        assert!(Target::parse("member-identity:50051").is_err());
        assert_eq!(first_endpoint(" http://a:1 , http://b:2"), "http://a:1");
    }

    #[test]
    fn a_refresh_removes_what_left_and_adds_what_joined() {
        let address = |last: u8| SocketAddr::from(([10, 0, 0, last], 50051));
        let current = HashSet::from([address(1), address(2)]);
        let found = HashSet::from([address(2), address(3)]);
        assert_eq!(differences(&current, &found), (vec![address(1)], vec![address(3)]));
    }

    #[tokio::test]
    async fn names_resolve_to_their_addresses() {
        let targets = [Target::parse("http://127.0.0.1:50051").unwrap()];
        let found = resolve(&targets).await.unwrap();
        assert_eq!(found, HashSet::from([SocketAddr::from(([127, 0, 0, 1], 50051))]));
        let unknown = [Target::parse("http://no-such-host.invalid:1").unwrap()];
        assert_eq!(resolve(&unknown).await, None);
    }
}
