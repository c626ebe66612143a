//! Scheduling helpers on top of the reactor (Twisted's `twisted.internet.task`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `task.Clock()` | [`Clock::new()`](Clock) |
//! | `task.deferLater(clock, delay, f)` | [`defer_later(delay, f)`](defer_later), [`defer_later_on(&clock, delay, f)`](defer_later_on) |
//! | `task.react(main)` | [`react(main)`](react) (returns main's result; [`exit_code`] maps it like Twisted) |
//! | `react` on every core (N processes in Twisted) | [`react_threads(n, main)`](react_threads), [`ReactorThreads`]: one reactor per thread, results collected |
//! | `LoopingCall(f)`, `LoopingCall.withCount(f)`, `lc.clock = clock` | [`LoopingCall::new(f)`](LoopingCall::new), [`LoopingCall::with_count(f)`](LoopingCall::with_count), [`.with_clock(clock)`](LoopingCall::with_clock) |
//! | `lc.stop()` from inside `f` | [`LoopingCall::with_handle(\|lc\| ...)`](LoopingCall::with_handle): `f` receives the loop |
//! | `Cooperator()`, `cooperate(it)`, `coiterate(it)` | [`Cooperator::new()`](Cooperator::new), [`cooperate(it)`](cooperate), [`coiterate(it)`](coiterate) |
//! | Scrapy's `DOWNLOAD_DELAY` and a request rate, shared by every thread | [`Pacer`]: slots spaced per key and overall, waited for on the reactor |
//! | `TaskDone`, `TaskFailed`, `TaskStopped`, `SchedulerStopped`, `NotPaused` | [`TaskError`] |
//!
//! Everything that schedules takes a [`ReactorTime`]: the reactor
//! ([`reactor::Current`](crate::reactor::Current), the default) or a [`Clock`],
//! so code built on these helpers can be tested deterministically.
//!
//! [`Clock`] is a deterministic [`ReactorTime`] for tests: time moves only when
//! [`Clock::advance`] says so. It shares the reactor's timer heap, so 100,000
//! timers stay fast (Twisted's `Clock` is quadratic) and calls due at the same
//! time run in the order they were scheduled.

mod cooperator;
mod looping;
mod pacer;
mod react;
mod workers;

use std::fmt;
use std::time::Duration;

use crate::defer::{Deferred, Failure, Outcome};
use crate::time::{Current, DelayedCall, ReactorTime, TimerQueue};

pub use cooperator::{coiterate, cooperate, CooperativeTask, Cooperator, TaskError};
pub use looping::{LoopingCall, LoopingCallError};
pub use pacer::{Pacer, PacerOptions};
pub use react::{exit_code, react, react_async, ReactorStopped, SystemExit};
pub use workers::{react_threads, ReactorThreads};

/// Virtual time for deterministic tests (Twisted's `task.Clock`). Starts at 0.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use twined::task::Clock;
///
/// let clock = Clock::new();
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// clock.call_later(Duration::from_secs(5), move || f.set(true));
/// clock.advance(Duration::from_secs(4));
/// assert!(!fired.get());
/// clock.advance(Duration::from_secs(1));
/// assert!(fired.get());
/// ```
#[derive(Clone)]
pub struct Clock {
    timers: TimerQueue,
}

impl Clock {
    /// A clock at time zero with no calls.
    pub fn new() -> Clock {
        Clock {
            timers: TimerQueue::virtual_time(),
        }
    }

    /// The current virtual time.
    pub fn seconds(&self) -> f64 {
        self.timers.now().as_secs_f64()
    }

    /// Schedules `f` at `delay` from the current virtual time.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        self.timers.call_later(delay, Box::new(f))
    }

    /// Moves time forward by `by` and runs every call that is then due, in
    /// (time, scheduling) order, including calls that those calls schedule
    /// within the window. A panicking call propagates to the caller, as an
    /// exception from Twisted's `Clock.advance` does.
    pub fn advance(&self, by: Duration) {
        let now = self.timers.now().saturating_add(by);
        self.timers.set_virtual_now(now);
        while let Some(call) = self.timers.pop_due(now, u64::MAX) {
            call();
        }
    }

    /// Advances by each amount in turn (Twisted's `pump`).
    pub fn pump(&self, steps: impl IntoIterator<Item = Duration>) {
        for step in steps {
            self.advance(step);
        }
    }

    /// The pending calls, earliest first; cancelled calls are not included.
    pub fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        self.timers.pending()
    }

    /// How many calls are pending.
    pub fn pending(&self) -> usize {
        self.timers.len()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("seconds", &self.seconds())
            .field("pending", &self.pending())
            .finish()
    }
}

impl ReactorTime for Clock {
    fn now(&self) -> Duration {
        self.timers.now()
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.timers.call_later(delay, f)
    }
}

/// What a [`LoopingCall`]'s function returns and what a [`cooperate`]d
/// iterator yields: `()` (this step is done), a `Result<(), E>` whose `Err`
/// (any error, or a `Failure`) fails the loop or task, a `Deferred` (the loop
/// or task waits for it; a failure fails it), or an `Option<Deferred>`.
/// Implement it for your own item types if they need another mapping.
pub trait WorkResult {
    /// `Ok(None)`: this step is done; `Ok(Some(d))`: wait for `d`; `Err`: the
    /// step failed.
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure>;
}

impl WorkResult for () {
    #[inline]
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure> {
        Ok(None)
    }
}

impl<E: Into<Failure>> WorkResult for Result<(), E> {
    #[inline]
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure> {
        self.map(|()| None).map_err(Into::into)
    }
}

impl<T: 'static> WorkResult for Deferred<T> {
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure> {
        Ok(Some(self.add_callback(|_| ())))
    }
}

impl<T: 'static> WorkResult for Option<Deferred<T>> {
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure> {
        Ok(self.map(|d| d.add_callback(|_| ())))
    }
}

/// Calls `f` after `delay` on the reactor and fires with its result
/// (Twisted's `task.deferLater(reactor, delay, f)`).
///
/// `f` may return a `Result` (an `Err` errbacks) or a Deferred (the result
/// waits for it), like [`maybe_deferred`](crate::defer::maybe_deferred); a
/// panic in `f` errbacks with [`Panicked`](crate::defer::Panicked). Cancelling
/// the returned Deferred before the delay has passed removes the pending call:
/// `f` never runs, and the Deferred fails with
/// [`CancelledError`](crate::defer::CancelledError).
///
/// ```
/// use std::time::Duration;
/// use twined::{reactor, task};
///
/// task::defer_later(Duration::from_millis(5), || Ok(6 * 7)).add_callback(|answer: u32| {
///     assert_eq!(answer, 42);
///     reactor::stop().unwrap();
/// });
/// reactor::run().unwrap();
/// ```
pub fn defer_later<T: 'static, R: Outcome<T>>(
    delay: Duration,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<T> {
    defer_later_on(&Current, delay, f)
}

/// A Deferred that fires with `()` after `delay`: `task::sleep(d).await` in
/// async code (`await deferLater(reactor, d)` in Twisted). Cancelling it
/// removes the timer.
///
/// ```
/// use std::time::Duration;
/// use twined::task;
///
/// let result = task::react_async(|| async {
///     task::sleep(Duration::from_millis(5)).await?;
///     Ok::<_, twined::defer::Failure>(42)
/// });
/// assert_eq!(result.unwrap(), 42);
/// ```
pub fn sleep(delay: Duration) -> Deferred<()> {
    defer_later(delay, || Ok(()))
}

/// [`defer_later`] on any [`ReactorTime`], such as a [`Clock`].
///
/// ```
/// use std::time::Duration;
/// use twined::task::{self, Clock};
///
/// let clock = Clock::new();
/// let d = task::defer_later_on(&clock, Duration::from_secs(3), || Ok("done"));
/// clock.advance(Duration::from_secs(2));
/// let d = d.try_result().unwrap_err();          // not yet
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(d.result(), Some(Ok("done")));
/// ```
pub fn defer_later_on<T: 'static, R: Outcome<T>>(
    time: &impl ReactorTime,
    delay: Duration,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<T> {
    let (d, trigger) = Deferred::<()>::new();
    let call = time.call_later_boxed(delay, Box::new(move || trigger.callback(())));
    // Weak: the chain must not keep the call (which owns the trigger) alive,
    // or a dropped clock would leave a cycle instead of failing the Deferred
    // with `TriggerDropped`.
    let call = call.downgrade();
    d.then(move |result: Result<(), Failure>| {
        // A cancel got here first: remove the pending call. Dropping its
        // function drops the trigger, which does nothing to a fired Deferred.
        if let Some(call) = call.upgrade() {
            if call.active() {
                let _ = call.cancel();
            }
        }
        result
    })
    .and_then(move |()| f())
}
