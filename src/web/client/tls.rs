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
use crate::protocol::{Protocol, Transport};
use crate::reactor::{self, ConnectError, ConnectOptions};
use crate::web::Error;

/// TLS settings of an [`Agent`](super::Agent): the Mozilla roots of
/// `webpki-roots` by default, plus roots from PEM files, or a whole rustls
/// `ClientConfig`.
///
/// ```no_run
/// use twined::web::client::{Agent, TlsConfig};
///
/// let tls = TlsConfig::default().add_root_pem_file("my-ca.pem").unwrap();
/// let agent = Agent::new().with_tls(tls);
/// # drop(agent);
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    extra_roots: Vec<CertificateDer<'static>>,
    given: Option<Arc<ClientConfig>>,
    built: Rc<OnceCell<Result<Arc<ClientConfig>, String>>>,
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
        })?;
        self.add_root_pem(&bytes).map_err(|e| match e {
            Error::Tls { reason, .. } => Error::Tls {
                host: path.display().to_string(),
                reason,
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
            })?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls {
                host: "the CA file".into(),
                reason: "no certificate in the PEM data".into(),
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

    fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        self.built
            .get_or_init(|| {
                let mut roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                for cert in &self.extra_roots {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("invalid root certificate: {e}"))?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
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

impl TlsProtocol {
    fn fail(&mut self, reason: String) {
        if let Some(trigger) = self.ready.borrow_mut().take() {
            trigger.errback(Error::Tls {
                host: self.host.clone(),
                reason: reason.clone(),
            });
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
                    error = Some(format!("reading TLS records: {e}"));
                    break;
                }
                if let Err(e) = session.process_new_packets() {
                    error = Some(e.to_string());
                    break;
                }
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match session.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => plain.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            error = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
        }
        // Alerts and handshake messages.
        flush(&self.session, &transport);
        if let Some(reason) = error {
            if !self.handshaken {
                return self.fail(reason);
            }
            log::debug!("TLS error with {}: {reason}", self.host);
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
            self.fail(format!(
                "the connection closed during the handshake ({reason})"
            ));
        }
        self.inner.lost(reason);
    }
}

/// Connects to `host:port`, runs the handshake, and fires once `inner` can
/// send requests.
pub(crate) fn connect(
    tls: &TlsConfig,
    host: &str,
    port: u16,
    options: ConnectOptions,
    inner: HttpProtocol,
) -> Deferred<()> {
    let tls_error = |reason: String| {
        crate::defer::fail(Error::Tls {
            host: host.to_string(),
            reason,
        })
    };
    let config = match tls.client_config() {
        Ok(c) => c,
        Err(reason) => return tls_error(reason),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = match ServerName::try_from(bare.to_string()) {
        Ok(n) => n,
        Err(e) => return tls_error(format!("invalid server name: {e}")),
    };
    let session = match ClientConnection::new(config, name) {
        Ok(s) => s,
        Err(e) => return tls_error(e.to_string()),
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
    // The connect timeout covers the handshake too.
    let timer = options.timeout.map(|after| {
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
    reactor::connect_protocol_with(host, port, protocol, options)
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
            if let Some(t) = transport_slot.borrow_mut().take() {
                t.abort_connection();
            }
        }
        result
    })
}
