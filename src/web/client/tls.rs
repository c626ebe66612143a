//! HTTPS for the client: the trust settings of an [`Agent`](super::Agent)
//! and the connect that puts the HTTP protocol on the reactor's TLS layer
//! ([`crate::reactor::tls`]), with its failures as [`web::Error`](Error)s.

use std::path::Path;
use std::sync::Arc;

use super::conn::HttpProtocol;
use crate::defer::{Deferred, Failure};
use crate::reactor::tls::{connect_protocol_ssl, ClientTlsConfig, TlsError};
use crate::reactor::ConnectOptions;
use crate::web::{Cause, Error};

/// The trust settings of an [`Agent`](super::Agent), its
/// [`AgentOptions::tls`](super::AgentOptions::tls): the reactor's
/// [`ClientTlsConfig`] (the Mozilla roots of `webpki-roots` by default, plus
/// roots from PEM files, or a whole rustls `ClientConfig`) with its errors
/// as [`web::Error`](Error)s of kind `Tls`. The `add_*` methods check what
/// they are given, so they return a `Result`.
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
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    client: ClientTlsConfig,
}

impl TlsConfig {
    /// Trusts the certificates of a PEM file too.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsConfig, Error> {
        let path = path.as_ref();
        let client = self
            .client
            .add_root_pem_file(path)
            .map_err(|e| web_error(&path.display().to_string(), e))?;
        Ok(TlsConfig { client })
    }

    /// Trusts the certificates of PEM text too.
    pub fn add_root_pem(self, pem: &[u8]) -> Result<TlsConfig, Error> {
        let client = self
            .client
            .add_root_pem(pem)
            .map_err(|e| web_error("the CA file", e))?;
        Ok(TlsConfig { client })
    }

    /// Uses this rustls configuration as it is.
    pub fn from_client_config(config: Arc<rustls::ClientConfig>) -> TlsConfig {
        TlsConfig {
            client: ClientTlsConfig::from_client_config(config),
        }
    }

    /// The reactor-level configuration this wraps.
    pub fn client(&self) -> &ClientTlsConfig {
        &self.client
    }
}

impl From<ClientTlsConfig> for TlsConfig {
    fn from(client: ClientTlsConfig) -> TlsConfig {
        TlsConfig { client }
    }
}

/// A TLS failure as the web client reports it.
pub(super) fn web_error(host: &str, e: TlsError) -> Error {
    let reason = match &e {
        TlsError::Handshake { source, .. } => source.to_string(),
        TlsError::Closed { reason, .. } => {
            format!("the connection closed during the handshake ({reason})")
        }
        TlsError::Config { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    let source: Option<Cause> = match e {
        TlsError::Handshake { source, .. } => Some(Arc::new(source)),
        TlsError::Config { source, .. } => source.map(|s| s as Cause),
        TlsError::CannotStart { source } => Some(source as Cause),
        _ => None,
    };
    Error::Tls {
        host: host.to_string(),
        reason,
        source,
    }
}

/// Connects to `host:port`, runs the handshake, and fires once `inner` can
/// send requests. One timer, `options.timeout`, covers the name lookup, TCP
/// and the handshake. Cancelling the Deferred stops whichever is under way.
pub(crate) fn connect(
    tls: &TlsConfig,
    host: &str,
    port: u16,
    options: ConnectOptions,
    inner: HttpProtocol,
) -> Deferred<()> {
    let label = host.to_string();
    connect_protocol_ssl(host, port, inner, &tls.client, options).then(
        move |result: Result<_, Failure>| match result {
            Ok(_) => Ok(()),
            Err(failure) => match failure.downcast_ref::<TlsError>() {
                Some(e) => Err(Failure::new(web_error(&label, e.clone()))),
                None => Err(failure),
            },
        },
    )
}
