//! What can go wrong with TLS: a configuration that cannot be built, a
//! server name that is not one, a handshake rustls refused, a connection that
//! closed before the handshake finished.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A TLS failure (Twisted's `SSL.Error` as `connectionLost` reasons carry
/// it). A handshake failure is [`TlsError::Handshake`], whose
/// [`source`](Error::source) is rustls' own [`rustls::Error`] (a bad
/// certificate is `rustls::Error::InvalidCertificate`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the peer: its certificate (untrusted, expired, for
    /// another name), its messages (not TLS at all), or an alert it sent.
    Handshake {
        /// The host name or address of the peer.
        peer: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The connection closed before the handshake finished (the peer does
    /// not speak TLS, or gave up).
    Closed {
        /// The host name or address of the peer.
        peer: String,
        /// How the connection ended.
        reason: String,
    },
    /// A certificate, key or CA file could not be read or used.
    Config {
        /// What was being loaded (a path, or "the CA PEM data").
        what: String,
        /// Why it could not be used.
        reason: String,
        /// The underlying error, if any.
        source: Option<Arc<dyn Error + Send + Sync>>,
    },
    /// The name to verify the server's certificate against is not a DNS
    /// name or an IP address.
    ServerName {
        /// The name given.
        name: String,
    },
    /// The transport cannot switch to TLS (it is closed, closing, or
    /// already carries a layer).
    CannotStart {
        /// Why.
        source: Arc<std::io::Error>,
    },
}

impl TlsError {
    pub(crate) fn config(
        what: impl Into<String>,
        reason: impl Into<String>,
        source: Option<Arc<dyn Error + Send + Sync>>,
    ) -> TlsError {
        TlsError::Config {
            what: what.into(),
            reason: reason.into(),
            source,
        }
    }

    /// The peer this error is about, when it is about one.
    pub fn peer(&self) -> Option<&str> {
        match self {
            TlsError::Handshake { peer, .. } | TlsError::Closed { peer, .. } => Some(peer),
            TlsError::ServerName { name } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Handshake { peer, source } => write!(f, "TLS error with {peer}: {source}"),
            TlsError::Closed { peer, reason } => write!(
                f,
                "TLS error with {peer}: the connection closed during the handshake ({reason})"
            ),
            TlsError::Config { what, reason, .. } => {
                write!(f, "TLS configuration error ({what}): {reason}")
            }
            TlsError::ServerName { name } => {
                write!(
                    f,
                    "invalid TLS server name {name:?}: not a DNS name or IP address"
                )
            }
            TlsError::CannotStart { source } => write!(f, "cannot start TLS: {source}"),
        }
    }
}

impl Error for TlsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TlsError::Handshake { source, .. } => Some(source),
            TlsError::Config {
                source: Some(source),
                ..
            } => Some(&**source),
            TlsError::CannotStart { source } => Some(&**source),
            _ => None,
        }
    }
}
