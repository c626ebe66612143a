//! Deferreds: results that are not there yet, and the chains of callbacks that
//! process them (Twisted's `twisted.internet.defer`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `d = Deferred()` | `let (d, trigger) = Deferred::new();` |
//! | `Deferred(canceller)` | [`Deferred::with_canceller`] |
//! | `d.callback(v)` / `d.errback(e)` | `trigger.callback(v)` / `trigger.errback(e)` (consumes the trigger) |
//! | `d.addCallback(f)` | [`d.add_callback(f)`](Deferred::add_callback) (a returned Deferred is waited for), or [`d.and_then(f)`](Deferred::and_then) when `f` may fail |
//! | `d.addErrback(f)` | [`d.add_errback(f)`](Deferred::add_errback), or [`d.or_else(f)`](Deferred::or_else) when `f` may re-raise or returns a Deferred |
//! | `d.addBoth(f)` / `d.addCallbacks(f, g)` | [`add_both`](Deferred::add_both) or [`then`](Deferred::then) / [`add_callbacks`](Deferred::add_callbacks) |
//! | `d.pause()` / `d.unpause()` / `d.cancel()` | the same names |
//! | `d.addTimeout(t, clock, onTimeoutCancel)` | [`d.add_timeout(t)`](Deferred::add_timeout), [`add_timeout_on(&clock, t)`](Deferred::add_timeout_on), [`add_timeout_with(&clock, t, f)`](Deferred::add_timeout_with); fails with [`TimeoutError`] |
//! | `d.chainDeferred(d2)` | [`d.chain_deferred(trigger2)`](Deferred::chain_deferred) |
//! | `d.called`, `d.paused`, `d.result` | [`called()`](Deferred::called), [`paused()`](Deferred::paused), [`result()`](Deferred::result) / [`try_result()`](Deferred::try_result) |
//! | `succeed(v)` / `fail(e)` / `maybeDeferred(f)` | [`succeed`], [`fail`], [`maybe_deferred`] |
//! | `DeferredList(ds, fireOnOneCallback, fireOnOneErrback, consumeErrors)` | [`DeferredList::new`], [`DeferredList::with_options`], [`DeferredList::first_success`] |
//! | `gatherResults(ds)` / `race(ds)` | [`gather_results`] / [`race`] |
//! | `DeferredLock`, `DeferredSemaphore`, `DeferredQueue` | the same names |
//! | `Failure`, `f.trap(E)`, `f.check(E)`, `f.value` | [`Failure`], [`Failure::trap`], [`Failure::check`], [`Failure::downcast_ref`] |
//! | `CancelledError`, `FirstError`, `AlreadyCalledError`, `QueueOverflow`, `QueueUnderflow` | [`CancelledError`], [`FirstError`], [`AlreadyCalled`], [`QueueOverflow`], [`QueueUnderflow`] |
//! | `setDebugging(True)` | [`set_debugging(true)`](set_debugging) |
//!
//! Where twined differs from Twisted on purpose:
//!
//! - Firing twice does not compile ([`Trigger`] is consumed), and a trigger
//!   dropped unfired errbacks its Deferred with [`TriggerDropped`] instead of
//!   leaving it waiting forever.
//! - Chains of any length run in constant stack, including `chain_deferred`
//!   (Twisted's recurses), and so does handing a `DeferredLock` or
//!   `DeferredSemaphore` through any number of waiters. So does a line of
//!   Deferreds each fired from the previous one's callback: the first 16
//!   levels run synchronously inside the firing call, as in Twisted; deeper
//!   ones are taken up by the outermost firing call before it returns
//!   (Twisted overflows its recursion limit there).
//! - An unhandled failure is reported when the last reference to its chain is
//!   dropped: deterministic, not at the garbage collector's leisure. Reports
//!   go to the `log` crate when a logger would record them, else to standard
//!   error (a program without a logger does not lose them).
//! - A panicking canceller fails the Deferred with the panic instead of leaving
//!   it unfired.
//! - Combinators own the Deferreds they are given, so their inputs' failures
//!   are consumed by default (no spurious "Unhandled error" reports).
//!
//! ```
//! use twined::defer::{Deferred, DeferredList};
//!
//! let (d1, t1) = Deferred::<u32>::new();
//! let (d2, t2) = Deferred::<u32>::new();
//! let all = DeferredList::new(vec![d1.add_callback(|x| x * 10), d2])
//!     .add_callback(|results| results.into_iter().filter_map(Result::ok).sum::<u32>());
//! t2.callback(2);
//! t1.callback(1);
//! assert_eq!(all.result(), Some(Ok(12)));
//! ```

mod chain;
mod debug;
mod deferred;
mod error;
mod failure;
mod future;
mod list;
pub(crate) mod report;
mod sync;
mod timeout;
mod value;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use debug::{get_debugging, set_debugging};
pub use deferred::{CallbackOutput, Canceller, Chained, Deferred, Outcome, Plain, Trigger};
pub use error::{
    AlreadyCalled, CancelledError, CircularChain, FailureGroup, FirstError, InvalidTokens,
    QueueOverflow, QueueUnderflow, TriggerDropped,
};
pub use failure::{Failure, FailureError, Message, Panicked};
pub use future::ensure_deferred;
pub use list::{gather_results, race, DeferredList, ListOptions};
pub use sync::{DeferredLock, DeferredQueue, DeferredSemaphore, LockGuard, SemaphoreGuard};
pub use timeout::TimeoutError;

/// A Deferred that has already fired with `value` (Twisted's `succeed`);
/// callbacks added to it run at once.
///
/// ```
/// let d = twined::defer::succeed(2).add_callback(|x| x * 21);
/// assert_eq!(d.result(), Some(Ok(42)));
/// ```
pub fn succeed<T: 'static>(value: T) -> Deferred<T> {
    Deferred::fired(Ok(value))
}

/// A Deferred that has already failed with `failure` (Twisted's `fail`); takes
/// a `Failure` or any error.
///
/// ```
/// use twined::defer::{self, CancelledError};
///
/// let d = defer::fail::<u32>(CancelledError).add_errback(|f| {
///     assert!(f.check::<CancelledError>());
///     0
/// });
/// assert_eq!(d.result(), Some(Ok(0)));
/// ```
pub fn fail<T: 'static>(failure: impl Into<Failure>) -> Deferred<T> {
    Deferred::fired(Err(failure.into()))
}

/// Calls `f` and turns whatever it gives into a Deferred (Twisted's
/// `maybeDeferred`): `Ok(v)` fires with `v`, `Err(f)` fails with `f`, a Deferred
/// is returned as it is, and a panic becomes a [`Panicked`] failure.
///
/// ```
/// use twined::defer::{self, Failure};
///
/// let d = defer::maybe_deferred(|| "7".parse::<u8>().map_err(Failure::new));
/// assert_eq!(d.result(), Some(Ok(7)));
/// let d = defer::maybe_deferred(|| defer::succeed(1u8));
/// assert_eq!(d.result(), Some(Ok(1)));
/// ```
pub fn maybe_deferred<T: 'static, R: Outcome<T>>(f: impl FnOnce() -> R) -> Deferred<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(outcome) => match outcome.into_next() {
            chain::Next::Ready(result) => Deferred::from_chain(chain::Chain::fired(result)),
            chain::Next::Wait(chain) => Deferred::from_chain(chain),
        },
        Err(panic) => fail(Failure::from_panic(panic)),
    }
}
