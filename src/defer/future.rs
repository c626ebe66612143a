//! Deferreds and `async`/`await`, both ways: a [`Deferred`] is a `Future`,
//! and [`ensure_deferred`] runs a future on this thread's reactor as a
//! Deferred (Twisted's `ensureDeferred` / `Deferred.fromCoroutine`, and the
//! replacement for `@inlineCallbacks`).
//!
//! Tasks live on the thread that made them. A task is polled when a Deferred
//! (or any future) it awaits wakes it: from the reactor thread at once, or,
//! if the wake comes while another task is being polled, right after that
//! poll, so polls never nest more than one level and a long run of
//! already-fired awaits runs in a loop, not a recursion. A wake from another
//! thread goes through the thread's [`Handle`]: the reactor drains it.
//!
//! [`ensure_deferred`] shows the `@inlineCallbacks` pattern side by side.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use super::chain::{self, Chain};
use super::deferred::unbox_result;
use super::{CancelledError, Deferred, Failure, Panicked, Trigger};
use crate::time::Handle;

/// Awaiting a Deferred gives its result; a failure is the `Err` (so `?`
/// propagates it, as a `yield` raises in `@inlineCallbacks`). The result is
/// moved out: awaiting a failed Deferred counts as handling its failure.
///
/// Dropping a Deferred that is being awaited does **not** cancel it: a
/// Deferred handle is routinely dropped in callback style while its chain is
/// meant to run on (Twisted never cancels a Deferred because nobody holds
/// it). Cancel explicitly with [`Deferred::cancel`], or cancel the
/// [`ensure_deferred`] Deferred, which cancels what its future awaits.
///
/// Because a Deferred is a future, clippy's `let_underscore_future` flags
/// `let _ = d.add_callback(..);`: write the statement without `let _ =`.
impl<T: 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.chain.poll_final(cx.waker()) {
            Some(result) => Poll::Ready(unbox_result(result)),
            None => {
                let _ = CURRENT.try_with(|current| {
                    if let Some(task) = current.borrow().as_ref() {
                        *task.awaiting.borrow_mut() = Some(Rc::downgrade(&self.chain));
                    }
                });
                Poll::Pending
            }
        }
    }
}

/// Fires a task's Deferred with a failure.
type FailTask = Box<dyn FnOnce(Failure)>;

/// One future driven on this thread.
struct Task {
    key: Cell<usize>,
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    queued: Cell<bool>,
    /// The Deferred the future waits on now, for cancellation.
    awaiting: RefCell<Option<Weak<Chain>>>,
    waker: RefCell<Option<Waker>>,
    /// Fires the task's Deferred with a failure (a panic).
    fail: RefCell<Option<FailTask>>,
}

thread_local! {
    static TASKS: RefCell<Slab<Rc<Task>>> = const { RefCell::new(Slab::new()) };
    static READY: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    static CURRENT: RefCell<Option<Rc<Task>>> = const { RefCell::new(None) };
    /// Its address tells a waker whether it runs on the task's thread.
    static THREAD_MARK: u8 = const { 0 };
}

fn thread_mark() -> usize {
    THREAD_MARK
        .try_with(|m| m as *const u8 as usize)
        .unwrap_or(0)
}

/// Wakes one task: `Send + Sync`, as `std::task::Waker` requires.
struct TaskWaker {
    key: usize,
    thread: usize,
    handle: Handle,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let same_thread = THREAD_MARK
            .try_with(|m| m as *const u8 as usize == self.thread)
            .unwrap_or(false);
        if same_thread {
            schedule(self.key);
        } else {
            let key = self.key;
            self.handle.call_from_thread(move || schedule(key));
        }
    }
}

/// Queues the task `key` for a poll; polls now unless a poll is under way.
fn schedule(key: usize) {
    let task = TASKS
        .try_with(|t| t.borrow().get(key).cloned())
        .ok()
        .flatten();
    let Some(task) = task else { return };
    if task.queued.replace(true) {
        return;
    }
    let _ = READY.try_with(|r| r.borrow_mut().push_back(key));
    if DRAINING.try_with(Cell::get) == Ok(false) {
        drain();
    }
}

/// Polls queued tasks until none is left.
fn drain() {
    if DRAINING.try_with(|d| d.set(true)).is_err() {
        return; // the thread is exiting
    }
    while let Some(key) = READY
        .try_with(|r| r.borrow_mut().pop_front())
        .ok()
        .flatten()
    {
        let task = TASKS
            .try_with(|t| t.borrow().get(key).cloned())
            .ok()
            .flatten();
        if let Some(task) = task {
            poll_task(&task);
        }
    }
    let _ = DRAINING.try_with(|d| d.set(false));
}

/// Polls `task` once; removes it when it completes or panics.
fn poll_task(task: &Rc<Task>) {
    task.queued.set(false);
    let Some(mut future) = task.future.borrow_mut().take() else {
        return; // being polled further up the stack, or finished
    };
    let waker = task.waker.borrow().clone();
    let Some(waker) = waker else { return };
    let previous = CURRENT
        .try_with(|c| c.replace(Some(task.clone())))
        .ok()
        .flatten();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        future.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    match polled {
        Ok(Poll::Pending) => *task.future.borrow_mut() = Some(future),
        Ok(Poll::Ready(())) => finish(task),
        Err(panic) => {
            drop(future);
            let fail = task.fail.borrow_mut().take();
            finish(task);
            if let Some(fail) = fail {
                fail(Failure::new(Panicked::from_payload(panic)));
            }
        }
    }
}

fn finish(task: &Rc<Task>) {
    let key = task.key.get();
    let _ = TASKS.try_with(|t| {
        let mut tasks = t.borrow_mut();
        if tasks.get(key).is_some_and(|t| Rc::ptr_eq(t, task)) {
            tasks.remove(key);
        }
    });
    task.awaiting.borrow_mut().take();
    task.waker.borrow_mut().take();
}

/// What a task's Deferred and its cancel handling share.
struct Outer<T> {
    trigger: RefCell<Option<Trigger<T>>>,
    running: Cell<bool>,
    task: RefCell<Weak<Task>>,
}

/// A Deferred for the task's result. A cancel cancels what the future
/// awaits; if the future recovers and goes on, the cancel's
/// `CancelledError` is caught here and the returned Deferred waits for the
/// future again (Twisted: "a suppressed cancel leaves the outer unfired").
fn outer_deferred<T: 'static>(outer: &Rc<Outer<T>>) -> Deferred<T> {
    let for_cancel = outer.clone();
    let (d, trigger) = Deferred::with_canceller(move |_canceller| {
        let task = for_cancel.task.borrow().upgrade();
        if let Some(task) = task {
            let awaited = task.awaiting.borrow().as_ref().and_then(Weak::upgrade);
            match awaited {
                Some(awaited) => chain::cancel(&awaited),
                None => {
                    // It awaits some other future: cancel it the Rust way,
                    // by dropping it (Twisted's `Deferred.fromFuture`
                    // cancels the future). The Deferred then fails with
                    // CancelledError.
                    let future = task.future.borrow_mut().take();
                    if future.is_some() {
                        for_cancel.running.set(false);
                        finish(&task);
                        drop(future);
                    }
                }
            }
        }
    });
    *outer.trigger.borrow_mut() = Some(trigger);
    let again = outer.clone();
    d.or_else(move |failure: Failure| {
        if failure.check::<CancelledError>() && again.running.get() {
            // The future is still running: it caught the cancel.
            outer_deferred(&again)
        } else {
            super::fail(failure)
        }
    })
}

/// Runs `future` on this thread's reactor and returns a Deferred of its
/// result (Twisted's `ensureDeferred`, `Deferred.fromCoroutine`, and the
/// replacement for `@inlineCallbacks`).
///
/// - The future is polled at once: if it completes without waiting, the
///   Deferred has fired when this returns.
/// - Cancelling the Deferred cancels the Deferred the future is awaiting;
///   the future sees `Err` of [`CancelledError`] and may give up (the
///   Deferred fails with it) or recover and go on (the Deferred waits on).
/// - A panic inside the future becomes a [`Panicked`] failure.
/// - Any `Future` can be awaited inside, not only Deferreds: wakes from
///   other threads reach this thread's reactor through its
///   `call_from_thread` queue, so the reactor must be running for them.
///
/// ```
/// use std::time::Duration;
/// use twined::defer::{ensure_deferred, Failure};
/// use twined::{reactor, task};
///
/// let d = ensure_deferred(async {
///     task::sleep(Duration::from_millis(5)).await?;
///     Ok::<_, Failure>("done")
/// })
/// .add_callback(|s| {
///     reactor::stop().unwrap();
///     s
/// });
/// reactor::run().unwrap();
/// assert_eq!(d.result().unwrap().unwrap(), "done");
/// ```
///
/// Side by side with `@inlineCallbacks`:
///
/// ```
/// use twined::defer::{ensure_deferred, succeed, Failure};
///
/// // Twisted:
/// //   @inlineCallbacks
/// //   def total():
/// //       a = yield succeed(1)
/// //       b = yield succeed(2)
/// //       returnValue(a + b)
/// let d = ensure_deferred(async {
///     let a = succeed(1).await?;
///     let b = succeed(2).await?;
///     Ok::<_, Failure>(a + b)
/// });
/// assert_eq!(d.result().unwrap().unwrap(), 3);
/// ```
pub fn ensure_deferred<T: 'static>(
    future: impl Future<Output = Result<T, Failure>> + 'static,
) -> Deferred<T> {
    let outer = Rc::new(Outer {
        trigger: RefCell::new(None),
        running: Cell::new(true),
        task: RefCell::new(Weak::new()),
    });
    let d = outer_deferred(&outer);
    let done = outer.clone();
    let wrapped = async move {
        let result = future.await;
        done.running.set(false);
        let trigger = done.trigger.borrow_mut().take();
        if let Some(trigger) = trigger {
            trigger.fire_with(result);
        }
    };
    let failed = outer.clone();
    let task = Rc::new(Task {
        key: Cell::new(0),
        future: RefCell::new(Some(Box::pin(wrapped))),
        queued: Cell::new(false),
        awaiting: RefCell::new(None),
        waker: RefCell::new(None),
        fail: RefCell::new(Some(Box::new(move |failure| {
            failed.running.set(false);
            let trigger = failed.trigger.borrow_mut().take();
            if let Some(trigger) = trigger {
                trigger.errback(failure);
            }
        }))),
    });
    let Ok(key) = TASKS.try_with(|t| t.borrow_mut().insert(task.clone())) else {
        return super::fail(Failure::msg("the thread is exiting"));
    };
    task.key.set(key);
    *task.waker.borrow_mut() = Some(Waker::from(Arc::new(TaskWaker {
        key,
        thread: thread_mark(),
        handle: Handle::current(),
    })));
    *outer.task.borrow_mut() = Rc::downgrade(&task);
    // The first poll is direct, so a future that needs no waiting fires now.
    let draining = DRAINING.try_with(|d| d.replace(true)).unwrap_or(true);
    poll_task(&task);
    if !draining {
        let _ = DRAINING.try_with(|d| d.set(false));
        if READY.try_with(|r| !r.borrow().is_empty()).unwrap_or(false) {
            drain();
        }
    }
    d
}
