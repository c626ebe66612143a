//! Why a connection could not be made, and why it ended.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A connection attempt failed (Twisted's `ConnectError` family).
///
/// A host-name lookup failure is not one of these: it arrives as the
/// [`ResolveError`](crate::threads::ResolveError) of the lookup.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing listens there (`ECONNREFUSED`; Twisted's `ConnectionRefusedError`).
    Refused {
        /// The address that refused.
        addr: SocketAddr,
    },
    /// No route to the host or its network (Twisted's `NoRouteError`).
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
    /// The connection was not made in time (Twisted's `TCPTimedOutError`).
    TimedOut {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// The time allowed.
        after: Duration,
    },
    /// The host name resolved to no address.
    NoAddress {
        /// The host as given.
        host: String,
    },
    /// Any other system error while connecting to `addr`.
    Failed {
        /// The address tried.
        addr: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
}

impl ConnectError {
    /// Classifies the error `source` met while connecting to `addr`.
    pub(crate) fn from_io(addr: SocketAddr, source: io::Error) -> ConnectError {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused { addr },
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectError::Unreachable { addr, source }
            }
            _ => match source.raw_os_error() {
                // EHOSTUNREACH, ENETUNREACH on Linux, in case the kind is Uncategorized.
                Some(113) | Some(101) => ConnectError::Unreachable { addr, source },
                _ => ConnectError::Failed { addr, source },
            },
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused { addr } => write!(f, "connection refused: {addr}"),
            ConnectError::Unreachable { addr, source } => {
                write!(f, "host unreachable: {addr}: {source}")
            }
            ConnectError::TimedOut { host, port, after } => write!(
                f,
                "connection to {host}:{port} timed out after {:.3} s",
                after.as_secs_f64()
            ),
            ConnectError::NoAddress { host } => {
                write!(f, "{host} resolved to no address")
            }
            ConnectError::Failed { addr, source } => {
                write!(f, "could not connect to {addr}: {source}")
            }
        }
    }
}

impl Error for ConnectError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ConnectError::Unreachable { source, .. } | ConnectError::Failed { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// The connection was closed cleanly: by the peer (end of stream) or by
/// [`Transport::lose_connection`](crate::protocol::Transport::lose_connection)
/// (Twisted's `ConnectionDone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionDone;

impl fmt::Display for ConnectionDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection was closed cleanly")
    }
}

impl Error for ConnectionDone {}

/// The connection broke: reset by the peer, or a read or write failed
/// (Twisted's `ConnectionLost`).
#[derive(Debug)]
pub struct ConnectionLost {
    /// The peer, when known.
    pub peer: Option<SocketAddr>,
    /// The system's error.
    pub source: io::Error,
}

impl fmt::Display for ConnectionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "connection to {peer} lost: {}", self.source),
            None => write!(f, "connection lost: {}", self.source),
        }
    }
}

impl Error for ConnectionLost {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// The connection was closed by
/// [`Transport::abort_connection`](crate::protocol::Transport::abort_connection), unsent
/// data discarded (Twisted's `ConnectionAborted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAborted;

impl fmt::Display for ConnectionAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection was aborted")
    }
}

impl Error for ConnectionAborted {}

/// A port could not be opened (Twisted's `CannotListenError`).
#[derive(Debug)]
pub struct CannotListen {
    /// The address asked for, as given.
    pub addr: String,
    /// The system's error.
    pub source: io::Error,
}

impl CannotListen {
    /// The first address `addr` names, for a listening socket; the errors
    /// of that socket are made by the function returned with it.
    pub(crate) fn first_address<A: ToSocketAddrs + fmt::Display>(
        addr: &A,
    ) -> Result<(SocketAddr, impl Fn(io::Error) -> CannotListen), CannotListen> {
        let given = addr.to_string();
        let cannot = move |source: io::Error| CannotListen {
            addr: given.clone(),
            source,
        };
        let first = addr
            .to_socket_addrs()
            .map_err(&cannot)?
            .next()
            .ok_or_else(|| cannot(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
        Ok((first, cannot))
    }
}

impl fmt::Display for CannotListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.source)
    }
}

impl Error for CannotListen {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}
