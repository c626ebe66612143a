//! TCP for the reactor: listening ports, outgoing connections, and the
//! transport protocols write through (Twisted's `twisted.internet.tcp`).
//!
//! The connection is one implementation of
//! [`ITransport`](crate::protocol::ITransport); the protocol side
//! ([`Protocol`](crate::protocol::Protocol),
//! [`Factory`](crate::protocol::Factory)) is in the reactor's `stream`
//! module, under its Twisted names in [`crate::protocol`].

mod connect;
mod error;
mod listen;
mod transport;

#[cfg(feature = "tls")]
pub(crate) use connect::connect_layered;
pub use connect::{
    connect_protocol, connect_protocol_with, connect_tcp, connect_tcp_with, ConnectOptions,
    Connector, DEFAULT_ATTEMPT_DELAY,
};
pub use error::{CannotListen, ConnectError, ConnectionAborted, ConnectionDone, ConnectionLost};
pub use listen::{listen_tcp, listen_tcp_with, ListenOptions, Port};
