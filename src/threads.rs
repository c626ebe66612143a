//! Blocking work on a bounded thread pool, with results delivered on the
//! reactor (Twisted's `deferToThread`, `reactor.callInThread` and the
//! reactor's thread pool), and host-name lookups on that pool.
//!
//! | Twisted | twined |
//! |---|---|
//! | `threads.deferToThread(f)` | [`defer_to_thread(f)`](defer_to_thread) |
//! | `reactor.callInThread(f)` | [`call_in_thread(f)`](call_in_thread) |
//! | `reactor.suggestThreadPoolSize(n)` | [`set_pool_size(n)`](set_pool_size) |
//! | `reactor.resolve(name)` | [`resolve(name, port)`](resolve) |
//! | `threads.blockingCallFromThread(reactor, f)` | [`blocking_call_from_thread(&handle, f)`](blocking_call_from_thread) |
//!
//! The pool is one per process, shared by every thread's reactor: threads
//! are a process resource, and one bound (10 by default, as in Twisted) is
//! what keeps blocking work from swamping the machine. Workers start on
//! demand up to the bound and then wait for more work; they never keep the
//! process from exiting. A result always comes back to the reactor of the
//! thread that asked for it, through its
//! [`call_from_thread`](crate::reactor::Handle::call_from_thread) queue, so
//! callbacks run on the reactor thread, once that reactor runs.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::defer::report::report_error;
use crate::defer::{succeed, CallbackOutput, Deferred, Failure, Panicked};
use crate::time::Handle;

/// Twisted's default thread pool size.
pub const DEFAULT_POOL_SIZE: usize = 10;

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    queue: VecDeque<Job>,
    workers: usize,
    idle: usize,
    max: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            workers: 0,
            idle: 0,
            max: DEFAULT_POOL_SIZE,
        }),
        work: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a poisoned lock means nothing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&'static self, job: Job) {
        let mut state = self.lock();
        state.queue.push_back(job);
        if !self.start_workers(&mut state) {
            self.work.notify_one();
        }
    }

    /// Starts workers while queued jobs outnumber idle workers and the bound
    /// allows; returns whether any was started. Workers are detached: they
    /// wait on the condition variable and never hold the process open.
    fn start_workers(&'static self, state: &mut PoolState) -> bool {
        let mut started = 0;
        while state.queue.len() > state.idle + started && state.workers < state.max {
            let spawned = std::thread::Builder::new()
                .name("twined-pool".into())
                .spawn(move || self.work_loop());
            match spawned {
                Ok(_) => {
                    state.workers += 1;
                    started += 1;
                }
                Err(e) => {
                    // The job stays queued for a running worker (or the
                    // next submit's attempt).
                    report_error!("could not start a pool thread: {e}");
                    break;
                }
            }
        }
        started > 0
    }

    fn work_loop(&self) {
        let mut state = self.lock();
        loop {
            if state.workers > state.max {
                // The pool was shrunk: this worker retires.
                state.workers -= 1;
                return;
            }
            match state.queue.pop_front() {
                Some(job) => {
                    drop(state);
                    // Each job catches its own panics; this is a last guard.
                    if catch_unwind(AssertUnwindSafe(job)).is_err() {
                        report_error!("a pool job panicked");
                    }
                    state = self.lock();
                }
                None => {
                    state.idle += 1;
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.idle -= 1;
                }
            }
        }
    }
}

/// Sets how many pool threads may run at once (at least 1; Twisted's
/// `suggestThreadPoolSize`). Threads start lazily, when work is waiting and
/// no idle thread can take it; growing the pool starts threads for work
/// already queued. Shrinking it lets surplus threads retire as they finish
/// their current job (a running job is never interrupted).
pub fn set_pool_size(n: usize) {
    let p = pool();
    let mut state = p.lock();
    state.max = n.max(1);
    p.start_workers(&mut state);
    drop(state);
    // Let surplus idle workers notice and retire.
    p.work.notify_all();
}

/// The most pool threads that run at once.
pub fn pool_size() -> usize {
    pool().lock().max
}

/// Fires a waiting Deferred with the `Result<T, Failure>` boxed in its
/// argument, or, given `None`, drops its trigger.
type Completion = Box<dyn FnOnce(Option<Box<dyn Any + Send>>)>;

thread_local! {
    /// Deferreds of this thread waiting for a result from another thread,
    /// by id.
    static WAITING: RefCell<HashMap<u64, Completion>> = RefCell::new(HashMap::new());
    static NEXT: Cell<u64> = const { Cell::new(0) };
}

/// The `Send` end of a Deferred that waits on the thread that made it
/// ([`remote_trigger`]): any thread fires it, and the Deferred fires on its
/// own thread, through that thread's
/// [`call_from_thread`](crate::reactor::Handle::call_from_thread) queue,
/// once its reactor runs.
///
/// This is the one way a result crosses threads back to a Deferred: pool
/// results ([`defer_to_thread`]), the shared
/// [`DnsCache`](crate::reactor::DnsCache) and
/// [`RobotsCache`](crate::web::client::RobotsCache) all use it.
///
/// - Dropped unfired, it drops the Deferred's trigger on its thread: the
///   Deferred fails with [`TriggerDropped`](crate::defer::TriggerDropped),
///   never waits forever.
/// - When the waiting thread has exited, its waiting Deferreds were failed
///   with `TriggerDropped` as its thread-locals went (nothing of the
///   thread's reactor is touched), and a later firing is queued on an inbox
///   nothing drains: it is freed with the inbox, unrun.
pub(crate) struct RemoteTrigger<T> {
    handle: Handle,
    /// Until fired.
    id: Option<u64>,
    _value: PhantomData<fn(T)>,
}

/// A Deferred on this thread and the [`RemoteTrigger`] that fires it from
/// any thread. While this thread exits, the Deferred has already failed
/// ("the thread is exiting").
pub(crate) fn remote_trigger<T: Send + 'static>() -> (Deferred<T>, RemoteTrigger<T>) {
    let (d, trigger) = Deferred::new();
    let id = NEXT
        .try_with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1));
            id
        })
        .unwrap_or(u64::MAX);
    let completion: Completion = Box::new(move |result| {
        // `None`: `trigger` is dropped here, and reports it.
        if let Some(result) = result {
            match result.downcast::<Result<T, Failure>>() {
                Ok(result) => trigger.fire_with(*result),
                Err(_) => trigger.errback(Failure::msg(
                    "internal error: a result of the wrong type from another thread",
                )),
            }
        }
    });
    let mut unstored = Some(completion);
    let _ = WAITING.try_with(|w| {
        if let Some(completion) = unstored.take() {
            w.borrow_mut().insert(id, completion);
        }
    });
    let stored = unstored.is_none();
    if let Some(completion) = unstored {
        let exiting: Result<T, Failure> = Err(Failure::msg("the thread is exiting"));
        completion(Some(Box::new(exiting)));
    }
    let remote = RemoteTrigger {
        handle: Handle::current(),
        id: stored.then_some(id),
        _value: PhantomData,
    };
    (d, remote)
}

impl<T: Send + 'static> RemoteTrigger<T> {
    /// Fires the Deferred with `result`, on its thread.
    pub(crate) fn fire_with(mut self, result: Result<T, Failure>) {
        self.send(Some(Box::new(result)));
    }

    /// Fires the Deferred with `value`, on its thread.
    pub(crate) fn callback(self, value: T) {
        self.fire_with(Ok(value));
    }
}

impl<T> RemoteTrigger<T> {
    /// Hands `result` (`None`: drop the trigger) to the waiting Deferred's
    /// completion, on its thread.
    fn send(&mut self, result: Option<Box<dyn Any + Send>>) {
        let Some(id) = self.id.take() else {
            return;
        };
        self.handle.call_from_thread(move || {
            let completion = WAITING
                .try_with(|w| w.borrow_mut().remove(&id))
                .ok()
                .flatten();
            if let Some(completion) = completion {
                completion(result);
            }
        });
    }
}

impl<T> Drop for RemoteTrigger<T> {
    fn drop(&mut self) {
        self.send(None);
    }
}

impl<T> fmt::Debug for RemoteTrigger<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTrigger")
            .field("waiting", &self.id.is_some())
            .finish()
    }
}

/// Runs `f` on the pool; the Deferred fires on this thread's reactor with its
/// result, or fails with a [`Panicked`] failure carrying the panic message if
/// `f` panics (Twisted's `deferToThread`).
///
/// The result waits in the reactor's [`call_from_thread`] queue: it is
/// delivered once this thread's reactor runs, even if it was not running
/// when `f` finished. If this thread has exited by then, the result is
/// dropped undelivered (nothing panics).
///
/// A `Result` returned by `f` is a plain value of the Deferred. To put its
/// `Err` on the errback chain, follow with `.and_then(|r| r)` when the error
/// type is already [`Failure`], or `.and_then(|r| r.map_err(Failure::new))`
/// for any other `std::error::Error + Send + Sync` type (only
/// `Result<T, Failure>` is an [`Outcome`](crate::defer::Outcome)).
///
/// [`call_from_thread`]: crate::reactor::Handle::call_from_thread
///
/// ```
/// use twined::defer::Failure;
/// use twined::{reactor, threads};
///
/// let d = threads::defer_to_thread(|| (1..=10u64).product::<u64>())
///     .add_callback(|n| {
///         assert_eq!(n, 3_628_800);
///         reactor::stop().unwrap();
///     });
/// reactor::run().unwrap();
/// # drop(d);
///
/// // A blocking call that may fail: its error goes down the errback chain.
/// let d = threads::defer_to_thread(|| std::fs::read("/nonexistent"))
///     .and_then(|r| r.map_err(Failure::new))
///     .add_errback(|failure| {
///         assert!(failure.check::<std::io::Error>());
///         reactor::stop().unwrap();
///         Vec::new()
///     });
/// reactor::run().unwrap();
/// # drop(d);
///
/// // Already a `Result<T, Failure>`: `.and_then(|r| r)`.
/// let d = threads::defer_to_thread(|| -> Result<u32, Failure> { Err(Failure::msg("no luck")) })
///     .and_then(|r| r)
///     .add_errback(|failure| {
///         assert_eq!(failure.to_string(), "no luck");
///         reactor::stop().unwrap();
///         0
///     });
/// reactor::run().unwrap();
/// # drop(d);
/// ```
pub fn defer_to_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Deferred<T> {
    let (d, remote) = remote_trigger();
    if d.called() {
        // The thread is exiting: nothing would receive the result.
        return d;
    }
    pool().submit(Box::new(move || {
        let result: Result<T, Failure> =
            catch_unwind(AssertUnwindSafe(f)).map_err(Failure::from_panic);
        remote.fire_with(result);
    }));
    d
}

/// Runs `f` on the pool and forgets it (Twisted's `callInThread`). A panic is
/// logged; the pool goes on.
pub fn call_in_thread(f: impl FnOnce() + Send + 'static) {
    pool().submit(Box::new(move || {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
            report_error!(
                "a call_in_thread function panicked: {}",
                Panicked::from_payload(panic).message()
            );
        }
    }));
}

/// A host-name lookup failed.
#[derive(Debug)]
pub struct ResolveError {
    /// The name looked up.
    pub host: String,
    /// What the system resolver said.
    pub source: io::Error,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS lookup failed for {}: {}", self.host, self.source)
    }
}

impl Error for ResolveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// The addresses of `host` with `port` (Twisted's `reactor.resolve`). An IP
/// literal (IPv6 with or without brackets) is returned at once, already
/// fired, without touching the pool; a name is looked up by the system
/// resolver (`ToSocketAddrs`) on the pool and fails with a [`ResolveError`]
/// naming the host. `host` may be a `&str` or a `String`. Every call asks
/// the system; [`DnsCache`](crate::reactor::DnsCache) keeps answers for a
/// time and coalesces overlapping lookups of one name.
///
/// ```
/// use twined::{reactor, threads};
///
/// // An IP literal: no lookup, the Deferred has already fired.
/// let d = threads::resolve("127.0.0.1", 80);
/// assert_eq!(d.result().unwrap().unwrap(), vec!["127.0.0.1:80".parse().unwrap()]);
///
/// // A name: looked up on the pool, delivered on the reactor.
/// let d = threads::resolve(String::from("localhost"), 8080).add_both(|r| {
///     let addrs = r.unwrap();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
///     reactor::stop().unwrap();
/// });
/// reactor::run().unwrap();
/// # drop(d);
/// ```
pub fn resolve(host: impl AsRef<str>, port: u16) -> Deferred<Vec<SocketAddr>> {
    let bare = unbracket(host.as_ref());
    if let Some(ip) = ip_literal(bare) {
        return succeed(vec![SocketAddr::new(ip, port)]);
    }
    let name = bare.to_string();
    defer_to_thread(move || lookup(&name, port)).and_then(|r| r.map_err(Failure::new))
}

/// The system resolver's addresses of `name` with `port`, blocking: what
/// [`resolve`] runs on the pool. No addresses at all is a failure.
pub(crate) fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let failed = |source| ResolveError {
        host: name.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = (name, port).to_socket_addrs().map_err(failed)?.collect();
    if addrs.is_empty() {
        return Err(failed(io::Error::new(
            io::ErrorKind::NotFound,
            "no addresses",
        )));
    }
    Ok(addrs)
}

/// Why [`blocking_call_from_thread`] could not deliver a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockingCallError {
    /// Called on the reactor's own thread, where waiting would deadlock.
    OnReactorThread,
    /// The reactor is not running and has run before (it has shut down), or
    /// its run ended before the call's result arrived.
    ReactorStopped,
    /// The reactor's thread has exited.
    ReactorGone,
}

impl fmt::Display for BlockingCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockingCallError::OnReactorThread => {
                "blocking_call_from_thread was called on the reactor's own thread \
                 (it would wait for itself forever); call the function directly"
            }
            BlockingCallError::ReactorStopped => {
                "the reactor stopped before blocking_call_from_thread got its result"
            }
            BlockingCallError::ReactorGone => {
                "the reactor's thread exited before blocking_call_from_thread got its result"
            }
        })
    }
}

impl Error for BlockingCallError {}

/// Where a call sent by [`blocking_call_from_thread`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    Queued,
    Started,
    Abandoned,
}

/// How often a blocked thread looks at whether the reactor is still running.
const LIFE_CHECK: Duration = Duration::from_millis(20);

/// Runs `f` on the reactor of `handle` and blocks this (non-reactor) thread
/// until its result is there (Twisted's `threads.blockingCallFromThread`):
/// `f` returns a value, or a Deferred whose result is waited for. A failure
/// (the Deferred failed, or `f` panicked) is the `Err`.
///
/// Unlike Twisted's, it never hangs on a reactor that will not answer:
///
/// - called on the reactor's own thread, it fails at once with
///   [`BlockingCallError::OnReactorThread`] instead of deadlocking;
/// - if the reactor has shut down (it is not running and has run before),
///   it fails at once with [`BlockingCallError::ReactorStopped`], without
///   running `f`; a reactor that has not started yet is waited for, as
///   `call_from_thread` calls are;
/// - if the reactor's run ends before the result arrives, it fails with
///   `ReactorStopped` (a shutdown trigger waiting on this thread still gets
///   its answer: the reactor runs until the shutdown is over); `f` is not
///   run if it had not started, and a result that comes later is dropped;
/// - if the reactor's thread exits, it fails with
///   [`BlockingCallError::ReactorGone`].
///
/// ```
/// use std::time::Duration;
/// use twined::{reactor, task, threads};
///
/// let handle = reactor::handle();
/// let worker = std::thread::spawn(move || {
///     // A plain value...
///     let n = threads::blocking_call_from_thread(&handle, || 20).unwrap();
///     // ...or a Deferred, waited for on the reactor.
///     let m = threads::blocking_call_from_thread(&handle, move || {
///         task::defer_later(Duration::from_millis(5), move || Ok(n + 22))
///     });
///     handle.call_from_thread(|| reactor::stop().unwrap());
///     m.unwrap()
/// });
/// reactor::run().unwrap();
/// assert_eq!(worker.join().unwrap(), 42);
/// ```
pub fn blocking_call_from_thread<T: Send + 'static, M, R: CallbackOutput<T, M>>(
    handle: &Handle,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<T, Failure> {
    let remote = &handle.inbox;
    if Arc::ptr_eq(remote, &crate::time::thread_inbox()) {
        return Err(Failure::new(BlockingCallError::OnReactorThread));
    }
    let at_call = remote.life();
    if at_call.gone {
        return Err(Failure::new(BlockingCallError::ReactorGone));
    }
    if !at_call.running && at_call.runs_ended > 0 {
        return Err(Failure::new(BlockingCallError::ReactorStopped));
    }
    let (tx, rx) = mpsc::channel::<Result<T, Failure>>();
    let claim = Arc::new(Mutex::new(Claim::Queued));
    let c = claim.clone();
    handle.call_from_thread(move || {
        {
            let mut claim = c.lock().unwrap_or_else(PoisonError::into_inner);
            if *claim == Claim::Abandoned {
                return;
            }
            *claim = Claim::Started;
        }
        // `add_callback` runs `f` now, catches a panic, and waits for a
        // returned Deferred.
        succeed(())
            .add_callback(move |()| f())
            .add_both(move |result| {
                // The caller may have given up: then nobody wants it.
                let _ = tx.send(result);
            });
    });
    let give_up = |error: BlockingCallError| {
        let mut claim = claim.lock().unwrap_or_else(PoisonError::into_inner);
        if *claim == Claim::Queued {
            *claim = Claim::Abandoned;
        }
        Err(Failure::new(error))
    };
    loop {
        match rx.recv_timeout(LIFE_CHECK) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The call was dropped unrun: its reactor is going away.
                return give_up(BlockingCallError::ReactorGone);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = remote.life();
        if now.gone {
            return give_up(BlockingCallError::ReactorGone);
        }
        if now.runs_ended > at_call.runs_ended {
            // A last look: the result may have come with the run's end.
            if let Ok(result) = rx.try_recv() {
                return result;
            }
            return give_up(BlockingCallError::ReactorStopped);
        }
    }
}

/// `host` without the brackets of an IPv6 literal (`[::1]` -> `::1`).
pub(crate) fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The IP address `host` is a literal of, bracketed or not.
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    unbracket(host).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defer::TriggerDropped;
    use std::rc::Rc;

    /// Runs the calls other threads sent this thread, as its reactor would.
    fn run_thread_calls() {
        for call in crate::time::thread_inbox().drain() {
            call();
        }
    }

    #[test]
    fn a_remote_trigger_fires_its_deferred_on_its_own_thread() {
        let (d, remote) = remote_trigger::<u32>();
        let here = std::thread::current().id();
        let fired_on = Rc::new(Cell::new(None));
        let f = fired_on.clone();
        let d = d.add_callback(move |n| {
            f.set(Some(std::thread::current().id()));
            n
        });
        std::thread::spawn(move || remote.callback(7))
            .join()
            .unwrap();
        assert!(!d.called(), "not before this thread runs its calls");
        run_thread_calls();
        assert_eq!(d.result().expect("fired").unwrap(), 7);
        assert_eq!(fired_on.get(), Some(here));
        assert!(WAITING.with(|w| w.borrow().is_empty()));
    }

    #[test]
    fn a_remote_trigger_dropped_on_another_thread_reports_a_dropped_trigger() {
        let (d, remote) = remote_trigger::<u32>();
        std::thread::spawn(move || drop(remote)).join().unwrap();
        run_thread_calls();
        let failure = d.result().expect("fired").unwrap_err();
        assert!(failure.check::<TriggerDropped>());
        assert!(WAITING.with(|w| w.borrow().is_empty()));
    }
}
