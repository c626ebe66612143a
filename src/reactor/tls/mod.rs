//! TLS over any stream transport (Twisted's `twisted.internet.ssl` and
//! `TLSMemoryBIOProtocol`): one rustls layer (ring backend) between a
//! transport and any [`Protocol`], client or server side.
//!
//! | Twisted | twined |
//! |---|---|
//! | `reactor.listenSSL(port, factory, contextFactory)` | [`listen_ssl(addr, factory, ServerTlsConfig)`](listen_ssl) |
//! | `reactor.connectSSL(host, port, factory, contextFactory)` | [`connect_ssl(host, port, factory, ClientTlsConfig)`](connect_ssl) |
//! | `connectProtocol(SSL4ClientEndpoint(...), proto)` | [`connect_protocol_ssl`]: fires once the handshake is done |
//! | `transport.startTLS(contextFactory)` | [`Transport::start_tls(config)`](Transport::start_tls) |
//! | `ssl.optionsForClientTLS(hostname, trustRoot)` | [`ClientTlsConfig`] (webpki roots, [`add_root_pem_file`](ClientTlsConfig::add_root_pem_file), SNI, ALPN) |
//! | `ssl.PrivateCertificate.loadPEM(...).options()` | [`ServerTlsConfig::from_pem_files`] |
//! | `SSL.Error` in `connectionLost` | [`TlsError`] (its `source()` is the `rustls::Error`) |
//!
//! Certificates are verified by default against the Mozilla roots of
//! `webpki-roots`, with the host connected to as SNI and as the name the
//! certificate must carry. A failed handshake reaches the protocol's
//! `connection_lost` (and [`connect_protocol_ssl`]'s Deferred) as a
//! [`TlsError`]. Flow control crosses the layer: a protocol is paused when
//! ciphertext backs up below, and [`lose_connection`](Transport::lose_connection)
//! sends close_notify after everything written.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use twined::protocol::{Protocol, Transport};
//! use twined::reactor::{self, tls::{self, ServerTlsConfig}};
//!
//! struct Echo(Option<Transport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: Transport) { self.0 = Some(t); }
//!     fn data_received(&mut self, data: &[u8]) {
//!         if let Some(t) = &self.0 { t.write(data) }
//!     }
//! }
//!
//! let config = ServerTlsConfig::from_pem_files("cert.pem", "key.pem").unwrap();
//! let port = tls::listen_ssl("127.0.0.1:8443", |_: SocketAddr| Echo(None), config).unwrap();
//! println!("TLS echo on {}", port.address());
//! reactor::run().unwrap();
//! ```

mod config;
mod error;
mod layer;

use std::cell::RefCell;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;

use rustls::{ClientConnection, ServerConnection};

pub use config::{ClientTlsConfig, ServerTlsConfig};
pub use error::TlsError;

use crate::defer::{Deferred, Failure};
use crate::reactor::stream::{Factory, Layering, Protocol, Transport};
use crate::reactor::tcp::{
    connect_layered, connect_tcp_with, listen_tcp, CannotListen, ConnectError, ConnectOptions,
    Connector, Port,
};
use layer::{Ready, Session, TlsLayer, TlsTransport, User};

/// The side a connection takes in [`Transport::start_tls`]: a client
/// configuration makes it the TLS client, a server configuration the server.
#[derive(Debug, Clone)]
pub enum StartTls {
    /// Be the client: verify the server.
    Client(ClientTlsConfig),
    /// Be the server.
    Server(ServerTlsConfig),
}

impl From<ClientTlsConfig> for StartTls {
    fn from(config: ClientTlsConfig) -> StartTls {
        StartTls::Client(config)
    }
}

impl From<ServerTlsConfig> for StartTls {
    fn from(config: ServerTlsConfig) -> StartTls {
        StartTls::Server(config)
    }
}

/// A rustls error as a [`TlsError`] about `peer`.
fn refused(peer: &str, source: rustls::Error) -> TlsError {
    TlsError::Handshake {
        peer: peer.to_string(),
        source,
    }
}

/// A client session for `host` (or the configured server name).
fn client_session(config: &ClientTlsConfig, host: &str) -> Result<Rc<Session>, TlsError> {
    let rustls_config = config.client_config()?;
    let name = config.server_name().unwrap_or(host);
    let server_name = config::server_name(name)?;
    let conn = ClientConnection::new(rustls_config, server_name).map_err(|e| refused(name, e))?;
    Ok(Session::new(conn.into(), name.to_string()))
}

fn server_session(config: &ServerTlsConfig, peer: String) -> Result<Rc<Session>, TlsError> {
    let conn = ServerConnection::new(config.server_config()).map_err(|e| refused(&peer, e))?;
    Ok(Session::new(conn.into(), peer))
}

struct ServerFactory<F> {
    inner: F,
    config: ServerTlsConfig,
}

impl<F: Factory> Factory for ServerFactory<F> {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        let user = self.inner.build_protocol(peer)?;
        match server_session(&self.config, peer.to_string()) {
            Ok(session) => Some(Box::new(TlsLayer::new(session, User::Fresh(user), None))),
            Err(e) => {
                log::warn!("{e}");
                None
            }
        }
    }

    fn start_factory(&mut self) {
        self.inner.start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.stop_factory();
    }
}

/// Listens on `addr` and speaks TLS with every client, as the server of
/// `config` (Twisted's `reactor.listenSSL`). Each connection's protocol is
/// built by `factory` and made at once; what it writes before the handshake
/// finishes is sent after it. A client that fails the handshake (plain
/// text, an alert) gets an alert and the connection closes; the protocol's
/// `connection_lost` gets the [`TlsError`].
pub fn listen_ssl(
    addr: impl ToSocketAddrs + fmt::Display,
    factory: impl Factory,
    config: ServerTlsConfig,
) -> Result<Port, CannotListen> {
    listen_tcp(
        addr,
        ServerFactory {
            inner: factory,
            config,
        },
    )
}

struct ClientFactory<F> {
    inner: F,
    session: Option<Rc<Session>>,
}

impl<F: Factory> Factory for ClientFactory<F> {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        let user = self.inner.build_protocol(peer)?;
        let session = self.session.take()?;
        Some(Box::new(TlsLayer::new(session, User::Fresh(user), None)))
    }

    fn client_connection_failed(&mut self, reason: Failure) {
        self.inner.client_connection_failed(reason);
    }

    fn client_connection_lost(&mut self, reason: Failure) {
        self.inner.client_connection_lost(reason);
    }
}

/// Connects to `host:port` and speaks TLS as a client of `config`
/// (Twisted's `reactor.connectSSL`): the server's certificate must be valid
/// for `host` (or the config's server name). The protocol from `factory` is
/// made once TCP connects; a failed handshake reaches its
/// `connection_lost` as a [`TlsError`]. `Err` when `config` cannot be built
/// or `host` is not a valid server name.
pub fn connect_ssl(
    host: &str,
    port: u16,
    factory: impl Factory,
    config: ClientTlsConfig,
) -> Result<Connector, TlsError> {
    let session = client_session(&config, host)?;
    Ok(connect_tcp_with(
        host,
        port,
        ClientFactory {
            inner: factory,
            session: Some(session),
        },
        ConnectOptions::default(),
    ))
}

/// Connects to `host:port` with `protocol` over TLS, and fires with the
/// protocol's transport once the handshake is done (Twisted's
/// `connectProtocol(wrapClientTLS(...))`). It errbacks with the TCP
/// [`ConnectError`], a [`TlsError`] when the handshake fails, or
/// `ConnectError::TimedOut` when connecting and the handshake together take
/// longer than `options.timeout`; cancelling abandons the attempt.
pub fn connect_protocol_ssl(
    host: &str,
    port: u16,
    protocol: impl Protocol,
    config: &ClientTlsConfig,
    mut options: ConnectOptions,
) -> Deferred<Transport> {
    let session = match client_session(config, host) {
        Ok(s) => s,
        Err(e) => return crate::defer::fail(e),
    };
    let (d, trigger) = Deferred::new();
    let slot = Rc::new(RefCell::new(Some(trigger)));
    let fire = {
        let slot = slot.clone();
        move |result: Result<Transport, Failure>| {
            if let Some(trigger) = slot.borrow_mut().take() {
                trigger.fire_with(result);
            }
        }
    };
    let on_handshake = fire.clone();
    let ready: Ready = Box::new(on_handshake);
    let layer = TlsLayer::new(session, User::Fresh(Box::new(protocol)), Some(ready));
    // One timer for TCP and the handshake: TCP gets none of its own.
    let timer = options.timeout.take().map(|after| {
        let fire = fire.clone();
        let host = host.to_string();
        super::core::current().timers.call_later(
            after,
            Box::new(move || {
                fire(Err(Failure::new(ConnectError::TimedOut {
                    host,
                    port,
                    after,
                })));
            }),
        )
    });
    let failed = move |failure| fire(Err(failure));
    connect_layered(host, port, layer, options, d, failed, timer)
}

impl Transport {
    /// Switches this live connection to TLS (Twisted's
    /// `transport.startTLS(contextFactory)`, for STARTTLS): a
    /// [`ClientTlsConfig`] makes this side the client, a [`ServerTlsConfig`]
    /// the server. Bytes written before the call go out in clear, bytes
    /// written after it encrypted, in order; bytes received after the
    /// current `data_received` returns are decrypted. The protocol is not
    /// made again; a failed handshake closes the connection and its
    /// `connection_lost` gets the [`TlsError`].
    ///
    /// As a client, the server's certificate must be valid for the config's
    /// [`server_name`](ClientTlsConfig::with_server_name), or else for the
    /// peer's IP address.
    pub fn start_tls(&self, tls: impl Into<StartTls>) -> Result<(), TlsError> {
        let session = match tls.into() {
            StartTls::Client(config) => {
                let host = match (config.server_name(), self.peer()) {
                    (Some(name), _) => name.to_string(),
                    (None, Some(peer)) => peer.ip().to_string(),
                    (None, None) => {
                        return Err(TlsError::ServerName {
                            name: String::new(),
                        })
                    }
                };
                client_session(&config, &host)?
            }
            StartTls::Server(config) => {
                let peer = self
                    .peer()
                    .map_or_else(|| "the peer".into(), |p| p.to_string());
                server_session(&config, peer)?
            }
        };
        self.layer_session(session, None)
    }

    /// Switches this live connection to TLS as the client of `config`,
    /// verifying the server against `host` (or the config's server name),
    /// and tells `ready` how the handshake ended: with the TLS transport,
    /// or with the failure (a [`TlsError`], or how the connection closed).
    /// For tunnels, where the peer's address is not the server's (a
    /// `CONNECT` through an HTTP proxy).
    pub(crate) fn start_tls_client(
        &self,
        config: &ClientTlsConfig,
        host: &str,
        ready: Box<dyn FnOnce(Result<Transport, Failure>)>,
    ) -> Result<(), TlsError> {
        let session = client_session(config, host)?;
        self.layer_session(session, Some(ready))
    }

    /// Puts `session` between this connection and its protocol.
    fn layer_session(&self, session: Rc<Session>, ready: Option<Ready>) -> Result<(), TlsError> {
        let layered = session.clone();
        self.push_layer(Box::new(move |below| {
            layered.set_lower(below);
            Layering {
                transport: Rc::new(TlsTransport(layered.clone())),
                wrap: Box::new(move |old| Box::new(TlsLayer::new(layered, User::Made(old), ready))),
            }
        }))
        .map_err(|e| TlsError::CannotStart {
            source: Arc::new(e),
        })?;
        session.flush(); // a client's hello
        Ok(())
    }
}
