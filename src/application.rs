//! Long-running services (Twisted's `twisted.application.internet`): a
//! [`ClientService`] keeps one client connection up, connecting again by a
//! retry policy whenever it fails or is lost, and hands the live connection
//! to whoever asks.
//!
//! | Twisted | twined |
//! |---|---|
//! | `ClientService(endpoint, factory, retryPolicy=, clock=)` | [`ClientService::new(connect)`](ClientService::new) (or [`ClientService::tcp`]) with [`retry_policy`](ClientService::retry_policy), [`clock`](ClientService::clock) |
//! | `service.startService()` / `stopService()` -> Deferred | [`start_service`](ClientService::start_service) / [`stop_service`](ClientService::stop_service) -> `Deferred<()>` |
//! | `whenConnected(failAfterFailures=n)` -> Deferred of the protocol | [`when_connected`](ClientService::when_connected) / [`when_connected_failing_after(n)`](ClientService::when_connected_failing_after) |
//! | `backoffPolicy(initialDelay=1.0, maxDelay=60, factor=1.5, jitter=)` | [`BackoffPolicy`] (the default), or any `Fn(u32) -> Duration` |

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::defer::{CancelledError, Deferred, Failure, Trigger};
use crate::protocol::{Protocol, Transport};
use crate::time::{Current, DelayedCall, ReactorTime};

/// How long to wait before the next attempt, given how many attempts in a
/// row failed (1 after the first failure or after a lost connection).
pub trait RetryPolicy {
    /// The wait before the next attempt.
    fn delay(&self, failed_attempts: u32) -> Duration;
}

impl<F: Fn(u32) -> Duration> RetryPolicy for F {
    fn delay(&self, failed_attempts: u32) -> Duration {
        self(failed_attempts)
    }
}

/// Exponential backoff with jitter (Twisted's `backoffPolicy`): the wait
/// for failed attempt `n` is `min(initial * factor^n, max)` plus a uniform
/// random jitter in `[0, jitter)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The base wait (Twisted: 1 s).
    pub initial: Duration,
    /// The longest wait before jitter (Twisted: 60 s).
    pub max: Duration,
    /// The growth per failed attempt (Twisted: 1.5).
    pub factor: f64,
    /// The upper bound of the random extra wait (Twisted: 1 s).
    pub jitter: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 1.5,
            jitter: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy for BackoffPolicy {
    fn delay(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.min(100) as i32;
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let base =
            Duration::try_from_secs_f64(secs.min(self.max.as_secs_f64())).unwrap_or(self.max);
        base + self.jitter.mul_f64(fastrand::f64())
    }
}

type Connect<T> = Box<dyn FnMut() -> Deferred<(T, Transport)>>;

/// Keeps a client connection up (Twisted's `ClientService`).
///
/// `connect` starts one attempt and returns a Deferred of the live
/// connection: the value handed to [`when_connected`](Self::when_connected)
/// callers (often the protocol, shared as `Rc<RefCell<P>>`) and its
/// [`Transport`], whose [`when_closed`](Transport::when_closed) tells the
/// service to reconnect. After a failed attempt or a lost connection, the
/// service waits as the retry policy says ([`BackoffPolicy`] by default)
/// and tries again, forever, until [`stop_service`](Self::stop_service).
/// Cheap to clone: every clone is the same service. Dropping every handle
/// does not stop it (the attempt, the connection or the scheduled retry
/// keeps it alive, as the reactor does in Twisted): call `stop_service`.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use twined::application::ClientService;
/// use twined::protocol::{ConnectionDone, Protocol};
/// use twined::testing::MemoryReactor;
///
/// #[derive(Default)]
/// struct Client;
/// impl Protocol for Client { fn data_received(&mut self, _: &[u8]) {} }
///
/// let reactor = MemoryReactor::new();
/// let r = reactor.clone();
/// let service = ClientService::new(move || {
///     let p = Rc::new(RefCell::new(Client));
///     r.connect_protocol("db", 5432, p.clone()).add_callback(move |t| (p, t))
/// })
/// .retry_policy(|_| Duration::from_secs(5))
/// .clock(reactor.clone());
/// service.start_service();
/// let connected = service.when_connected();
/// reactor.tcp_clients()[0].fail(ConnectionDone);
/// reactor.clock().advance(Duration::from_secs(5));
/// reactor.tcp_clients()[1].connect();
/// assert!(connected.result().unwrap().is_ok());
/// ```
pub struct ClientService<T: Clone + 'static>(Rc<Inner<T>>);

impl<T: Clone + 'static> Clone for ClientService<T> {
    fn clone(&self) -> Self {
        ClientService(self.0.clone())
    }
}

struct Inner<T> {
    connect: RefCell<Connect<T>>,
    policy: RefCell<Box<dyn RetryPolicy>>,
    time: RefCell<Box<dyn ReactorTime>>,
    state: RefCell<State<T>>,
}

enum Phase<T> {
    /// `start_service` not called yet.
    Idle,
    /// An attempt is in flight; cancelling this ends it (`None` while
    /// `connect` runs).
    Connecting(Option<Deferred<()>>),
    /// Waiting to retry.
    Waiting(DelayedCall),
    /// Connected.
    Connected(T, Transport),
    /// `stop_service` was called; waiting for the attempt or the connection
    /// to end.
    Stopping,
    /// Stopped.
    Stopped,
}

struct Waiter<T> {
    trigger: Trigger<T>,
    /// Fail after this many failed attempts (counted from the call).
    fail_after: Option<u32>,
    failures: u32,
}

struct State<T> {
    phase: Phase<T>,
    failed_attempts: u32,
    /// Attempt number, so a late result of an abandoned attempt is ignored.
    generation: u64,
    waiters: Vec<Waiter<T>>,
    stop_waiters: Vec<Trigger<()>>,
}

impl<T: Clone + 'static> ClientService<T> {
    /// A service that connects by calling `connect` (not yet started).
    pub fn new(connect: impl FnMut() -> Deferred<(T, Transport)> + 'static) -> ClientService<T> {
        ClientService(Rc::new(Inner {
            connect: RefCell::new(Box::new(connect)),
            policy: RefCell::new(Box::new(BackoffPolicy::default())),
            time: RefCell::new(Box::new(Current)),
            state: RefCell::new(State {
                phase: Phase::Idle,
                failed_attempts: 0,
                generation: 0,
                waiters: Vec::new(),
                stop_waiters: Vec::new(),
            }),
        }))
    }

    /// Sets the retry policy (Twisted's `retryPolicy`).
    pub fn retry_policy(self, policy: impl RetryPolicy + 'static) -> ClientService<T> {
        *self.0.policy.borrow_mut() = Box::new(policy);
        self
    }

    /// Schedules retries on `time` (a [`task::Clock`](crate::task::Clock)
    /// in tests) instead of the reactor.
    pub fn clock(self, time: impl ReactorTime + 'static) -> ClientService<T> {
        *self.0.time.borrow_mut() = Box::new(time);
        self
    }

    /// Starts connecting (Twisted's `startService`). Does nothing if
    /// already started; a stopped service starts again.
    pub fn start_service(&self) {
        {
            let mut st = self.0.state.borrow_mut();
            match st.phase {
                Phase::Idle | Phase::Stopped => st.failed_attempts = 0,
                _ => return,
            }
        }
        Inner::attempt(&self.0);
    }

    /// Whether the service is started and not stopping.
    pub fn running(&self) -> bool {
        !matches!(
            self.0.state.borrow().phase,
            Phase::Idle | Phase::Stopping | Phase::Stopped
        )
    }

    /// A Deferred of the live connection: at once when connected, else on
    /// the next successful attempt. Errbacks with [`CancelledError`] when the
    /// service is stopped (or stops first).
    pub fn when_connected(&self) -> Deferred<T> {
        self.wait(None)
    }

    /// [`when_connected`](Self::when_connected), but errbacks with the last
    /// attempt's failure once `failures` attempts made after this call failed
    /// (Twisted's `failAfterFailures`). 0 is taken as 1.
    pub fn when_connected_failing_after(&self, failures: u32) -> Deferred<T> {
        self.wait(Some(failures.max(1)))
    }

    fn wait(&self, fail_after: Option<u32>) -> Deferred<T> {
        let mut st = self.0.state.borrow_mut();
        match &st.phase {
            Phase::Connected(value, _) => crate::defer::succeed(value.clone()),
            Phase::Stopping | Phase::Stopped => crate::defer::fail(CancelledError),
            _ => {
                let (d, trigger) = Deferred::new();
                st.waiters.push(Waiter {
                    trigger,
                    fail_after,
                    failures: 0,
                });
                d
            }
        }
    }

    /// Stops the service (Twisted's `stopService`): cancels a pending retry
    /// or attempt, closes the connection, errbacks pending
    /// [`when_connected`](Self::when_connected) Deferreds with
    /// [`CancelledError`], and fires once the connection is closed.
    pub fn stop_service(&self) -> Deferred<()> {
        let (old, waiters) = {
            let mut st = self.0.state.borrow_mut();
            match st.phase {
                Phase::Idle | Phase::Stopped => return crate::defer::succeed(()),
                Phase::Stopping => {
                    let (d, trigger) = Deferred::new();
                    st.stop_waiters.push(trigger);
                    return d;
                }
                _ => {}
            }
            let old = std::mem::replace(&mut st.phase, Phase::Stopping);
            (old, std::mem::take(&mut st.waiters))
        };
        let (d, trigger) = Deferred::new();
        self.0.state.borrow_mut().stop_waiters.push(trigger);
        for waiter in waiters {
            waiter.trigger.errback(CancelledError);
        }
        match old {
            Phase::Waiting(call) => {
                let _ = call.cancel();
                Inner::stopped(&self.0);
            }
            Phase::Connecting(Some(attempt)) => attempt.cancel(),
            Phase::Connecting(None) => {}
            Phase::Connected(_, transport) => transport.lose_connection(),
            Phase::Idle | Phase::Stopping | Phase::Stopped => Inner::stopped(&self.0),
        }
        d
    }
}

impl<P: Protocol> ClientService<Rc<RefCell<P>>> {
    /// A service connecting to `host:port` over TCP with a protocol from
    /// `make` per connection; [`when_connected`](Self::when_connected)
    /// gives the live protocol.
    pub fn tcp(host: &str, port: u16, mut make: impl FnMut() -> P + 'static) -> Self {
        let host = host.to_string();
        ClientService::new(move || {
            let protocol = Rc::new(RefCell::new(make()));
            crate::reactor::connect_protocol(&host, port, protocol.clone())
                .add_callback(move |transport| (protocol, transport))
        })
    }
}

impl<T: Clone + 'static> Inner<T> {
    fn attempt(me: &Rc<Inner<T>>) {
        let generation = {
            let mut st = me.state.borrow_mut();
            st.generation += 1;
            st.phase = Phase::Connecting(None);
            st.generation
        };
        let d = (me.connect.borrow_mut())();
        let strong = me.clone();
        let attempt = d.then(move |result: Result<(T, Transport), Failure>| {
            Inner::settled(&strong, generation, result);
            Ok::<(), Failure>(())
        });
        let mut st = me.state.borrow_mut();
        // Unless the attempt already settled (synchronously), keep it to
        // cancel.
        if st.generation == generation && matches!(st.phase, Phase::Connecting(None)) {
            st.phase = Phase::Connecting(Some(attempt));
        }
    }

    fn settled(me: &Rc<Inner<T>>, generation: u64, result: Result<(T, Transport), Failure>) {
        let stopping = {
            let st = me.state.borrow();
            if st.generation != generation {
                return;
            }
            matches!(st.phase, Phase::Stopping)
        };
        match result {
            Ok((value, transport)) if stopping => {
                drop(value);
                Inner::watch(me, generation, &transport);
                transport.lose_connection();
            }
            Err(_) if stopping => Inner::stopped(me),
            Ok((value, transport)) => {
                let waiters = {
                    let mut st = me.state.borrow_mut();
                    st.failed_attempts = 0;
                    st.phase = Phase::Connected(value.clone(), transport.clone());
                    std::mem::take(&mut st.waiters)
                };
                Inner::watch(me, generation, &transport);
                for waiter in waiters {
                    waiter.trigger.callback(value.clone());
                }
            }
            Err(failure) => {
                let failed_now = {
                    let mut st = me.state.borrow_mut();
                    st.failed_attempts += 1;
                    let (failed, kept) = std::mem::take(&mut st.waiters)
                        .into_iter()
                        .map(|mut w| {
                            w.failures += 1;
                            w
                        })
                        .partition(|w: &Waiter<T>| {
                            w.fail_after.is_some_and(|max| w.failures >= max)
                        });
                    st.waiters = kept;
                    failed
                };
                for waiter in failed_now {
                    waiter.trigger.errback(failure.clone());
                }
                log::info!("connection attempt failed: {failure}");
                Inner::schedule(me);
            }
        }
    }

    /// Reconnects (or finishes stopping) once `transport` closes.
    fn watch(me: &Rc<Inner<T>>, generation: u64, transport: &Transport) {
        let strong = me.clone();
        transport.when_closed().then(move |_reason| {
            Inner::lost(&strong, generation);
            Ok::<(), Failure>(())
        });
    }

    fn lost(me: &Rc<Inner<T>>, generation: u64) {
        let stopping = {
            let mut st = me.state.borrow_mut();
            if st.generation != generation {
                return;
            }
            match st.phase {
                Phase::Stopping => true,
                Phase::Connected(..) => {
                    st.failed_attempts = 1;
                    false
                }
                _ => return,
            }
        };
        if stopping {
            Inner::stopped(me);
        } else {
            Inner::schedule(me);
        }
    }

    /// Waits as the policy says, then tries again.
    fn schedule(me: &Rc<Inner<T>>) {
        let n = me.state.borrow().failed_attempts;
        let delay = me.policy.borrow().delay(n);
        let strong = me.clone();
        let call = me
            .time
            .borrow()
            .call_later_boxed(delay, Box::new(move || Inner::attempt(&strong)));
        me.state.borrow_mut().phase = Phase::Waiting(call);
    }

    fn stopped(me: &Rc<Inner<T>>) {
        let waiters = {
            let mut st = me.state.borrow_mut();
            st.phase = Phase::Stopped;
            st.generation += 1;
            std::mem::take(&mut st.stop_waiters)
        };
        for trigger in waiters {
            trigger.callback(());
        }
    }
}

impl<T: Clone + 'static> fmt::Debug for ClientService<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.state.borrow();
        let phase = match st.phase {
            Phase::Idle => "idle",
            Phase::Connecting(_) => "connecting",
            Phase::Waiting(_) => "waiting",
            Phase::Connected(..) => "connected",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        };
        f.debug_struct("ClientService")
            .field("phase", &phase)
            .field("failed_attempts", &st.failed_attempts)
            .finish()
    }
}
