//! Stream protocols and their factories (Twisted's
//! `twisted.internet.protocol`).
//!
//! A [`Protocol`] is the code of one connection: the reactor calls
//! [`connection_made`](Protocol::connection_made) with the connection's
//! [`Transport`], [`data_received`](Protocol::data_received) with each chunk of
//! bytes as it arrives, and [`connection_lost`](Protocol::connection_lost) once,
//! with the reason, when the connection is gone. A [`Factory`] builds one
//! protocol per connection for [`listen_tcp`](crate::reactor::listen_tcp) and
//! [`connect_tcp`](crate::reactor::connect_tcp); a closure
//! `FnMut(SocketAddr) -> P` is a factory.
//!
//! | Twisted | twined |
//! |---|---|
//! | `class Echo(Protocol)` | `impl Protocol for Echo` |
//! | `connectionMade()` / `dataReceived(data)` / `connectionLost(reason)` | [`connection_made(transport)`](Protocol::connection_made) / [`data_received(&[u8])`](Protocol::data_received) / [`connection_lost(Failure)`](Protocol::connection_lost) |
//! | `self.transport.write(data)` | keep the [`Transport`] given to `connection_made` and call [`write`](Transport::write) |
//! | `Factory.forProtocol(Echo)` / `buildProtocol(addr)` | a closure `\|peer\| Echo::default()`, or [`Factory::build_protocol`] |
//! | `ClientFactory.clientConnectionFailed/Lost` | [`Factory::client_connection_failed`] / [`Factory::client_connection_lost`] |
//! | `IPushProducer.pauseProducing/resumeProducing` (the transport's consumer side) | [`Protocol::pause_producing`] / [`Protocol::resume_producing`] |
//! | `ConnectionDone`, `ConnectionLost`, `ConnectionAborted` | [`ConnectionDone`], [`ConnectionLost`], [`ConnectionAborted`] |
//! | `twisted.protocols.basic` (`LineReceiver`, `Int32StringReceiver`, `NetstringReceiver`, ...) | [`basic`]: the same names, a handler trait per family |
//!
//! ```
//! use std::net::SocketAddr;
//! use twined::protocol::{Protocol, Transport};
//! use twined::reactor;
//!
//! /// Twisted's Echo.
//! #[derive(Default)]
//! struct Echo {
//!     transport: Option<Transport>,
//! }
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: Transport) {
//!         self.transport = Some(transport);
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         if let Some(t) = &self.transport {
//!             t.write(data);
//!         }
//!     }
//! }
//!
//! let port = reactor::listen_tcp("127.0.0.1:0", |_peer: SocketAddr| Echo::default()).unwrap();
//! assert!(port.address().port() != 0);
//! port.stop_listening();
//! ```

pub mod basic;
pub mod policies;
pub mod reconnect;

pub use crate::reactor::stream::{
    CloseNotice, Factory, ITransport, Layering, Protocol, Transport, WrapProtocol,
};
pub use crate::reactor::tcp::{ConnectionAborted, ConnectionDone, ConnectionLost};
