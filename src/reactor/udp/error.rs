//! Why a datagram could not be sent.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// A datagram was not sent (Twisted raises `MessageLengthError`,
/// `ConnectionRefusedError` or the socket's error from `write`).
#[derive(Debug)]
#[non_exhaustive]
pub enum DatagramError {
    /// The datagram is longer than the socket can send in one piece
    /// (`EMSGSIZE`; Twisted's `MessageLengthError`).
    TooLarge {
        /// The datagram's length.
        size: usize,
        /// Where it was going, when known.
        addr: Option<SocketAddr>,
    },
    /// The kernel's send buffer is full and the transport's queue holds
    /// [`UdpOptions::send_queue_bytes`](super::UdpOptions::send_queue_bytes)
    /// already: the datagram was dropped. Send again once
    /// [`queued_bytes`](super::DatagramTransport::queued_bytes) goes down.
    BufferFull {
        /// The queue's bound in bytes.
        limit: usize,
    },
    /// [`write`](super::DatagramTransport::write) on a socket that is not
    /// connected: use `write_to` or `connect` first.
    NotConnected,
    /// The connected peer refused an earlier datagram (`ECONNREFUSED`;
    /// Twisted's `ConnectionRefusedError`).
    Refused {
        /// The connected peer.
        addr: Option<SocketAddr>,
    },
    /// The socket was closed by `stop_listening`.
    Closed,
    /// Any other system error.
    Failed {
        /// Where the datagram was going, when known.
        addr: Option<SocketAddr>,
        /// The system's error.
        source: io::Error,
    },
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = |addr: &Option<SocketAddr>| match addr {
            Some(a) => format!(" to {a}"),
            None => String::new(),
        };
        match self {
            DatagramError::TooLarge { size, addr } => write!(
                f,
                "a datagram of {size} bytes{} is too large to send",
                to(addr)
            ),
            DatagramError::BufferFull { limit } => write!(
                f,
                "the send buffer is full ({limit} bytes queued); datagram dropped"
            ),
            DatagramError::NotConnected => {
                f.write_str("write without an address on a UDP socket that is not connected")
            }
            DatagramError::Refused { addr } => write!(f, "connection refused{}", to(addr)),
            DatagramError::Closed => f.write_str("the UDP socket is closed"),
            DatagramError::Failed { addr, source } => {
                write!(f, "could not send a datagram{}: {source}", to(addr))
            }
        }
    }
}

impl Error for DatagramError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DatagramError::Failed { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl DatagramError {
    pub(super) fn from_io(addr: Option<SocketAddr>, size: usize, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::ConnectionRefused {
            return DatagramError::Refused { addr };
        }
        // EMSGSIZE
        if source.raw_os_error() == Some(90) {
            return DatagramError::TooLarge { size, addr };
        }
        DatagramError::Failed { addr, source }
    }
}
