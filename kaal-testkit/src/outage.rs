//! Database outages for the fleet suite: a way to make a store unreachable for the nodes for
//! a while, and back, without disturbing other tests that share the server.
//!
//! For a networked database, [`TcpCut`] is a TCP relay in the test process: the nodes connect
//! through it, and [`Outage::begin`] cuts every relayed connection and refuses new ones until
//! [`Outage::end`] — from a node's side exactly what a server that stops and restarts looks
//! like (connections reset, connects refused), while the server itself stays up for the
//! other tests running beside it. An embedded database supplies its own (SQLite: another
//! connection holding the write lock).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// An outage of one store, as the nodes of a fleet see it.
pub trait Outage: Send {
    /// The locator the nodes must open so that the outage reaches them.
    fn locator(&self) -> String;

    /// Makes the store unreachable (or unwritable) for the nodes.
    fn begin(&mut self);

    /// Makes it reachable again.
    fn end(&mut self);

    /// What the outage does, for the printed figures (`"TCP connections cut"`, ...).
    fn describe(&self) -> String;

    /// Stalls the nodes' traffic without cutting it: bytes sent are held, not delivered,
    /// until [`unstall`](Outage::unstall) — a network stall between two statements. Returns
    /// `false` when this outage cannot stall (the default).
    fn stall(&mut self) -> bool {
        false
    }

    /// Delivers what a [`stall`](Outage::stall) held, and lets traffic flow again.
    fn unstall(&mut self) {}

    /// Cuts every connection once the nodes have sent `bytes` more bytes to the store (the
    /// chunk that crosses the budget is not delivered): a connection lost part-way through
    /// a statement or a transaction, at a point the test chooses. `None` lifts the budget.
    /// Returns `false` when this outage cannot count bytes (the default).
    fn cut_after(&mut self, bytes: Option<u64>) -> bool {
        let _ = bytes;
        false
    }
}

/// No budget: [`RelayState::budget`] when nothing is counted.
const UNLIMITED: i64 = i64::MAX;

struct RelayState {
    down: AtomicBool,
    /// Bytes read while set are held until it clears (a stall, not a cut).
    stalled: AtomicBool,
    closed: AtomicBool,
    /// Bytes the clients may still send before every connection is cut.
    budget: AtomicI64,
    live: Mutex<Vec<TcpStream>>,
}

impl Default for RelayState {
    fn default() -> Self {
        Self {
            down: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            budget: AtomicI64::new(UNLIMITED),
            live: Mutex::new(Vec::new()),
        }
    }
}

impl RelayState {
    fn cut_all(&self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for stream in live.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP relay from a local port to a database server whose connections can be cut.
pub struct TcpCut {
    url: String,
    port: u16,
    state: Arc<RelayState>,
}

impl std::fmt::Debug for TcpCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpCut")
            .field("port", &self.port)
            .field("down", &self.state.down.load(Ordering::SeqCst))
            .finish()
    }
}

/// The `host:port` of a `scheme://[user[:password]@]host[:port]/...` URL, with the scheme's
/// default port when none is given.
fn authority(url: &str, default_port: u16) -> (usize, usize, String) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let host_port = &url[host_start..end];
    let address = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    (host_start, end, address)
}

impl TcpCut {
    /// Relays to the server that `url` names (`default_port` when the URL has none) and
    /// returns the relay; [`Outage::locator`] is `url` pointed at the relay. Panics, naming
    /// the URL, when the server address cannot be resolved or no local port is free.
    pub fn new(url: &str, default_port: u16) -> Self {
        let (host_start, host_end, address) = authority(url, default_port);
        let upstream: SocketAddr = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the database server {address} of {url}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("no free local port for a relay");
        let port = listener.local_addr().expect("relay address").port();
        let state = Arc::new(RelayState::default());
        let accepting = state.clone();
        thread::spawn(move || accept_loop(&listener, upstream, &accepting));
        Self {
            url: format!("{}127.0.0.1:{port}{}", &url[..host_start], &url[host_end..]),
            port,
            state,
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, state: &Arc<RelayState>) {
    for client in listener.incoming() {
        if state.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.down.load(Ordering::SeqCst) {
            // Refused: the connection is closed before the server could answer.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let pair = (client.try_clone(), server.try_clone());
        let (Ok(client2), Ok(server2)) = pair else {
            continue;
        };
        {
            let mut live = state.live.lock().unwrap_or_else(|p| p.into_inner());
            if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                live.push(c);
                live.push(s);
            }
            // Forget streams that have finished, so the list does not grow without bound.
            live.retain(|s| s.peer_addr().is_ok());
        }
        // An outage that began after the check above but before the push missed this
        // connection in its cut: cut it now. (`begin` sets `down` before cutting, so every
        // connection is either in the list when it cuts or sees `down` here.)
        if state.down.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            continue;
        }
        let (up, down) = (state.clone(), state.clone());
        thread::spawn(move || pump(client, server2, &up, true));
        thread::spawn(move || pump(server, client2, &down, false));
    }
}

/// Copies one direction until either side closes, then closes both. While the relay is
/// stalled, what was read is held back; what a client sends (`upstream`) is counted against
/// the budget, and the chunk that crosses it cuts every connection instead of being sent.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &RelayState, upstream: bool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if upstream
                    && state.budget.load(Ordering::SeqCst) != UNLIMITED
                    && state
                        .budget
                        .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::SeqCst)
                        < i64::try_from(n).unwrap_or(i64::MAX)
                {
                    state.cut_all();
                    break;
                }
                while state.stalled.load(Ordering::SeqCst) && !state.closed.load(Ordering::SeqCst) {
                    thread::sleep(std::time::Duration::from_millis(2));
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Outage for TcpCut {
    fn locator(&self) -> String {
        self.url.clone()
    }

    fn begin(&mut self) {
        self.state.down.store(true, Ordering::SeqCst);
        self.state.cut_all();
    }

    fn end(&mut self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    fn describe(&self) -> String {
        "every TCP connection to the server cut, new ones refused".into()
    }

    fn stall(&mut self) -> bool {
        self.state.stalled.store(true, Ordering::SeqCst);
        true
    }

    fn unstall(&mut self) {
        self.state.stalled.store(false, Ordering::SeqCst);
    }

    fn cut_after(&mut self, bytes: Option<u64>) -> bool {
        let budget = bytes.map_or(UNLIMITED, |b| i64::try_from(b).unwrap_or(UNLIMITED - 1));
        self.state.budget.store(budget, Ordering::SeqCst);
        true
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.cut_all();
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Used by [`TcpCut`]'s tests and by backends that want the relay's address parsing.
#[doc(hidden)]
pub fn relay_authority(url: &str, default_port: u16) -> String {
    authority(url, default_port).2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn authority_is_found_with_and_without_credentials_and_port() {
        assert_eq!(
            relay_authority("postgres://u:p@db.example:6543/x?sslmode=disable", 5432),
            "db.example:6543"
        );
        assert_eq!(
            relay_authority("mysql://root@127.0.0.1/test", 3306),
            "127.0.0.1:3306"
        );
        assert_eq!(relay_authority("postgres://h/db", 5432), "h:5432");
    }

    #[test]
    fn a_cut_closes_relayed_connections_and_refuses_new_ones_until_it_ends() -> io::Result<()> {
        let echo = TcpListener::bind("127.0.0.1:0")?;
        let echo_port = echo.local_addr()?.port();
        thread::spawn(move || {
            for stream in echo.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = stream.try_clone().expect("clone");
                    let mut writer = stream;
                    let _ = io::copy(&mut reader, &mut writer);
                });
            }
        });
        let mut cut = TcpCut::new(&format!("x://u@127.0.0.1:{echo_port}/db"), 1);
        let relay = cut.locator();
        assert!(
            relay.starts_with("x://u@127.0.0.1:") && relay.ends_with("/db"),
            "{relay}"
        );
        let port = cut.port;
        let roundtrip = |stream: &mut TcpStream| -> io::Result<Vec<u8>> {
            stream.write_all(b"ping")?;
            let mut answer = [0u8; 4];
            stream.read_exact(&mut answer)?;
            Ok(answer.to_vec())
        };
        let mut before = TcpStream::connect(("127.0.0.1", port))?;
        assert_eq!(roundtrip(&mut before)?, b"ping");
        cut.begin();
        assert!(
            roundtrip(&mut before).is_err(),
            "a live connection survived the cut"
        );
        let mut during = TcpStream::connect(("127.0.0.1", port))?;
        assert!(
            roundtrip(&mut during).is_err(),
            "a new connection got through"
        );
        cut.end();
        let mut after = TcpStream::connect(("127.0.0.1", port))?;
        assert_eq!(roundtrip(&mut after)?, b"ping");
        Ok(())
    }
}
