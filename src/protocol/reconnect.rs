//! Staying connected the classic way (Twisted's
//! `ReconnectingClientFactory`): a client factory that connects again after
//! a failed attempt or a lost connection, waiting longer each time.
//!
//! | Twisted | twined |
//! |---|---|
//! | `class F(ReconnectingClientFactory)` + `reactor.connectTCP(h, p, F())` | [`ReconnectingClientFactory::new(factory)`](ReconnectingClientFactory::new)`.connect_tcp(h, p)` |
//! | `initialDelay`, `factor`, `maxDelay`, `jitter`, `maxRetries` | [`initial_delay`](ReconnectingClientFactory::initial_delay), [`factor`](ReconnectingClientFactory::factor), [`max_delay`](ReconnectingClientFactory::max_delay), [`jitter`](ReconnectingClientFactory::jitter), [`max_retries`](ReconnectingClientFactory::max_retries) |
//! | `resetDelay()` (called by hand in `buildProtocol`) | [`Reconnecting::reset_delay`], also done on every successful connection |
//! | `stopTrying()` | [`Reconnecting::stop_trying`] |
//! | `clock` | [`ReconnectingClientFactory::clock`] |
//! | "Abandoning ... after N retries" (a log line) | [`Reconnecting::when_stopped`] errbacks [`ReconnectError::RetriesExhausted`] |
//!
//! For the modern `ClientService` (`when_connected`, `stop_service`), see
//! [`application`](crate::application).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::defer::{Deferred, Failure, Trigger};
use crate::protocol::{Factory, Protocol};
use crate::time::{Current, DelayedCall, ReactorTime};

/// Twisted's `ReconnectingClientFactory.initialDelay` (1 s).
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Twisted's `maxDelay` (one hour).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(3600);
/// Twisted's `factor` (e).
pub const DEFAULT_FACTOR: f64 = std::f64::consts::E;
/// Twisted's `jitter` (the standard deviation, as a fraction of the delay).
pub const DEFAULT_JITTER: f64 = 0.119_626_564_72;

/// Why a [`Reconnecting`] client gave up.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReconnectError {
    /// `max_retries` retries failed; `last` is the last attempt's failure
    /// (or the lost connection's reason).
    RetriesExhausted {
        /// The retries made.
        retries: u32,
        /// The reason of the last failure.
        last: Failure,
    },
}

impl fmt::Display for ReconnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconnectError::RetriesExhausted { retries, last } => {
                write!(f, "gave up reconnecting after {retries} retries: {last}")
            }
        }
    }
}

impl Error for ReconnectError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReconnectError::RetriesExhausted { last, .. } => Some(last.error()),
        }
    }
}

/// How to connect one attempt: called with the factory of the attempt.
type Connect = Box<dyn FnMut(Box<dyn Factory>)>;

/// A client factory that reconnects (Twisted's `ReconnectingClientFactory`),
/// configured with builder methods and started with
/// [`connect_tcp`](Self::connect_tcp) (or [`connect_with`](Self::connect_with)
/// for any way of connecting, such as a
/// [`MemoryReactor`](crate::testing::MemoryReactor) in tests).
///
/// After a failed attempt or a lost connection it waits, then connects
/// again. The wait starts at `initial_delay`, is multiplied by `factor`
/// before each retry (so the first retry waits `initial_delay * factor`, as
/// in Twisted), capped at `max_delay`, and spread by a normal jitter of
/// standard deviation `delay * jitter`. A successful connection resets it.
/// After `max_retries` failed retries in a row (unlimited by default, as in
/// Twisted) it gives up and [`Reconnecting::when_stopped`] errbacks.
///
/// The wrapped factory's `build_protocol`, `client_connection_failed` and
/// `client_connection_lost` are called as usual, before any retry.
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Duration;
/// use twined::protocol::reconnect::{ReconnectError, ReconnectingClientFactory};
/// use twined::protocol::{ConnectionDone, Protocol};
/// use twined::testing::MemoryReactor;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &[u8]) {} }
///
/// let reactor = MemoryReactor::new();
/// let r = reactor.clone();
/// let client = ReconnectingClientFactory::new(|_: SocketAddr| Quiet)
///     .initial_delay(Duration::from_secs(1))
///     .factor(2.0)
///     .jitter(0.0)
///     .max_retries(Some(1))
///     .clock(reactor.clone())
///     .connect_with(move |factory| { r.connect_tcp_boxed("db", 5432, factory); });
/// let stopped = client.when_stopped();
/// reactor.tcp_clients()[0].fail(ConnectionDone);
/// reactor.clock().advance(Duration::from_secs(2));
/// reactor.tcp_clients()[1].fail(ConnectionDone);
/// let failure = stopped.result().unwrap().unwrap_err();
/// assert!(failure.check::<ReconnectError>());
/// ```
pub struct ReconnectingClientFactory {
    factory: Box<dyn Factory>,
    config: Config,
    time: Box<dyn ReactorTime>,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    initial_delay: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    max_retries: Option<u32>,
}

impl ReconnectingClientFactory {
    /// Reconnects with `factory`, with Twisted's defaults: 1 s initial
    /// delay, factor e, one hour at most, jitter 0.12, retrying forever.
    pub fn new(factory: impl Factory) -> ReconnectingClientFactory {
        ReconnectingClientFactory {
            factory: Box::new(factory),
            config: Config {
                initial_delay: DEFAULT_INITIAL_DELAY,
                factor: DEFAULT_FACTOR,
                max_delay: DEFAULT_MAX_DELAY,
                jitter: DEFAULT_JITTER,
                max_retries: None,
            },
            time: Box::new(Current),
        }
    }

    /// The delay that the first retry multiplies (Twisted's `initialDelay`).
    pub fn initial_delay(mut self, delay: Duration) -> ReconnectingClientFactory {
        self.config.initial_delay = delay;
        self
    }

    /// How much longer each wait is than the last (Twisted's `factor`);
    /// values below 1 are taken as 1.
    pub fn factor(mut self, factor: f64) -> ReconnectingClientFactory {
        self.config.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest wait (Twisted's `maxDelay`).
    pub fn max_delay(mut self, delay: Duration) -> ReconnectingClientFactory {
        self.config.max_delay = delay;
        self
    }

    /// The spread of each wait, as a fraction of it (Twisted's `jitter`); 0
    /// makes waits exact. Negative or non-finite values are taken as 0.
    pub fn jitter(mut self, jitter: f64) -> ReconnectingClientFactory {
        self.config.jitter = if jitter.is_finite() {
            jitter.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// Gives up after this many failed retries in a row (Twisted's
    /// `maxRetries`); `None`, the default, retries forever.
    pub fn max_retries(mut self, retries: Option<u32>) -> ReconnectingClientFactory {
        self.config.max_retries = retries;
        self
    }

    /// Schedules retries on `time` (a [`task::Clock`](crate::task::Clock)
    /// in tests) instead of the reactor.
    pub fn clock(mut self, time: impl ReactorTime + 'static) -> ReconnectingClientFactory {
        self.time = Box::new(time);
        self
    }

    /// Connects to `host:port` over TCP now, and again as needed.
    pub fn connect_tcp(self, host: &str, port: u16) -> Reconnecting {
        let host = host.to_string();
        self.connect_with(move |factory| {
            crate::reactor::connect_tcp(&host, port, factory);
        })
    }

    /// Connects now, and again as needed, by calling `connect` with the
    /// attempt's factory: it must start a connection with it (as
    /// [`reactor::connect_tcp`](crate::reactor::connect_tcp) does) and
    /// eventually call its `client_connection_failed` or, once connected
    /// and closed, its `client_connection_lost`.
    pub fn connect_with(self, connect: impl FnMut(Box<dyn Factory>) + 'static) -> Reconnecting {
        let shared = Rc::new(Shared {
            factory: RefCell::new(self.factory),
            config: self.config,
            time: self.time,
            connect: RefCell::new(Box::new(connect)),
            state: RefCell::new(State {
                delay: self.config.initial_delay,
                retries: 0,
                phase: Phase::Connecting,
                waiters: Vec::new(),
                gave_up: None,
            }),
        });
        Shared::attempt(&shared);
        Reconnecting(shared)
    }
}

impl fmt::Debug for ReconnectingClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClientFactory")
            .field("config", &self.config)
            .finish()
    }
}

/// A running [`ReconnectingClientFactory`]: cheap to clone, every clone is
/// the same client. Dropping every handle does not stop it (the connection
/// or the scheduled retry keeps it alive, as the reactor does in Twisted):
/// call [`stop_trying`](Self::stop_trying).
#[derive(Clone)]
pub struct Reconnecting(Rc<Shared>);

struct Shared {
    factory: RefCell<Box<dyn Factory>>,
    config: Config,
    time: Box<dyn ReactorTime>,
    connect: RefCell<Connect>,
    state: RefCell<State>,
}

/// Where the client stands.
enum Phase {
    /// An attempt is in flight.
    Connecting,
    /// Connected.
    Connected,
    /// Waiting to retry.
    Waiting(DelayedCall),
    /// `stop_trying` was called, or the retries ran out.
    Stopped,
}

struct State {
    delay: Duration,
    retries: u32,
    phase: Phase,
    waiters: Vec<Trigger<()>>,
    /// Why it gave up, once it did.
    gave_up: Option<Failure>,
}

/// The factory handed to one connection attempt.
struct Attempt(Rc<Shared>);

impl Factory for Attempt {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        if matches!(self.0.state.borrow().phase, Phase::Stopped) {
            // Stopped while the attempt was in flight: refuse the connection.
            return None;
        }
        let protocol = self.0.factory.borrow_mut().build_protocol(peer)?;
        let mut st = self.0.state.borrow_mut();
        st.phase = Phase::Connected;
        st.delay = self.0.config.initial_delay;
        st.retries = 0;
        Some(protocol)
    }

    fn client_connection_failed(&mut self, reason: Failure) {
        self.0
            .factory
            .borrow_mut()
            .client_connection_failed(reason.clone());
        Shared::retry(&self.0, reason);
    }

    fn client_connection_lost(&mut self, reason: Failure) {
        self.0
            .factory
            .borrow_mut()
            .client_connection_lost(reason.clone());
        Shared::retry(&self.0, reason);
    }
}

impl Shared {
    fn attempt(me: &Rc<Shared>) {
        {
            let mut st = me.state.borrow_mut();
            if matches!(st.phase, Phase::Stopped) {
                return;
            }
            st.phase = Phase::Connecting;
        }
        let attempt: Box<dyn Factory> = Box::new(Attempt(me.clone()));
        (me.connect.borrow_mut())(attempt);
    }

    /// The attempt failed or the connection was lost: waits, then tries
    /// again, unless stopped or out of retries.
    fn retry(me: &Rc<Shared>, reason: Failure) {
        let waiters = {
            let mut st = me.state.borrow_mut();
            if matches!(st.phase, Phase::Stopped) {
                return;
            }
            st.retries += 1;
            if me.config.max_retries.is_some_and(|max| st.retries > max) {
                let retries = st.retries - 1;
                log::info!("abandoning reconnection after {retries} retries: {reason}");
                st.phase = Phase::Stopped;
                let error = ReconnectError::RetriesExhausted {
                    retries,
                    last: reason.clone(),
                };
                let failure = Failure::new(error);
                st.gave_up = Some(failure.clone());
                Some((std::mem::take(&mut st.waiters), failure))
            } else {
                st.delay = me.config.next_delay(st.delay);
                None
            }
        };
        if let Some((waiters, failure)) = waiters {
            for trigger in waiters {
                trigger.errback(failure.clone());
            }
            return;
        }
        let delay = me.state.borrow().delay;
        log::info!("will retry in {:.3} s: {reason}", delay.as_secs_f64());
        // The pending call keeps the client alive, as Twisted's reactor
        // keeps a factory whose retry is scheduled.
        let strong = me.clone();
        let call = me
            .time
            .call_later_boxed(delay, Box::new(move || Shared::attempt(&strong)));
        me.state.borrow_mut().phase = Phase::Waiting(call);
    }
}

impl Config {
    fn next_delay(&self, delay: Duration) -> Duration {
        let mut secs = (delay.as_secs_f64() * self.factor).min(self.max_delay.as_secs_f64());
        if self.jitter > 0.0 {
            secs += standard_normal() * secs * self.jitter;
        }
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(self.max_delay)
    }
}

/// A standard normal variate (Box-Muller), as Python's `normalvariate`.
fn standard_normal() -> f64 {
    let u1 = 1.0 - fastrand::f64(); // (0, 1]: ln is finite
    let u2 = fastrand::f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Reconnecting {
    /// Stops reconnecting (Twisted's `stopTrying`): a pending retry is
    /// cancelled, an attempt in flight gets no protocol if it connects, and
    /// an open connection stays open but is not reconnected once lost.
    /// [`when_stopped`](Self::when_stopped) fires.
    pub fn stop_trying(&self) {
        let (call, waiters) = {
            let mut st = self.0.state.borrow_mut();
            let old = std::mem::replace(&mut st.phase, Phase::Stopped);
            let call = match old {
                Phase::Waiting(call) => Some(call),
                Phase::Stopped => return,
                _ => None,
            };
            (call, std::mem::take(&mut st.waiters))
        };
        if let Some(call) = call {
            let _ = call.cancel();
        }
        for trigger in waiters {
            trigger.callback(());
        }
    }

    /// Resets the wait to `initial_delay` and the retry count to 0
    /// (Twisted's `resetDelay`; done on every successful connection too).
    pub fn reset_delay(&self) {
        let mut st = self.0.state.borrow_mut();
        st.delay = self.0.config.initial_delay;
        st.retries = 0;
    }

    /// Failed retries in a row so far.
    pub fn retries(&self) -> u32 {
        self.0.state.borrow().retries
    }

    /// The current wait: the one a pending retry waits, or `initial_delay`
    /// after a reset.
    pub fn delay(&self) -> Duration {
        self.0.state.borrow().delay
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        matches!(self.0.state.borrow().phase, Phase::Connected)
    }

    /// Whether a retry is scheduled.
    pub fn is_waiting(&self) -> bool {
        matches!(self.0.state.borrow().phase, Phase::Waiting(_))
    }

    /// Whether it still reconnects (Twisted's `continueTrying`).
    pub fn continue_trying(&self) -> bool {
        !matches!(self.0.state.borrow().phase, Phase::Stopped)
    }

    /// A Deferred that fires with `()` after [`stop_trying`](Self::stop_trying),
    /// or errbacks with [`ReconnectError::RetriesExhausted`] once the client
    /// gives up. Fires at once if it already stopped.
    pub fn when_stopped(&self) -> Deferred<()> {
        let mut st = self.0.state.borrow_mut();
        if matches!(st.phase, Phase::Stopped) {
            return match &st.gave_up {
                Some(failure) => crate::defer::fail(failure.clone()),
                None => crate::defer::succeed(()),
            };
        }
        let (d, trigger) = Deferred::new();
        st.waiters.push(trigger);
        d
    }
}

impl fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.state.borrow();
        let phase = match st.phase {
            Phase::Connecting => "connecting",
            Phase::Connected => "connected",
            Phase::Waiting(_) => "waiting",
            Phase::Stopped => "stopped",
        };
        f.debug_struct("Reconnecting")
            .field("phase", &phase)
            .field("retries", &st.retries)
            .field("delay", &st.delay)
            .finish()
    }
}
