//! One Unix stream connection: its socket, write buffer and protocol until it
//! closes, as an [`ITransport`] (the same edge-triggered scheme as the TCP
//! connection: read until `WouldBlock` or a fairness cap, coalesce writes
//! until the end of the reactor iteration, buffer what the kernel refuses
//! and pause the protocol past the high-water mark), and outgoing connections
//! ([`connect_unix`]).
//!
//! No borrow is held while user code runs; `connection_lost` always runs
//! from the loop.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use mio::net::UnixStream;
use mio::Interest;

use super::error::UnixError;
use crate::defer::report::{report_error, report_warn};
use crate::defer::{Deferred, Failure, Panicked};
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::stream::{CloseNotice, Factory, ITransport, Protocol, Transport};
use crate::reactor::tcp::{ConnectionAborted, ConnectionDone, ConnectionLost};
use crate::reactor::write_buffer::WriteBuffer;
use crate::reactor::{current_reactor, guard, Flush};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event before yielding to other connections.
const READS_PER_EVENT: usize = 16;

/// Who is on the other end of a Unix socket (`SO_PEERCRED`), as the kernel
/// recorded it when the connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl PeerCredentials {
    #[cfg(target_os = "linux")]
    fn of(stream: &UnixStream) -> Option<PeerCredentials> {
        let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
        Some(PeerCredentials {
            pid: cred.pid.as_raw_pid(),
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn of(_stream: &UnixStream) -> Option<PeerCredentials> {
        None
    }
}

/// The address a [`Factory`] is given for a Unix peer, which has none.
pub(super) const NO_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Open,
    /// `lose_connection` was called: close once the buffer is flushed.
    Closing,
    Closed,
}

struct State {
    phase: Phase,
    stream: Option<(UnixStream, SourceKey)>,
    /// Unsent bytes.
    wbuf: WriteBuffer,
    reading_paused: bool,
    read_scheduled: bool,
    on_lost: Option<Box<dyn FnOnce(Failure)>>,
}

impl State {
    fn buffered(&self) -> usize {
        self.wbuf.len()
    }
}

pub(super) struct UnixConn {
    me: Weak<UnixConn>,
    /// The socket file (the listening one, or the one connected to).
    path: PathBuf,
    credentials: Option<PeerCredentials>,
    state: RefCell<State>,
    protocol: RefCell<Option<Box<dyn Protocol>>>,
    /// A pause (`true`) or resume that came while the protocol was busy.
    pending: Cell<Option<bool>>,
    /// Fired after `connection_lost`: [`Transport::when_closed`].
    closed: CloseNotice,
}

impl UnixConn {
    /// Registers `stream` and starts `protocol` on it.
    pub(super) fn start(
        mut stream: UnixStream,
        path: PathBuf,
        protocol: Box<dyn Protocol>,
        on_lost: Option<Box<dyn FnOnce(Failure)>>,
    ) -> io::Result<Transport> {
        let credentials = PeerCredentials::of(&stream);
        let conn = Rc::new_cyclic(|me| UnixConn {
            me: me.clone(),
            path,
            credentials,
            state: RefCell::new(State {
                phase: Phase::Open,
                stream: None,
                wbuf: WriteBuffer::default(),
                reading_paused: false,
                read_scheduled: false,
                on_lost,
            }),
            protocol: RefCell::new(Some(protocol)),
            pending: Cell::new(None),
            closed: CloseNotice::new(),
        });
        let key = current_reactor().register(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            conn.clone(),
        )?;
        conn.state.borrow_mut().stream = Some((stream, key));
        let transport = Transport::new(conn.clone());
        conn.with_protocol("connection_made", |p| p.connection_made(transport.clone()));
        Ok(transport)
    }

    fn with_protocol(&self, what: &str, f: impl FnOnce(&mut dyn Protocol)) {
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            report_warn!("re-entrant call of a protocol's {what} skipped");
            return;
        };
        let Some(protocol) = slot.as_mut() else {
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(protocol.as_mut())));
        drop(slot);
        if let Err(panic) = result {
            let panicked = Panicked::from_payload(panic);
            report_error!("a protocol's {what} panicked: {}", panicked.message());
            self.close(Failure::new(panicked));
            return;
        }
        self.deliver_pending();
    }

    /// Delivers a pause or resume that came while the protocol was busy.
    fn deliver_pending(&self) {
        match self.pending.take() {
            Some(true) => self.with_protocol("pause_producing", |p| p.pause_producing()),
            Some(false) => self.with_protocol("resume_producing", |p| p.resume_producing()),
            None => {}
        }
    }

    fn notify_producer(&self, pause: bool) {
        if self.protocol.try_borrow_mut().is_ok() {
            self.pending.set(Some(pause));
            self.deliver_pending();
        } else {
            match self.pending.get() {
                Some(p) if p != pause => self.pending.set(None),
                _ => self.pending.set(Some(pause)),
            }
        }
    }

    fn lost_reason(&self, source: io::Error) -> Failure {
        Failure::new(ConnectionLost { peer: None, source })
    }

    fn do_read(&self, drain: bool) {
        let mut buf = vec![0u8; READ_CHUNK];
        for reads in 0.. {
            let result = {
                let mut st = self.state.borrow_mut();
                if st.reading_paused || st.phase != Phase::Open {
                    return;
                }
                if reads == READS_PER_EVENT {
                    if !st.read_scheduled {
                        st.read_scheduled = true;
                        drop(st);
                        self.schedule_read();
                    }
                    return;
                }
                let Some((stream, _)) = st.stream.as_mut() else {
                    return;
                };
                stream.read(&mut buf)
            };
            match result {
                Ok(0) => {
                    self.close(Failure::new(ConnectionDone));
                    return;
                }
                Ok(n) => {
                    self.with_protocol("data_received", |p| p.data_received(&buf[..n]));
                    if n < buf.len() && !drain {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(self.lost_reason(e));
                    return;
                }
            }
        }
    }

    fn schedule_read(&self) {
        let Some(me) = self.me.upgrade() else { return };
        current_reactor().call_soon(Box::new(move || {
            me.state.borrow_mut().read_scheduled = false;
            me.do_read(true);
        }));
    }

    /// Writes as much of the buffer as the kernel takes; then closes a
    /// closing connection that is flushed, or resumes a paused producer.
    fn flush(&self) {
        let mut st = self.state.borrow_mut();
        let State { stream, wbuf, .. } = &mut *st;
        let Some((stream, _)) = stream.as_mut() else {
            return;
        };
        if let Err(e) = wbuf.flush(stream) {
            drop(st);
            self.close(self.lost_reason(e));
            return;
        }
        if st.buffered() == 0 && st.phase == Phase::Closing {
            drop(st);
            self.close(Failure::new(ConnectionDone));
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
        if st.phase != Phase::Open {
            log::debug!("write on a closed or closing Unix connection ignored");
            return;
        }
        let State { stream, wbuf, .. } = &mut *st;
        let Some((stream, _)) = stream.as_mut() else {
            log::debug!("write on a closed Unix connection ignored");
            return;
        };
        match wbuf.write(stream, parts) {
            Ok(wrote) => {
                drop(st);
                if wrote.queue_flush {
                    if let Some(me) = self.me.upgrade() {
                        current_reactor().queue_flush(me);
                    }
                }
                if wrote.pause {
                    self.notify_producer(true);
                }
            }
            Err(e) => {
                drop(st);
                self.close(self.lost_reason(e));
            }
        }
    }

    /// Closes now, discarding unsent data; `connection_lost` runs from the loop.
    fn close(&self, reason: Failure) {
        let (taken, on_lost) = {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            st.phase = Phase::Closed;
            st.wbuf.discard();
            (st.stream.take(), st.on_lost.take())
        };
        let reactor = current_reactor();
        if let Some((mut stream, key)) = taken {
            reactor.deregister(&mut stream, key);
        }
        let Some(me) = self.me.upgrade() else { return };
        reactor.call_soon(Box::new(move || {
            let protocol = me.protocol.borrow_mut().take();
            if let Some(mut protocol) = protocol {
                let r = reason.clone();
                guard("a protocol's connection_lost", move || {
                    protocol.connection_lost(r)
                });
            }
            let r = reason.clone();
            if let Some(on_lost) = on_lost {
                guard("a factory's client_connection_lost", move || {
                    on_lost(reason)
                });
            }
            me.closed.closed(r);
        }));
    }
}

impl Handler for UnixConn {
    fn ready(&self, ready: Ready) {
        if self.state.borrow().phase == Phase::Closed {
            return;
        }
        if ready.error {
            let error = {
                let st = self.state.borrow();
                st.stream
                    .as_ref()
                    .and_then(|(s, _)| s.take_error().ok().flatten())
            };
            if let Some(e) = error {
                self.close(self.lost_reason(e));
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

impl Flush for UnixConn {
    fn flush_queued(&self) {
        if self.state.borrow().wbuf.flush_due() {
            self.flush();
        }
    }
}

/// The Unix connection as a [`Transport`]; the handle's methods document
/// what each does.
impl ITransport for UnixConn {
    fn close_notice(&self) -> Option<&CloseNotice> {
        Some(&self.closed)
    }

    fn write(&self, data: &[u8]) {
        self.write_parts(&[data]);
    }

    fn write_sequence(&self, parts: &[&[u8]]) {
        self.write_parts(parts);
    }

    fn lose_connection(&self) {
        let flushed = {
            let mut st = self.state.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.phase = Phase::Closing;
            st.buffered() == 0
        };
        if flushed {
            // `close` refuses a closed phase only; closing is fine.
            self.close(Failure::new(ConnectionDone));
        }
    }

    fn abort_connection(&self) {
        self.close(Failure::new(ConnectionAborted));
    }

    /// Unix peers have no IP address.
    fn peer(&self) -> Option<SocketAddr> {
        None
    }

    /// Unix sockets have no IP address.
    fn host(&self) -> Option<SocketAddr> {
        None
    }

    fn connected(&self) -> bool {
        self.state.borrow().phase == Phase::Open
    }

    fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.credentials
    }

    fn pause_producing(&self) {
        self.state.borrow_mut().reading_paused = true;
    }

    fn resume_producing(&self) {
        let schedule = {
            let mut st = self.state.borrow_mut();
            let was = std::mem::replace(&mut st.reading_paused, false);
            let schedule = was && !st.read_scheduled && st.phase == Phase::Open;
            if schedule {
                st.read_scheduled = true;
            }
            schedule
        };
        if schedule {
            self.schedule_read();
        }
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        let mut st = self.state.borrow_mut();
        st.wbuf.set_limits(high, low);
    }

    fn write_buffer_size(&self) -> usize {
        self.state.borrow().buffered()
    }
}

impl fmt::Debug for UnixConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("UnixTransport")
            .field("path", &self.path)
            .field("credentials", &self.credentials)
            .field("state", &st.phase)
            .field("buffered", &st.buffered())
            .finish()
    }
}

/// Connects to the Unix socket at `path` and builds the connection's
/// protocol from `factory` (Twisted's `reactor.connectUNIX`, with the
/// endpoint-style Deferred of `UNIXClientEndpoint.connect`).
///
/// The Deferred fires with the [`Transport`] after the protocol's
/// `connection_made`, or errbacks with a [`UnixError`] (`NotFound`,
/// `Refused` for a stale file or a full backlog); the factory's
/// `client_connection_failed` hears of a failure and its
/// `client_connection_lost` of the close, as with `connect_tcp`. A factory
/// that builds no protocol closes the connection and errbacks with
/// [`ConnectionDone`].
///
/// ```no_run
/// use std::net::SocketAddr;
/// use twined::protocol::Protocol;
/// use twined::reactor;
///
/// struct Print;
/// impl Protocol for Print {
///     fn data_received(&mut self, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
/// }
///
/// reactor::connect_unix("/run/app.sock", |_: SocketAddr| Print)
///     .add_callback(|transport| transport.write(b"status\n"))
///     .add_errback(|failure| eprintln!("{failure}"));
/// ```
pub fn connect_unix(path: impl AsRef<Path>, factory: impl Factory) -> Deferred<Transport> {
    let path = path.as_ref().to_path_buf();
    let factory = Rc::new(RefCell::new(factory));
    let result = UnixStream::connect(&path)
        .map_err(|e| Failure::new(UnixError::connect(path.clone(), e)))
        .and_then(|stream| {
            let mut built = None;
            guard("a factory's build_protocol", || {
                built = factory.borrow_mut().build_protocol(NO_ADDRESS)
            });
            let protocol = built.ok_or_else(|| Failure::new(ConnectionDone))?;
            let f = factory.clone();
            let on_lost: Box<dyn FnOnce(Failure)> =
                Box::new(move |reason| f.borrow_mut().client_connection_lost(reason));
            UnixConn::start(stream, path.clone(), protocol, Some(on_lost)).map_err(|e| {
                Failure::new(UnixError::Io {
                    op: "connect to",
                    path: path.clone(),
                    source: e,
                })
            })
        });
    if let Err(failure) = &result {
        let failure = failure.clone();
        guard("a factory's client_connection_failed", || {
            factory.borrow_mut().client_connection_failed(failure)
        });
    }
    let (d, trigger) = Deferred::new();
    trigger.fire_with(result);
    d
}
