//! `LoopingCall`: call a function every interval (Twisted's
//! `task.LoopingCall`).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::WorkResult;
use crate::defer::report::report_error;
use crate::defer::{Deferred, Failure, Trigger};
use crate::time::{Current, ReactorTime, WeakDelayedCall};

/// Misuse of a [`LoopingCall`] (Twisted asserts on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopingCallError {
    /// `start` on a loop that is running: stop it first.
    AlreadyRunning,
    /// `stop` or `reset` on a loop that is not running.
    NotRunning,
}

impl fmt::Display for LoopingCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopingCallError::AlreadyRunning => {
                f.write_str("the LoopingCall is already running (stop it before starting it again)")
            }
            LoopingCallError::NotRunning => f.write_str("the LoopingCall is not running"),
        }
    }
}

impl Error for LoopingCallError {}

type Step = Result<Option<Deferred<()>>, Failure>;

enum LoopFn {
    Plain(Box<dyn FnMut() -> Step>),
    Counted(Box<dyn FnMut(u64) -> Step>),
    /// Receives the loop itself (so it can stop it).
    Handle(Box<dyn FnMut(&LoopingCall) -> Step>),
}

struct State {
    running: bool,
    interval: Option<Duration>,
    start_time: Duration,
    run_at_start: bool,
    /// `with_count`: when the function last ran (Twisted's `_realLastTime`).
    last_time: Option<Duration>,
    /// The next scheduled call, if one is pending.
    call: Option<WeakDelayedCall>,
    /// Incremented by each `start`, so the completion of a call made by an
    /// earlier run cannot reschedule the current one.
    generation: u64,
    /// Fires the Deferred `start` returned for the current run.
    trigger: Option<Trigger<LoopingCall>>,
    /// Runs that were stopped while their function's Deferred was pending and
    /// then restarted: their Deferreds fire when those calls finish.
    stopping: Vec<(u64, Trigger<LoopingCall>)>,
}

struct Inner {
    /// Taken out while the function runs, so a re-entrant call is detected
    /// instead of double-borrowing.
    f: RefCell<Option<LoopFn>>,
    time: RefCell<Rc<dyn ReactorTime>>,
    st: RefCell<State>,
}

/// Calls a function every `interval` (Twisted's `task.LoopingCall`).
///
/// - `start(interval, now)` calls the function at once when `now` is true,
///   then at `start + k * interval`; it returns a Deferred that fires with
///   the `LoopingCall` when [`stop`](Self::stop) is called, or fails with the
///   function's failure (an `Err`, a failed Deferred or a panic), which also
///   stops the loop.
/// - The function returns anything [`WorkResult`]: `()`, a `Result`, or a
///   Deferred, which delays the next call until it fires.
/// - Intervals missed because the reactor (or the function) was busy are
///   skipped: the next call is at the next interval boundary still in the
///   future. [`with_count`](Self::with_count) passes the function how many
///   intervals elapsed since it last ran (Twisted's `withCount`).
/// - It runs on the reactor unless given another [`ReactorTime`] with
///   [`with_clock`](Self::with_clock), such as a [`Clock`](super::Clock).
///
/// The handle is cheap to clone (all clones are the same loop). While a call
/// is scheduled, the clock keeps the loop alive, so a started loop runs on
/// after its handles are dropped, as in Twisted; [`stop`](Self::stop) it to
/// end it. (A loop on a [`Clock`](super::Clock) also keeps that clock alive
/// until it is stopped.)
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use twined::task::{Clock, LoopingCall};
///
/// let clock = Clock::new();
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let lc = LoopingCall::new(move || t.set(t.get() + 1)).with_clock(clock.clone());
/// let done = lc.start(Duration::from_secs(1), true).unwrap();
/// assert_eq!(ticks.get(), 1);                    // now = true: called at once
/// clock.pump([Duration::from_secs(1); 3]);
/// assert_eq!(ticks.get(), 4);
/// lc.stop().unwrap();
/// assert!(done.result().unwrap().is_ok());       // fires with the LoopingCall
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<Inner>,
}

impl LoopingCall {
    fn from_fn(f: LoopFn) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(Inner {
                f: RefCell::new(Some(f)),
                time: RefCell::new(Rc::new(Current)),
                st: RefCell::new(State {
                    running: false,
                    interval: None,
                    start_time: Duration::ZERO,
                    run_at_start: false,
                    last_time: None,
                    call: None,
                    generation: 0,
                    trigger: None,
                    stopping: Vec::new(),
                }),
            }),
        }
    }

    /// A loop that calls `f` (not started yet).
    pub fn new<R: WorkResult>(mut f: impl FnMut() -> R + 'static) -> LoopingCall {
        LoopingCall::from_fn(LoopFn::Plain(Box::new(move || f().into_work())))
    }

    /// A loop that calls `f` with the number of intervals that elapsed since
    /// it last ran: normally 1, more when calls were skipped because the
    /// reactor or the function took too long; always 1 with a zero interval
    /// (Twisted's `LoopingCall.withCount`). A wake-up that finds no interval
    /// boundary crossed does not call `f`.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// use twined::task::{Clock, LoopingCall};
    ///
    /// let clock = Clock::new();
    /// let counts = Rc::new(RefCell::new(Vec::new()));
    /// let c = counts.clone();
    /// let lc = LoopingCall::with_count(move |n| c.borrow_mut().push(n)).with_clock(clock.clone());
    /// lc.start(Duration::from_secs(1), true).unwrap();
    /// clock.advance(Duration::from_millis(3500));    // the reactor was busy
    /// assert_eq!(*counts.borrow(), [1, 3]);
    /// # lc.stop().unwrap();
    /// ```
    pub fn with_count<R: WorkResult>(mut f: impl FnMut(u64) -> R + 'static) -> LoopingCall {
        LoopingCall::from_fn(LoopFn::Counted(Box::new(move |n| f(n).into_work())))
    }

    /// A loop whose function receives the loop itself, so that it can
    /// [`stop`](Self::stop) it (Twisted's `lc.stop()` from inside `f`, with
    /// no `Rc<OnceCell<LoopingCall>>` needed). A stop from inside the function
    /// ends the loop once the function returns (or once the Deferred it
    /// returned fires); the Deferred from [`start`](Self::start) then fires
    /// with the `LoopingCall`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twined::task::{Clock, LoopingCall};
    ///
    /// let clock = Clock::new();
    /// let mut left = 3;
    /// let lc = LoopingCall::with_handle(move |lc| {
    ///     left -= 1;
    ///     if left == 0 {
    ///         lc.stop().unwrap();                 // the third call is the last
    ///     }
    /// })
    /// .with_clock(clock.clone());
    /// let done = lc.start(Duration::from_secs(1), true).unwrap();
    /// clock.pump([Duration::from_secs(1); 5]);
    /// assert!(!lc.running());
    /// assert!(done.result().unwrap().is_ok());
    /// ```
    pub fn with_handle<R: WorkResult>(
        mut f: impl FnMut(&LoopingCall) -> R + 'static,
    ) -> LoopingCall {
        LoopingCall::from_fn(LoopFn::Handle(Box::new(move |lc| f(lc).into_work())))
    }

    /// Uses `time` instead of the reactor (Twisted's `lc.clock = clock`).
    /// Takes effect from the next call scheduled.
    pub fn with_clock(self, time: impl ReactorTime + 'static) -> LoopingCall {
        *self.inner.time.borrow_mut() = Rc::new(time);
        self
    }

    /// Starts calling the function every `interval`, at once if `now`. The
    /// Deferred fires with this `LoopingCall` once [`stop`](Self::stop) has
    /// been called and no call is in progress, or fails with the failure that
    /// stopped the loop. An error if the loop is already running.
    pub fn start(
        &self,
        interval: Duration,
        now: bool,
    ) -> Result<Deferred<LoopingCall>, LoopingCallError> {
        let time = self.time();
        let (d, trigger) = Deferred::new();
        let generation = {
            let mut st = self.inner.st.borrow_mut();
            if st.running {
                return Err(LoopingCallError::AlreadyRunning);
            }
            if let Some(previous) = st.trigger.take() {
                // The previous run was stopped while its last call was still
                // in progress; that call's completion will fire it.
                let generation = st.generation;
                st.stopping.push((generation, previous));
            }
            st.generation += 1;
            st.running = true;
            st.trigger = Some(trigger);
            st.interval = Some(interval);
            st.start_time = time.now();
            st.run_at_start = now;
            st.last_time = None;
            st.generation
        };
        if now {
            Inner::run_once(&self.inner, generation);
        } else {
            let start = self.inner.st.borrow().start_time;
            Inner::schedule_from(&self.inner, &*time, start, generation);
        }
        Ok(d)
    }

    /// Stops the loop: no further calls. The Deferred from `start` fires now,
    /// or, if the function's Deferred is pending, when it fires. An error if
    /// the loop is not running.
    pub fn stop(&self) -> Result<(), LoopingCallError> {
        let (call, trigger) = {
            let mut st = self.inner.st.borrow_mut();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            st.running = false;
            match st.call.take() {
                // No call in progress: the run is over now.
                Some(call) => (call.upgrade(), st.trigger.take()),
                None => (None, None),
            }
        };
        if let Some(call) = call {
            // Dropping its function here drops a clone of the loop's `Rc`,
            // never the last one (`self` holds one).
            let _ = call.cancel();
        }
        if let Some(trigger) = trigger {
            trigger.callback(self.clone());
        }
        Ok(())
    }

    /// Skips the pending call and restarts the interval from now (Twisted's
    /// `reset`); with [`with_count`](Self::with_count), the first call after
    /// it counts 1. Does nothing while a call is in progress. An error if the
    /// loop is not running.
    pub fn reset(&self) -> Result<(), LoopingCallError> {
        let time = self.time();
        let (call, generation) = {
            let mut st = self.inner.st.borrow_mut();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            (st.call.take(), st.generation)
        };
        if let Some(call) = call {
            if let Some(call) = call.upgrade() {
                let _ = call.cancel();
            }
            let now = time.now();
            {
                let mut st = self.inner.st.borrow_mut();
                st.start_time = now;
                // The count restarts too: the first call after a reset counts
                // one interval (Twisted truncates the negative interval
                // number of an earlier last call to 0, which gives the same).
                if st.last_time.is_some() {
                    st.last_time = Some(now);
                }
            }
            Inner::schedule_from(&self.inner, &*time, now, generation);
        }
        Ok(())
    }

    /// Whether the loop is running (started and not stopped or failed).
    pub fn running(&self) -> bool {
        self.inner.st.borrow().running
    }

    /// The interval of the current or last run; `None` before the first start.
    pub fn interval(&self) -> Option<Duration> {
        self.inner.st.borrow().interval
    }

    /// Changes the interval (Twisted's `lc.interval = x`); it takes effect when
    /// the next call is scheduled.
    pub fn set_interval(&self, interval: Duration) {
        self.inner.st.borrow_mut().interval = Some(interval);
    }

    fn time(&self) -> Rc<dyn ReactorTime> {
        self.inner.time.borrow().clone()
    }
}

impl Inner {
    /// Schedules the next call at the first interval boundary after `when`
    /// (Twisted's `_scheduleFrom`): boundaries that already passed are skipped.
    fn schedule_from(me: &Rc<Inner>, time: &dyn ReactorTime, when: Duration, generation: u64) {
        let delay = {
            let st = me.st.borrow();
            let interval = st.interval.unwrap_or_default().as_nanos();
            if interval == 0 {
                Duration::ZERO
            } else {
                let running_for = when.saturating_sub(st.start_time).as_nanos();
                nanos(interval - running_for % interval)
            }
        };
        let inner = me.clone();
        let call =
            time.call_later_boxed(delay, Box::new(move || Inner::run_once(&inner, generation)));
        me.st.borrow_mut().call = Some(call.downgrade());
    }

    /// One call of the function (Twisted's `LoopingCall.__call__`).
    fn run_once(me: &Rc<Inner>, generation: u64) {
        let time = me.time.borrow().clone();
        {
            let mut st = me.st.borrow_mut();
            st.call = None;
            if !st.running || st.generation != generation {
                return;
            }
        }
        let Some(mut f) = me.f.borrow_mut().take() else {
            // The function is running further up this stack (it stopped and
            // restarted the loop with `now`): make this call right after it.
            let inner = me.clone();
            let call = time.call_later_boxed(
                Duration::ZERO,
                Box::new(move || Inner::run_once(&inner, generation)),
            );
            me.st.borrow_mut().call = Some(call.downgrade());
            return;
        };
        let count = match &f {
            LoopFn::Plain(_) | LoopFn::Handle(_) => None,
            LoopFn::Counted(_) => match me.count(time.now()) {
                Some(count) => Some(count),
                None => {
                    // Woken up within the same interval: nothing to report.
                    *me.f.borrow_mut() = Some(f);
                    Inner::done(me, &*time, generation);
                    return;
                }
            },
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| match &mut f {
            LoopFn::Plain(g) => g(),
            LoopFn::Counted(g) => g(count.unwrap_or(1)),
            LoopFn::Handle(g) => g(&LoopingCall { inner: me.clone() }),
        }));
        *me.f.borrow_mut() = Some(f);
        match outcome {
            Err(panic) => Inner::fail(me, generation, Failure::from_panic(panic)),
            Ok(Err(failure)) => Inner::fail(me, generation, failure),
            Ok(Ok(None)) => Inner::done(me, &*time, generation),
            Ok(Ok(Some(d))) => {
                let inner = me.clone();
                d.add_both(move |result| {
                    let time = inner.time.borrow().clone();
                    match result {
                        Ok(()) => Inner::done(&inner, &*time, generation),
                        Err(failure) => Inner::fail(&inner, generation, failure),
                    }
                });
            }
        }
    }

    /// `with_count`'s count at `now`, or `None` if no interval boundary was
    /// crossed since the last call (Twisted's `counter`).
    fn count(&self, now: Duration) -> Option<u64> {
        let mut st = self.st.borrow_mut();
        let interval = st.interval.unwrap_or_default().as_nanos() as i128;
        if interval == 0 {
            st.last_time = Some(now);
            return Some(1);
        }
        let start = st.start_time.as_nanos() as i128;
        let last = match st.last_time {
            Some(last) => last.as_nanos() as i128,
            None if st.run_at_start => start - interval,
            None => start,
        };
        let interval_of = |t: i128| (t - start).div_euclid(interval);
        let count = interval_of(now.as_nanos() as i128) - interval_of(last);
        if count > 0 {
            st.last_time = Some(now);
            Some(u64::try_from(count).unwrap_or(u64::MAX))
        } else {
            None
        }
    }

    /// A call of run `generation` finished well: schedule the next one, or
    /// fire the run's Deferred if it was stopped meanwhile.
    fn done(me: &Rc<Inner>, time: &dyn ReactorTime, generation: u64) {
        let trigger = {
            let mut st = me.st.borrow_mut();
            if st.generation == generation && st.running {
                None
            } else {
                Some(take_trigger(&mut st, generation))
            }
        };
        match trigger {
            None => Inner::schedule_from(me, time, time.now(), generation),
            Some(Some(trigger)) => trigger.callback(LoopingCall { inner: me.clone() }),
            Some(None) => {}
        }
    }

    /// A call of run `generation` failed: the run ends with `failure`.
    fn fail(me: &Rc<Inner>, generation: u64, failure: Failure) {
        let (call, trigger) = {
            let mut st = me.st.borrow_mut();
            let call = if st.generation == generation {
                st.running = false;
                st.call.take()
            } else {
                None
            };
            (call, take_trigger(&mut st, generation))
        };
        if let Some(call) = call.and_then(|call| call.upgrade()) {
            let _ = call.cancel();
        }
        match trigger {
            Some(trigger) => trigger.errback(failure),
            None => report_error!("a LoopingCall's function failed after its run ended: {failure}"),
        }
    }
}

/// The trigger of run `generation`: the current one, or a stopped one that was
/// waiting for its last call.
fn take_trigger(st: &mut State, generation: u64) -> Option<Trigger<LoopingCall>> {
    if st.generation == generation {
        st.trigger.take()
    } else {
        let at = st.stopping.iter().position(|(g, _)| *g == generation)?;
        Some(st.stopping.swap_remove(at).1)
    }
}

fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

impl PartialEq for LoopingCall {
    /// Handles are equal when they are the same loop.
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for LoopingCall {}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("LoopingCall")
            .field("running", &st.running)
            .field("interval", &st.interval)
            .finish_non_exhaustive()
    }
}
