//! `Cooperator`: run many iterators of work a little at a time, round-robin,
//! without starving the reactor (Twisted's `task.Cooperator`, `cooperate`,
//! `coiterate`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::WorkResult;
use crate::defer::report::report_error;
use crate::defer::{Deferred, Failure, Trigger};
use crate::time::{Current, ReactorTime, WeakDelayedCall};

/// Why a [`CooperativeTask`] operation was refused, or how a task ended
/// (Twisted's `TaskDone`, `TaskFailed`, `TaskStopped`, `SchedulerStopped`,
/// `NotPaused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskError {
    /// The task's iterator is exhausted: it finished.
    Done,
    /// The task failed (its iterator panicked, yielded an `Err` or a failed
    /// Deferred); [`when_done`](CooperativeTask::when_done) has that failure.
    Failed,
    /// The task was stopped with [`CooperativeTask::stop`].
    Stopped,
    /// The task's [`Cooperator`] was stopped.
    SchedulerStopped,
    /// [`resume`](CooperativeTask::resume) on a task that is not paused.
    NotPaused,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskError::Done => "the cooperative task has already finished",
            TaskError::Failed => "the cooperative task has already failed",
            TaskError::Stopped => "the cooperative task was stopped",
            TaskError::SchedulerStopped => "the Cooperator running the task was stopped",
            TaskError::NotPaused => "resume() on a cooperative task that is not paused",
        })
    }
}

impl Error for TaskError {}

/// One unit of a task's work: the iterator's `next()`, converted.
type Work = Box<dyn FnMut() -> Option<Result<Option<Deferred<()>>, Failure>>>;

#[derive(Clone)]
enum Completion {
    Done,
    Failed(Failure),
    Stopped,
    SchedulerStopped,
}

impl Completion {
    fn error(&self) -> TaskError {
        match self {
            Completion::Done => TaskError::Done,
            Completion::Failed(_) => TaskError::Failed,
            Completion::Stopped => TaskError::Stopped,
            Completion::SchedulerStopped => TaskError::SchedulerStopped,
        }
    }

    fn result(&self) -> Result<(), Failure> {
        match self {
            Completion::Done => Ok(()),
            Completion::Failed(failure) => Err(failure.clone()),
            other => Err(Failure::new(other.error())),
        }
    }
}

struct TaskState {
    pause_count: u32,
    completion: Option<Completion>,
    /// The ticket of this task's live entry in the run queue, if it has one.
    ticket: Option<u64>,
    waiters: Vec<Trigger<()>>,
}

struct TaskInner {
    id: u64,
    coop: Rc<CoopInner>,
    /// Taken out while a unit runs; dropped when the task completes.
    work: RefCell<Option<Work>>,
    st: RefCell<TaskState>,
}

/// A tick, handed to the scheduler.
type Tick = Box<dyn FnOnce()>;

enum Scheduler {
    Time(Rc<dyn ReactorTime>),
    Custom(Box<dyn Fn(Tick)>),
}

struct CoopState {
    started: bool,
    stopped: bool,
    /// Runnable tasks, round-robin. Entries whose ticket is no longer the
    /// task's are stale (the task was paused or completed) and are skipped.
    queue: VecDeque<(Rc<TaskInner>, u64)>,
    /// How many entries of `queue` are live.
    live: usize,
    next_ticket: u64,
    /// The token of the pending tick, if one is scheduled.
    tick: Option<u64>,
    next_tick: u64,
    /// The pending tick's timed call (time-based schedulers), to cancel it.
    call: Option<WeakDelayedCall>,
    /// Every task that has not completed, by id (for `stop`).
    members: BTreeMap<u64, Rc<TaskInner>>,
    next_id: u64,
}

struct CoopInner {
    scheduler: Scheduler,
    time_slice: Cell<Duration>,
    units_per_tick: Cell<usize>,
    st: RefCell<CoopState>,
}

/// Runs iterators of work a unit at a time, round-robin, in time slices
/// (Twisted's `task.Cooperator`).
///
/// Each call of an iterator's `next()` is one unit of work; the item it yields
/// is a [`WorkResult`]: `()` to go on, an `Err` to fail the task, or a
/// Deferred to pause the task until it fires. A tick runs units from the
/// tasks in turn until the time slice (10 ms by default) is used up, then
/// schedules the next tick with a zero-delay timed call, so I/O and timers get
/// their turn between ticks and the reactor stays responsive.
///
/// Differences from Twisted: stopping a Cooperator also finishes its *paused*
/// tasks (Twisted leaves them until they are resumed), and a task is a
/// type-erased handle, so [`when_done`](CooperativeTask::when_done) fires with
/// `()` ([`Cooperator::coiterate`] gives the iterator back).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twined::defer::DeferredList;
/// use twined::{reactor, task::Cooperator};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let coop = Cooperator::new();
/// let work = |name: &'static str| {
///     let log = log.clone();
///     (1..=2).map(move |i| log.borrow_mut().push(format!("{name}{i}")))
/// };
/// let a = coop.cooperate(work("a")).when_done();
/// let b = coop.cooperate(work("b")).when_done();
/// DeferredList::new(vec![a, b]).add_callback(|_| reactor::stop().unwrap());
/// reactor::run().unwrap();
/// assert_eq!(*log.borrow(), ["a1", "b1", "a2", "b2"]);
/// ```
#[derive(Clone)]
pub struct Cooperator {
    inner: Rc<CoopInner>,
}

/// A task run by a [`Cooperator`] (Twisted's `CooperativeTask`). Cloning gives
/// another handle on the same task.
#[derive(Clone)]
pub struct CooperativeTask {
    inner: Rc<TaskInner>,
}

const DEFAULT_TIME_SLICE: Duration = Duration::from_millis(10);

impl Cooperator {
    fn with(scheduler: Scheduler) -> Cooperator {
        Cooperator {
            inner: Rc::new(CoopInner {
                scheduler,
                time_slice: Cell::new(DEFAULT_TIME_SLICE),
                units_per_tick: Cell::new(usize::MAX),
                st: RefCell::new(CoopState {
                    started: true,
                    stopped: false,
                    queue: VecDeque::new(),
                    live: 0,
                    next_ticket: 0,
                    tick: None,
                    next_tick: 0,
                    call: None,
                    members: BTreeMap::new(),
                    next_id: 0,
                }),
            }),
        }
    }

    /// A started Cooperator that ticks on this thread's reactor.
    pub fn new() -> Cooperator {
        Cooperator::on(Current)
    }

    /// A started Cooperator that ticks on `time`, e.g. a
    /// [`Clock`](super::Clock). Ticks are zero-delay calls, and
    /// [`Clock::advance`](super::Clock::advance) runs calls that become due
    /// while it advances, so one `advance(Duration::ZERO)` runs ticks until
    /// every task has finished or paused; use
    /// [`with_scheduler`](Self::with_scheduler) to step tick by tick.
    pub fn on(time: impl ReactorTime + 'static) -> Cooperator {
        Cooperator::with(Scheduler::Time(Rc::new(time)))
    }

    /// A started Cooperator whose ticks are handed to `scheduler`, which must
    /// call each one later (Twisted's `Cooperator(scheduler=...)`). Tests use
    /// it to run one tick at a time.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use twined::task::Cooperator;
    ///
    /// let ticks: Rc<RefCell<Vec<Box<dyn FnOnce()>>>> = Rc::default();
    /// let t = ticks.clone();
    /// let coop = Cooperator::with_scheduler(move |tick| t.borrow_mut().push(tick))
    ///     .units_per_tick(1);
    /// let task = coop.cooperate((0..3).map(|_| ()));
    /// let pending = std::mem::take(&mut *ticks.borrow_mut());
    /// assert_eq!(pending.len(), 1);
    /// for tick in pending { tick(); }               // one unit of work
    /// # let _ = task;
    /// ```
    pub fn with_scheduler(scheduler: impl Fn(Box<dyn FnOnce()>) + 'static) -> Cooperator {
        Cooperator::with(Scheduler::Custom(Box::new(scheduler)))
    }

    /// Sets how long a tick may run units before yielding to the reactor
    /// (default 10 ms, Twisted's `_Timer`). Measured on the monotonic clock.
    pub fn time_slice(self, slice: Duration) -> Cooperator {
        self.inner.time_slice.set(slice);
        self
    }

    /// Caps how many units a tick runs (at least 1; default: no cap, only the
    /// time slice). With Twisted's `terminationPredicateFactory`, tests make
    /// each tick run exactly one unit; this is that.
    pub fn units_per_tick(self, units: usize) -> Cooperator {
        self.inner.units_per_tick.set(units.max(1));
        self
    }

    /// Leaves the Cooperator unstarted: tasks wait until [`start`](Self::start)
    /// (Twisted's `Cooperator(started=False)`).
    pub fn unstarted(self) -> Cooperator {
        self.inner.st.borrow_mut().started = false;
        self
    }

    /// Starts (or restarts after [`stop`](Self::stop)) running tasks.
    pub fn start(&self) {
        {
            let mut st = self.inner.st.borrow_mut();
            st.started = true;
            st.stopped = false;
        }
        CoopInner::reschedule(&self.inner);
    }

    /// Stops the Cooperator: every unfinished task, paused or not, finishes
    /// with [`TaskError::SchedulerStopped`], and tasks added later finish with
    /// it at once (until [`start`](Self::start)).
    pub fn stop(&self) {
        let members = {
            let mut st = self.inner.st.borrow_mut();
            st.stopped = true;
            std::mem::take(&mut st.members)
        };
        CoopInner::cancel_tick(&self.inner);
        for task in members.into_values() {
            TaskInner::complete(&task, Completion::SchedulerStopped);
        }
    }

    /// Whether the Cooperator is started and not stopped.
    pub fn running(&self) -> bool {
        let st = self.inner.st.borrow();
        st.started && !st.stopped
    }

    /// Adds an iterator of work (Twisted's `cooperate`): its `next()` is
    /// called once per turn until it returns `None`.
    pub fn cooperate<I>(&self, iter: I) -> CooperativeTask
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: WorkResult,
    {
        let mut iter = iter.into_iter();
        self.add(Box::new(move || iter.next().map(WorkResult::into_work)))
    }

    /// Like [`cooperate`](Self::cooperate), returning a Deferred that fires
    /// with the exhausted iterator, or fails as the task does (Twisted's
    /// `coiterate`).
    pub fn coiterate<I>(&self, iter: I) -> Deferred<I::IntoIter>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: WorkResult,
    {
        let cell = Rc::new(RefCell::new(Some(iter.into_iter())));
        let work = cell.clone();
        let task = self.add(Box::new(move || {
            let mut iter = work.borrow_mut();
            iter.as_mut()?.next().map(WorkResult::into_work)
        }));
        task.when_done().and_then(move |()| {
            cell.borrow_mut()
                .take()
                .ok_or_else(|| Failure::msg("twined bug: the coiterated iterator is gone"))
        })
    }

    fn add(&self, work: Work) -> CooperativeTask {
        let (task, stopped) = {
            let mut st = self.inner.st.borrow_mut();
            let id = st.next_id;
            st.next_id += 1;
            let task = Rc::new(TaskInner {
                id,
                coop: self.inner.clone(),
                work: RefCell::new(Some(work)),
                st: RefCell::new(TaskState {
                    pause_count: 0,
                    completion: None,
                    ticket: None,
                    waiters: Vec::new(),
                }),
            });
            if !st.stopped {
                st.members.insert(id, task.clone());
            }
            (task, st.stopped)
        };
        if stopped {
            TaskInner::complete(&task, Completion::SchedulerStopped);
        } else {
            CoopInner::enqueue(&self.inner, &task);
            CoopInner::reschedule(&self.inner);
        }
        CooperativeTask { inner: task }
    }
}

impl Default for Cooperator {
    fn default() -> Self {
        Cooperator::new()
    }
}

impl fmt::Debug for Cooperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("Cooperator")
            .field("running", &(st.started && !st.stopped))
            .field("tasks", &st.members.len())
            .field("runnable", &st.live)
            .finish()
    }
}

impl CoopInner {
    /// Appends `task` to the run queue unless it is already there.
    fn enqueue(me: &Rc<CoopInner>, task: &Rc<TaskInner>) {
        let mut st = me.st.borrow_mut();
        let mut ts = task.st.borrow_mut();
        if ts.ticket.is_some() || ts.completion.is_some() || ts.pause_count > 0 {
            return;
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        ts.ticket = Some(ticket);
        st.queue.push_back((task.clone(), ticket));
        st.live += 1;
    }

    /// Takes `task` out of the run queue (lazily: its entry goes stale).
    fn dequeue(me: &Rc<CoopInner>, ts: &mut TaskState) {
        if ts.ticket.take().is_some() {
            let mut st = me.st.borrow_mut();
            st.live -= 1;
            if st.live == 0 {
                // Nothing runnable: drop the stale entries now.
                st.queue.clear();
            }
        }
    }

    /// The next runnable task, taken out of the queue.
    fn pop(me: &Rc<CoopInner>) -> Option<Rc<TaskInner>> {
        let mut st = me.st.borrow_mut();
        while let Some((task, ticket)) = st.queue.pop_front() {
            let mut ts = task.st.borrow_mut();
            if ts.ticket == Some(ticket) {
                ts.ticket = None;
                drop(ts);
                st.live -= 1;
                return Some(task);
            }
        }
        None
    }

    /// Schedules a tick if there is work and none is pending.
    fn reschedule(me: &Rc<CoopInner>) {
        let token = {
            let mut st = me.st.borrow_mut();
            if !st.started || st.stopped || st.live == 0 || st.tick.is_some() {
                return;
            }
            let token = st.next_tick;
            st.next_tick += 1;
            st.tick = Some(token);
            token
        };
        let coop = me.clone();
        let tick = Box::new(move || CoopInner::tick(&coop, token));
        match &me.scheduler {
            Scheduler::Time(time) => {
                let call = time.call_later_boxed(Duration::ZERO, tick);
                me.st.borrow_mut().call = Some(call.downgrade());
            }
            Scheduler::Custom(schedule) => schedule(tick),
        }
    }

    /// Cancels the pending tick, if any.
    fn cancel_tick(me: &Rc<CoopInner>) {
        let call = {
            let mut st = me.st.borrow_mut();
            st.tick = None;
            st.call.take()
        };
        if let Some(call) = call.and_then(|call| call.upgrade()) {
            let _ = call.cancel();
        }
    }

    /// One time slice of work (Twisted's `_tick`).
    fn tick(me: &Rc<CoopInner>, token: u64) {
        {
            let mut st = me.st.borrow_mut();
            if st.tick != Some(token) {
                return; // cancelled, or superseded
            }
            st.tick = None;
            st.call = None;
        }
        let started = Instant::now();
        let (slice, limit) = (me.time_slice.get(), me.units_per_tick.get());
        let mut units = 0usize;
        while let Some(task) = CoopInner::pop(me) {
            TaskInner::one_unit(&task);
            CoopInner::enqueue(me, &task);
            units += 1;
            if units >= limit || started.elapsed() >= slice {
                break;
            }
        }
        CoopInner::reschedule(me);
    }
}

impl TaskInner {
    /// Runs one `next()` (Twisted's `_oneWorkUnit`).
    fn one_unit(me: &Rc<TaskInner>) {
        let Some(mut work) = me.work.borrow_mut().take() else {
            return;
        };
        let outcome = catch_unwind(AssertUnwindSafe(&mut work));
        if me.st.borrow().completion.is_none() {
            *me.work.borrow_mut() = Some(work);
        } else {
            // Stopped from inside its own `next()`.
            drop(work);
        }
        match outcome {
            Err(panic) => TaskInner::complete(me, Completion::Failed(Failure::from_panic(panic))),
            Ok(None) => TaskInner::complete(me, Completion::Done),
            Ok(Some(Err(failure))) => TaskInner::complete(me, Completion::Failed(failure)),
            Ok(Some(Ok(None))) => {}
            Ok(Some(Ok(Some(d)))) => {
                // Wait for it: a pause that the Deferred's result undoes.
                TaskInner::pause(me);
                let task = me.clone();
                d.add_both(move |result| match result {
                    Ok(()) => {
                        let _ = TaskInner::resume(&task);
                    }
                    Err(failure) => {
                        if task.st.borrow().completion.is_some() {
                            report_error!(
                                "a Deferred yielded by a cooperative task failed after the task \
                                 had ended: {failure}"
                            );
                        } else {
                            TaskInner::complete(&task, Completion::Failed(failure));
                        }
                    }
                });
            }
        }
    }

    fn pause(me: &Rc<TaskInner>) {
        let mut ts = me.st.borrow_mut();
        ts.pause_count += 1;
        if ts.pause_count == 1 {
            CoopInner::dequeue(&me.coop, &mut ts);
        }
    }

    fn resume(me: &Rc<TaskInner>) -> Result<(), TaskError> {
        {
            let mut ts = me.st.borrow_mut();
            if ts.pause_count == 0 {
                return Err(TaskError::NotPaused);
            }
            ts.pause_count -= 1;
            if ts.pause_count > 0 || ts.completion.is_some() {
                return Ok(());
            }
        }
        CoopInner::enqueue(&me.coop, me);
        CoopInner::reschedule(&me.coop);
        Ok(())
    }

    /// Ends the task (Twisted's `_completeWith`); a no-op if it has ended.
    fn complete(me: &Rc<TaskInner>, completion: Completion) {
        let waiters = {
            let mut ts = me.st.borrow_mut();
            if ts.completion.is_some() {
                return;
            }
            ts.completion = Some(completion.clone());
            CoopInner::dequeue(&me.coop, &mut ts);
            std::mem::take(&mut ts.waiters)
        };
        let removed = me.coop.st.borrow_mut().members.remove(&me.id);
        let work = me.work.borrow_mut().take();
        // Dropping the iterator may run user code: no borrow is held here.
        drop(work);
        if me.coop.st.borrow().live == 0 {
            CoopInner::cancel_tick(&me.coop);
        }
        // As in Twisted, the waiters run after the task is out of the
        // Cooperator, so they may stop it or add tasks.
        for waiter in waiters {
            waiter.fire_with(completion.result());
        }
        drop(removed);
    }
}

impl CooperativeTask {
    /// A Deferred that fires when the task ends: with `()` when its iterator is
    /// exhausted, with its failure when it failed, with
    /// [`TaskError::Stopped`] or [`TaskError::SchedulerStopped`] when stopped.
    /// Each call returns a new Deferred; after the end it has already fired.
    pub fn when_done(&self) -> Deferred<()> {
        let (d, trigger) = Deferred::new();
        let ended = self.inner.st.borrow().completion.clone();
        match ended {
            Some(completion) => trigger.fire_with(completion.result()),
            None => self.inner.st.borrow_mut().waiters.push(trigger),
        }
        d
    }

    /// Pauses the task; pauses nest, each needing a [`resume`](Self::resume).
    /// An error (how it ended) if the task has ended.
    pub fn pause(&self) -> Result<(), TaskError> {
        if let Some(completion) = &self.inner.st.borrow().completion {
            return Err(completion.error());
        }
        TaskInner::pause(&self.inner);
        Ok(())
    }

    /// Undoes one [`pause`](Self::pause); the task runs again from the next
    /// tick once none is left. [`TaskError::NotPaused`] if it is not paused;
    /// resuming an ended task that was paused is allowed and does nothing.
    pub fn resume(&self) -> Result<(), TaskError> {
        TaskInner::resume(&self.inner)
    }

    /// Stops the task: its iterator is dropped and
    /// [`when_done`](Self::when_done) fails with [`TaskError::Stopped`]. An
    /// error (how it ended) if the task has already ended.
    pub fn stop(&self) -> Result<(), TaskError> {
        if let Some(completion) = &self.inner.st.borrow().completion {
            return Err(completion.error());
        }
        TaskInner::complete(&self.inner, Completion::Stopped);
        Ok(())
    }

    /// Whether the task is paused (explicitly, or waiting on a yielded
    /// Deferred).
    pub fn is_paused(&self) -> bool {
        self.inner.st.borrow().pause_count > 0
    }

    /// How the task ended, or `None` while it has not: `Done`, `Failed`,
    /// `Stopped` or `SchedulerStopped`.
    pub fn ended(&self) -> Option<TaskError> {
        self.inner
            .st
            .borrow()
            .completion
            .as_ref()
            .map(Completion::error)
    }
}

impl fmt::Debug for CooperativeTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = self.inner.st.borrow();
        f.debug_struct("CooperativeTask")
            .field("paused", &ts.pause_count)
            .field("ended", &ts.completion.as_ref().map(Completion::error))
            .finish()
    }
}

thread_local! {
    static COOPERATOR: Cooperator = Cooperator::new();
}

/// Runs `iter` on this thread's global [`Cooperator`] (on the reactor)
/// (Twisted's `task.cooperate`).
pub fn cooperate<I>(iter: I) -> CooperativeTask
where
    I: IntoIterator,
    I::IntoIter: 'static,
    I::Item: WorkResult,
{
    COOPERATOR.with(|coop| coop.cooperate(iter))
}

/// Runs `iter` on this thread's global [`Cooperator`] and fires with the
/// exhausted iterator (Twisted's `task.coiterate`).
///
/// ```
/// use twined::{reactor, task};
///
/// task::coiterate((0..1000).map(|_| ())).add_callback(|_iter| reactor::stop().unwrap());
/// reactor::run().unwrap();
/// ```
pub fn coiterate<I>(iter: I) -> Deferred<I::IntoIter>
where
    I: IntoIterator,
    I::IntoIter: 'static,
    I::Item: WorkResult,
{
    COOPERATOR.with(|coop| coop.coiterate(iter))
}
