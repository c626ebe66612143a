//! Coordination on the reactor thread with Deferreds: `DeferredLock`,
//! `DeferredSemaphore` and `DeferredQueue` (Twisted's names).
//!
//! All three queue their waiters the same way ([`Waiters`]): first come,
//! first served, and a cancelled waiter is removed at once and errbacks with
//! `CancelledError`. The lock and the semaphore hand out guards that release
//! when dropped, so a lock cannot be leaked by an early return or a failure.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use super::{
    maybe_deferred, succeed, CancelledError, Deferred, InvalidTokens, Outcome, QueueOverflow,
    QueueUnderflow, Trigger,
};

/// A FIFO of Deferreds waiting for something, each removable by cancelling it.
struct Waiters<T> {
    next_id: u64,
    queue: VecDeque<(u64, Trigger<T>)>,
    /// A `release` is handing the resource on, further up the stack.
    handing_off: bool,
    /// Releases not handed on yet (see `release`).
    released: usize,
}

impl<T: 'static> Waiters<T> {
    fn new() -> Waiters<T> {
        Waiters {
            next_id: 0,
            queue: VecDeque::new(),
            handing_off: false,
            released: 0,
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn pop(&mut self) -> Option<Trigger<T>> {
        self.queue.pop_front().map(|(_, trigger)| trigger)
    }

    /// Queues a new waiter on `owner`, whose `Waiters` `field` selects.
    fn wait<S: 'static>(
        owner: &Rc<RefCell<S>>,
        field: fn(&mut S) -> &mut Waiters<T>,
    ) -> Deferred<T> {
        let weak: Weak<RefCell<S>> = Rc::downgrade(owner);
        let mut state = owner.borrow_mut();
        let waiters = field(&mut state);
        let id = waiters.next_id;
        waiters.next_id += 1;
        let (d, trigger) = Deferred::with_canceller(move |canceller| {
            let removed = weak.upgrade().and_then(|owner| {
                let mut state = owner.borrow_mut();
                let queue = &mut field(&mut state).queue;
                let at = queue.iter().position(|(i, _)| *i == id)?;
                queue.remove(at)
            });
            canceller.errback(CancelledError);
            drop(removed);
        });
        waiters.queue.push_back((id, trigger));
        d
    }

    /// Hands a released resource (a lock, a token) to the oldest waiter, or
    /// gives it back with `free` when nobody waits; `guard` makes the new
    /// holder's guard.
    ///
    /// The new holder's callbacks run inside `trigger.callback`, and often
    /// release at once (`run` with a synchronous function). Such a release,
    /// made while a handoff is under way further up the stack, is only
    /// counted, and the loop below hands it on: a lock passed through ten
    /// thousand waiters that each release it synchronously takes constant
    /// stack, instead of one nested handoff per waiter (which overflowed).
    fn release<S: 'static>(
        owner: &Rc<RefCell<S>>,
        field: fn(&mut S) -> &mut Waiters<T>,
        free: fn(&mut S),
        guard: impl Fn() -> T,
    ) {
        {
            let mut state = owner.borrow_mut();
            let waiters = field(&mut state);
            waiters.released += 1;
            if waiters.handing_off {
                return;
            }
            waiters.handing_off = true;
        }
        loop {
            let next = {
                let mut state = owner.borrow_mut();
                let waiters = field(&mut state);
                if waiters.released == 0 {
                    waiters.handing_off = false;
                    return;
                }
                waiters.released -= 1;
                let next = waiters.pop();
                if next.is_none() {
                    free(&mut state);
                }
                next
            };
            if let Some(trigger) = next {
                trigger.callback(guard());
            }
        }
    }
}

/// A lock for code that runs on the reactor (Twisted's `DeferredLock`).
///
/// [`acquire`](Self::acquire) fires with a [`LockGuard`] once the lock is free;
/// waiters are served in order; dropping the guard releases the lock.
/// Cloning gives another handle on the same lock.
///
/// Unlike Twisted's, handing the lock on never recurses: a guard dropped
/// inside the callback that received it passes the lock to the next waiter
/// when that callback returns, so any number of waiters that finish
/// synchronously run in constant stack. The same holds for
/// [`DeferredSemaphore`].
///
/// ```
/// use twined::defer::DeferredLock;
///
/// let lock = DeferredLock::new();
/// let first = lock.acquire().result().unwrap().unwrap();
/// let second = lock.acquire();                 // waits
/// assert!(!second.called());
/// drop(first);                                 // releases: second gets the lock
/// assert!(second.called());
/// ```
#[derive(Clone)]
pub struct DeferredLock {
    state: Rc<RefCell<LockState>>,
}

struct LockState {
    locked: bool,
    waiters: Waiters<LockGuard>,
}

/// Holds a [`DeferredLock`]; dropping it releases the lock.
pub struct LockGuard {
    lock: DeferredLock,
}

impl DeferredLock {
    /// An unlocked lock.
    pub fn new() -> DeferredLock {
        DeferredLock {
            state: Rc::new(RefCell::new(LockState {
                locked: false,
                waiters: Waiters::new(),
            })),
        }
    }

    /// Whether the lock is held.
    pub fn locked(&self) -> bool {
        self.state.borrow().locked
    }

    /// How many acquires are waiting.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.len()
    }

    /// Fires with a guard once the lock is free: at once if it is free now.
    /// Cancelling a waiting acquire removes it from the queue (it errbacks with
    /// `CancelledError`); cancelling after it fired does nothing.
    pub fn acquire(&self) -> Deferred<LockGuard> {
        let mut state = self.state.borrow_mut();
        if !state.locked {
            state.locked = true;
            drop(state);
            return succeed(LockGuard { lock: self.clone() });
        }
        drop(state);
        Waiters::wait(&self.state, |s| &mut s.waiters)
    }

    /// Runs `f` while holding the lock and releases it when `f`'s outcome (a
    /// `Result` or a Deferred) is final (Twisted's `DeferredLock.run`).
    pub fn run<U: 'static, R: Outcome<U>>(&self, f: impl FnOnce() -> R + 'static) -> Deferred<U> {
        self.acquire()
            .and_then(move |guard| maybe_deferred(f).then(move |result| hold_until(guard, result)))
    }

    fn release(&self) {
        Waiters::release(
            &self.state,
            |s| &mut s.waiters,
            |s| s.locked = false,
            || LockGuard { lock: self.clone() },
        );
    }
}

impl Default for DeferredLock {
    fn default() -> Self {
        DeferredLock::new()
    }
}

impl fmt::Debug for DeferredLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredLock")
            .field("locked", &self.locked())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.lock.release();
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Keeps `guard` alive until the result is passed on.
fn hold_until<G, U>(guard: G, result: Result<U, super::Failure>) -> Result<U, super::Failure> {
    drop(guard);
    result
}

/// Limits how many operations run at once (Twisted's `DeferredSemaphore`).
///
/// ```
/// use twined::defer::{Deferred, DeferredSemaphore};
///
/// let sem = DeferredSemaphore::new(2).unwrap();
/// let (a, ta) = Deferred::<()>::new();
/// let (b, _tb) = Deferred::<()>::new();
/// let (c, _tc) = Deferred::<()>::new();
/// let _ra = sem.run(move || a);
/// let _rb = sem.run(move || b);
/// let rc = sem.run(move || c);          // waits: two are running
/// assert_eq!(sem.tokens(), 0);
/// ta.callback(());                      // one finishes, the third starts
/// assert_eq!(sem.tokens(), 0);
/// assert!(rc.is_waiting());             // on `c`, which has not fired
/// ```
#[derive(Clone)]
pub struct DeferredSemaphore {
    state: Rc<RefCell<SemaphoreState>>,
}

struct SemaphoreState {
    tokens: usize,
    limit: usize,
    waiters: Waiters<SemaphoreGuard>,
}

/// Holds one token of a [`DeferredSemaphore`]; dropping it gives it back.
pub struct SemaphoreGuard {
    semaphore: DeferredSemaphore,
}

impl DeferredSemaphore {
    /// A semaphore with `tokens` tokens; zero is an error (Twisted raises
    /// `ValueError`).
    pub fn new(tokens: usize) -> Result<DeferredSemaphore, InvalidTokens> {
        if tokens < 1 {
            return Err(InvalidTokens);
        }
        Ok(DeferredSemaphore {
            state: Rc::new(RefCell::new(SemaphoreState {
                tokens,
                limit: tokens,
                waiters: Waiters::new(),
            })),
        })
    }

    /// Tokens free now.
    pub fn tokens(&self) -> usize {
        self.state.borrow().tokens
    }

    /// The number of tokens it was made with.
    pub fn limit(&self) -> usize {
        self.state.borrow().limit
    }

    /// How many acquires are waiting.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.len()
    }

    /// Fires with a guard holding one token, at once if one is free.
    pub fn acquire(&self) -> Deferred<SemaphoreGuard> {
        let mut state = self.state.borrow_mut();
        if state.tokens > 0 {
            state.tokens -= 1;
            drop(state);
            return succeed(SemaphoreGuard {
                semaphore: self.clone(),
            });
        }
        drop(state);
        Waiters::wait(&self.state, |s| &mut s.waiters)
    }

    /// Runs `f` with a token and gives the token back when `f`'s outcome is
    /// final (Twisted's `DeferredSemaphore.run`).
    pub fn run<U: 'static, R: Outcome<U>>(&self, f: impl FnOnce() -> R + 'static) -> Deferred<U> {
        self.acquire()
            .and_then(move |guard| maybe_deferred(f).then(move |result| hold_until(guard, result)))
    }

    fn release(&self) {
        Waiters::release(
            &self.state,
            |s| &mut s.waiters,
            |s| s.tokens += 1,
            || SemaphoreGuard {
                semaphore: self.clone(),
            },
        );
    }
}

impl fmt::Debug for DeferredSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSemaphore")
            .field("tokens", &self.tokens())
            .field("limit", &self.limit())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

impl fmt::Debug for SemaphoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}

/// A queue whose `get` returns a Deferred (Twisted's `DeferredQueue`).
///
/// `size` bounds the values held (a `put` beyond it is [`QueueOverflow`]);
/// `backlog` bounds the gets waiting (a `get` beyond it is [`QueueUnderflow`]).
///
/// ```
/// use twined::defer::DeferredQueue;
///
/// let q = DeferredQueue::new();
/// let got = q.get().unwrap();           // waits for a value
/// q.put("hello").unwrap();
/// assert_eq!(got.result(), Some(Ok("hello")));
/// ```
pub struct DeferredQueue<T> {
    state: Rc<RefCell<QueueState<T>>>,
}

struct QueueState<T> {
    pending: VecDeque<T>,
    waiters: Waiters<T>,
    size: Option<usize>,
    backlog: Option<usize>,
}

impl<T: 'static> DeferredQueue<T> {
    /// An unbounded queue.
    pub fn new() -> DeferredQueue<T> {
        DeferredQueue::with_limits(None, None)
    }

    /// A queue holding at most `size` values and `backlog` waiting gets
    /// (`None`: unbounded).
    pub fn with_limits(size: Option<usize>, backlog: Option<usize>) -> DeferredQueue<T> {
        DeferredQueue {
            state: Rc::new(RefCell::new(QueueState {
                pending: VecDeque::new(),
                waiters: Waiters::new(),
                size,
                backlog,
            })),
        }
    }

    /// Gives `value` to the oldest waiting get, or stores it; a full queue
    /// hands the value back in [`QueueOverflow`].
    pub fn put(&self, value: T) -> Result<(), QueueOverflow<T>> {
        let waiter = {
            let mut state = self.state.borrow_mut();
            match state.waiters.pop() {
                Some(waiter) => waiter,
                None => {
                    if state.size.is_some_and(|size| state.pending.len() >= size) {
                        return Err(QueueOverflow(value));
                    }
                    state.pending.push_back(value);
                    return Ok(());
                }
            }
        };
        waiter.callback(value);
        Ok(())
    }

    /// A Deferred for the next value: fired at once if one is stored.
    /// Cancelling a waiting get removes it from the backlog.
    pub fn get(&self) -> Result<Deferred<T>, QueueUnderflow> {
        let mut state = self.state.borrow_mut();
        if let Some(value) = state.pending.pop_front() {
            drop(state);
            return Ok(succeed(value));
        }
        if state
            .backlog
            .is_some_and(|backlog| state.waiters.len() >= backlog)
        {
            return Err(QueueUnderflow);
        }
        drop(state);
        Ok(Waiters::wait(&self.state, |s| &mut s.waiters))
    }

    /// Values stored and not yet taken.
    pub fn pending(&self) -> usize {
        self.state.borrow().pending.len()
    }

    /// Gets waiting for a value.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

impl<T: 'static> Default for DeferredQueue<T> {
    fn default() -> Self {
        DeferredQueue::new()
    }
}

impl<T> Clone for DeferredQueue<T> {
    fn clone(&self) -> Self {
        DeferredQueue {
            state: self.state.clone(),
        }
    }
}

impl<T> fmt::Debug for DeferredQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("DeferredQueue")
            .field("pending", &state.pending.len())
            .field("waiting", &state.waiters.queue.len())
            .field("size", &state.size)
            .field("backlog", &state.backlog)
            .finish()
    }
}
