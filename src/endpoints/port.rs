//! The listening port an endpoint's `listen` gives back, whatever its kind
//! (Twisted's `IListeningPort`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::reactor::{Port, UnixPort};

/// A port opened by [`ServerEndpoint::listen`](super::ServerEndpoint::listen)
/// (Twisted's `IListeningPort`). Dropping it does not close it;
/// [`stop_listening`](Self::stop_listening) does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ListeningPort {
    /// A TCP port.
    Tcp(Port),
    /// A Unix socket.
    Unix(UnixPort),
}

impl ListeningPort {
    /// Stops accepting connections (Twisted's `stopListening`); a Unix
    /// socket's file is removed.
    pub fn stop_listening(&self) {
        match self {
            ListeningPort::Tcp(p) => p.stop_listening(),
            ListeningPort::Unix(p) => p.stop_listening(),
        }
    }

    /// Whether the port still listens.
    pub fn listening(&self) -> bool {
        match self {
            ListeningPort::Tcp(p) => p.listening(),
            ListeningPort::Unix(p) => p.listening(),
        }
    }

    /// The bound address of a TCP port (with the real port when 0 was asked).
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        match self {
            ListeningPort::Tcp(p) => Some(p.address()),
            ListeningPort::Unix(_) => None,
        }
    }

    /// The socket file of a Unix port.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            ListeningPort::Unix(p) => Some(p.path()),
            ListeningPort::Tcp(_) => None,
        }
    }
}

impl fmt::Display for ListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListeningPort::Tcp(p) => write!(f, "tcp:{}", p.address()),
            ListeningPort::Unix(p) => write!(f, "unix:{}", p.path().display()),
        }
    }
}
