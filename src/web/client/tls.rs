//! HTTPS: a rustls client session (ring backend, `webpki-roots`,
//! certificates verified, SNI) between the TCP transport and the HTTP
//! protocol.

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::conn::{HttpProtocol, Wire};
use crate::defer::{Deferred, Failure, Trigger};
use crate::protocol::{ConnectionLost, Protocol, Transport};
use crate::reactor::{self, ConnectError, ConnectOptions};
use crate::web::error::copy_io_error;
use crate::web::{Cause, Error};

/// The trust settings of an [`Agent`](super::Agent), its
/// [`AgentOptions::tls`](super::AgentOptions::tls): the Mozilla roots of
/// `webpki-roots` by default, plus roots from PEM files, or a whole rustls
/// `ClientConfig`. The `add_*` methods check what they are given, so they
/// return a `Result`.
///
/// ```no_run
/// use twined::web::client::{Agent, AgentOptions, ConnectionPool, TlsConfig};
///
/// let tls = TlsConfig::default().add_root_pem_file("my-ca.pem").unwrap();
/// let agent = Agent::with_options(
///     ConnectionPool::new(),
///     AgentOptions { tls, ..Default::default() },
/// );
/// # drop(agent);
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    extra_roots: Vec<CertificateDer<'static>>,
    given: Option<Arc<ClientConfig>>,
    built: Rc<OnceCell<Result<Arc<ClientConfig>, rustls::Error>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("extra_roots", &self.extra_roots.len())
            .field("custom_client_config", &self.given.is_some())
            .finish()
    }
}

impl TlsConfig {
    /// Trusts the certificates of a PEM file too.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsConfig, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Tls {
            host: path.display().to_string(),
            reason: format!("cannot read the CA file: {e}"),
            source: Some(Arc::new(e)),
        })?;
        self.add_root_pem(&bytes).map_err(|e| match e {
            Error::Tls { reason, source, .. } => Error::Tls {
                host: path.display().to_string(),
                reason,
                source,
            },
            other => other,
        })
    }

    /// Trusts the certificates of PEM text too.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<TlsConfig, Error> {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Tls {
                host: "the CA file".into(),
                reason: format!("invalid PEM: {e}"),
                source: Some(Arc::new(e)),
            })?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls {
                host: "the CA file".into(),
                reason: "no certificate in the PEM data".into(),
                source: None,
            });
        }
        self.built = Rc::default();
        Ok(self)
    }

    /// Uses this rustls configuration as it is.
    pub fn from_client_config(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig {
            given: Some(config),
            ..TlsConfig::default()
        }
    }

    fn client_config(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        self.built
            .get_or_init(|| {
                let mut roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                for cert in &self.extra_roots {
                    roots.add(cert.clone())?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }
}

/// The HTTP protocol's view of a TLS session.
#[derive(Clone)]
pub(crate) struct TlsWire {
    session: Rc<RefCell<ClientConnection>>,
    transport: Transport,
}

impl TlsWire {
    pub(crate) fn write(&self, data: &[u8]) {
        let result = {
            let mut session = self.session.borrow_mut();
            io::Write::write_all(&mut session.writer(), data)
        };
        match result {
            Ok(()) => flush(&self.session, &self.transport),
            Err(e) => {
                log::debug!("TLS write failed: {e}");
                self.transport.abort_connection();
            }
        }
    }

    pub(crate) fn abort(&self) {
        self.transport.abort_connection();
    }

    pub(crate) fn lose(&self) {
        self.session.borrow_mut().send_close_notify();
        flush(&self.session, &self.transport);
        self.transport.lose_connection();
    }
}

/// Sends what the session has to send.
fn flush(session: &Rc<RefCell<ClientConnection>>, transport: &Transport) {
    let mut out = Vec::new();
    {
        let mut session = session.borrow_mut();
        while session.wants_write() {
            if session.write_tls(&mut out).is_err() {
                break;
            }
        }
    }
    if !out.is_empty() {
        transport.write(&out);
    }
}

type Ready = Rc<RefCell<Option<Trigger<()>>>>;

/// TLS between the transport and the HTTP protocol.
struct TlsProtocol {
    host: String,
    session: Rc<RefCell<ClientConnection>>,
    transport: Option<Transport>,
    inner: HttpProtocol,
    handshaken: bool,
    ready: Ready,
}

/// Why a TLS session failed.
enum TlsFailure {
    /// rustls refused the peer (its certificate, its messages).
    Rustls(rustls::Error),
    /// The transport failed.
    Io(io::Error),
    /// The connection closed during the handshake.
    Closed(Failure),
}

impl TlsFailure {
    fn into_error(self, host: &str) -> Error {
        let (reason, source): (String, Option<Cause>) = match self {
            TlsFailure::Rustls(e) => (e.to_string(), Some(Arc::new(e))),
            TlsFailure::Io(e) => (format!("reading TLS records: {e}"), Some(Arc::new(e))),
            TlsFailure::Closed(reason) => (
                format!("the connection closed during the handshake ({reason})"),
                reason
                    .downcast_ref::<ConnectionLost>()
                    .map(|lost| Arc::new(copy_io_error(&lost.source)) as Cause),
            ),
        };
        Error::Tls {
            host: host.to_string(),
            reason,
            source,
        }
    }
}

impl TlsProtocol {
    fn fail(&mut self, failure: TlsFailure) {
        if let Some(trigger) = self.ready.borrow_mut().take() {
            trigger.errback(failure.into_error(&self.host));
        }
        if let Some(t) = &self.transport {
            t.abort_connection();
        }
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport.set_tcp_nodelay(true);
        flush(&self.session, &transport);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, mut data: &[u8]) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        let mut plain = Vec::new();
        let mut error = None;
        {
            let mut session = self.session.borrow_mut();
            while !data.is_empty() {
                if let Err(e) = session.read_tls(&mut data) {
                    error = Some(TlsFailure::Io(e));
                    break;
                }
                if let Err(e) = session.process_new_packets() {
                    error = Some(TlsFailure::Rustls(e));
                    break;
                }
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match session.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => plain.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            error = Some(TlsFailure::Io(e));
                            break;
                        }
                    }
                }
            }
        }
        // Alerts and handshake messages.
        flush(&self.session, &transport);
        if let Some(failure) = error {
            if !self.handshaken {
                return self.fail(failure);
            }
            log::debug!("{}", failure.into_error(&self.host));
            transport.abort_connection();
            return;
        }
        if !self.handshaken && !self.session.borrow().is_handshaking() {
            self.handshaken = true;
            self.inner.wire_ready(Wire::Tls(TlsWire {
                session: self.session.clone(),
                transport,
            }));
            if let Some(trigger) = self.ready.borrow_mut().take() {
                trigger.callback(());
            }
        }
        if !plain.is_empty() {
            self.inner.receive(&plain);
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        if !self.handshaken {
            self.fail(TlsFailure::Closed(reason.clone()));
        }
        self.inner.lost(reason);
    }
}

/// The name the server's certificate must carry: a DNS name, or an IP
/// address for an IP literal. `host` is a URL's host (`[v6]` bracketed), so
/// the URL parser reads it back: no bracket stripping by hand.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let invalid = |reason: String| Error::Tls {
        host: host.to_string(),
        reason: format!("invalid server name: {reason}"),
        source: None,
    };
    match url::Host::parse(host).map_err(|e| invalid(e.to_string()))? {
        url::Host::Domain(name) => ServerName::try_from(name).map_err(|e| Error::Tls {
            host: host.to_string(),
            reason: format!("invalid server name: {e}"),
            source: Some(Arc::new(e)),
        }),
        url::Host::Ipv4(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
        url::Host::Ipv6(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
    }
}

/// Connects to `host:port`, runs the handshake, and fires once `inner` can
/// send requests. One timer, `options.timeout`, covers the name lookup, TCP
/// and the handshake. Cancelling the Deferred stops whichever is under way.
pub(crate) fn connect(
    tls: &TlsConfig,
    host: &str,
    port: u16,
    mut options: ConnectOptions,
    inner: HttpProtocol,
) -> Deferred<()> {
    let tls_error = |e: rustls::Error| {
        crate::defer::fail(Error::Tls {
            host: host.to_string(),
            reason: e.to_string(),
            source: Some(Arc::new(e)),
        })
    };
    let config = match tls.client_config() {
        Ok(c) => c,
        Err(e) => return tls_error(e),
    };
    let name = match server_name(host) {
        Ok(n) => n,
        Err(e) => return crate::defer::fail(e),
    };
    let session = match ClientConnection::new(config, name) {
        Ok(s) => s,
        Err(e) => return tls_error(e),
    };
    let (d, trigger) = Deferred::new();
    let ready: Ready = Rc::new(RefCell::new(Some(trigger)));
    let protocol = TlsProtocol {
        host: host.to_string(),
        session: Rc::new(RefCell::new(session)),
        transport: None,
        inner,
        handshaken: false,
        ready: ready.clone(),
    };
    // The one connect timer: TCP gets none of its own.
    let timer = options.timeout.take().map(|after| {
        let ready = ready.clone();
        let host = host.to_string();
        reactor::call_later(after, move || {
            if let Some(trigger) = ready.borrow_mut().take() {
                trigger.errback(ConnectError::TimedOut { host, port, after });
            }
        })
    });
    let on_failure = ready.clone();
    let transport_slot: Rc<RefCell<Option<Transport>>> = Rc::default();
    let slot = transport_slot.clone();
    let tcp = reactor::connect_protocol_with(host, port, protocol, options)
        .add_callback(move |t| *slot.borrow_mut() = Some(t))
        .add_errback(move |failure| {
            if let Some(trigger) = on_failure.borrow_mut().take() {
                trigger.errback(failure);
            }
        });
    d.then(move |result: Result<(), Failure>| {
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
        if result.is_err() {
            // Stops a lookup or TCP connect still under way (timed out or
            // cancelled), or closes the connection the handshake failed on.
            tcp.cancel();
            let transport = transport_slot.borrow_mut().take();
            if let Some(t) = transport {
                t.abort_connection();
            }
        }
        result
    })
}
