//! A reactor that records connections instead of making them (Twisted's
//! `MemoryReactor` / `MemoryReactorClock`): code under test calls its
//! [`listen_tcp`](MemoryReactor::listen_tcp) and
//! [`connect_tcp`](MemoryReactor::connect_tcp), and the test drives the
//! recorded factories with in-memory [`StringTransport`]s.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::string_transport::{StringTransport, DEFAULT_PEER};
use crate::defer::{Deferred, Failure, Trigger};
use crate::protocol::{Factory, Protocol, Transport};
use crate::task::Clock;
use crate::time::{DelayedCall, ReactorTime};

type SharedFactory = Rc<RefCell<Box<dyn Factory>>>;

/// Records `listen_tcp` and `connect_tcp` calls and keeps virtual time
/// (Twisted's `MemoryReactorClock`): pass it where code takes a
/// [`ReactorTime`], and route its connections here, to test a factory, a
/// retry policy or a timeout with no socket and no sleep.
///
/// ```
/// use std::net::SocketAddr;
/// use twined::protocol::{Protocol, Transport};
/// use twined::testing::MemoryReactor;
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: Transport) { t.write(b"hi\n") }
///     fn data_received(&mut self, _: &[u8]) {}
/// }
///
/// let reactor = MemoryReactor::new();
/// reactor.connect_tcp("example.org", 80, |_peer: SocketAddr| Hello);
/// let client = &reactor.tcp_clients()[0];
/// assert_eq!(client.destination(), ("example.org", 80));
/// let st = client.connect().unwrap();
/// assert_eq!(st.value(), b"hi\n");
/// ```
#[derive(Clone, Default)]
pub struct MemoryReactor {
    records: Rc<RefCell<Records>>,
    clock: Clock,
}

#[derive(Default)]
struct Records {
    servers: Vec<TcpServer>,
    clients: Vec<TcpClient>,
}

impl MemoryReactor {
    /// No calls recorded, virtual time at zero.
    pub fn new() -> MemoryReactor {
        MemoryReactor::default()
    }

    /// The virtual clock: [`advance`](Clock::advance) it to run timed calls.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a listening port on `addr` and starts `factory` (Twisted's
    /// `listenTCP`); connections arrive through [`TcpServer::accept`].
    pub fn listen_tcp(&self, addr: SocketAddr, factory: impl Factory) -> TcpServer {
        let mut factory: Box<dyn Factory> = Box::new(factory);
        factory.start_factory();
        let server = TcpServer {
            addr,
            factory: Rc::new(RefCell::new(factory)),
            listening: Rc::new(Cell::new(true)),
        };
        self.records.borrow_mut().servers.push(server.clone());
        server
    }

    /// Records a connection attempt to `host:port` (Twisted's
    /// `connectTCP`); the test settles it with [`TcpClient::connect`] or
    /// [`TcpClient::fail`].
    pub fn connect_tcp(&self, host: &str, port: u16, factory: impl Factory) -> TcpClient {
        self.connect_tcp_boxed(host, port, Box::new(factory))
    }

    /// [`connect_tcp`](Self::connect_tcp) with a boxed factory.
    pub fn connect_tcp_boxed(&self, host: &str, port: u16, factory: Box<dyn Factory>) -> TcpClient {
        let client = TcpClient {
            host: host.to_string(),
            port,
            factory: Rc::new(RefCell::new(factory)),
            state: Rc::new(Cell::new(ClientState::Connecting)),
        };
        self.records.borrow_mut().clients.push(client.clone());
        client
    }

    /// Records a connection attempt to `host:port` for `protocol`, as
    /// [`reactor::connect_protocol`](crate::reactor::connect_protocol) makes
    /// one: the Deferred fires with the transport when the test calls
    /// [`TcpClient::connect`], and errbacks with the reason given to
    /// [`TcpClient::fail`].
    pub fn connect_protocol(
        &self,
        host: &str,
        port: u16,
        protocol: impl Protocol,
    ) -> Deferred<Transport> {
        let (d, trigger) = Deferred::new();
        let factory = OneShot {
            protocol: Some(Box::new(protocol)),
            trigger: Some(trigger),
        };
        self.connect_tcp(host, port, factory);
        d
    }

    /// Every `listen_tcp` so far, oldest first (Twisted's `tcpServers`).
    pub fn tcp_servers(&self) -> Vec<TcpServer> {
        self.records.borrow().servers.clone()
    }

    /// Every `connect_tcp` so far, oldest first (Twisted's `tcpClients`).
    pub fn tcp_clients(&self) -> Vec<TcpClient> {
        self.records.borrow().clients.clone()
    }
}

impl ReactorTime for MemoryReactor {
    fn now(&self) -> Duration {
        self.clock.now()
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.clock.call_later_boxed(delay, f)
    }
}

impl fmt::Debug for MemoryReactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let records = self.records.borrow();
        f.debug_struct("MemoryReactor")
            .field("tcp_servers", &records.servers.len())
            .field("tcp_clients", &records.clients.len())
            .field("clock", &self.clock)
            .finish()
    }
}

/// The factory behind [`MemoryReactor::connect_protocol`]: one protocol,
/// one Deferred.
struct OneShot {
    protocol: Option<Box<dyn Protocol>>,
    trigger: Option<Trigger<Transport>>,
}

impl Factory for OneShot {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        let protocol = self.protocol.take()?;
        Some(Box::new(FireOnMade {
            protocol,
            trigger: self.trigger.take(),
        }))
    }

    fn client_connection_failed(&mut self, reason: Failure) {
        if let Some(trigger) = self.trigger.take() {
            trigger.errback(reason);
        }
    }
}

/// Fires the Deferred with the transport after the protocol's
/// `connection_made`, as `connect_protocol` does.
struct FireOnMade {
    protocol: Box<dyn Protocol>,
    trigger: Option<Trigger<Transport>>,
}

impl Protocol for FireOnMade {
    fn connection_made(&mut self, transport: Transport) {
        self.protocol.connection_made(transport.clone());
        if let Some(trigger) = self.trigger.take() {
            trigger.callback(transport);
        }
    }
    fn data_received(&mut self, data: &[u8]) {
        self.protocol.data_received(data)
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.protocol.connection_lost(reason)
    }
    fn pause_producing(&mut self) {
        self.protocol.pause_producing()
    }
    fn resume_producing(&mut self) {
        self.protocol.resume_producing()
    }
}

/// A listening port recorded by [`MemoryReactor::listen_tcp`].
#[derive(Clone)]
pub struct TcpServer {
    addr: SocketAddr,
    factory: SharedFactory,
    listening: Rc<Cell<bool>>,
}

impl TcpServer {
    /// The address it was asked to listen on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// A connection from `peer` arrives: the factory builds its protocol,
    /// which is connected to a new [`StringTransport`]. `None` when the
    /// factory refused it (the connection is closed at once) or the port
    /// stopped listening.
    pub fn accept(&self, peer: SocketAddr) -> Option<StringTransport> {
        if !self.listening.get() {
            return None;
        }
        let protocol = self.factory.borrow_mut().build_protocol(peer)?;
        let st = StringTransport::new().with_addresses(self.addr, peer);
        st.make_connection_boxed(protocol);
        Some(st)
    }

    /// Stops listening and calls the factory's `stop_factory` (once).
    pub fn stop_listening(&self) {
        if self.listening.replace(false) {
            self.factory.borrow_mut().stop_factory();
        }
    }

    /// Whether the port still listens.
    pub fn is_listening(&self) -> bool {
        self.listening.get()
    }
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("addr", &self.addr)
            .field("listening", &self.listening.get())
            .finish()
    }
}

/// Where a recorded connection attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Not settled yet.
    Connecting,
    /// [`TcpClient::connect`] made the connection.
    Connected,
    /// [`TcpClient::fail`] failed it, or the factory refused the connection.
    Failed,
}

/// A connection attempt recorded by [`MemoryReactor::connect_tcp`].
#[derive(Clone)]
pub struct TcpClient {
    host: String,
    port: u16,
    factory: SharedFactory,
    state: Rc<Cell<ClientState>>,
}

impl TcpClient {
    /// The host and port asked for (Twisted's `getDestination`).
    pub fn destination(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Where the attempt stands.
    pub fn state(&self) -> ClientState {
        self.state.get()
    }

    /// The attempt succeeds: the factory builds a protocol, connected to a
    /// new [`StringTransport`] whose peer is the destination (when it is an
    /// IP literal); closing that transport calls the factory's
    /// `client_connection_lost`. `None` when the attempt was already
    /// settled or the factory refused the connection.
    pub fn connect(&self) -> Option<StringTransport> {
        if self.state.get() != ClientState::Connecting {
            return None;
        }
        let peer = self
            .host
            .parse()
            .map(|ip| SocketAddr::new(ip, self.port))
            .unwrap_or(DEFAULT_PEER);
        let built = self.factory.borrow_mut().build_protocol(peer);
        let Some(protocol) = built else {
            self.state.set(ClientState::Failed);
            return None;
        };
        self.state.set(ClientState::Connected);
        let st = StringTransport::new().with_addresses(super::string_transport::DEFAULT_HOST, peer);
        let factory = self.factory.clone();
        st.set_on_lost(Box::new(move |reason| {
            factory.borrow_mut().client_connection_lost(reason)
        }));
        st.make_connection_boxed(protocol);
        Some(st)
    }

    /// The attempt fails with `reason`: the factory's
    /// `client_connection_failed` gets it. Ignored once settled.
    pub fn fail(&self, reason: impl Into<Failure>) {
        if self.state.get() != ClientState::Connecting {
            return;
        }
        self.state.set(ClientState::Failed);
        self.factory
            .borrow_mut()
            .client_connection_failed(reason.into());
    }
}

impl fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("state", &self.state.get())
            .finish()
    }
}
