//! Timed calls: a heap of `DelayedCall`s ordered by `(deadline, sequence)`.
//!
//! One `TimerQueue` serves the reactor (monotonic real time) and
//! [`task::Clock`](crate::task::Clock) (virtual time moved by `advance`), so
//! both order calls the same way: earliest deadline first and, for equal
//! deadlines, in the order they were scheduled. (Twisted's real reactors do not
//! guarantee the second part: its issue 6718.)
//!
//! `cancel`, `reset` and `delay` are lazy: they leave the old heap entry in
//! place and mark it stale (a new sequence number for reset/delay); stale
//! entries are skipped when they reach the top, and the heap is rebuilt when
//! more than half of it is stale. Every operation is O(log n), so 100,000
//! timers stay fast (Twisted's `Clock` is quadratic).

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::error::Error;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// Why a [`DelayedCall`] could not be cancelled, reset or delayed (Twisted's
/// `AlreadyCancelled` / `AlreadyCalled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayedCallError {
    /// The call was cancelled before.
    AlreadyCancelled,
    /// The call has already run (or is running).
    AlreadyCalled,
}

impl fmt::Display for DelayedCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DelayedCallError::AlreadyCancelled => {
                f.write_str("the delayed call was already cancelled")
            }
            DelayedCallError::AlreadyCalled => {
                f.write_str("the delayed call has already been called")
            }
        }
    }
}

impl Error for DelayedCallError {}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallState {
    Pending,
    Called,
    Cancelled,
}

struct Entry {
    deadline: Cell<Duration>,
    seq: Cell<u64>,
    state: Cell<CallState>,
    func: RefCell<Option<Box<dyn FnOnce()>>>,
    queue: Weak<Inner>,
}

/// A call scheduled by `call_later` (Twisted's `IDelayedCall`).
///
/// Dropping the handle does not cancel the call.
///
/// ```
/// use std::time::Duration;
/// use twined::task::Clock;
///
/// let clock = Clock::new();
/// let call = clock.call_later(Duration::from_secs(2), || println!("later"));
/// assert!(call.active());
/// call.delay(Duration::from_secs(1)).unwrap(); // now due at t = 3 s
/// assert_eq!(call.time(), Duration::from_secs(3));
/// call.cancel().unwrap();
/// assert!(!call.active());
/// ```
#[derive(Clone)]
pub struct DelayedCall {
    entry: Rc<Entry>,
}

impl DelayedCall {
    /// Cancels the call. Cancelling twice or after it ran is an error.
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        self.entry.state.set(CallState::Cancelled);
        // Drop the function now: it may hold resources.
        let func = self.entry.func.borrow_mut().take();
        drop(func);
        if let Some(queue) = self.entry.queue.upgrade() {
            queue.note_stale();
        }
        Ok(())
    }

    /// Moves the call to `delay` from now (Twisted's `reset`), earlier or later.
    pub fn reset(&self, delay: Duration) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        if let Some(queue) = self.entry.queue.upgrade() {
            let deadline = queue.now().saturating_add(delay);
            queue.reschedule(&self.entry, deadline);
        }
        Ok(())
    }

    /// Pushes the call `by` later than it was due (Twisted's `delay`).
    pub fn delay(&self, by: Duration) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        if let Some(queue) = self.entry.queue.upgrade() {
            let deadline = self.entry.deadline.get().saturating_add(by);
            queue.reschedule(&self.entry, deadline);
        }
        Ok(())
    }

    /// `true` until the call runs or is cancelled.
    pub fn active(&self) -> bool {
        self.entry.state.get() == CallState::Pending
    }

    /// Whether the call has run (it is marked before the function runs).
    pub fn called(&self) -> bool {
        self.entry.state.get() == CallState::Called
    }

    /// Whether the call was cancelled.
    pub fn cancelled(&self) -> bool {
        self.entry.state.get() == CallState::Cancelled
    }

    /// When the call is due, as time since its clock's start (Twisted's
    /// `getTime`).
    pub fn time(&self) -> Duration {
        self.entry.deadline.get()
    }

    /// A handle that does not keep the call (and what its function owns)
    /// alive once its clock has dropped it.
    pub(crate) fn downgrade(&self) -> WeakDelayedCall {
        WeakDelayedCall {
            entry: Rc::downgrade(&self.entry),
        }
    }

    fn check_pending(&self) -> Result<(), DelayedCallError> {
        match self.entry.state.get() {
            CallState::Pending => Ok(()),
            CallState::Called => Err(DelayedCallError::AlreadyCalled),
            CallState::Cancelled => Err(DelayedCallError::AlreadyCancelled),
        }
    }
}

/// A [`DelayedCall`] that its holder does not keep alive: for state that the
/// call's own function owns, where a strong handle would form a cycle.
#[derive(Clone)]
pub(crate) struct WeakDelayedCall {
    entry: Weak<Entry>,
}

impl WeakDelayedCall {
    /// The call, unless its clock has dropped it (it ran, or the clock is gone).
    pub(crate) fn upgrade(&self) -> Option<DelayedCall> {
        self.entry.upgrade().map(|entry| DelayedCall { entry })
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("time", &self.entry.deadline.get())
            .field("state", &self.entry.state.get())
            .finish()
    }
}

/// Two handles are equal when they are the same call (Twisted compares
/// `IDelayedCall`s by identity), so a test can find its call in
/// `get_delayed_calls()`.
impl PartialEq for DelayedCall {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.entry, &other.entry)
    }
}

impl Eq for DelayedCall {}

impl std::hash::Hash for DelayedCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Rc::as_ptr(&self.entry).hash(state);
    }
}

/// Calls order by when they are due, then by when they were scheduled (the
/// order they run in); calls of different clocks that tie on both order by
/// identity.
impl Ord for DelayedCall {
    fn cmp(&self, other: &Self) -> Ordering {
        let key = |c: &DelayedCall| (c.entry.deadline.get(), c.entry.seq.get());
        key(self)
            .cmp(&key(other))
            .then_with(|| Rc::as_ptr(&self.entry).cmp(&Rc::as_ptr(&other.entry)))
    }
}

impl PartialOrd for DelayedCall {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a queue's "now" comes from.
enum TimeBase {
    /// Monotonic time since `epoch`.
    Real(Instant),
    /// Virtual time, moved by `advance`.
    Virtual(Cell<Duration>),
}

struct HeapItem {
    deadline: Duration,
    seq: u64,
    entry: Rc<Entry>,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for HeapItem {}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl HeapItem {
    /// Whether this heap item still stands for a pending call.
    fn is_live(&self) -> bool {
        self.entry.state.get() == CallState::Pending && self.entry.seq.get() == self.seq
    }
}

struct Inner {
    base: TimeBase,
    heap: RefCell<BinaryHeap<Reverse<HeapItem>>>,
    next_seq: Cell<u64>,
    live: Cell<usize>,
}

/// A heap of timed calls on one time base. Cloning shares the queue.
#[derive(Clone)]
pub(crate) struct TimerQueue {
    inner: Rc<Inner>,
}

impl Inner {
    fn now(&self) -> Duration {
        match &self.base {
            TimeBase::Real(epoch) => epoch.elapsed(),
            TimeBase::Virtual(now) => now.get(),
        }
    }

    fn take_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    fn reschedule(&self, entry: &Rc<Entry>, deadline: Duration) {
        let seq = self.take_seq();
        entry.deadline.set(deadline);
        entry.seq.set(seq);
        self.heap.borrow_mut().push(Reverse(HeapItem {
            deadline,
            seq,
            entry: entry.clone(),
        }));
        self.compact_if_needed();
    }

    fn note_stale(&self) {
        self.live.set(self.live.get().saturating_sub(1));
        self.compact_if_needed();
    }

    /// Rebuilds the heap without stale items once they are the majority.
    fn compact_if_needed(&self) {
        let mut heap = self.heap.borrow_mut();
        if heap.len() > 64 && heap.len() > 2 * self.live.get() {
            let items = std::mem::take(&mut *heap).into_vec();
            *heap = items
                .into_iter()
                .filter(|Reverse(item)| item.is_live())
                .collect();
        }
    }
}

impl TimerQueue {
    /// A queue on monotonic real time, starting now.
    pub(crate) fn real() -> TimerQueue {
        TimerQueue::with_base(TimeBase::Real(Instant::now()))
    }

    /// A queue on virtual time, starting at zero.
    pub(crate) fn virtual_time() -> TimerQueue {
        TimerQueue::with_base(TimeBase::Virtual(Cell::new(Duration::ZERO)))
    }

    fn with_base(base: TimeBase) -> TimerQueue {
        TimerQueue {
            inner: Rc::new(Inner {
                base,
                heap: RefCell::new(BinaryHeap::new()),
                next_seq: Cell::new(0),
                live: Cell::new(0),
            }),
        }
    }

    /// Time since the queue's start.
    pub(crate) fn now(&self) -> Duration {
        self.inner.now()
    }

    /// Moves virtual time forward (no-op on a real-time queue).
    pub(crate) fn set_virtual_now(&self, now: Duration) {
        if let TimeBase::Virtual(cell) = &self.inner.base {
            cell.set(now);
        }
    }

    /// Schedules `func` to run `delay` from now.
    pub(crate) fn call_later(&self, delay: Duration, func: Box<dyn FnOnce()>) -> DelayedCall {
        let deadline = self.now().saturating_add(delay);
        let seq = self.inner.take_seq();
        let entry = Rc::new(Entry {
            deadline: Cell::new(deadline),
            seq: Cell::new(seq),
            state: Cell::new(CallState::Pending),
            func: RefCell::new(Some(func)),
            queue: Rc::downgrade(&self.inner),
        });
        self.inner.live.set(self.inner.live.get() + 1);
        self.inner.heap.borrow_mut().push(Reverse(HeapItem {
            deadline,
            seq,
            entry: entry.clone(),
        }));
        DelayedCall { entry }
    }

    /// Drops stale items from the top; returns the earliest live deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        let mut heap = self.inner.heap.borrow_mut();
        while let Some(Reverse(top)) = heap.peek() {
            if top.is_live() {
                return Some(top.deadline);
            }
            heap.pop();
        }
        None
    }

    /// Takes the earliest live call if it is due at `now` and was scheduled
    /// before sequence number `before` (so calls scheduled while running due
    /// calls can be left to the next round). Marks it called.
    pub(crate) fn pop_due(&self, now: Duration, before: u64) -> Option<Box<dyn FnOnce()>> {
        let entry = {
            let mut heap = self.inner.heap.borrow_mut();
            loop {
                let Reverse(top) = heap.peek()?;
                if !top.is_live() {
                    heap.pop();
                    continue;
                }
                if top.deadline > now || top.seq >= before {
                    return None;
                }
                let Reverse(item) = heap.pop()?;
                break item.entry;
            }
        };
        entry.state.set(CallState::Called);
        self.inner.live.set(self.inner.live.get().saturating_sub(1));
        let func = entry.func.borrow_mut().take();
        func
    }

    /// The next sequence number: everything scheduled from now on is `>=` it.
    pub(crate) fn seq_mark(&self) -> u64 {
        self.inner.next_seq.get()
    }

    /// The pending calls, earliest first (Twisted's `getDelayedCalls`).
    pub(crate) fn pending(&self) -> Vec<DelayedCall> {
        let heap = self.inner.heap.borrow();
        let mut items: Vec<&HeapItem> = heap
            .iter()
            .map(|Reverse(item)| item)
            .filter(|item| item.is_live())
            .collect();
        items.sort();
        items
            .into_iter()
            .map(|item| DelayedCall {
                entry: item.entry.clone(),
            })
            .collect()
    }

    /// How many calls are pending.
    pub(crate) fn len(&self) -> usize {
        self.inner.live.get()
    }
}
