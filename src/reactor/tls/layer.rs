//! The TLS layer itself (Twisted's `TLSMemoryBIOProtocol`): a [`Protocol`]
//! on the connection below that feeds ciphertext to a rustls session and
//! plaintext to the user's protocol, and the [`ITransport`] the user's
//! protocol writes through, which encrypts.
//!
//! Flow control crosses the layer both ways: when ciphertext backs up past
//! the lower transport's high-water mark, the lower transport pauses this
//! layer, which pauses the user's protocol; pausing the user's transport
//! stops reading below. Writes made before the handshake finishes wait in
//! the layer (counted in `write_buffer_size`, and pausing the protocol past
//! the high-water mark) and go out, in order, once it does.

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use rustls::Connection;

use super::error::TlsError;
use crate::defer::Failure;
use crate::reactor::stream::{CloseNotice, ITransport, Protocol, Transport};
use crate::reactor::tcp::{ConnectionAborted, ConnectionDone};

use crate::reactor::DEFAULT_HIGH_WATER;

/// Where a TLS session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Handshake messages are being exchanged; writes wait in the session.
    Handshaking,
    /// Application data flows.
    Open,
    /// `lose_connection` was called during the handshake: close once it
    /// finishes and the waiting writes are sent.
    LoseAfterHandshake,
    /// close_notify sent (or the session failed); nothing more is written.
    Closing,
}

/// The state the layer protocol and its transport handle share.
pub(crate) struct Session {
    conn: RefCell<Connection>,
    lower: OnceCell<Transport>,
    phase: Cell<Phase>,
    /// Plaintext written during the handshake.
    pending: RefCell<Vec<u8>>,
    /// The high-water mark for `pending`.
    high_water: Cell<usize>,
    /// `pending` went past the high-water mark: the protocol should pause.
    pending_full: Cell<bool>,
    /// Why the session failed, for the user's `connection_lost`.
    error: RefCell<Option<TlsError>>,
    /// The peer's name, for errors.
    peer: String,
    /// Ciphertext on its way to the connection below, kept between
    /// flushes (up to [`KEPT_OUT`] bytes of capacity) so a write does not
    /// allocate.
    out: Cell<Vec<u8>>,
}

/// The most buffer memory a session keeps between flushes.
const KEPT_OUT: usize = 32 * 1024;

/// The most plaintext buffer memory a thread keeps between reads.
const KEPT_PLAIN: usize = 128 * 1024;

thread_local! {
    /// The decrypted bytes of one read, reused by every session on the
    /// thread (taken while in use, so a nested read makes its own).
    static PLAIN_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

fn take_plain_buf() -> Vec<u8> {
    let mut buf = PLAIN_BUF.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    buf
}

fn put_plain_buf(buf: Vec<u8>) {
    if buf.capacity() <= KEPT_PLAIN {
        let _ = PLAIN_BUF.try_with(|b| b.set(buf));
    }
}

impl Session {
    pub(crate) fn new(conn: Connection, peer: String) -> Rc<Session> {
        let mut conn = conn;
        // The layer bounds what it buffers through flow control instead.
        conn.set_buffer_limit(None);
        Rc::new(Session {
            conn: RefCell::new(conn),
            lower: OnceCell::new(),
            phase: Cell::new(Phase::Handshaking),
            pending: RefCell::new(Vec::new()),
            high_water: Cell::new(DEFAULT_HIGH_WATER),
            pending_full: Cell::new(false),
            error: RefCell::new(None),
            peer,
            out: Cell::new(Vec::new()),
        })
    }

    pub(crate) fn set_lower(&self, lower: Transport) {
        let _ = self.lower.set(lower);
    }

    /// Sends what the session has to send.
    pub(crate) fn flush(&self) {
        let Some(lower) = self.lower.get() else {
            return;
        };
        // Taken, not borrowed: a write below may come back here.
        let mut out = self.out.take();
        out.clear();
        {
            let mut conn = self.conn.borrow_mut();
            while conn.wants_write() {
                match conn.write_tls(&mut out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if !out.is_empty() {
            lower.write(&out);
        }
        if out.capacity() <= KEPT_OUT {
            self.out.set(out);
        }
    }

    /// Sends close_notify after everything written, then closes below.
    fn close(&self) {
        self.phase.set(Phase::Closing);
        self.conn.borrow_mut().send_close_notify();
        self.flush();
        if let Some(lower) = self.lower.get() {
            lower.lose_connection();
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.phase.get(), Phase::Handshaking | Phase::Open)
    }
}

/// The user's protocol's transport: writes are encrypted.
pub(crate) struct TlsTransport(pub(crate) Rc<Session>);

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("peer", &self.0.peer)
            .field("phase", &self.0.phase.get())
            .field("lower", &self.0.lower.get())
            .finish()
    }
}

impl ITransport for TlsTransport {
    /// The TLS session closes with the connection below it.
    fn close_notice(&self) -> Option<&CloseNotice> {
        self.0.lower.get().and_then(Transport::close_notice)
    }

    fn write(&self, data: &[u8]) {
        self.write_sequence(&[data]);
    }

    fn write_sequence(&self, parts: &[&[u8]]) {
        let session = &self.0;
        if !session.is_open() {
            log::debug!("write on a closed or closing TLS connection ignored");
            return;
        }
        if matches!(
            session.phase.get(),
            Phase::Handshaking | Phase::LoseAfterHandshake
        ) {
            let mut pending = session.pending.borrow_mut();
            parts
                .iter()
                .for_each(|part| pending.extend_from_slice(part));
            if pending.len() > session.high_water.get() {
                session.pending_full.set(true);
            }
            return;
        }
        let result = {
            let mut conn = session.conn.borrow_mut();
            let mut writer = conn.writer();
            parts.iter().try_for_each(|part| writer.write_all(part))
        };
        match result {
            Ok(()) => session.flush(),
            Err(e) => {
                log::debug!("TLS write failed: {e}");
                self.abort_connection();
            }
        }
    }

    fn lose_connection(&self) {
        match self.0.phase.get() {
            Phase::Handshaking => self.0.phase.set(Phase::LoseAfterHandshake),
            Phase::Open => self.0.close(),
            Phase::LoseAfterHandshake | Phase::Closing => {}
        }
    }

    fn abort_connection(&self) {
        self.0.phase.set(Phase::Closing);
        if let Some(lower) = self.0.lower.get() {
            lower.abort_connection();
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.0.lower.get().and_then(Transport::peer)
    }

    fn host(&self) -> Option<SocketAddr> {
        self.0.lower.get().and_then(Transport::host)
    }

    fn connected(&self) -> bool {
        self.0.is_open() && self.0.lower.get().is_some_and(Transport::connected)
    }

    fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        match self.0.lower.get() {
            Some(lower) => lower.set_tcp_nodelay(enabled),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn pause_producing(&self) {
        if let Some(lower) = self.0.lower.get() {
            lower.pause_producing();
        }
    }

    fn resume_producing(&self) {
        if let Some(lower) = self.0.lower.get() {
            lower.resume_producing();
        }
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.0.high_water.set(high);
        if let Some(lower) = self.0.lower.get() {
            lower.set_write_buffer_limits(high, low);
        }
    }

    fn write_buffer_size(&self) -> usize {
        self.0.pending.borrow().len() + self.0.lower.get().map_or(0, Transport::write_buffer_size)
    }
}

/// Where the user's protocol stands with the layer.
pub(crate) enum User {
    /// `connection_made` is due when the layer's connection is made
    /// (`listen_ssl`, `connect_ssl`).
    Fresh(Box<dyn Protocol>),
    /// Already told (`start_tls` on a live connection).
    Made(Box<dyn Protocol>),
}

/// What learns how the handshake ended.
pub(crate) type Ready = Box<dyn FnOnce(Result<Transport, Failure>)>;

/// The protocol on the connection below.
pub(crate) struct TlsLayer {
    session: Rc<Session>,
    user: Box<dyn Protocol>,
    fresh: bool,
    /// The connection below paused this layer.
    lower_paused: bool,
    /// The user's protocol was told to pause.
    user_paused: bool,
    /// Called with the user's transport when the handshake finishes, or with
    /// the failure when it does not.
    ready: Option<Ready>,
}

impl TlsLayer {
    pub(crate) fn new(session: Rc<Session>, user: User, ready: Option<Ready>) -> Self {
        let (user, fresh) = match user {
            User::Fresh(p) => (p, true),
            User::Made(p) => (p, false),
        };
        TlsLayer {
            session,
            user,
            fresh,
            lower_paused: false,
            user_paused: false,
            ready,
        }
    }

    /// Pauses or resumes the user's protocol: paused while the connection
    /// below is, or while writes waiting for the handshake are past the
    /// high-water mark.
    fn sync_pause(&mut self) {
        let want = self.lower_paused || self.session.pending_full.get();
        if want != self.user_paused {
            self.user_paused = want;
            if want {
                self.user.pause_producing();
            } else {
                self.user.resume_producing();
            }
        }
    }

    /// The handshake finished: waiting writes go out, the ready Deferred fires.
    fn handshake_done(&mut self) {
        let lose = self.session.phase.get() == Phase::LoseAfterHandshake;
        self.session.phase.set(Phase::Open);
        let pending = std::mem::take(&mut *self.session.pending.borrow_mut());
        if !pending.is_empty() {
            let result = self.session.conn.borrow_mut().writer().write_all(&pending);
            if let Err(e) = result {
                log::debug!("TLS write failed: {e}");
            }
        }
        self.session.pending_full.set(false);
        self.session.flush();
        self.sync_pause();
        if let Some(ready) = self.ready.take() {
            ready(Ok(Transport::new(Rc::new(TlsTransport(
                self.session.clone(),
            )))));
        }
        if lose {
            self.session.close();
        }
    }

    /// rustls refused the peer: send its alert, close, and keep the reason
    /// for `connection_lost`.
    fn fail(&mut self, error: rustls::Error) {
        log::debug!("TLS with {} failed: {error}", self.session.peer);
        *self.session.error.borrow_mut() = Some(TlsError::Handshake {
            peer: self.session.peer.clone(),
            source: error,
        });
        self.session.phase.set(Phase::Closing);
        self.session.flush();
        if let Some(lower) = self.session.lower.get() {
            lower.lose_connection();
        }
    }
}

impl Protocol for TlsLayer {
    fn connection_made(&mut self, transport: Transport) {
        self.session.set_lower(transport.clone());
        self.session.flush(); // a client's hello
        if std::mem::take(&mut self.fresh) {
            let mine = Transport::new(Rc::new(TlsTransport(self.session.clone())));
            self.user.connection_made(mine);
            self.sync_pause();
        }
    }

    fn data_received(&mut self, mut data: &[u8]) {
        if self.session.phase.get() == Phase::Closing {
            return;
        }
        // Plaintext is never longer than the records it came in.
        let mut plain = take_plain_buf();
        plain.reserve(data.len());
        let mut peer_closed = false;
        let mut refused = None;
        let was_handshaking = self.session.conn.borrow().is_handshaking();
        {
            let mut conn = self.session.conn.borrow_mut();
            while !data.is_empty() && refused.is_none() {
                if let Err(e) = conn.read_tls(&mut data) {
                    refused = Some(rustls::Error::General(format!("reading TLS records: {e}")));
                    break;
                }
                if let Err(e) = conn.process_new_packets() {
                    refused = Some(e);
                    break;
                }
                // Everything decrypted so far; no zero-filling of spare room.
                match conn.reader().read_to_end(&mut plain) {
                    Ok(_) => peer_closed = true, // close_notify
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => refused = Some(rustls::Error::General(e.to_string())),
                }
            }
        }
        if let Some(error) = refused {
            put_plain_buf(plain);
            return self.fail(error);
        }
        // Handshake messages and alerts.
        self.session.flush();
        if was_handshaking && !self.session.conn.borrow().is_handshaking() {
            self.handshake_done();
        }
        if !plain.is_empty() {
            self.user.data_received(&plain);
            self.sync_pause();
        }
        put_plain_buf(plain);
        if peer_closed && self.session.is_open() {
            // close_notify: answer with ours and close.
            self.session.close();
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        let handshaking = self.session.conn.borrow().is_handshaking();
        let reason = match self.session.error.borrow_mut().take() {
            Some(error) => Failure::new(error),
            None if handshaking && !reason.check::<ConnectionAborted>() => {
                let why = if reason.check::<ConnectionDone>() {
                    "the peer closed it".to_string()
                } else {
                    reason.to_string()
                };
                Failure::new(TlsError::Closed {
                    peer: self.session.peer.clone(),
                    reason: why,
                })
            }
            None => reason,
        };
        self.session.phase.set(Phase::Closing);
        if let Some(ready) = self.ready.take() {
            ready(Err(reason.clone()));
        }
        if !self.fresh {
            self.user.connection_lost(reason);
        }
    }

    fn pause_producing(&mut self) {
        self.lower_paused = true;
        self.sync_pause();
    }

    fn resume_producing(&mut self) {
        self.lower_paused = false;
        self.sync_pause();
    }
}
