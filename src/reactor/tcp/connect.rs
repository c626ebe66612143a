//! Outgoing TCP connections: resolve the host (on the thread pool unless it
//! is an IP literal), try each address in turn, give up after a timeout
//! (Twisted's `connectTCP` and the endpoint-style `connectProtocol`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::error::ConnectError;
use super::transport::{Conn, Connecting, MakeProtocol, OnConnect};
use crate::defer::{CancelledError, Deferred, Failure};
use crate::reactor::current_reactor;
use crate::reactor::stream::{Factory, ITransport, Protocol, Transport};

/// Options of an outgoing connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Time allowed for the whole attempt, name lookup included (Twisted's
    /// `connectTCP(timeout=30)`); `None` waits as long as the system does.
    pub timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Connects to `host:port` with `protocol` (Twisted's
/// `connectProtocol(TCP4ClientEndpoint(reactor, host, port), protocol)`).
///
/// The Deferred fires with the [`Transport`] after the protocol's
/// `connection_made`, or errbacks with a [`ConnectError`] (refused,
/// unreachable, timed out), the lookup's
/// [`ResolveError`](crate::threads::ResolveError), or `CancelledError` when
/// cancelled, which abandons the attempt. `host` is a name or an IP literal
/// (IPv6 with or without brackets); a name resolving to several addresses has
/// each tried in turn.
///
/// ```no_run
/// use twined::protocol::Protocol;
/// use twined::reactor;
///
/// struct Print;
/// impl Protocol for Print {
///     fn data_received(&mut self, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
/// }
///
/// reactor::connect_protocol("example.org", 80, Print)
///     .add_callback(|transport| transport.write(b"GET / HTTP/1.0\r\nHost: example.org\r\n\r\n"))
///     .add_errback(|failure| eprintln!("{failure}"));
/// ```
pub fn connect_protocol(host: &str, port: u16, protocol: impl Protocol) -> Deferred<Transport> {
    connect_protocol_with(host, port, protocol, ConnectOptions::default())
}

/// [`connect_protocol`] with [`ConnectOptions`].
pub fn connect_protocol_with(
    host: &str,
    port: u16,
    protocol: impl Protocol,
    options: ConnectOptions,
) -> Deferred<Transport> {
    let target: Rc<RefCell<Weak<Conn>>> = Rc::new(RefCell::new(Weak::new()));
    let cancel_target = target.clone();
    let (d, trigger) = Deferred::with_canceller(move |_canceller| {
        let conn = cancel_target.borrow().upgrade();
        if let Some(conn) = conn {
            conn.fail_connect(Failure::new(CancelledError));
        }
    });
    let make: MakeProtocol = Box::new(move |_peer| Some(Box::new(protocol)));
    let on_result: OnConnect = Box::new(move |result| trigger.fire_with(result));
    let conn = start(host, port, options, make, on_result, None);
    *target.borrow_mut() = Rc::downgrade(&conn);
    d
}

/// Connects to `host:port` and builds the connection's protocol from
/// `factory` once connected (Twisted's `reactor.connectTCP`). A failed
/// attempt calls the factory's
/// [`client_connection_failed`](Factory::client_connection_failed); a closed
/// connection its [`client_connection_lost`](Factory::client_connection_lost).
pub fn connect_tcp(host: &str, port: u16, factory: impl Factory) -> Connector {
    connect_tcp_with(host, port, factory, ConnectOptions::default())
}

/// [`connect_tcp`] with [`ConnectOptions`].
pub fn connect_tcp_with(
    host: &str,
    port: u16,
    factory: impl Factory,
    options: ConnectOptions,
) -> Connector {
    let factory = Rc::new(RefCell::new(factory));
    let (f1, f2, f3) = (factory.clone(), factory.clone(), factory);
    let make: MakeProtocol = Box::new(move |peer| f1.borrow_mut().build_protocol(peer));
    let on_result: OnConnect = Box::new(move |result| {
        if let Err(failure) = result {
            f2.borrow_mut().client_connection_failed(failure);
        }
    });
    let on_lost: Box<dyn FnOnce(Failure)> =
        Box::new(move |reason| f3.borrow_mut().client_connection_lost(reason));
    let conn = start(host, port, options, make, on_result, Some(on_lost));
    Connector {
        conn,
        host: host.to_string(),
        port,
    }
}

/// A connection made by [`connect_tcp`] (Twisted's `IConnector`).
pub struct Connector {
    conn: Rc<Conn>,
    host: String,
    port: u16,
}

impl Connector {
    /// Abandons the attempt if it is still connecting; the factory's
    /// `client_connection_failed` gets `CancelledError`.
    pub fn stop_connecting(&self) {
        self.conn.fail_connect(Failure::new(CancelledError));
    }

    /// Stops connecting, or closes the connection once written data is sent.
    pub fn disconnect(&self) {
        if self.conn.is_connecting() {
            self.stop_connecting();
        } else {
            self.conn.lose_connection();
        }
    }

    /// The host and port given (Twisted's `getDestination`).
    pub fn destination(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The connection's transport, once connected.
    pub fn transport(&self) -> Option<Transport> {
        let transport = Transport::new(self.conn.clone());
        (!self.conn.is_connecting()).then_some(transport)
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("connecting", &self.conn.is_connecting())
            .finish()
    }
}

/// An IP literal, bracketed or not.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn start(
    host: &str,
    port: u16,
    options: ConnectOptions,
    make: MakeProtocol,
    on_result: OnConnect,
    on_lost: Option<Box<dyn FnOnce(Failure)>>,
) -> Rc<Conn> {
    let conn = Conn::connecting(
        Connecting {
            host: host.to_string(),
            addrs: VecDeque::new(),
            current: None,
            last_error: None,
            make: Some(make),
            on_result: Some(on_result),
            timeout: None,
        },
        on_lost,
    );
    if let Some(after) = options.timeout {
        let weak = Rc::downgrade(&conn);
        let host = host.to_string();
        let call = current_reactor().timers.call_later(
            after,
            Box::new(move || {
                if let Some(conn) = weak.upgrade() {
                    conn.fail_connect(Failure::new(ConnectError::TimedOut { host, port, after }));
                }
            }),
        );
        conn.set_connect_timeout(call);
    }
    match ip_literal(host) {
        Some(ip) => conn.resolved(vec![SocketAddr::new(ip, port)]),
        None => {
            // The lookup's callbacks keep the attempt alive meanwhile.
            let (ok, failed) = (conn.clone(), conn.clone());
            crate::threads::resolve(host, port)
                .add_callback(move |addrs| ok.resolved(addrs))
                .add_errback(move |failure| failed.fail_connect(failure));
        }
    }
    conn
}
