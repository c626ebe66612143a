//! Outgoing TCP connections: resolve the host (on the thread pool unless it
//! is an IP literal, through a [`DnsCache`] when one is given), race its
//! addresses by Happy Eyeballs (RFC 8305), give up after a timeout (Twisted's
//! `connectTCP` and the endpoint-style `connectProtocol`), and the connecting
//! phase of a connection, until it hands over to the transport.
//!
//! Happy Eyeballs: the addresses are ordered with the families interleaved,
//! IPv6 first. The first attempt starts at once; if it has neither connected
//! nor failed after [`ConnectOptions::attempt_delay`] (250 ms, RFC 8305's
//! Connection Attempt Delay), the next starts while the first goes on, and so
//! on. An attempt that fails starts the next one at once. The first socket to
//! connect becomes the connection; the others are closed. The overall
//! [`timeout`](ConnectOptions::timeout) covers them all, and cancelling
//! closes every socket still connecting. When all fail, the error is the
//! most telling one met (a refusal over an "unreachable" of a family the
//! machine has no route for), else the last.

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
use crate::reactor::dns::DnsCache;
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::stream::{Factory, ITransport, Protocol, Transport};
use crate::reactor::{current_reactor, guard, DelayedCall};
use crate::threads::ip_literal;

/// The default [`ConnectOptions::attempt_delay`]: 250 ms, RFC 8305's
/// recommended Connection Attempt Delay.
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Options of an outgoing connection.
///
/// ```
/// use std::time::Duration;
/// use twined::reactor::{ConnectOptions, DnsCache};
///
/// // Share one cache between connects, so a host is looked up once a minute.
/// let options = ConnectOptions {
///     dns: Some(DnsCache::new(Duration::from_secs(60))),
///     ..ConnectOptions::default()
/// };
/// assert_eq!(options.attempt_delay, Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Time allowed for the whole attempt, name lookup and every address
    /// raced included (Twisted's `connectTCP(timeout=30)`); `None` waits as
    /// long as the system does. Default: 30 s.
    pub timeout: Option<Duration>,
    /// Happy Eyeballs' Connection Attempt Delay: how long one address is
    /// tried alone before the next is tried beside it. Default: 250 ms
    /// ([`DEFAULT_ATTEMPT_DELAY`]).
    pub attempt_delay: Duration,
    /// Where names are looked up: `None` (the default) asks the system
    /// resolver for every connect; a [`DnsCache`] answers from its cache.
    pub dns: Option<DnsCache>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: Some(Duration::from_secs(30)),
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            dns: None,
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
/// them raced by Happy Eyeballs (see [`ConnectOptions::attempt_delay`]).
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

/// A connect whose result is decided above TCP (a TLS handshake, a proxy's
/// answer to `CONNECT`): `decided` fires from `protocol` (or the caller's
/// `timer`) through the caller's one-shot trigger. This connects
/// `protocol`, hands a TCP failure to `failed`, and once `decided` fires
/// cancels `timer`; when it fails (the protocol's error, the timer,
/// cancelling) it abandons the lookup or connect under way, or aborts the
/// connection.
#[cfg(feature = "tls")]
pub(crate) fn connect_layered<T: 'static>(
    host: &str,
    port: u16,
    protocol: impl Protocol,
    options: ConnectOptions,
    decided: Deferred<T>,
    failed: impl FnOnce(Failure) + 'static,
    timer: Option<DelayedCall>,
) -> Deferred<T> {
    let below: Rc<RefCell<Option<Transport>>> = Rc::default();
    let keep = below.clone();
    let tcp = connect_protocol_with(host, port, protocol, options)
        .add_callback(move |t| *keep.borrow_mut() = Some(t))
        .add_errback(failed);
    decided.then(move |result: Result<T, Failure>| {
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
        if result.is_err() {
            tcp.cancel();
            if let Some(t) = below.borrow_mut().take() {
                t.abort_connection();
            }
        }
        result
    })
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
            attempts: Vec::new(),
            next_id: 0,
            attempt_delay: options.attempt_delay,
            next_attempt: None,
            error: None,
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
        // Connected from the next iteration, as Twisted's `callLater(0)`
        // in `BaseClient._finishInit`: the connects a batch of callbacks
        // asks for go out together once its I/O is handled, and a protocol
        // or callback never runs inside the call that asked.
        Some(ip) => {
            let next = conn.clone();
            current_reactor().call_soon(Box::new(move || {
                next.resolved(vec![SocketAddr::new(ip, port)])
            }));
        }
        None => {
            // The lookup's callbacks keep the attempt alive meanwhile.
            let (ok, failed) = (conn.clone(), conn.clone());
            let lookup = match &options.dns {
                Some(cache) => cache.resolve(host, port),
                None => crate::threads::resolve(host, port),
            };
            lookup
                .add_callback(move |addrs| ok.resolved(addrs))
                .add_errback(move |failure| failed.fail_connect(failure));
        }
    }
    conn
}

/// Orders addresses for Happy Eyeballs (RFC 8305, section 4): the families
/// interleaved, IPv6 first, each family in the resolver's order.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (mut v6, mut v4): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut ordered = VecDeque::with_capacity(v6.len() + v4.len());
    loop {
        match (v6.pop_front(), v4.pop_front()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

/// Builds the protocol of a connection once its peer is known.
pub(super) type MakeProtocol = Box<dyn FnOnce(SocketAddr) -> Option<Box<dyn Protocol>>>;

/// Receives the outcome of a connection attempt.
pub(super) type OnConnect = Box<dyn FnOnce(Result<Transport, Failure>)>;

/// One socket racing to connect to one address.
pub(super) struct Attempt {
    id: u64,
    addr: SocketAddr,
    stream: TcpStream,
    key: SourceKey,
}

/// Where a connection attempt stands: the addresses left, the sockets
/// racing (Happy Eyeballs), and what to do once one wins.
pub(super) struct Connecting {
    pub(super) host: String,
    /// Addresses not tried yet, in the order they will be.
    pub(super) addrs: VecDeque<SocketAddr>,
    /// Sockets connecting now; the first to connect wins.
    pub(super) attempts: Vec<Attempt>,
    pub(super) next_id: u64,
    /// How long an attempt runs alone before the next one starts too.
    pub(super) attempt_delay: Duration,
    /// The timer that starts the next attempt.
    pub(super) next_attempt: Option<DelayedCall>,
    /// The error to report if every address fails.
    pub(super) error: Option<ConnectError>,
    pub(super) make: Option<MakeProtocol>,
    pub(super) on_result: Option<OnConnect>,
    pub(super) timeout: Option<DelayedCall>,
}

impl Connecting {
    /// Keeps the more telling of the errors met: a refusal or other error
    /// from an address that answered beats "unreachable" (a family the
    /// machine has no route for says little about the host), else the
    /// latest wins.
    fn record(&mut self, error: ConnectError) {
        let keep_old = matches!(error, ConnectError::Unreachable { .. })
            && matches!(
                self.error,
                Some(ConnectError::Refused { .. } | ConnectError::Failed { .. })
            );
        if !keep_old {
            self.error = Some(error);
        }
    }

    /// Closes every racing socket and stops the attempt timer.
    fn abandon(&mut self) {
        if let Some(call) = self.next_attempt.take() {
            let _ = call.cancel();
        }
        for mut attempt in self.attempts.drain(..) {
            current_reactor().deregister(&mut attempt.stream, attempt.key);
        }
    }
}

/// Routes one racing socket's events to its connection. The reactor holds
/// it while the socket is registered, and it holds the connection: a
/// connection attempt lives as long as one of its sockets races.
struct AttemptEvents {
    conn: Rc<Conn>,
    id: u64,
}

impl Handler for AttemptEvents {
    fn ready(&self, ready: Ready) {
        self.conn.attempt_ready(self.id, ready);
    }
}

/// What one racing socket's event means.
enum Outcome {
    Connected(SocketAddr),
    Failed(SocketAddr, io::Error),
    Pending,
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

    /// The host name resolved: race its addresses (Happy Eyeballs).
    pub(crate) fn resolved(&self, addrs: Vec<SocketAddr>) {
        if let Phase::Connecting(c) = &mut self.state.borrow_mut().phase {
            c.addrs.extend(interleave(addrs));
        } else {
            return;
        }
        self.start_next();
    }

    /// Starts a connect to the next untried address, and arms the timer that
    /// starts the one after it unless this one has connected by then. An
    /// address that fails at once passes to the next at once. With nothing
    /// left to try and nothing racing, the attempt fails.
    pub(super) fn start_next(&self) {
        let Some(me) = self.rc() else { return };
        loop {
            let (addr, id) = {
                let mut st = self.state.borrow_mut();
                let Phase::Connecting(c) = &mut st.phase else {
                    return;
                };
                if let Some(call) = c.next_attempt.take() {
                    let _ = call.cancel();
                }
                match c.addrs.pop_front() {
                    Some(addr) => {
                        c.next_id += 1;
                        (addr, c.next_id)
                    }
                    None if c.attempts.is_empty() => {
                        let error = c.error.take().unwrap_or(ConnectError::NoAddress {
                            host: c.host.clone(),
                        });
                        drop(st);
                        self.fail_connect(Failure::new(error));
                        return;
                    }
                    // The racing sockets decide.
                    None => return,
                }
            };
            let events: Rc<dyn Handler> = Rc::new(AttemptEvents {
                conn: me.clone(),
                id,
            });
            let started = TcpStream::connect(addr).and_then(|mut stream| {
                let key = current_reactor().register(
                    &mut stream,
                    Interest::READABLE | Interest::WRITABLE,
                    events,
                )?;
                Ok((stream, key))
            });
            let mut st = self.state.borrow_mut();
            let Phase::Connecting(c) = &mut st.phase else {
                return;
            };
            match started {
                Ok((stream, key)) => {
                    c.attempts.push(Attempt {
                        id,
                        addr,
                        stream,
                        key,
                    });
                    if !c.addrs.is_empty() {
                        let weak = Rc::downgrade(&me);
                        c.next_attempt = Some(current_reactor().timers.call_later(
                            c.attempt_delay,
                            Box::new(move || {
                                if let Some(conn) = weak.upgrade() {
                                    conn.start_next();
                                }
                            }),
                        ));
                    }
                    return;
                }
                Err(e) => {
                    log::debug!("connect to {addr} failed: {e}");
                    c.record(ConnectError::from_io(addr, e));
                }
            }
        }
    }

    /// A readiness event of racing socket `id`: it connected (it wins, the
    /// others are closed), it failed (the next address starts at once), or
    /// nothing yet.
    fn attempt_ready(&self, id: u64, ready: Ready) {
        if !(ready.writable || ready.error || ready.write_closed || ready.read_closed) {
            return;
        }
        let outcome = {
            let st = self.state.borrow();
            let Phase::Connecting(c) = &st.phase else {
                return;
            };
            let Some(attempt) = c.attempts.iter().find(|a| a.id == id) else {
                return;
            };
            let (stream, addr) = (&attempt.stream, attempt.addr);
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => Outcome::Failed(addr, e),
                // Writable without error or hang-up: connected (Linux reports
                // nothing else for a connecting socket), no getpeername needed.
                Ok(None) if ready.writable && !ready.error && !ready.write_closed => {
                    Outcome::Connected(addr)
                }
                Ok(None) => match stream.peer_addr() {
                    Ok(peer) => Outcome::Connected(peer),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected && !ready.error => {
                        Outcome::Pending
                    }
                    Err(e) => Outcome::Failed(addr, e),
                },
            }
        };
        match outcome {
            Outcome::Pending => {}
            Outcome::Connected(peer) => self.won(id, peer, ready),
            Outcome::Failed(addr, e) => {
                log::debug!("connect to {addr} failed: {e}");
                {
                    let mut st = self.state.borrow_mut();
                    let Phase::Connecting(c) = &mut st.phase else {
                        return;
                    };
                    if let Some(i) = c.attempts.iter().position(|a| a.id == id) {
                        let mut lost = c.attempts.swap_remove(i);
                        current_reactor().deregister(&mut lost.stream, lost.key);
                    }
                    c.record(ConnectError::from_io(addr, e));
                }
                self.start_next();
            }
        }
    }

    /// Socket `id` connected: it becomes the connection's, the others close.
    fn won(&self, id: u64, peer: SocketAddr, ready: Ready) {
        let Some(me) = self.rc() else { return };
        let winner = {
            let mut st = self.state.borrow_mut();
            let Phase::Connecting(c) = &mut st.phase else {
                return;
            };
            let Some(i) = c.attempts.iter().position(|a| a.id == id) else {
                return;
            };
            let winner = c.attempts.swap_remove(i);
            c.abandon();
            winner
        };
        // Its events come to the connection itself from now on.
        let handler: Rc<dyn Handler> = me;
        current_reactor().set_handler(winner.key, handler);
        {
            let mut st = self.state.borrow_mut();
            st.stream = Some(winner.stream);
            st.key = Some(winner.key);
        }
        self.connected(peer, None, ready);
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

    /// Ends a connection attempt with `failure`, closing every racing socket.
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
        let mut connecting = *connecting;
        connecting.abandon();
        self.drop_socket();
        let Connecting {
            on_result, timeout, ..
        } = connecting;
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

#[cfg(test)]
mod tests {
    use super::interleave;
    use std::net::SocketAddr;

    #[test]
    fn families_interleave_ipv6_first() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let given = vec![
            a("10.0.0.1:1"),
            a("10.0.0.2:1"),
            a("10.0.0.3:1"),
            a("[fd00::1]:1"),
            a("[fd00::2]:1"),
        ];
        let ordered: Vec<_> = interleave(given).into_iter().collect();
        assert_eq!(
            ordered,
            vec![
                a("[fd00::1]:1"),
                a("10.0.0.1:1"),
                a("[fd00::2]:1"),
                a("10.0.0.2:1"),
                a("10.0.0.3:1"),
            ]
        );
        assert!(interleave(Vec::new()).is_empty());
    }
}
