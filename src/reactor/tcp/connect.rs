//! Outgoing TCP connections: resolve the host (on the thread pool unless it
//! is an IP literal), try each address in turn, give up after a timeout
//! (Twisted's `connectTCP` and the endpoint-style `connectProtocol`), and the
//! connecting phase of a connection, until it hands over to the transport.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::net::TcpStream;
use mio::Interest;

use super::error::{ConnectError, ConnectionDone};
use super::transport::{Conn, Phase};
use crate::defer::{CancelledError, Deferred, Failure};
use crate::reactor::sources::Ready;
use crate::reactor::stream::{Factory, ITransport, Protocol, Transport};
use crate::reactor::{current_reactor, guard, DelayedCall};
use crate::threads::ip_literal;

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

/// Builds the protocol of a connection once its peer is known.
pub(super) type MakeProtocol = Box<dyn FnOnce(SocketAddr) -> Option<Box<dyn Protocol>>>;

/// Receives the outcome of a connection attempt.
pub(super) type OnConnect = Box<dyn FnOnce(Result<Transport, Failure>)>;

/// Where a connection attempt stands.
pub(super) struct Connecting {
    pub(super) host: String,
    /// Addresses not tried yet.
    pub(super) addrs: VecDeque<SocketAddr>,
    /// The address being tried.
    pub(super) current: Option<SocketAddr>,
    pub(super) last_error: Option<ConnectError>,
    pub(super) make: Option<MakeProtocol>,
    pub(super) on_result: Option<OnConnect>,
    pub(super) timeout: Option<DelayedCall>,
}

impl Conn {
    /// A connection attempt that waits for its addresses
    /// ([`resolved`](Self::resolved)).
    pub(crate) fn connecting(
        connecting: Connecting,
        on_lost: Option<Box<dyn FnOnce(Failure)>>,
    ) -> Rc<Conn> {
        let conn = Conn::new(Phase::Connecting(Box::new(connecting)), None);
        conn.state.borrow_mut().on_lost = on_lost;
        conn
    }

    /// Sets the time limit of a connection attempt.
    pub(crate) fn set_connect_timeout(&self, call: DelayedCall) {
        if let Phase::Connecting(c) = &mut self.state.borrow_mut().phase {
            c.timeout = Some(call);
        } else {
            let _ = call.cancel();
        }
    }

    /// The host name resolved: try its addresses in turn.
    pub(crate) fn resolved(&self, addrs: Vec<SocketAddr>) {
        if let Phase::Connecting(c) = &mut self.state.borrow_mut().phase {
            c.addrs.extend(addrs);
        } else {
            return;
        }
        self.try_next();
    }

    /// Starts a connect to the next untried address; fails the attempt when
    /// none is left.
    pub(super) fn try_next(&self) {
        let Some(me) = self.rc() else { return };
        loop {
            let addr = {
                let mut st = self.state.borrow_mut();
                let Phase::Connecting(c) = &mut st.phase else {
                    return;
                };
                match c.addrs.pop_front() {
                    Some(addr) => {
                        c.current = Some(addr);
                        addr
                    }
                    None => {
                        let error = c.last_error.take().unwrap_or(ConnectError::NoAddress {
                            host: c.host.clone(),
                        });
                        drop(st);
                        self.fail_connect(Failure::new(error));
                        return;
                    }
                }
            };
            let started = TcpStream::connect(addr).and_then(|mut stream| {
                let key = current_reactor().register(
                    &mut stream,
                    Interest::READABLE | Interest::WRITABLE,
                    me.clone(),
                )?;
                Ok((stream, key))
            });
            match started {
                Ok((stream, key)) => {
                    let mut st = self.state.borrow_mut();
                    st.stream = Some(stream);
                    st.key = Some(key);
                    return;
                }
                Err(e) => self.attempt_failed(addr, e),
            }
        }
    }

    pub(super) fn attempt_failed(&self, addr: SocketAddr, error: io::Error) {
        log::debug!("connect to {addr} failed: {error}");
        self.drop_socket();
        if let Phase::Connecting(c) = &mut self.state.borrow_mut().phase {
            c.last_error = Some(ConnectError::from_io(addr, error));
        }
    }

    /// A readiness event while connecting: connected, failed, or spurious.
    pub(super) fn check_connect(&self, ready: Ready) {
        if !(ready.writable || ready.error || ready.write_closed || ready.read_closed) {
            return;
        }
        let outcome = {
            let st = self.state.borrow();
            let (Some(stream), Phase::Connecting(c)) = (st.stream.as_ref(), &st.phase) else {
                return;
            };
            let Some(addr) = c.current else { return };
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => Err((addr, e)),
                // Writable without error or hang-up: connected (Linux reports
                // nothing else for a connecting socket), no getpeername needed.
                Ok(None) if ready.writable && !ready.error && !ready.write_closed => {
                    Ok((addr, None))
                }
                Ok(None) => match stream.peer_addr() {
                    Ok(peer) => Ok((peer, None)),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected && !ready.error => {
                        return;
                    }
                    Err(e) => Err((addr, e)),
                },
            }
        };
        match outcome {
            Ok((peer, host)) => self.connected(peer, host, ready),
            Err((addr, e)) => {
                self.attempt_failed(addr, e);
                self.try_next();
            }
        }
    }

    pub(super) fn connected(&self, peer: SocketAddr, host: Option<SocketAddr>, ready: Ready) {
        let Some(me) = self.rc() else { return };
        let connecting = {
            let mut st = self.state.borrow_mut();
            st.peer = Some(peer);
            st.host = host;
            match std::mem::replace(&mut st.phase, Phase::Connected) {
                Phase::Connecting(c) => c,
                other => {
                    st.phase = other;
                    return;
                }
            }
        };
        let Connecting {
            make,
            on_result,
            timeout,
            ..
        } = *connecting;
        if let Some(call) = timeout {
            let _ = call.cancel();
        }
        if let Some(make) = make {
            let mut built = None;
            guard("a factory's build_protocol", || built = make(peer));
            match built {
                Some(protocol) => *self.protocol.borrow_mut() = Some(protocol),
                None => {
                    self.close(Failure::new(ConnectionDone));
                    return;
                }
            }
        }
        let transport = Transport::new(me.clone());
        self.with_protocol("connection_made", |p| p.connection_made(transport.clone()));
        if let Some(on_result) = on_result {
            guard("a connect callback", || on_result(Ok(transport)));
        }
        if ready.readable || ready.read_closed {
            self.do_read(ready.read_closed);
        }
    }

    /// Ends a connection attempt with `failure`.
    pub(crate) fn fail_connect(&self, failure: Failure) {
        let connecting = {
            let mut st = self.state.borrow_mut();
            if !matches!(st.phase, Phase::Connecting(_)) {
                return;
            }
            match std::mem::replace(&mut st.phase, Phase::Closed) {
                Phase::Connecting(c) => c,
                _ => return,
            }
        };
        self.drop_socket();
        let Connecting {
            on_result, timeout, ..
        } = *connecting;
        if let Some(call) = timeout {
            let _ = call.cancel();
        }
        if let Some(on_result) = on_result {
            guard("a connect callback", || on_result(Err(failure)));
        }
    }

    /// Whether the attempt is still connecting.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state.borrow().phase, Phase::Connecting(_))
    }
}
