//! A transport that keeps what is written in memory (Twisted's
//! `StringTransport`), so a protocol is tested by feeding it bytes and
//! reading back what it wrote, with no socket and no reactor.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::defer::report::{report_error, report_warn};
use crate::defer::{Failure, Panicked};
use crate::protocol::{
    CloseNotice, ConnectionAborted, ConnectionDone, ITransport, Protocol, Transport,
};

use crate::reactor::DEFAULT_HIGH_WATER;

/// The default local address of a [`StringTransport`] (Twisted's
/// `StringTransport` uses `10.0.0.1`).
pub const DEFAULT_HOST: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 1),
    12345,
));

/// The default remote address of a [`StringTransport`].
pub const DEFAULT_PEER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 2),
    54321,
));

/// Whether the transport, as a producer, delivers what it receives
/// (Twisted's `StringTransport.producerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerState {
    /// Received bytes are delivered (the initial state).
    Producing,
    /// [`Transport::pause_producing`] was called: received bytes wait.
    Paused,
    /// The connection closed.
    Stopped,
}

/// A recording transport (Twisted's `StringTransport`, with the
/// disconnecting behaviour of `StringTransportWithDisconnection`).
///
/// Cheap to clone: every clone is the same connection. Give
/// [`transport`](Self::transport) to a protocol (or let
/// [`make_connection`](Self::make_connection) do it), then:
///
/// - [`value`](Self::value) / [`take`](Self::take) read what the protocol
///   wrote; writes after the close are ignored, as on TCP;
/// - [`receive`](Self::receive) feeds the protocol bytes, held back while it
///   paused the transport ([`producer_state`](Self::producer_state));
/// - `lose_connection` and `abort_connection` close at once (everything
///   written is "sent" already), calling the protocol's `connection_lost`
///   with [`ConnectionDone`] or [`ConnectionAborted`] and firing
///   [`Transport::when_closed`]; [`close`](Self::close) is the peer going
///   away with any reason;
/// - the write buffer counts the bytes not yet taken: past the high-water
///   mark (64 KiB, [`Transport::set_write_buffer_limits`]) the protocol's
///   `pause_producing` is called, and [`take`](Self::take) resumes it.
///
/// A protocol may call the transport from any of its methods: a close or a
/// delivery asked for while the protocol runs happens right after it returns.
/// The test's handles keep the connection: dropping the last one drops the
/// protocol without `connection_lost` (close it first to see that run).
///
/// ```
/// use twined::protocol::{Protocol, Transport};
/// use twined::testing::StringTransport;
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: Transport) { self.0 = Some(t); }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 { t.write(data) }
///     }
/// }
///
/// let st = StringTransport::new();
/// st.make_connection(Echo::default());
/// st.receive(b"hello");
/// assert_eq!(st.take(), b"hello");
/// ```
#[derive(Clone)]
pub struct StringTransport(Rc<Inner>);

struct Inner {
    state: RefCell<State>,
    /// The attached protocol; `None` while one of its methods runs, before
    /// `make_connection` and after `connection_lost`.
    protocol: RefCell<Option<Box<dyn Protocol>>>,
    closed: CloseNotice,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Open,
    /// Closed; `connection_lost` not yet delivered.
    Closing,
    Closed,
}

struct State {
    phase: Phase,
    written: Vec<u8>,
    host: SocketAddr,
    peer: SocketAddr,
    lose_called: bool,
    aborted: bool,
    reading_paused: bool,
    /// Received bytes held back while reading is paused or the protocol runs.
    inbound: Vec<u8>,
    high_water: usize,
    low_water: usize,
    /// The protocol was told to pause producing.
    producer_paused: bool,
    /// A pause (`true`) or resume for the protocol, not yet delivered.
    notify: Option<bool>,
    /// The reason of a close not yet delivered.
    reason: Option<Failure>,
    /// A protocol method is running.
    busy: bool,
    /// A protocol was attached.
    made: bool,
    /// Called after `connection_lost` (a factory's `client_connection_lost`).
    on_lost: Option<Box<dyn FnOnce(Failure)>>,
}

enum Step {
    Notify(bool),
    Deliver(Vec<u8>),
    Lost(Failure),
}

impl StringTransport {
    /// An open transport between [`DEFAULT_HOST`] and [`DEFAULT_PEER`].
    pub fn new() -> StringTransport {
        StringTransport(Rc::new(Inner {
            state: RefCell::new(State {
                phase: Phase::Open,
                written: Vec::new(),
                host: DEFAULT_HOST,
                peer: DEFAULT_PEER,
                lose_called: false,
                aborted: false,
                reading_paused: false,
                inbound: Vec::new(),
                high_water: DEFAULT_HIGH_WATER,
                low_water: 0,
                producer_paused: false,
                notify: None,
                reason: None,
                busy: false,
                made: false,
                on_lost: None,
            }),
            protocol: RefCell::new(None),
            closed: CloseNotice::new(),
        }))
    }

    /// Sets the addresses `host()` and `peer()` report.
    pub fn with_addresses(self, host: SocketAddr, peer: SocketAddr) -> StringTransport {
        {
            let mut st = self.0.state.borrow_mut();
            st.host = host;
            st.peer = peer;
        }
        self
    }

    /// The handle a protocol writes through.
    pub fn transport(&self) -> Transport {
        Transport::new(self.0.clone())
    }

    /// Attaches `protocol` and calls its `connection_made` with this
    /// transport (Twisted's `protocol.makeConnection(transport)`). The
    /// transport then calls the protocol's `data_received` from
    /// [`receive`](Self::receive) and its `connection_lost` on close.
    pub fn make_connection(&self, protocol: impl Protocol) {
        self.make_connection_boxed(Box::new(protocol));
    }

    /// [`make_connection`](Self::make_connection) with a boxed protocol.
    /// A transport takes one protocol: a second is dropped with a warning.
    pub fn make_connection_boxed(&self, mut protocol: Box<dyn Protocol>) {
        {
            let mut st = self.0.state.borrow_mut();
            if st.made {
                drop(st);
                report_warn!("a StringTransport already has a protocol; the second one is dropped");
                return;
            }
            st.made = true;
            st.busy = true;
        }
        let transport = self.transport();
        self.0.run("connection_made", &mut protocol, |p| {
            p.connection_made(transport)
        });
        *self.0.protocol.borrow_mut() = Some(protocol);
        self.0.state.borrow_mut().busy = false;
        self.0.settle();
    }

    /// Feeds `data` to the protocol's `data_received` (now, or once it
    /// resumes reading). Ignored after the close.
    pub fn receive(&self, data: &[u8]) {
        {
            let mut st = self.0.state.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.inbound.extend_from_slice(data);
        }
        self.0.settle();
    }

    /// Everything written and not yet taken.
    pub fn value(&self) -> Vec<u8> {
        self.0.state.borrow().written.clone()
    }

    /// Takes everything written so far: the write buffer drains, and a
    /// protocol paused by it is resumed.
    pub fn take(&self) -> Vec<u8> {
        let out = std::mem::take(&mut self.0.state.borrow_mut().written);
        self.0.check_water();
        self.0.settle();
        out
    }

    /// Forgets everything written (Twisted's `clear()`).
    pub fn clear(&self) {
        let _ = self.take();
    }

    /// The peer closed the connection, or it failed, with `reason`: the
    /// protocol's `connection_lost` gets it. Ignored once closed.
    pub fn close(&self, reason: impl Into<Failure>) {
        self.0.close(reason.into());
    }

    /// Whether `lose_connection` was called (Twisted's `disconnecting`).
    pub fn disconnecting(&self) -> bool {
        self.0.state.borrow().lose_called
    }

    /// Whether `abort_connection` was called.
    pub fn aborted(&self) -> bool {
        self.0.state.borrow().aborted
    }

    /// Whether the connection is closed (any way).
    pub fn is_closed(&self) -> bool {
        self.0.state.borrow().phase != Phase::Open
    }

    /// The transport's producer state: paused by the protocol, producing, or
    /// stopped by the close.
    pub fn producer_state(&self) -> ProducerState {
        let st = self.0.state.borrow();
        if st.phase != Phase::Open {
            ProducerState::Stopped
        } else if st.reading_paused {
            ProducerState::Paused
        } else {
            ProducerState::Producing
        }
    }

    /// The write buffer's high- and low-water marks.
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        let st = self.0.state.borrow();
        (st.high_water, st.low_water)
    }

    /// Runs `f` once the connection closed, after the protocol's
    /// `connection_lost` (how a factory's `client_connection_lost` is fed).
    pub(crate) fn set_on_lost(&self, f: Box<dyn FnOnce(Failure)>) {
        self.0.state.borrow_mut().on_lost = Some(f);
    }
}

impl Default for StringTransport {
    fn default() -> StringTransport {
        StringTransport::new()
    }
}

impl fmt::Debug for StringTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("StringTransport")
            .field("host", &st.host)
            .field("peer", &st.peer)
            .field("written", &st.written.len())
            .field("closed", &(st.phase != Phase::Open))
            .finish()
    }
}

impl Inner {
    /// Runs `f` on `protocol`; a panic closes the connection with it, as on
    /// TCP.
    fn run(&self, what: &str, protocol: &mut Box<dyn Protocol>, f: impl FnOnce(&mut dyn Protocol)) {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(protocol.as_mut())));
        if let Err(panic) = result {
            let panicked = Panicked::from_payload(panic);
            report_error!("a protocol's {what} panicked: {}", panicked.message());
            self.close(Failure::new(panicked));
        }
    }

    fn close(&self, reason: Failure) {
        {
            let mut st = self.state.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.phase = Phase::Closing;
            st.inbound.clear();
            st.notify = None;
            st.reason = Some(reason);
        }
        self.settle();
    }

    /// Pauses or resumes the protocol as the write buffer crosses its marks.
    fn check_water(&self) {
        let mut st = self.state.borrow_mut();
        if st.phase != Phase::Open {
            return;
        }
        let size = st.written.len();
        if !st.producer_paused && size > st.high_water {
            st.producer_paused = true;
            st.notify = Some(true);
        } else if st.producer_paused && size <= st.low_water {
            st.producer_paused = false;
            st.notify = Some(false);
        }
    }

    /// Delivers what is pending (producer notices, received bytes, the
    /// close) unless a protocol method is running: then the method's caller
    /// delivers it once the method returns.
    fn settle(&self) {
        loop {
            let step = {
                let mut st = self.state.borrow_mut();
                if st.busy {
                    return;
                }
                if let Some(reason) = st.reason.take() {
                    st.phase = Phase::Closed;
                    Step::Lost(reason)
                } else if let Some(pause) = st.notify.take() {
                    Step::Notify(pause)
                } else if st.phase == Phase::Open && !st.reading_paused && !st.inbound.is_empty() {
                    Step::Deliver(std::mem::take(&mut st.inbound))
                } else {
                    return;
                }
            };
            match step {
                Step::Lost(reason) => {
                    let protocol = self.protocol.borrow_mut().take();
                    if let Some(mut protocol) = protocol {
                        let r = reason.clone();
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            protocol.connection_lost(r)
                        }));
                        if let Err(panic) = result {
                            let panicked = Panicked::from_payload(panic);
                            report_error!(
                                "a protocol's connection_lost panicked: {}",
                                panicked.message()
                            );
                        }
                    }
                    let on_lost = self.state.borrow_mut().on_lost.take();
                    if let Some(on_lost) = on_lost {
                        on_lost(reason.clone());
                    }
                    self.closed.closed(reason);
                    return;
                }
                Step::Notify(pause) => self.with_protocol("a producer notice", |p| {
                    if pause {
                        p.pause_producing()
                    } else {
                        p.resume_producing()
                    }
                }),
                Step::Deliver(data) => {
                    self.with_protocol("data_received", |p| p.data_received(&data))
                }
            }
        }
    }

    /// Runs `f` on the attached protocol, if any, marking it busy meanwhile.
    fn with_protocol(&self, what: &str, f: impl FnOnce(&mut dyn Protocol)) {
        let protocol = self.protocol.borrow_mut().take();
        let Some(mut protocol) = protocol else {
            return;
        };
        self.state.borrow_mut().busy = true;
        self.run(what, &mut protocol, f);
        self.state.borrow_mut().busy = false;
        *self.protocol.borrow_mut() = Some(protocol);
    }
}

impl ITransport for Inner {
    fn write(&self, data: &[u8]) {
        {
            let mut st = self.state.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.written.extend_from_slice(data);
        }
        self.check_water();
        self.settle();
    }

    fn write_sequence(&self, parts: &[&[u8]]) {
        self.write(&parts.concat());
    }

    fn lose_connection(&self) {
        self.state.borrow_mut().lose_called = true;
        self.close(Failure::new(ConnectionDone));
    }

    fn abort_connection(&self) {
        {
            let mut st = self.state.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.aborted = true;
        }
        self.close(Failure::new(ConnectionAborted));
    }

    fn peer(&self) -> Option<SocketAddr> {
        Some(self.state.borrow().peer)
    }

    fn host(&self) -> Option<SocketAddr> {
        Some(self.state.borrow().host)
    }

    fn connected(&self) -> bool {
        self.state.borrow().phase == Phase::Open
    }

    fn pause_producing(&self) {
        self.state.borrow_mut().reading_paused = true;
    }

    fn resume_producing(&self) {
        self.state.borrow_mut().reading_paused = false;
        self.settle();
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        {
            let mut st = self.state.borrow_mut();
            st.high_water = high;
            st.low_water = low.min(high);
        }
        self.check_water();
        self.settle();
    }

    fn write_buffer_size(&self) -> usize {
        self.state.borrow().written.len()
    }

    fn close_notice(&self) -> Option<&CloseNotice> {
        Some(&self.closed)
    }
}
