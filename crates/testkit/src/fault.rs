//! A TCP link between the services and PostgreSQL that a test can break, as a network does:
//! [`Link::reset`] closes every connection and refuses new ones, [`Link::stall`] keeps them open
//! but carries nothing, [`Link::restore`] heals it. It counts what it carries, so a test can tell
//! which of several servers was called.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Stalled,
    Reset,
}

pub struct Link {
    address: SocketAddr,
    state: watch::Sender<State>,
    carried: Arc<AtomicU64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on an ephemeral port and carries what arrives to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let address = listener.local_addr().expect("bound address");
        let (state, watching) = watch::channel(State::Up);
        let carried = Arc::new(AtomicU64::new(0));
        let accepting = tokio::spawn(accept(listener, upstream, watching, carried.clone()));
        Link {
            address,
            state,
            carried,
            accepting,
        }
    }

    /// Where clients connect to reach the upstream through the link.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every connection, and each new one as soon as it is accepted.
    pub fn reset(&self) {
        self.state.send_replace(State::Reset);
    }

    /// Carries nothing either way, on open connections and new ones, until restored.
    pub fn stall(&self) {
        self.state.send_replace(State::Stalled);
    }

    pub fn restore(&self) {
        self.state.send_replace(State::Up);
    }

    /// Bytes carried so far, both ways.
    pub fn bytes_carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.state.send_replace(State::Reset);
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, state: watch::Receiver<State>, carried: Arc<AtomicU64>) {
    while let Ok((client, _)) = listener.accept().await {
        if *state.borrow() == State::Reset {
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            continue;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(carry(client_read, server_write, state.clone(), carried.clone()));
        tokio::spawn(carry(server_read, client_write, state.clone(), carried.clone()));
    }
}

/// Copies one direction of a connection while the link is up; ends (closing its half) on reset.
async fn carry(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    carried: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let now = *state.borrow_and_update();
        match now {
            State::Reset => return,
            State::Stalled => {
                if state.changed().await.is_err() {
                    return;
                }
                continue;
            }
            State::Up => {}
        }
        tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    if to.write_all(&buffer[..read]).await.is_err() {
                        return;
                    }
                    carried.fetch_add(read as u64, Ordering::Relaxed);
                }
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
