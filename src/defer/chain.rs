//! The chain engine behind every `Deferred`: a type-erased list of steps, a
//! result slot and the loop that runs them.
//!
//! `Deferred<T>` (in `deferred.rs`) is a typed handle on one `Chain`; the types
//! are checked there, at compile time, so the engine can move values around
//! type-erased, as [`Value`]s (inline when small, boxed otherwise).
//!
//! The runner is a loop with an explicit work list, never recursion: when a
//! step returns an unfired Deferred, the outer chain pauses and a `Continue`
//! step is appended to the inner chain; when the inner chain reaches that step,
//! its result is *moved* into the outer chain, which is pushed on the work list.
//! `chain_deferred` uses the same `Continue` step, so both kinds of chaining
//! run in constant stack however long the chain is.
//!
//! No `RefCell` borrow is held while user code (a step, a canceller) runs, so a
//! callback may freely add steps, fire, pause, cancel or drop any Deferred,
//! including its own. A step added while the chain runs is appended and run
//! after the current one returns (the `running` flag).

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use super::report::{report_error, report_warn};
use super::{debug, CancelledError, CircularChain, Failure};

pub(crate) use super::value::Value;
/// A chain's current result.
pub(crate) type Res = Result<Value, Failure>;

/// What a step produced: a result now, or a Deferred to wait for.
///
/// Public only so that the `Outcome` trait can name it; it cannot be built or
/// matched outside the crate (it cannot be named there), which is why its
/// crate-private payload is fine.
#[allow(private_interfaces)]
pub enum Next {
    #[doc(hidden)]
    Ready(Res),
    #[doc(hidden)]
    Wait(Rc<Chain>),
}

/// One entry of a chain.
pub(crate) enum Step {
    /// Runs on a success; a failure passes through untouched.
    Callback(Box<dyn FnOnce(Value) -> Next>),
    /// Runs on a failure; a success passes through untouched.
    Errback(Box<dyn FnOnce(Failure) -> Next>),
    /// Runs on either.
    Both(Box<dyn FnOnce(Res) -> Next>),
    /// Moves the result into another chain (Twisted's `_CONTINUE`).
    Continue(Rc<Chain>, Link),
}

/// How the target of a `Continue` step is linked to this chain.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The target is an outer chain paused while it waits for this one.
    Implicit,
    /// The target is an unfired chain that this one fires (`chain_deferred`).
    Explicit,
}

/// A FIFO of steps that keeps the first few inline: most chains have one to
/// three steps, and this saves the queue's allocation for them. Every inline
/// step was pushed before every overflow step (a push goes inline only while
/// the overflow is empty), so popping inline first keeps FIFO order.
#[derive(Default)]
struct Steps {
    inline: [Option<Step>; INLINE_STEPS],
    head: usize,
    len: usize,
    overflow: VecDeque<Step>,
}

const INLINE_STEPS: usize = 3;

impl Steps {
    #[inline]
    fn push_back(&mut self, step: Step) {
        if self.len < INLINE_STEPS && self.overflow.is_empty() {
            let mut at = self.head + self.len;
            if at >= INLINE_STEPS {
                at -= INLINE_STEPS;
            }
            self.inline[at] = Some(step);
            self.len += 1;
        } else {
            self.overflow.push_back(step);
        }
    }

    #[inline]
    fn pop_front(&mut self) -> Option<Step> {
        if self.len > 0 {
            let step = self.inline[self.head].take();
            self.head += 1;
            if self.head == INLINE_STEPS {
                self.head = 0;
            }
            self.len -= 1;
            step
        } else {
            self.overflow.pop_front()
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len == 0 && self.overflow.is_empty()
    }

    /// Empties the queue, dropping every step but keeping the target chains of
    /// the `Continue` steps in `targets`.
    fn drain_targets(&mut self, targets: &mut Vec<Rc<Chain>>) {
        while let Some(step) = self.pop_front() {
            if let Step::Continue(target, _) = step {
                targets.push(target);
            }
        }
    }
}

/// The shared state of one Deferred. Lives behind an `Rc`; see the module docs.
pub struct Chain {
    st: RefCell<State>,
}

struct State {
    /// `None` before firing, while a step runs, or after the result was moved.
    result: Option<Res>,
    called: bool,
    paused: u32,
    running: bool,
    cancelled: bool,
    /// Swallow one late result: set by a cancel without a canceller.
    suppress_late: bool,
    steps: Steps,
    canceller: Option<Box<dyn FnOnce(Rc<Chain>)>>,
    /// The chain this one waits for (Twisted's `_chainedTo`): once fired,
    /// the inner chain a step returned; before, the chain that
    /// `chain_deferred` will fire it from.
    waiting_on: Option<Weak<Chain>>,
    debug: Option<Box<DebugInfo>>,
    /// The task awaiting this chain's final result (`Deferred` as a `Future`).
    waker: Option<std::task::Waker>,
}

impl State {
    /// Fired, not paused and no step running: the next step may run now.
    fn runnable(&self) -> bool {
        self.called && self.paused == 0 && !self.running
    }

    /// Runnable with no step left: the result, if still there, is the final
    /// one, of the handle's type.
    fn is_final(&self) -> bool {
        self.runnable() && self.steps.is_empty()
    }
}

/// Where a Deferred was created and fired, recorded in debug mode.
struct DebugInfo {
    created: Backtrace,
    fired: Option<Backtrace>,
}

/// A read-only snapshot of a chain's state, for inspection and `Debug`.
pub(crate) struct Snapshot {
    pub called: bool,
    pub paused: u32,
    pub has_result: bool,
    pub waiting_on: Option<*const Chain>,
}

impl Chain {
    pub(crate) fn new(canceller: Option<Box<dyn FnOnce(Rc<Chain>)>>) -> Rc<Chain> {
        Rc::new(Chain {
            st: RefCell::new(State {
                result: None,
                called: false,
                paused: 0,
                running: false,
                cancelled: false,
                suppress_late: false,
                steps: Steps::default(),
                canceller,
                waiting_on: None,
                debug: debug::capture().map(|created| {
                    Box::new(DebugInfo {
                        created,
                        fired: None,
                    })
                }),
                waker: None,
            }),
        })
    }

    /// A chain that has already fired with `result` (`succeed`/`fail`).
    pub(crate) fn fired(result: Res) -> Rc<Chain> {
        let chain = Chain::new(None);
        {
            let mut st = chain.st.borrow_mut();
            st.called = true;
            st.result = Some(result);
        }
        chain
    }

    /// Appends a step, running it at once if the chain has fired and is idle.
    pub(crate) fn push(self: &Rc<Self>, step: Step) {
        let runnable = {
            let mut st = self.st.borrow_mut();
            st.steps.push_back(step);
            st.runnable()
        };
        if runnable {
            run(self.clone());
        }
    }

    pub(crate) fn pause(&self) {
        self.st.borrow_mut().paused += 1;
    }

    pub(crate) fn unpause(self: &Rc<Self>) {
        let runnable = {
            let mut st = self.st.borrow_mut();
            st.paused = st.paused.saturating_sub(1);
            st.runnable()
        };
        if runnable {
            run(self.clone());
        }
    }

    /// Records that this chain, unfired, will be fired by `source`
    /// (`chain_deferred`), for `is_waiting` and `Debug`. `cancel` only follows
    /// `waiting_on` from a fired chain, so this never redirects a cancel.
    pub(crate) fn record_source(&self, source: &Rc<Chain>) {
        let mut st = self.st.borrow_mut();
        if !st.called {
            st.waiting_on = Some(Rc::downgrade(source));
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let st = self.st.borrow();
        Snapshot {
            called: st.called,
            paused: st.paused,
            has_result: st.result.is_some(),
            waiting_on: st
                .waiting_on
                .as_ref()
                .filter(|w| w.strong_count() > 0)
                .map(Weak::as_ptr),
        }
    }

    pub(crate) fn is_called(&self) -> bool {
        self.st.borrow().called
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.st.borrow().cancelled
    }

    /// Takes the final result: only when the chain has fired, is not paused or
    /// running, and has no steps left, so the value is of the handle's type.
    pub(crate) fn take_final(&self) -> Option<Res> {
        let mut st = self.st.borrow_mut();
        if st.is_final() {
            st.result.take()
        } else {
            None
        }
    }

    /// Takes the final result, or registers `waker` to be woken when there is
    /// one (`Deferred` as a `Future`).
    pub(crate) fn poll_final(&self, waker: &std::task::Waker) -> Option<Res> {
        let mut st = self.st.borrow_mut();
        if st.is_final() {
            if let Some(result) = st.result.take() {
                st.waker = None;
                return Some(result);
            }
        }
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
        None
    }

    /// Wakes the awaiting task if the chain now has a final result.
    fn wake_if_final(&self) {
        let waker = {
            let mut st = self.st.borrow_mut();
            if st.waker.is_none() || !st.is_final() || st.result.is_none() {
                return;
            }
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Runs `f` on the final result in place (see `take_final` for "final").
    pub(crate) fn peek_final<R>(&self, f: impl FnOnce(Option<&Res>) -> R) -> R {
        let st = self.st.borrow();
        if st.is_final() {
            f(st.result.as_ref())
        } else {
            f(None)
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        let st = self.st.get_mut();
        if let Some(Err(failure)) = st.result.take() {
            report_unhandled(&failure, st.debug.as_deref());
        }
        // The chains this one would have handed its result to (its `Continue`
        // steps) may have no other owner, and each may own the next one the
        // same way: a million chains waiting on one that can never fire. Free
        // such a line link by link here rather than one nested `drop` per link,
        // which would overflow the stack.
        if st.steps.is_empty() {
            return; // the usual case: nothing left to run
        }
        let mut targets = Vec::new();
        st.steps.drain_targets(&mut targets);
        while let Some(target) = targets.pop() {
            if let Ok(mut chain) = Rc::try_unwrap(target) {
                chain.st.get_mut().steps.drain_targets(&mut targets);
                // `chain` is dropped here, with no `Continue` step left.
            }
        }
    }
}

/// Logs a failure that reached the end of a chain nobody can extend any more.
fn report_unhandled(failure: &Failure, debug: Option<&DebugInfo>) {
    match debug {
        Some(info) => {
            let fired = info
                .fired
                .as_ref()
                .map(|b| b.to_string())
                .unwrap_or_else(|| "(not recorded)".to_owned());
            report_error!(
                "Unhandled error in Deferred: {failure}\n{failure:?}\n(debug: the Deferred was created at:\n{}\nand fired at:\n{fired})",
                info.created
            );
        }
        None => report_error!("Unhandled error in Deferred: {failure}\n{failure:?}"),
    }
}

/// Logs a failure that has nowhere to go (used by combinators that are told
/// not to consume errors, mirroring what Twisted's garbage collector reports).
pub(crate) fn report_failure(failure: &Failure) {
    report_unhandled(failure, None);
}

/// Fires the chain with `result`. Returns the result back if the chain had
/// already fired; a late result after a cancel without a canceller is
/// swallowed once instead (Twisted's semantics).
pub(crate) fn fire(chain: &Rc<Chain>, result: Res) -> Result<(), Res> {
    let (runnable, canceller) = {
        let mut st = chain.st.borrow_mut();
        if st.called {
            if st.suppress_late {
                st.suppress_late = false;
                drop(st);
                drop(result);
                return Ok(());
            }
            return Err(result);
        }
        st.called = true;
        st.result = Some(result);
        // Fired some other way (a cancel) than by its `chain_deferred` source.
        st.waiting_on = None;
        if let Some(info) = st.debug.as_mut() {
            info.fired = Some(Backtrace::force_capture());
        }
        (st.runnable(), st.canceller.take())
    };
    // The canceller is no longer needed (and may hold references): drop it
    // outside the borrow, since dropping user values may run user code.
    drop(canceller);
    if runnable {
        run(chain.clone());
    }
    Ok(())
}

/// Logs a result delivered to a chain that had already fired (Twisted raises
/// `AlreadyCalledError` at the caller; a Trigger has no caller to raise to).
pub(crate) fn report_late(result: Res) {
    match result {
        Ok(_) => report_warn!(
            "a result was delivered to a Deferred that had already fired (it was cancelled \
             and its canceller did not stop the work); the result was dropped"
        ),
        Err(failure) => report_error!(
            "Unhandled error in Deferred: a failure was delivered to a Deferred that had \
             already fired (it was cancelled): {failure}"
        ),
    }
}

/// Cancels the chain (Twisted's three cases): an unfired chain runs its
/// canceller or, without one, errbacks `CancelledError` and swallows one late
/// result; a fired chain that waits on an inner chain cancels the inner one
/// instead (iteratively, however deep); any other fired chain is left alone.
///
/// A canceller that panics does not leave the Deferred hanging: the panic
/// becomes its failure (Twisted's behaviour there, #9534, is a known bug).
pub(crate) fn cancel(chain: &Rc<Chain>) {
    let mut current = chain.clone();
    loop {
        let mut st = current.st.borrow_mut();
        if !st.called {
            if st.cancelled {
                // Cancelled and not fired: its canceller is running now and
                // may still fire it; a re-entrant cancel changes nothing.
                return;
            }
            st.cancelled = true;
            let canceller = st.canceller.take();
            if canceller.is_none() {
                st.suppress_late = true;
            }
            drop(st);
            if let Some(canceller) = canceller {
                let target = current.clone();
                if let Err(panic) = catch_unwind(AssertUnwindSafe(move || canceller(target))) {
                    report_error!(
                        "a Deferred's canceller panicked; the Deferred fails with the panic"
                    );
                    let _ = fire(&current, Err(Failure::from_panic(panic)));
                }
            }
            if !current.is_called() {
                let _ = fire(&current, Err(Failure::new(CancelledError)));
            }
            return;
        }
        let inner = st.waiting_on.as_ref().and_then(Weak::upgrade);
        drop(st);
        match inner {
            Some(inner) => current = inner,
            None => return,
        }
    }
}

/// Runs `start` and every chain its results flow into, with a work list
/// instead of recursion.
pub(crate) fn run(start: Rc<Chain>) {
    // A callback that fires another Deferred runs that Deferred's callbacks
    // inside its own call, as in Twisted. Up to `MAX_NESTING` levels that
    // stays synchronous; deeper (a line of 100,000 Deferreds each fired from
    // the previous one's callback), the chain is handed to the outermost
    // `run`, which takes it up after its own work, so the stack stays bounded.
    let depth = NESTING.try_with(|n| n.get()).unwrap_or(0);
    if depth >= MAX_NESTING {
        let queued = DEFERRED_RUNS.try_with(|q| q.borrow_mut().push_back(start.clone()));
        if queued.is_ok() {
            return;
        }
    }
    let _ = NESTING.try_with(|n| n.set(depth + 1));
    // Restores the depth however this call ends (a panicking `Drop` of a
    // user value could unwind through here).
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = NESTING.try_with(|n| n.set(self.0));
        }
    }
    let _restore = Restore(depth);
    let mut pending: Vec<Rc<Chain>> = Vec::new();
    let mut next = Some(start);
    loop {
        while let Some(chain) = next.take().or_else(|| pending.pop()) {
            run_steps(&chain, &mut pending);
            chain.wake_if_final();
        }
        if depth > 0 {
            break;
        }
        // The outermost run: take up what deeper levels handed over.
        next = DEFERRED_RUNS
            .try_with(|q| q.borrow_mut().pop_front())
            .ok()
            .flatten();
        if next.is_none() {
            break;
        }
    }
}

/// Nesting of `run` beyond which a chain waits for the outermost `run`.
const MAX_NESTING: u32 = 16;

thread_local! {
    static NESTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static DEFERRED_RUNS: RefCell<std::collections::VecDeque<Rc<Chain>>> =
        const { RefCell::new(std::collections::VecDeque::new()) };
}

/// Runs the steps of one chain until it finishes, pauses, waits on an inner
/// chain, or hands its result to another chain (pushed on `pending`).
fn run_steps(chain: &Rc<Chain>, pending: &mut Vec<Rc<Chain>>) {
    // The result stays in this local while the steps run (no user code can
    // look at it between two steps) and goes back into the chain when the
    // loop stops. No result: the chain still waits on an inner chain (an
    // unbalanced `unpause` took the wait's pause away); its steps run when
    // the inner chain delivers.
    let mut result = {
        let mut st = chain.st.borrow_mut();
        if !st.runnable() || st.steps.is_empty() {
            return;
        }
        let Some(result) = st.result.take() else {
            return;
        };
        st.running = true;
        result
    };
    loop {
        let mut st = chain.st.borrow_mut();
        let step = if st.paused > 0 {
            None
        } else {
            st.steps.pop_front()
        };
        let Some(step) = step else {
            st.result = Some(result);
            st.running = false;
            return;
        };
        if let Step::Continue(target, link) = step {
            let more = !st.steps.is_empty();
            st.running = false;
            drop(st);
            if deliver(&target, result, link) {
                if more {
                    pending.push(chain.clone());
                }
                pending.push(target);
            } else if more {
                pending.push(chain.clone());
            }
            return;
        }
        drop(st);
        result = match invoke(step, result) {
            Next::Ready(result) => result,
            Next::Wait(inner) => match wait_on(chain, inner, pending) {
                Some(result) => result,
                None => {
                    chain.st.borrow_mut().running = false;
                    return;
                }
            },
        };
    }
}

/// Calls one step's function, turning a panic into a `Panicked` failure.
fn invoke(step: Step, result: Res) -> Next {
    let outcome = catch_unwind(AssertUnwindSafe(move || match (step, result) {
        (Step::Callback(f), Ok(value)) => f(value),
        (Step::Errback(f), Err(failure)) => f(failure),
        (Step::Both(f), result) => f(result),
        (_, result) => Next::Ready(result),
    }));
    outcome.unwrap_or_else(|panic| Next::Ready(Err(Failure::from_panic(panic))))
}

/// `chain`'s step returned the Deferred `inner`. Steals its result if it has a
/// final one (the fast path); otherwise pauses `chain` and appends a
/// `Continue` step to `inner`, returning `None`.
fn wait_on(chain: &Rc<Chain>, inner: Rc<Chain>, pending: &mut Vec<Rc<Chain>>) -> Option<Res> {
    if Rc::ptr_eq(chain, &inner) {
        return Some(Err(Failure::new(CircularChain)));
    }
    let runnable = {
        let mut ist = inner.st.borrow_mut();
        if ist.is_final() {
            if let Some(result) = ist.result.take() {
                return Some(result);
            }
        }
        ist.steps
            .push_back(Step::Continue(chain.clone(), Link::Implicit));
        ist.runnable()
    };
    {
        let mut st = chain.st.borrow_mut();
        st.paused += 1;
        st.waiting_on = Some(Rc::downgrade(&inner));
    }
    if runnable {
        pending.push(inner);
    }
    None
}

/// Moves `result` into `target`. Returns whether `target` should run now.
fn deliver(target: &Rc<Chain>, result: Res, link: Link) -> bool {
    match link {
        Link::Implicit => {
            let mut st = target.st.borrow_mut();
            st.result = Some(result);
            st.paused = st.paused.saturating_sub(1);
            st.waiting_on = None;
            true
        }
        Link::Explicit => {
            let (late, canceller) = {
                let mut st = target.st.borrow_mut();
                if st.called {
                    let swallow = std::mem::take(&mut st.suppress_late);
                    ((!swallow).then_some(result), None)
                } else {
                    st.called = true;
                    st.result = Some(result);
                    st.waiting_on = None;
                    if let Some(info) = st.debug.as_mut() {
                        info.fired = Some(Backtrace::force_capture());
                    }
                    (None, st.canceller.take())
                }
            };
            drop(canceller);
            match late {
                Some(result) => {
                    report_late(result);
                    false
                }
                None => true,
            }
        }
    }
}
