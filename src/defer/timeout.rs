//! `Deferred::add_timeout`: cancel a Deferred that takes too long (Twisted's
//! `addTimeout`), and the [`TimeoutError`] it fails with.
//!
//! Built on [`cancel`](Deferred::cancel), as in Twisted: a timed call cancels
//! the Deferred and sets a "timed out" flag; a step added after everything
//! already on the chain turns the resulting `CancelledError` into a
//! `TimeoutError` only when that flag is set; a last step cancels the timed call
//! when a result arrives first. So:
//!
//! - a result that arrives first wins, and nothing is cancelled afterwards
//!   (not even an inner Deferred a later callback returns);
//! - a canceller's own result (success or failure) is kept as it is;
//! - errbacks added *before* `add_timeout` see the `CancelledError`, and one
//!   that recovers from it leaves nothing to convert;
//! - a cancel made by hand stays a `CancelledError`.
//!
//! The timer lives on a [`ReactorTime`]: the global reactor for
//! [`add_timeout`](Deferred::add_timeout), any clock (a
//! [`task::Clock`](crate::task::Clock) in tests) for
//! [`add_timeout_on`](Deferred::add_timeout_on). Scheduling does not need the
//! reactor to be running; the timer fires once it runs.

use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::chain::{self, Next};
use super::{CancelledError, Deferred, Failure, Outcome};
use crate::time::{Current, ReactorTime};

/// A Deferred given a deadline with [`Deferred::add_timeout`] did not fire in
/// time (Twisted's `defer.TimeoutError`).
///
/// ```
/// use std::time::Duration;
/// use twined::defer::TimeoutError;
///
/// let e = TimeoutError { timeout: Duration::from_millis(2500) };
/// assert_eq!(e.to_string(), "Deferred timed out after 2.5s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeoutError {
    /// The timeout that expired.
    pub timeout: Duration,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Deferred timed out after {:?}", self.timeout)
    }
}

impl Error for TimeoutError {}

/// What the conversion step produces: the result unchanged, or whatever the
/// user's `on_timeout_cancel` returned.
enum Converted<T, R> {
    Pass(Result<T, Failure>),
    Custom(R),
}

impl<T: 'static, R: Outcome<T>> Outcome<T> for Converted<T, R> {
    fn into_next(self) -> Next {
        match self {
            Converted::Pass(result) => result.into_next(),
            Converted::Custom(outcome) => outcome.into_next(),
        }
    }
}

/// Twisted's `_cancelledToTimedOutError`: a `CancelledError` becomes a
/// [`TimeoutError`]; any other result is kept.
fn cancelled_to_timed_out<T>(result: Result<T, Failure>, timeout: Duration) -> Result<T, Failure> {
    match result {
        Err(failure) if failure.check::<CancelledError>() => {
            Err(Failure::new(TimeoutError { timeout }))
        }
        other => other,
    }
}

impl<T: 'static> Deferred<T> {
    /// Cancels this Deferred if it has not fired within `timeout` on the global
    /// reactor, turning the resulting `CancelledError` into a [`TimeoutError`]
    /// (Twisted's `d.addTimeout(timeout, reactor)`). Built on
    /// [`cancel`](Self::cancel), so:
    ///
    /// - a result that arrives first wins, and nothing is cancelled afterwards
    ///   (not even an inner Deferred a later callback returns);
    /// - a canceller's own result (success or failure) is kept as it is;
    /// - errbacks added *before* `add_timeout` see the `CancelledError`, and
    ///   one that recovers from it leaves nothing to convert;
    /// - a cancel made by hand stays a `CancelledError`.
    ///
    /// Scheduling does not need the reactor to be running; the timer starts
    /// counting now and fires once the reactor runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twined::defer::{Deferred, TimeoutError};
    /// use twined::reactor;
    ///
    /// let (d, _trigger) = Deferred::<u32>::new();   // never fired
    /// d.add_timeout(Duration::from_millis(10)).add_both(|result| {
    ///     let failure = result.unwrap_err();
    ///     assert!(failure.check::<TimeoutError>());
    ///     reactor::stop().unwrap();
    /// });
    /// reactor::run().unwrap();
    /// ```
    pub fn add_timeout(self, timeout: Duration) -> Deferred<T> {
        self.add_timeout_on(&Current, timeout)
    }

    /// [`add_timeout`](Self::add_timeout) with the timer on `time`: the
    /// reactor ([`Current`]) or a [`task::Clock`](crate::task::Clock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twined::defer::{Deferred, TimeoutError};
    /// use twined::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let (d, _trigger) = Deferred::<u32>::new();
    /// let d = d.add_timeout_on(&clock, Duration::from_secs(10));
    /// clock.advance(Duration::from_secs(10));
    /// let failure = d.result().unwrap().unwrap_err();
    /// assert_eq!(failure.to_string(), "Deferred timed out after 10s");
    /// ```
    pub fn add_timeout_on(self, time: &impl ReactorTime, timeout: Duration) -> Deferred<T> {
        self.add_timeout_with(time, timeout, cancelled_to_timed_out::<T>)
    }

    /// [`add_timeout_on`](Self::add_timeout_on) with Twisted's
    /// `onTimeoutCancel`: when the timeout expires, `on_timeout_cancel` gets
    /// whatever result the cancel produced and the timeout, and its return
    /// value (a `Result`, or a Deferred to wait for) replaces that result. It is
    /// not called when a result arrives in time or on a cancel made by hand.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twined::defer::Deferred;
    /// use twined::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let (d, _trigger) = Deferred::<&str>::new();
    /// let d = d.add_timeout_with(&clock, Duration::from_secs(1), |_result, _timeout| {
    ///     Ok("default value")
    /// });
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(d.result(), Some(Ok("default value")));
    /// ```
    pub fn add_timeout_with<R: Outcome<T>>(
        self,
        time: &impl ReactorTime,
        timeout: Duration,
        on_timeout_cancel: impl FnOnce(Result<T, Failure>, Duration) -> R + 'static,
    ) -> Deferred<T> {
        let timed_out = Rc::new(Cell::new(false));
        // Weak: the timer does not keep the chain alive, and no cycle forms
        // through the step below that holds the timer.
        let chain = Rc::downgrade(&self.chain);
        let flag = timed_out.clone();
        let call = time.call_later_boxed(
            timeout,
            Box::new(move || {
                flag.set(true);
                if let Some(chain) = chain.upgrade() {
                    chain::cancel(&chain);
                }
            }),
        );
        self.then(move |result| {
            if timed_out.get() {
                Converted::Custom(on_timeout_cancel(result, timeout))
            } else {
                Converted::Pass(result)
            }
        })
        .then(move |result: Result<T, Failure>| {
            if call.active() {
                // Cannot fail: the call is pending.
                let _ = call.cancel();
            }
            result
        })
    }
}
