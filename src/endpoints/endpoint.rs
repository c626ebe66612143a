//! Server and client endpoints: a parsed description and what it can do
//! (Twisted's `IStreamServerEndpoint.listen` and
//! `IStreamClientEndpoint.connect`).

use std::fmt;
use std::net::SocketAddr;

use super::error::EndpointError;
use super::port::ListeningPort;
use super::spec::{bind_address, ClientSpec, ServerSpec};
use super::tls;
use crate::defer::{self, Deferred, Failure};
use crate::protocol::{Factory, Protocol, Transport};
use crate::reactor::{
    self, ConnectOptions, DatagramProtocol, DatagramTransport, UnixListenOptions,
};

/// Parses a server endpoint description (Twisted's
/// `endpoints.serverFromString`): `tcp:8080:interface=127.0.0.1`,
/// `ssl:8443:privateKey=key.pem:certKey=cert.pem`, `unix:/run/app.sock`,
/// `udp:9999`. A malformed description is an [`EndpointError`] naming the
/// field at fault.
///
/// ```
/// use twined::endpoints::{server_from_string, ServerSpec};
///
/// let endpoint = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
/// assert!(matches!(endpoint.spec(), ServerSpec::Tcp { port: 0, .. }));
/// let bad = server_from_string("tcp:http").unwrap_err();
/// assert_eq!(bad.to_string(), r#"bad port "http": expected a port number from 0 to 65535"#);
/// ```
pub fn server_from_string(description: &str) -> Result<ServerEndpoint, EndpointError> {
    ServerSpec::parse(description).map(ServerEndpoint)
}

/// Parses a client endpoint description (Twisted's
/// `endpoints.clientFromString`): `tcp:host=example.com:port=80`,
/// `tcp:example.com:80`, `tls:example.com:443`, `unix:path=/run/app.sock`.
///
/// ```
/// use twined::endpoints::{client_from_string, ClientSpec};
///
/// let endpoint = client_from_string("tcp:host=example.com:port=80").unwrap();
/// assert!(matches!(endpoint.spec(), ClientSpec::Tcp { port: 80, .. }));
/// ```
pub fn client_from_string(description: &str) -> Result<ClientEndpoint, EndpointError> {
    ClientSpec::parse(description).map(ClientEndpoint)
}

/// Somewhere to listen (Twisted's `IStreamServerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEndpoint(ServerSpec);

/// Somewhere to connect to (Twisted's `IStreamClientEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEndpoint(ClientSpec);

impl From<ServerSpec> for ServerEndpoint {
    fn from(spec: ServerSpec) -> ServerEndpoint {
        ServerEndpoint(spec)
    }
}

impl From<ClientSpec> for ClientEndpoint {
    fn from(spec: ClientSpec) -> ClientEndpoint {
        ClientEndpoint(spec)
    }
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ServerEndpoint {
    /// What the description said.
    pub fn spec(&self) -> &ServerSpec {
        &self.0
    }

    /// Listens, building a protocol from `factory` for each connection
    /// (Twisted's `endpoint.listen(factory)`). The Deferred fires with the
    /// [`ListeningPort`], or errbacks with the reactor's error
    /// ([`CannotListen`](crate::reactor::CannotListen),
    /// [`UnixError`](crate::reactor::UnixError)), or an [`EndpointError`]
    /// for a `udp:` endpoint (use [`listen_udp`](Self::listen_udp)) or a TLS
    /// one this build cannot serve.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use twined::endpoints::server_from_string;
    /// use twined::protocol::Protocol;
    ///
    /// struct Discard;
    /// impl Protocol for Discard {
    ///     fn data_received(&mut self, _data: &[u8]) {}
    /// }
    ///
    /// let endpoint = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
    /// endpoint
    ///     .listen(|_peer: SocketAddr| Discard)
    ///     .add_callback(|port| {
    ///         println!("listening on {port}");
    ///         port.stop_listening();
    ///     });
    /// ```
    pub fn listen(&self, factory: impl Factory) -> Deferred<ListeningPort> {
        match &self.0 {
            ServerSpec::Tcp {
                port, interface, ..
            } => result(
                reactor::listen_tcp(bind_address(interface, *port), factory)
                    .map(ListeningPort::Tcp),
            ),
            ServerSpec::Unix {
                path,
                mode,
                lockfile,
                ..
            } => {
                let options = UnixListenOptions {
                    mode: *mode,
                    remove_stale: *lockfile,
                };
                result(reactor::listen_unix_with(path, factory, options).map(ListeningPort::Unix))
            }
            spec @ ServerSpec::Ssl { .. } => tls::listen(spec, factory),
            ServerSpec::Udp { .. } => defer::fail(EndpointError::WrongKind {
                kind: "udp",
                asked: "listen with a stream factory (use listen_udp)",
            }),
        }
    }

    /// Binds a `udp:` endpoint with a [`DatagramProtocol`].
    pub fn listen_udp(&self, protocol: impl DatagramProtocol) -> Deferred<DatagramTransport> {
        match &self.0 {
            ServerSpec::Udp { port, interface } => result(reactor::listen_udp(
                bind_address(interface, *port),
                protocol,
            )),
            other => defer::fail(EndpointError::WrongKind {
                kind: other.kind(),
                asked: "carry datagrams",
            }),
        }
    }
}

impl ClientEndpoint {
    /// What the description said.
    pub fn spec(&self) -> &ClientSpec {
        &self.0
    }

    /// Connects and builds the connection's protocol from `factory`
    /// (Twisted's `endpoint.connect(factory)`). The Deferred fires with the
    /// connection's [`Transport`] once the protocol's `connection_made` ran,
    /// or errbacks with the reactor's error
    /// ([`ConnectError`](crate::reactor::ConnectError), a lookup's
    /// [`ResolveError`](crate::threads::ResolveError),
    /// [`UnixError`](crate::reactor::UnixError)), or an [`EndpointError`] for
    /// a TLS endpoint this build cannot serve. A factory that builds no
    /// protocol gets the connection closed.
    pub fn connect(&self, factory: impl Factory) -> Deferred<Transport> {
        match &self.0 {
            ClientSpec::Tcp {
                host,
                port,
                timeout,
            } => {
                let options = ConnectOptions {
                    timeout: Some(*timeout),
                    ..ConnectOptions::default()
                };
                let protocol = BuildOnConnect::new(factory);
                reactor::connect_protocol_with(host, *port, protocol, options)
            }
            ClientSpec::Unix { path, .. } => reactor::connect_unix(path, factory),
            spec @ (ClientSpec::Tls { .. } | ClientSpec::Ssl { .. }) => tls::connect(spec, factory),
        }
    }

    /// Connects with `protocol` itself (Twisted's
    /// `connectProtocol(endpoint, protocol)`).
    pub fn connect_protocol(&self, protocol: impl Protocol) -> Deferred<Transport> {
        self.connect(Once(Some(Box::new(protocol))))
    }
}

/// A factory that builds one given protocol, once.
struct Once(Option<Box<dyn Protocol>>);

impl Factory for Once {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        self.0.take()
    }
}

/// A protocol built from a factory once the connection is up and its peer
/// known (what `connect_protocol` needs, for a factory).
pub(super) struct BuildOnConnect<F> {
    factory: F,
    protocol: Option<Box<dyn Protocol>>,
}

impl<F: Factory> BuildOnConnect<F> {
    pub(super) fn new(factory: F) -> BuildOnConnect<F> {
        BuildOnConnect {
            factory,
            protocol: None,
        }
    }
}

impl<F: Factory> Protocol for BuildOnConnect<F> {
    fn connection_made(&mut self, transport: Transport) {
        let peer = transport
            .peer()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        match self.factory.build_protocol(peer) {
            Some(mut protocol) => {
                protocol.connection_made(transport);
                self.protocol = Some(protocol);
            }
            None => transport.lose_connection(),
        }
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(p) = self.protocol.as_mut() {
            p.data_received(data);
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        if let Some(p) = self.protocol.as_mut() {
            p.connection_lost(reason);
        }
    }
    fn pause_producing(&mut self) {
        if let Some(p) = self.protocol.as_mut() {
            p.pause_producing();
        }
    }
    fn resume_producing(&mut self) {
        if let Some(p) = self.protocol.as_mut() {
            p.resume_producing();
        }
    }
}

fn result<T: 'static, E: Into<Failure>>(r: Result<T, E>) -> Deferred<T> {
    match r {
        Ok(v) => defer::succeed(v),
        Err(e) => defer::fail(e),
    }
}
