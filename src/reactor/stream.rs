//! Stream connections as the reactor drives them: the [`Protocol`] a
//! connection calls, the [`Factory`] that builds one per connection, and the
//! [`Transport`] handle a protocol writes through.
//!
//! A `Transport` is a cheap, cloneable handle over any [`ITransport`]: the
//! TCP connection today, and any other stream (a TLS wrapper, a Unix socket,
//! a test transport that records what was written) tomorrow, so one
//! `Protocol` runs over all of them. The Twisted-named face of these types is
//! [`crate::protocol`].

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::defer::{Deferred, Failure, Trigger};

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
    /// is dropped. The reason is a [`ConnectionDone`](crate::protocol::ConnectionDone)
    /// for a clean close, a [`ConnectionLost`](crate::protocol::ConnectionLost)
    /// for an error or reset, a
    /// [`ConnectionAborted`](crate::protocol::ConnectionAborted) after
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

impl Factory for Box<dyn Factory> {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        (**self).build_protocol(peer)
    }
    fn start_factory(&mut self) {
        (**self).start_factory()
    }
    fn stop_factory(&mut self) {
        (**self).stop_factory()
    }
    fn client_connection_failed(&mut self, reason: Failure) {
        (**self).client_connection_failed(reason)
    }
    fn client_connection_lost(&mut self, reason: Failure) {
        (**self).client_connection_lost(reason)
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

/// What a stream transport does (Twisted's `ITransport`, `ITCPTransport` and
/// the transport's `IPushProducer` side). Implement it to make a new kind of
/// stream usable as a [`Transport`]; protocols only ever see the handle.
///
/// Every method runs on the reactor thread and must not call back into the
/// protocol synchronously except through the reactor (as the TCP transport
/// does), so a protocol may call any of them from any of its own methods.
pub trait ITransport: fmt::Debug {
    /// Sends `data`, buffering what cannot be sent now.
    fn write(&self, data: &[u8]);
    /// Sends several buffers in order.
    fn write_sequence(&self, parts: &[&[u8]]);
    /// Closes once everything written has been sent.
    fn lose_connection(&self);
    /// Closes now, discarding unsent data.
    fn abort_connection(&self);
    /// The remote address, if the transport has one.
    fn peer(&self) -> Option<SocketAddr>;
    /// The local address, if the transport has one.
    fn host(&self) -> Option<SocketAddr>;
    /// Whether the connection is open and not closing.
    fn connected(&self) -> bool;
    /// Turns Nagle's algorithm off (`true`) or on; transports that are not
    /// TCP sockets answer with an `Unsupported` error (the default).
    fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        let _ = enabled;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the transport is not a TCP socket",
        ))
    }
    /// Who is on the other end of a Unix socket, where the system says; the
    /// default (any other transport) is `None`.
    fn peer_credentials(&self) -> Option<crate::reactor::PeerCredentials> {
        None
    }
    /// Stops delivering received data until [`resume_producing`](Self::resume_producing).
    fn pause_producing(&self);
    /// Delivers received data again.
    fn resume_producing(&self);
    /// Sets the write buffer's high- and low-water marks.
    fn set_write_buffer_limits(&self, high: usize, low: usize);
    /// Bytes written but not yet sent.
    fn write_buffer_size(&self) -> usize;

    /// Puts a layer (STARTTLS's TLS session) between this live connection
    /// and its protocol: `make` gets a handle that bypasses the layer and
    /// returns the layer. From then on every handle's methods go through
    /// [`Layering::transport`], and received bytes go to the protocol
    /// [`Layering::wrap`] builds around the current one (installed once the
    /// protocol's running method, if any, returns). Bytes written before the
    /// call go out first, unchanged. Transports that cannot carry a layer
    /// answer with an `Unsupported` error (the default).
    fn push_layer(&self, make: Box<dyn FnOnce(Transport) -> Layering>) -> io::Result<()> {
        let _ = make;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the transport cannot carry a layer",
        ))
    }
    /// The [`CloseNotice`] the transport fires when the connection closes,
    /// behind [`Transport::when_closed`]. The default, `None`, makes
    /// `when_closed` errback at once: a transport that can close implements
    /// this.
    fn close_notice(&self) -> Option<&CloseNotice> {
        None
    }
}

/// Tells any number of waiters that a connection closed, and why: the one
/// mechanism behind [`Transport::when_closed`] for every kind of transport.
/// A transport keeps one and calls [`closed`](Self::closed) from its close
/// path, after the protocol's `connection_lost`.
#[derive(Default)]
pub struct CloseNotice(RefCell<CloseState>);

enum CloseState {
    Open(Vec<Trigger<Failure>>),
    Closed(Failure),
}

impl Default for CloseState {
    fn default() -> CloseState {
        CloseState::Open(Vec::new())
    }
}

impl CloseNotice {
    /// An open connection's notice.
    pub fn new() -> CloseNotice {
        CloseNotice::default()
    }

    /// A Deferred that fires with the close reason once the connection is
    /// closed (at once if it already is).
    pub fn when_closed(&self) -> Deferred<Failure> {
        let mut state = self.0.borrow_mut();
        match &mut *state {
            CloseState::Open(waiters) => {
                let (d, trigger) = Deferred::new();
                waiters.push(trigger);
                d
            }
            CloseState::Closed(reason) => crate::defer::succeed(reason.clone()),
        }
    }

    /// The connection closed with `reason`: fires every waiter. Only the
    /// first call counts.
    pub fn closed(&self, reason: Failure) {
        let waiters = {
            let mut state = self.0.borrow_mut();
            match &*state {
                CloseState::Closed(_) => return,
                CloseState::Open(_) => {}
            }
            match std::mem::replace(&mut *state, CloseState::Closed(reason.clone())) {
                CloseState::Open(waiters) => waiters,
                CloseState::Closed(_) => Vec::new(),
            }
        };
        for trigger in waiters {
            trigger.callback(reason.clone());
        }
    }

    /// Whether [`closed`](Self::closed) was called.
    pub fn is_closed(&self) -> bool {
        matches!(&*self.0.borrow(), CloseState::Closed(_))
    }
}

impl fmt::Debug for CloseNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseNotice")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A layer for [`ITransport::push_layer`]: the transport protocols write
/// through from now on, and how the current protocol is wrapped to read
/// through it.
pub struct Layering {
    /// Where writes, closes and flow control go from now on.
    pub transport: Rc<dyn ITransport>,
    /// Builds the protocol the connection calls from the current one.
    pub wrap: WrapProtocol,
}

/// Builds a layer's protocol around the protocol a connection calls now.
pub type WrapProtocol = Box<dyn FnOnce(Box<dyn Protocol>) -> Box<dyn Protocol>>;

impl fmt::Debug for Layering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layering")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// A handle on one stream connection (Twisted's `ITransport`, here a TCP
/// connection's `ITCPTransport`): cheap to clone, usable from any code on the
/// reactor thread. Writes after the connection closed or after
/// [`lose_connection`](Self::lose_connection) are ignored.
#[derive(Clone)]
pub struct Transport(Rc<dyn ITransport>);

impl Transport {
    /// A handle on `transport`: how a new kind of stream hands itself to a
    /// [`Protocol`].
    pub fn new(transport: Rc<dyn ITransport>) -> Transport {
        Transport(transport)
    }

    /// Sends `data`. As with Twisted's transports, writes are buffered and
    /// go out when the reactor iteration's callbacks are done, all of the
    /// iteration's writes to the connection in one system call (a write
    /// that takes the buffer past the high-water mark goes out at once);
    /// what the kernel refuses waits for the socket to drain. Past the
    /// high-water mark the protocol's
    /// [`pause_producing`](Protocol::pause_producing) is called; nothing is
    /// ever dropped while the connection is open, and writes made just
    /// before `reactor::stop()` still go out.
    pub fn write(&self, data: &[u8]) {
        self.0.write(data);
    }

    /// Sends several buffers in order, as one [`write`](Self::write)
    /// (Twisted's `writeSequence`).
    pub fn write_sequence(&self, parts: &[&[u8]]) {
        self.0.write_sequence(parts);
    }

    /// Closes the connection once everything written has been sent (Twisted's
    /// `loseConnection`). Reading stops at once; the protocol's
    /// `connection_lost` gets [`ConnectionDone`](crate::protocol::ConnectionDone).
    pub fn lose_connection(&self) {
        self.0.lose_connection();
    }

    /// Closes the connection now, discarding unsent data, with a reset
    /// (Twisted's `abortConnection`). The protocol's `connection_lost` gets
    /// [`ConnectionAborted`](crate::protocol::ConnectionAborted); the peer
    /// sees the connection reset.
    pub fn abort_connection(&self) {
        self.0.abort_connection();
    }

    /// The remote address (Twisted's `getPeer`).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.peer()
    }

    /// The local address (Twisted's `getHost`), looked up on first use.
    pub fn host(&self) -> Option<SocketAddr> {
        self.0.host()
    }

    /// Whether the connection is open and not closing.
    pub fn connected(&self) -> bool {
        self.0.connected()
    }

    /// Turns Nagle's algorithm off (`true`) or on (Twisted's `setTcpNoDelay`).
    pub fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        self.0.set_tcp_nodelay(enabled)
    }

    /// The peer's process, user and group ids on a Unix socket
    /// (`SO_PEERCRED`, Linux); `None` on other transports and systems.
    pub fn peer_credentials(&self) -> Option<crate::reactor::PeerCredentials> {
        self.0.peer_credentials()
    }

    /// Stops reading from the socket: `data_received` is not called until
    /// [`resume_producing`](Self::resume_producing) (Twisted's
    /// `transport.pauseProducing`, the transport as a producer).
    pub fn pause_producing(&self) {
        self.0.pause_producing();
    }

    /// Reads again after [`pause_producing`](Self::pause_producing); data that
    /// arrived meanwhile is delivered on the next iteration.
    pub fn resume_producing(&self) {
        self.0.resume_producing();
    }

    /// Sets the write buffer's high-water mark (the protocol is paused above
    /// it) and low-water mark (it is resumed at or below it). Defaults: 64 KiB
    /// and 0 (resume once everything is sent, as Twisted does).
    pub fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.0.set_write_buffer_limits(high, low);
    }

    /// Bytes written but not yet taken by the kernel (those waiting for
    /// the end of the reactor iteration included).
    pub fn write_buffer_size(&self) -> usize {
        self.0.write_buffer_size()
    }

    /// A Deferred that fires with the close reason once the connection is
    /// closed, after the protocol's `connection_lost` (Twisted's endpoint
    /// examples keep such a Deferred on the protocol). It fires with the
    /// reason as its value, [`ConnectionDone`](crate::protocol::ConnectionDone)
    /// for a clean close, and at once when the connection is already closed;
    /// it errbacks only for a transport that cannot report its close (no
    /// [`ITransport::close_notice`]).
    ///
    /// ```
    /// use twined::protocol::ConnectionDone;
    /// use twined::testing::StringTransport;
    ///
    /// let st = StringTransport::new();
    /// let closed = st.transport().when_closed();
    /// assert!(!closed.called());
    /// st.transport().lose_connection();
    /// let reason = closed.result().unwrap().unwrap();
    /// assert!(reason.check::<ConnectionDone>());
    /// ```
    pub fn when_closed(&self) -> Deferred<Failure> {
        match self.close_notice() {
            Some(notice) => notice.when_closed(),
            None => crate::defer::fail(io::Error::new(
                io::ErrorKind::Unsupported,
                "this transport does not report when it closes",
            )),
        }
    }

    /// The close notice of the transport, if it keeps one (for layers that
    /// report the close of the connection they ride on).
    pub(crate) fn close_notice(&self) -> Option<&CloseNotice> {
        self.0.close_notice()
    }

    /// Puts a layer between the connection and its protocol; see
    /// [`ITransport::push_layer`]. (STARTTLS is
    /// [`start_tls`](Self::start_tls), built on this.)
    pub fn push_layer(&self, make: Box<dyn FnOnce(Transport) -> Layering>) -> io::Result<()> {
        self.0.push_layer(make)
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
