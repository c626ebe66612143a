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

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::defer::Failure;

pub use crate::reactor::tcp::{ConnectionAborted, ConnectionDone, ConnectionLost, Transport};

/// The code of one stream connection (Twisted's `Protocol`).
///
/// Every method runs on the reactor thread. A method may call anything on the
/// transport, the reactor or other Deferreds. A panic in a method is logged
/// and aborts the connection (Twisted disconnects a protocol that raises);
/// `connection_lost` then gets the panic as its reason.
pub trait Protocol: 'static {
    /// The connection is up; keep `transport` to write to it.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// Bytes arrived. Chunk boundaries mean nothing: a message may arrive in
    /// several calls, and several messages in one.
    fn data_received(&mut self, data: &[u8]);

    /// The connection is closed; called exactly once, after which the protocol
    /// is dropped. The reason is a [`ConnectionDone`] for a clean close, a
    /// [`ConnectionLost`] for an error or reset, a [`ConnectionAborted`] after
    /// [`Transport::abort_connection`].
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }

    /// The transport's write buffer went past its high-water mark (64 KiB by
    /// default): stop writing until [`resume_producing`](Self::resume_producing).
    /// Writes are never lost either way; this is flow control. A protocol
    /// that relays what it reads (a proxy, an echo) calls
    /// [`Transport::pause_producing`] here to stop reading.
    fn pause_producing(&mut self) {}

    /// The write buffer drained below its low-water mark: writing may go on.
    fn resume_producing(&mut self) {}
}

impl Protocol for Box<dyn Protocol> {
    fn connection_made(&mut self, transport: Transport) {
        (**self).connection_made(transport)
    }
    fn data_received(&mut self, data: &[u8]) {
        (**self).data_received(data)
    }
    fn connection_lost(&mut self, reason: Failure) {
        (**self).connection_lost(reason)
    }
    fn pause_producing(&mut self) {
        (**self).pause_producing()
    }
    fn resume_producing(&mut self) {
        (**self).resume_producing()
    }
}

/// A protocol shared with other code: keep a clone of the `Rc` to reach the
/// protocol's state from outside its callbacks. Do not hold a borrow of it
/// across a point where the reactor may call it.
impl<P: Protocol> Protocol for Rc<RefCell<P>> {
    fn connection_made(&mut self, transport: Transport) {
        self.borrow_mut().connection_made(transport)
    }
    fn data_received(&mut self, data: &[u8]) {
        self.borrow_mut().data_received(data)
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.borrow_mut().connection_lost(reason)
    }
    fn pause_producing(&mut self) {
        self.borrow_mut().pause_producing()
    }
    fn resume_producing(&mut self) {
        self.borrow_mut().resume_producing()
    }
}

/// Builds a protocol for each connection (Twisted's `Factory` and
/// `ClientFactory`). Any `FnMut(SocketAddr) -> P` closure is one.
pub trait Factory: 'static {
    /// A protocol for a new connection with `peer`, or `None` to close it at once.
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>>;

    /// A listening port opened (Twisted's `startFactory`).
    fn start_factory(&mut self) {}

    /// The listening port closed (Twisted's `stopFactory`).
    fn stop_factory(&mut self) {}

    /// A [`connect_tcp`](crate::reactor::connect_tcp) attempt failed. The
    /// default logs the reason.
    fn client_connection_failed(&mut self, reason: Failure) {
        log::info!("connection failed: {reason}");
    }

    /// A connection made by [`connect_tcp`](crate::reactor::connect_tcp)
    /// closed, after its protocol's `connection_lost`.
    fn client_connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }
}

impl<F, P> Factory for F
where
    F: FnMut(SocketAddr) -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self(peer)))
    }
}
