//! One TCP connection: its socket, write buffer and protocol until it closes,
//! and its side of the [`Transport`] handle protocols write through (it is
//! the [`ITransport`] behind it). How an outgoing connection gets connected
//! is in `connect.rs`.
//!
//! The socket is registered once for reading and writing, edge-triggered:
//! reads go on until the kernel has nothing more (or a fairness cap, after
//! which the rest is read on the next iteration); writes are coalesced until
//! the end of the reactor iteration (or sent at once past the high-water
//! mark), and what the kernel refuses is flushed on the next writable event
//! (`write_buffer.rs`).
//!
//! No borrow of the connection's state is held while user code runs, and the
//! protocol's `connection_lost` always runs from the reactor loop, never from
//! inside the call that closed the connection, so a protocol may close its own
//! connection from any of its methods.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::net::TcpStream;
use mio::Interest;

use super::connect::Connecting;
use super::error::{ConnectionAborted, ConnectionDone, ConnectionLost};
use crate::defer::report::report_error;
use crate::defer::report::report_warn;
use crate::defer::{Failure, Panicked};
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::stream::{CloseNotice, ITransport, Layering, Protocol, Transport};
use crate::reactor::write_buffer::WriteBuffer;
use crate::reactor::{current_reactor, guard, Flush};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Reads per readiness event before yielding to other connections.
const READS_PER_EVENT: usize = 16;

pub(super) enum Phase {
    Connecting(Box<Connecting>),
    Connected,
    Closed,
}

pub(super) struct State {
    pub(super) phase: Phase,
    pub(super) stream: Option<TcpStream>,
    pub(super) key: Option<SourceKey>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) host: Option<SocketAddr>,
    /// Unsent bytes.
    pub(super) wbuf: WriteBuffer,
    /// The user paused reading.
    pub(super) reading_paused: bool,
    /// A read is queued for the next iteration.
    pub(super) read_scheduled: bool,
    /// `lose_connection` was called: close once the buffer is flushed.
    pub(super) closing: bool,
    pub(super) on_lost: Option<Box<dyn FnOnce(Failure)>>,
}

impl State {
    pub(super) fn buffered(&self) -> usize {
        self.wbuf.len()
    }
}

pub(crate) struct Conn {
    pub(super) me: Weak<Conn>,
    pub(super) state: RefCell<State>,
    pub(super) protocol: RefCell<Option<Box<dyn Protocol>>>,
    /// A pause (`true`) or resume (`false`) for the protocol that came while
    /// it was busy in one of its own methods.
    pub(super) pending: Cell<Option<bool>>,
    /// Fired once the connection is closed (`Transport::when_closed`).
    pub(super) closed: CloseNotice,
    /// A layer pushed on the live connection (STARTTLS): every handle's
    /// methods go through it.
    layer: RefCell<Option<Rc<dyn ITransport>>>,
    /// The protocol wrapper of a layer pushed while the protocol was busy,
    /// installed when its method returns.
    wrap: RefCell<Option<Wrap>>,
}

type Wrap = crate::reactor::stream::WrapProtocol;

thread_local! {
    static READ_BUF: RefCell<Option<Box<[u8]>>> = const { RefCell::new(None) };
}

fn take_read_buf() -> Box<[u8]> {
    READ_BUF
        .try_with(|b| b.borrow_mut().take())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0; READ_CHUNK].into_boxed_slice())
}

fn put_read_buf(buf: Box<[u8]>) {
    let _ = READ_BUF.try_with(|b| *b.borrow_mut() = Some(buf));
}

impl Conn {
    pub(super) fn new(phase: Phase, protocol: Option<Box<dyn Protocol>>) -> Rc<Conn> {
        Rc::new_cyclic(|me| Conn {
            me: me.clone(),
            state: RefCell::new(State {
                phase,
                stream: None,
                key: None,
                peer: None,
                host: None,
                wbuf: WriteBuffer::default(),
                reading_paused: false,
                read_scheduled: false,
                closing: false,
                on_lost: None,
            }),
            protocol: RefCell::new(protocol),
            pending: Cell::new(None),
            closed: CloseNotice::new(),
            layer: RefCell::new(None),
            wrap: RefCell::new(None),
        })
    }

    pub(super) fn rc(&self) -> Option<Rc<Conn>> {
        self.me.upgrade()
    }

    /// A connection accepted by a listening port: registers it and calls
    /// `connection_made`.
    pub(crate) fn accepted(
        mut stream: TcpStream,
        peer: SocketAddr,
        protocol: Box<dyn Protocol>,
    ) -> io::Result<()> {
        let conn = Conn::new(Phase::Connected, Some(protocol));
        let key = current_reactor().register(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            conn.clone(),
        )?;
        {
            let mut st = conn.state.borrow_mut();
            st.peer = Some(peer);
            st.stream = Some(stream);
            st.key = Some(key);
        }
        let transport = Transport::new(conn.clone());
        conn.with_protocol("connection_made", |p| p.connection_made(transport));
        Ok(())
    }

    /// Deregisters and closes the socket, if any.
    pub(super) fn drop_socket(&self) {
        let (stream, key) = {
            let mut st = self.state.borrow_mut();
            (st.stream.take(), st.key.take())
        };
        if let (Some(mut stream), Some(key)) = (stream, key) {
            current_reactor().deregister(&mut stream, key);
        }
    }

    /// Runs `f` on the protocol unless it is busy (a re-entrant call) or gone.
    /// A panic aborts the connection. Then delivers a pause or resume that
    /// came while it ran.
    pub(super) fn with_protocol(&self, what: &str, f: impl FnOnce(&mut dyn Protocol)) {
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            report_warn!("re-entrant call of a protocol's {what} skipped");
            return;
        };
        let Some(protocol) = slot.as_mut() else {
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(protocol.as_mut())));
        drop(slot);
        self.install_wrap();
        if let Err(panic) = result {
            let panicked = Panicked::from_payload(panic);
            report_error!("a protocol's {what} panicked: {}", panicked.message());
            self.close(Failure::new(panicked));
            return;
        }
        self.deliver_pending();
    }

    /// Wraps the protocol in a layer's protocol, if a layer is waiting.
    fn install_wrap(&self) {
        // Busy: the wrapper waits for the running method to return.
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            return;
        };
        let Some(wrap) = self.wrap.borrow_mut().take() else {
            return;
        };
        if let Some(protocol) = slot.take() {
            *slot = Some(wrap(protocol));
        }
    }

    /// The layer pushed on this connection, if any.
    fn layer(&self) -> Option<Rc<dyn ITransport>> {
        self.layer.borrow().clone()
    }

    /// Delivers a pause or resume that came while the protocol was busy.
    fn deliver_pending(&self) {
        match self.pending.take() {
            Some(true) => self.with_protocol("pause_producing", |p| p.pause_producing()),
            Some(false) => self.with_protocol("resume_producing", |p| p.resume_producing()),
            None => {}
        }
    }

    /// Tells the protocol to pause (`true`) or resume producing, now or, when
    /// it is busy, after its current method returns.
    fn notify_producer(&self, pause: bool) {
        if self.protocol.try_borrow_mut().is_ok() {
            self.pending.set(Some(pause));
            self.deliver_pending();
        } else {
            // A pause then a resume before the protocol heard either cancel out.
            match self.pending.get() {
                Some(p) if p != pause => self.pending.set(None),
                _ => self.pending.set(Some(pause)),
            }
        }
    }

    /// Reads until the kernel has nothing more, the fairness cap, a pause, or
    /// the end of the stream. `drain` forces reading on after a short read.
    pub(super) fn do_read(&self, drain: bool) {
        let mut buf = take_read_buf();
        let mut reads = 0;
        loop {
            let result = {
                let mut st = self.state.borrow_mut();
                if st.reading_paused || st.closing || !matches!(st.phase, Phase::Connected) {
                    break;
                }
                if reads == READS_PER_EVENT {
                    if !st.read_scheduled {
                        st.read_scheduled = true;
                        drop(st);
                        self.schedule_read();
                    }
                    break;
                }
                let Some(stream) = st.stream.as_mut() else {
                    break;
                };
                stream.read(&mut buf)
            };
            reads += 1;
            match result {
                Ok(0) => {
                    self.close(Failure::new(ConnectionDone));
                    break;
                }
                Ok(n) => {
                    self.with_protocol("data_received", |p| p.data_received(&buf[..n]));
                    // A short read emptied the socket buffer: any later data
                    // or hang-up brings a new event.
                    if n < buf.len() && !drain {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let peer = self.state.borrow().peer;
                    self.close(Failure::new(ConnectionLost { peer, source: e }));
                    break;
                }
            }
        }
        put_read_buf(buf);
    }

    fn schedule_read(&self) {
        let Some(me) = self.rc() else { return };
        current_reactor().call_soon(Box::new(move || {
            me.state.borrow_mut().read_scheduled = false;
            me.do_read(true);
        }));
    }

    /// Writes as much of the buffer as the kernel takes.
    fn flush(&self) {
        let mut st = self.state.borrow_mut();
        let State { stream, wbuf, .. } = &mut *st;
        let Some(stream) = stream.as_mut() else {
            return;
        };
        if let Err(e) = wbuf.flush(stream) {
            let peer = st.peer;
            drop(st);
            self.close(Failure::new(ConnectionLost { peer, source: e }));
            return;
        }
        self.after_write(st);
    }

    /// Closes a closing connection that is flushed, or resumes a paused
    /// producer that is below the low-water mark.
    fn after_write(&self, mut st: std::cell::RefMut<'_, State>) {
        let buffered = st.buffered();
        if buffered == 0 && st.closing {
            drop(st);
            self.close_orderly();
            return;
        }
        if st.wbuf.resume_now() {
            drop(st);
            self.notify_producer(false);
        }
    }

    /// Writes `parts` in order, coalesced with the iteration's other writes
    /// (`WriteBuffer::write`).
    fn write_parts(&self, parts: &[&[u8]]) {
        let mut st = self.state.borrow_mut();
        if st.closing || !matches!(st.phase, Phase::Connected) {
            log::debug!("write on a closed or closing connection ignored");
            return;
        }
        let State { stream, wbuf, .. } = &mut *st;
        let Some(stream) = stream.as_mut() else {
            log::debug!("write on a closed connection ignored");
            return;
        };
        match wbuf.write(stream, parts) {
            Ok(wrote) => {
                drop(st);
                if wrote.queue_flush {
                    if let Some(me) = self.rc() {
                        current_reactor().queue_flush(me);
                    }
                }
                if wrote.pause {
                    self.notify_producer(true);
                }
            }
            Err(e) => {
                let peer = st.peer;
                drop(st);
                self.close(Failure::new(ConnectionLost { peer, source: e }));
            }
        }
    }

    /// Closes a connection whose output is all sent (`lose_connection`).
    ///
    /// What the peer sent and nobody read is read and dropped first (a
    /// bounded "lingering close", as web servers do): a socket closed with
    /// unread input sends a reset instead of an orderly end, and the reset
    /// throws away the output the kernel still held, and may destroy what
    /// reached the peer before the peer read it.
    fn close_orderly(&self) {
        {
            let mut st = self.state.borrow_mut();
            if let Some(stream) = st.stream.as_mut() {
                let mut buf = take_read_buf();
                for _ in 0..READS_PER_EVENT {
                    match stream.read(&mut buf) {
                        Ok(n) if n == buf.len() => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        _ => break,
                    }
                }
                put_read_buf(buf);
            }
        }
        self.close(Failure::new(ConnectionDone));
    }

    /// Closes the connection now, discarding unsent data; the protocol's
    /// `connection_lost` runs from the loop, with `reason`.
    pub(super) fn close(&self, reason: Failure) {
        if self.is_connecting() {
            self.fail_connect(reason);
            return;
        }
        let on_lost = {
            let mut st = self.state.borrow_mut();
            if matches!(st.phase, Phase::Closed) {
                return;
            }
            st.phase = Phase::Closed;
            st.wbuf.discard();
            st.on_lost.take()
        };
        self.drop_socket();
        let Some(me) = self.rc() else { return };
        current_reactor().call_soon(Box::new(move || me.lost(reason, on_lost)));
    }

    fn lost(&self, reason: Failure, on_lost: Option<Box<dyn FnOnce(Failure)>>) {
        // The layer holds a handle on this connection: let it go.
        self.layer.borrow_mut().take();
        self.wrap.borrow_mut().take();
        let protocol = self.protocol.borrow_mut().take();
        if let Some(mut protocol) = protocol {
            let r = reason.clone();
            guard("a protocol's connection_lost", move || {
                protocol.connection_lost(r)
            });
        }
        if let Some(on_lost) = on_lost {
            let r = reason.clone();
            guard("a factory's client_connection_lost", move || on_lost(r));
        }
        self.closed.closed(reason);
    }
}

impl Handler for Conn {
    fn ready(&self, ready: Ready) {
        let connected = match self.state.borrow().phase {
            Phase::Connecting(_) => false,
            Phase::Connected => true,
            Phase::Closed => return,
        };
        if !connected {
            // While connecting, the racing sockets' events go to their
            // attempts (`connect.rs`); the winner's come here once connected.
            return;
        }
        if ready.error {
            let error = {
                let st = self.state.borrow();
                st.stream
                    .as_ref()
                    .and_then(|s| s.take_error().ok().flatten())
            };
            if let Some(e) = error {
                let peer = self.state.borrow().peer;
                self.close(Failure::new(ConnectionLost { peer, source: e }));
                return;
            }
        }
        if (ready.writable || ready.write_closed) && self.state.borrow().wbuf.wants_writable() {
            self.flush();
        }
        if ready.readable || ready.read_closed || ready.error {
            self.do_read(ready.read_closed || ready.error);
        }
    }
}

impl Flush for Conn {
    fn flush_queued(&self) {
        if self.state.borrow().wbuf.flush_due() {
            self.flush();
        }
    }
}

/// The connection's own transport methods, below any layer.
impl Conn {
    /// Sends `data`: at the end of the reactor iteration with the others
    /// written meanwhile, at once past the high-water mark, later when the
    /// kernel is full. Past the high-water mark the protocol's
    /// [`pause_producing`](Protocol::pause_producing) is called; nothing is
    /// ever dropped while the connection is open.
    fn raw_write(&self, data: &[u8]) {
        self.write_parts(&[data]);
    }

    /// Sends several buffers in order, as one write (Twisted's
    /// `writeSequence`).
    fn raw_write_sequence(&self, parts: &[&[u8]]) {
        self.write_parts(parts);
    }

    /// Closes the connection once everything written has been sent (Twisted's
    /// `loseConnection`). Reading stops at once; the protocol's
    /// `connection_lost` gets [`ConnectionDone`].
    fn raw_lose_connection(&self) {
        let flushed = {
            let mut st = self.state.borrow_mut();
            if st.closing || !matches!(st.phase, Phase::Connected) {
                return;
            }
            st.closing = true;
            st.buffered() == 0
        };
        if flushed {
            self.close_orderly();
        }
    }

    /// Closes the connection now, discarding unsent data, with a reset
    /// (Twisted's `abortConnection`). The protocol's `connection_lost` gets
    /// [`ConnectionAborted`]; the peer sees the connection reset.
    fn raw_abort_connection(&self) {
        // SO_LINGER 0: the close resets the connection instead of ending it
        // cleanly, so the peer cannot mistake an aborted stream for a
        // complete one.
        if let Some(stream) = self.state.borrow().stream.as_ref() {
            let _ =
                rustix::net::sockopt::set_socket_linger(stream, Some(std::time::Duration::ZERO));
        }
        self.close(Failure::new(ConnectionAborted));
    }

    /// The remote address (Twisted's `getPeer`).
    fn raw_peer(&self) -> Option<SocketAddr> {
        self.state.borrow().peer
    }

    /// The local address (Twisted's `getHost`), looked up on first use.
    fn raw_host(&self) -> Option<SocketAddr> {
        let mut st = self.state.borrow_mut();
        if st.host.is_none() {
            st.host = st.stream.as_ref().and_then(|s| s.local_addr().ok());
        }
        st.host
    }

    /// Whether the connection is open and not closing.
    fn raw_connected(&self) -> bool {
        let st = self.state.borrow();
        matches!(st.phase, Phase::Connected) && !st.closing
    }

    /// Turns Nagle's algorithm off (`true`) or on (Twisted's `setTcpNoDelay`).
    fn raw_set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        match self.state.borrow().stream.as_ref() {
            Some(stream) => stream.set_nodelay(enabled),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            )),
        }
    }

    /// Stops reading from the socket: `data_received` is not called until
    /// [`resume_producing`](Self::resume_producing) (Twisted's
    /// `transport.pauseProducing`, the transport as a producer).
    fn raw_pause_producing(&self) {
        self.state.borrow_mut().reading_paused = true;
    }

    /// Reads again after [`pause_producing`](Self::pause_producing); data that
    /// arrived meanwhile is delivered on the next iteration.
    fn raw_resume_producing(&self) {
        let schedule = {
            let mut st = self.state.borrow_mut();
            let was = std::mem::replace(&mut st.reading_paused, false);
            let schedule = was && !st.read_scheduled && matches!(st.phase, Phase::Connected);
            if schedule {
                st.read_scheduled = true;
            }
            schedule
        };
        if schedule {
            self.schedule_read();
        }
    }

    /// Sets the write buffer's high-water mark (the protocol is paused above
    /// it) and low-water mark (it is resumed at or below it). Defaults: 64 KiB
    /// and 0 (resume once everything is sent, as Twisted does).
    fn raw_set_write_buffer_limits(&self, high: usize, low: usize) {
        let mut st = self.state.borrow_mut();
        st.wbuf.set_limits(high, low);
    }

    /// Bytes written but not yet taken by the kernel (those waiting for the
    /// end of the iteration included).
    fn raw_write_buffer_size(&self) -> usize {
        self.state.borrow().buffered()
    }
}

/// The TCP connection as a [`Transport`]; the handle's methods document
/// what each does. With a layer pushed (STARTTLS), they go through it.
impl ITransport for Conn {
    fn close_notice(&self) -> Option<&CloseNotice> {
        Some(&self.closed)
    }

    fn write(&self, data: &[u8]) {
        match self.layer() {
            Some(layer) => layer.write(data),
            None => self.raw_write(data),
        }
    }

    fn write_sequence(&self, parts: &[&[u8]]) {
        match self.layer() {
            Some(layer) => layer.write_sequence(parts),
            None => self.raw_write_sequence(parts),
        }
    }

    fn lose_connection(&self) {
        match self.layer() {
            Some(layer) => layer.lose_connection(),
            None => self.raw_lose_connection(),
        }
    }

    fn abort_connection(&self) {
        match self.layer() {
            Some(layer) => layer.abort_connection(),
            None => self.raw_abort_connection(),
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        match self.layer() {
            Some(layer) => layer.peer(),
            None => self.raw_peer(),
        }
    }

    fn host(&self) -> Option<SocketAddr> {
        match self.layer() {
            Some(layer) => layer.host(),
            None => self.raw_host(),
        }
    }

    fn connected(&self) -> bool {
        match self.layer() {
            Some(layer) => layer.connected(),
            None => self.raw_connected(),
        }
    }

    fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        match self.layer() {
            Some(layer) => layer.set_tcp_nodelay(enabled),
            None => self.raw_set_tcp_nodelay(enabled),
        }
    }

    fn pause_producing(&self) {
        match self.layer() {
            Some(layer) => layer.pause_producing(),
            None => self.raw_pause_producing(),
        }
    }

    fn resume_producing(&self) {
        match self.layer() {
            Some(layer) => layer.resume_producing(),
            None => self.raw_resume_producing(),
        }
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        match self.layer() {
            Some(layer) => layer.set_write_buffer_limits(high, low),
            None => self.raw_set_write_buffer_limits(high, low),
        }
    }

    fn write_buffer_size(&self) -> usize {
        match self.layer() {
            Some(layer) => layer.write_buffer_size(),
            None => self.raw_write_buffer_size(),
        }
    }

    fn push_layer(&self, make: Box<dyn FnOnce(Transport) -> Layering>) -> io::Result<()> {
        if self.layer.borrow().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the connection already carries a layer",
            ));
        }
        if !self.raw_connected() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is not open",
            ));
        }
        let Some(me) = self.rc() else {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        };
        let layering = make(Transport::new(Rc::new(Below(me))));
        *self.layer.borrow_mut() = Some(layering.transport);
        *self.wrap.borrow_mut() = Some(layering.wrap);
        // Now if the protocol is idle, else when its running method returns.
        self.install_wrap();
        Ok(())
    }
}

/// A layer's handle on the connection below it.
struct Below(Rc<Conn>);

impl fmt::Debug for Below {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ITransport for Below {
    fn write(&self, data: &[u8]) {
        self.0.raw_write(data)
    }
    fn write_sequence(&self, parts: &[&[u8]]) {
        self.0.raw_write_sequence(parts)
    }
    fn lose_connection(&self) {
        self.0.raw_lose_connection()
    }
    fn abort_connection(&self) {
        self.0.raw_abort_connection()
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.0.raw_peer()
    }
    fn host(&self) -> Option<SocketAddr> {
        self.0.raw_host()
    }
    fn connected(&self) -> bool {
        self.0.raw_connected()
    }
    fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        self.0.raw_set_tcp_nodelay(enabled)
    }
    fn pause_producing(&self) {
        self.0.raw_pause_producing()
    }
    fn resume_producing(&self) {
        self.0.raw_resume_producing()
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.0.raw_set_write_buffer_limits(high, low)
    }
    fn write_buffer_size(&self) -> usize {
        self.0.raw_write_buffer_size()
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        let phase = match (&st.phase, st.closing) {
            (Phase::Connecting(_), _) => "connecting",
            (Phase::Connected, false) => "connected",
            (Phase::Connected, true) => "closing",
            (Phase::Closed, _) => "closed",
        };
        f.debug_struct("Transport")
            .field("peer", &st.peer)
            .field("host", &st.host)
            .field("state", &phase)
            .field("buffered", &st.buffered())
            .finish()
    }
}
