//! Policies a protocol or a factory adopts (Twisted's
//! `twisted.protocols.policies`): an idle timeout for a connection, and
//! factories that cap how many connections are open in total or per peer.
//!
//! | Twisted | twined |
//! |---|---|
//! | `TimeoutMixin.setTimeout(p)` / `resetTimeout()` / `timeoutConnection()` | a [`Timeout`] field: [`set_timeout`](Timeout::set_timeout) / [`reset_timeout`](Timeout::reset_timeout) / [`on_transport`](Timeout::on_transport) (lose the connection, Twisted's default), [`on_transport_abort`](Timeout::on_transport_abort) or [`on_timeout`](Timeout::on_timeout) |
//! | `LimitTotalConnectionsFactory` (`connectionLimit`) | [`LimitTotalConnectionsFactory::new(factory, limit)`](LimitTotalConnectionsFactory::new) |
//! | `LimitConnectionsByPeer` (`maxConnectionsPerPeer = 5`) | [`LimitConnectionsByPeer::new(factory, limit)`](LimitConnectionsByPeer::new) ([`DEFAULT_MAX_PER_PEER`]) |
//!
//! Timers go through a [`ReactorTime`]: the reactor by default, a
//! [`task::Clock`](crate::task::Clock) in tests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::defer::Failure;
use crate::protocol::{Factory, Protocol, Transport};
use crate::time::{Current, DelayedCall, ReactorTime};

/// An idle timeout for one connection (Twisted's `TimeoutMixin`).
///
/// A protocol keeps one as a field, arms it in `connection_made`, calls
/// [`reset_timeout`](Self::reset_timeout) on activity and disarms it in
/// `connection_lost`. When the period passes with no reset, the timeout
/// fires once: it loses the transport given to
/// [`on_transport`](Self::on_transport) (Twisted's default
/// `timeoutConnection`), or runs the function given to
/// [`on_timeout`](Self::on_timeout). Dropping the `Timeout` cancels it.
///
/// ```
/// use std::time::Duration;
/// use twined::protocol::policies::Timeout;
/// use twined::protocol::{Protocol, Transport};
/// use twined::task::Clock;
/// use twined::testing::StringTransport;
///
/// struct Idle { timeout: Timeout }
/// impl Protocol for Idle {
///     fn connection_made(&mut self, t: Transport) {
///         self.timeout.on_transport(t);
///         self.timeout.set_timeout(Some(Duration::from_secs(10)));
///     }
///     fn data_received(&mut self, _: &[u8]) { self.timeout.reset_timeout() }
/// }
///
/// let clock = Clock::new();
/// let st = StringTransport::new();
/// st.make_connection(Idle { timeout: Timeout::on(clock.clone()) });
/// clock.advance(Duration::from_secs(9));
/// st.receive(b"still here");
/// clock.advance(Duration::from_secs(9));
/// assert!(!st.disconnecting());
/// clock.advance(Duration::from_secs(1));
/// assert!(st.disconnecting());
/// ```
pub struct Timeout {
    inner: Rc<TimeoutInner>,
}

struct TimeoutInner {
    time: Box<dyn ReactorTime>,
    state: RefCell<TimeoutState>,
}

/// What a [`Timeout`] does when it fires.
enum Action {
    Nothing,
    Lose(Transport),
    Abort(Transport),
    Call(Box<dyn FnMut()>),
}

struct TimeoutState {
    period: Option<Duration>,
    call: Option<DelayedCall>,
    action: Action,
    fired: u32,
}

impl Timeout {
    /// A disarmed timeout on this thread's reactor.
    pub fn new() -> Timeout {
        Timeout::on(Current)
    }

    /// A disarmed timeout on `time` (a [`task::Clock`](crate::task::Clock)
    /// in tests).
    pub fn on(time: impl ReactorTime + 'static) -> Timeout {
        Timeout {
            inner: Rc::new(TimeoutInner {
                time: Box::new(time),
                state: RefCell::new(TimeoutState {
                    period: None,
                    call: None,
                    action: Action::Nothing,
                    fired: 0,
                }),
            }),
        }
    }

    /// On timeout, lose `transport`'s connection (Twisted's default
    /// `timeoutConnection`: `self.transport.loseConnection()`).
    pub fn on_transport(&self, transport: Transport) {
        self.inner.state.borrow_mut().action = Action::Lose(transport);
    }

    /// On timeout, abort `transport`'s connection: unlike
    /// [`on_transport`](Self::on_transport), this closes at once even when
    /// the peer stopped reading and the write buffer never drains (the
    /// choice for a peer that may ignore you).
    pub fn on_transport_abort(&self, transport: Transport) {
        self.inner.state.borrow_mut().action = Action::Abort(transport);
    }

    /// On timeout, run `f` instead (overriding Twisted's
    /// `timeoutConnection`); `f` may abort the connection, write a goodbye,
    /// or arm the timeout again.
    pub fn on_timeout(&self, f: impl FnMut() + 'static) {
        self.inner.state.borrow_mut().action = Action::Call(Box::new(f));
    }

    /// Arms the timeout for `period` from now, or disarms it with `None`;
    /// returns the previous period (Twisted's `setTimeout`).
    pub fn set_timeout(&self, period: Option<Duration>) -> Option<Duration> {
        let old_call = {
            let mut st = self.inner.state.borrow_mut();
            let old = std::mem::replace(&mut st.period, period);
            (old, st.call.take())
        };
        if let Some(call) = old_call.1 {
            let _ = call.cancel();
        }
        if let Some(period) = period {
            let weak = Rc::downgrade(&self.inner);
            let call = self
                .inner
                .time
                .call_later_boxed(period, Box::new(move || TimeoutInner::fire(weak)));
            self.inner.state.borrow_mut().call = Some(call);
        }
        old_call.0
    }

    /// Restarts the period from now, if armed (Twisted's `resetTimeout`):
    /// call it whenever the connection shows activity.
    pub fn reset_timeout(&self) {
        let st = self.inner.state.borrow();
        if let (Some(period), Some(call)) = (st.period, &st.call) {
            if call.active() {
                let _ = call.reset(period);
            }
        }
    }

    /// The armed period, if any.
    pub fn period(&self) -> Option<Duration> {
        self.inner.state.borrow().period
    }

    /// Whether the timeout is armed and has not fired.
    pub fn active(&self) -> bool {
        let st = self.inner.state.borrow();
        st.call.as_ref().is_some_and(DelayedCall::active)
    }

    /// How many times the timeout fired.
    pub fn fired(&self) -> u32 {
        self.inner.state.borrow().fired
    }
}

impl TimeoutInner {
    fn fire(weak: Weak<TimeoutInner>) {
        let Some(me) = weak.upgrade() else { return };
        let action = {
            let mut st = me.state.borrow_mut();
            st.call = None;
            st.period = None;
            st.fired += 1;
            std::mem::replace(&mut st.action, Action::Nothing)
        };
        let action = match action {
            Action::Nothing => Action::Nothing,
            Action::Lose(transport) => {
                transport.lose_connection();
                Action::Lose(transport)
            }
            Action::Abort(transport) => {
                transport.abort_connection();
                Action::Abort(transport)
            }
            Action::Call(mut f) => {
                f();
                Action::Call(f)
            }
        };
        let mut st = me.state.borrow_mut();
        if matches!(st.action, Action::Nothing) {
            st.action = action;
        }
    }
}

impl Default for Timeout {
    fn default() -> Timeout {
        Timeout::new()
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(call) = self.inner.state.borrow_mut().call.take() {
            let _ = call.cancel();
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("period", &self.period())
            .field("active", &self.active())
            .field("fired", &self.fired())
            .finish()
    }
}

/// Twisted's `LimitConnectionsByPeer.maxConnectionsPerPeer`.
pub const DEFAULT_MAX_PER_PEER: usize = 5;

/// How many connections a limiting factory has open: a cheap handle that
/// stays readable after the factory moved into a listening port.
#[derive(Clone, Default)]
pub struct ConnectionCounts(Rc<RefCell<Counts>>);

#[derive(Default)]
struct Counts {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
    refused: u64,
}

impl ConnectionCounts {
    /// Connections open now.
    pub fn total(&self) -> usize {
        self.0.borrow().total
    }

    /// Connections open now from `peer`.
    pub fn from_peer(&self, peer: IpAddr) -> usize {
        self.0.borrow().by_peer.get(&peer).copied().unwrap_or(0)
    }

    /// Connections refused so far for being over the limit.
    pub fn refused(&self) -> u64 {
        self.0.borrow().refused
    }

    /// Counts one more connection from `peer`; the returned guard counts it
    /// out when dropped.
    fn open(&self, peer: IpAddr) -> Release {
        let mut c = self.0.borrow_mut();
        c.total += 1;
        *c.by_peer.entry(peer).or_insert(0) += 1;
        Release {
            counts: self.clone(),
            peer,
        }
    }
}

impl fmt::Debug for ConnectionCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0.borrow();
        f.debug_struct("ConnectionCounts")
            .field("total", &c.total)
            .field("peers", &c.by_peer.len())
            .field("refused", &c.refused)
            .finish()
    }
}

struct Release {
    counts: ConnectionCounts,
    peer: IpAddr,
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut c = self.counts.0.borrow_mut();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

/// A protocol counted by a limiting factory until it is dropped (after its
/// `connection_lost`, or when its connection never starts).
struct Counted {
    protocol: Box<dyn Protocol>,
    _release: Release,
}

impl Protocol for Counted {
    fn connection_made(&mut self, transport: Transport) {
        self.protocol.connection_made(transport)
    }
    fn data_received(&mut self, data: &[u8]) {
        self.protocol.data_received(data)
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.protocol.connection_lost(reason)
    }
    fn pause_producing(&mut self) {
        self.protocol.pause_producing()
    }
    fn resume_producing(&mut self) {
        self.protocol.resume_producing()
    }
}

/// Which bound a limiting factory enforces.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Total(usize),
    PerPeer(usize),
}

/// The shared body of the two limiting factories.
struct Limiter<F> {
    factory: F,
    bound: Bound,
    counts: ConnectionCounts,
}

impl<F: Factory> Limiter<F> {
    fn build(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        let over = match self.bound {
            Bound::Total(limit) => self.counts.total() >= limit,
            Bound::PerPeer(limit) => self.counts.from_peer(peer.ip()) >= limit,
        };
        if over {
            self.counts.0.borrow_mut().refused += 1;
            log::info!(
                "connection from {peer} refused: over the limit ({:?})",
                self.bound
            );
            return None;
        }
        let protocol = self.factory.build_protocol(peer)?;
        Some(Box::new(Counted {
            protocol,
            _release: self.counts.open(peer.ip()),
        }))
    }
}

/// The parts the two limiting factories share: `counts`, the [`Factory`]
/// impl that counts through the [`Limiter`] and delegates the rest, `Debug`.
macro_rules! limiter_face {
    ($name:ident) => {
        impl<F: Factory> $name<F> {
            /// The live counts, readable after the factory moved into a port.
            pub fn counts(&self) -> ConnectionCounts {
                self.0.counts.clone()
            }
        }

        impl<F: Factory> Factory for $name<F> {
            fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
                self.0.build(peer)
            }
            fn start_factory(&mut self) {
                self.0.factory.start_factory()
            }
            fn stop_factory(&mut self) {
                self.0.factory.stop_factory()
            }
            fn client_connection_failed(&mut self, reason: Failure) {
                self.0.factory.client_connection_failed(reason)
            }
            fn client_connection_lost(&mut self, reason: Failure) {
                self.0.factory.client_connection_lost(reason)
            }
        }

        impl<F> fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("bound", &self.0.bound)
                    .field("counts", &self.0.counts)
                    .finish()
            }
        }
    };
}

/// Wraps a factory so that at most `limit` of its connections are open at
/// once (Twisted's `LimitTotalConnectionsFactory`): a connection past the
/// limit gets no protocol and is closed at once.
///
/// ```
/// use std::net::SocketAddr;
/// use twined::protocol::policies::LimitTotalConnectionsFactory;
/// use twined::protocol::Protocol;
/// use twined::testing::MemoryReactor;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &[u8]) {} }
///
/// let reactor = MemoryReactor::new();
/// let factory = LimitTotalConnectionsFactory::new(|_: SocketAddr| Quiet, 1);
/// let counts = factory.counts();
/// let port = reactor.listen_tcp("127.0.0.1:8000".parse().unwrap(), factory);
/// let first = port.accept("10.0.0.7:1000".parse().unwrap()).unwrap();
/// assert!(port.accept("10.0.0.8:1000".parse().unwrap()).is_none());
/// first.transport().lose_connection();
/// assert_eq!(counts.total(), 0);
/// assert!(port.accept("10.0.0.8:1000".parse().unwrap()).is_some());
/// ```
pub struct LimitTotalConnectionsFactory<F>(Limiter<F>);

impl<F: Factory> LimitTotalConnectionsFactory<F> {
    /// At most `limit` open connections of `factory` (0 refuses every one).
    pub fn new(factory: F, limit: usize) -> LimitTotalConnectionsFactory<F> {
        LimitTotalConnectionsFactory(Limiter {
            factory,
            bound: Bound::Total(limit),
            counts: ConnectionCounts::default(),
        })
    }
}

limiter_face!(LimitTotalConnectionsFactory);

/// Wraps a factory so that at most `limit` of its connections come from
/// one peer IP address at once (Twisted's `LimitConnectionsByPeer`); a
/// connection past it gets no protocol and is closed at once.
pub struct LimitConnectionsByPeer<F>(Limiter<F>);

impl<F: Factory> LimitConnectionsByPeer<F> {
    /// At most `limit` open connections per peer address (Twisted's default
    /// is [`DEFAULT_MAX_PER_PEER`]).
    pub fn new(factory: F, limit: usize) -> LimitConnectionsByPeer<F> {
        LimitConnectionsByPeer(Limiter {
            factory,
            bound: Bound::PerPeer(limit),
            counts: ConnectionCounts::default(),
        })
    }
}

limiter_face!(LimitConnectionsByPeer);
