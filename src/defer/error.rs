//! The typed errors that the `defer` module itself puts on errback chains.

use std::error::Error;
use std::fmt;

use super::Failure;

/// The Deferred was cancelled (Twisted's `CancelledError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CancelledError;

impl fmt::Display for CancelledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Deferred was cancelled")
    }
}

impl Error for CancelledError {}

/// The [`Trigger`](super::Trigger) of a Deferred was dropped without firing it.
///
/// Twisted leaves such a Deferred waiting forever; twined errbacks it with this
/// error so that a forgotten trigger is a visible failure, not a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TriggerDropped;

impl fmt::Display for TriggerDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Deferred's trigger was dropped without firing it")
    }
}

impl Error for TriggerDropped {}

/// A callback returned the very Deferred it belongs to, which could never fire
/// (Twisted warns and, with warnings as errors, fails the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircularChain;

impl fmt::Display for CircularChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a callback returned the Deferred it was added to (circular chain)")
    }
}

impl Error for CircularChain {}

/// A Deferred was fired after it had already fired (Twisted's
/// `AlreadyCalledError`).
///
/// A [`Trigger`](super::Trigger) fires at most once by construction, so this can
/// only happen when the Deferred was cancelled by a canceller that did not stop
/// the underlying work. [`Trigger::try_callback`](super::Trigger::try_callback)
/// returns it with the rejected result inside.
pub struct AlreadyCalled<R> {
    /// The result that was not delivered.
    pub rejected: R,
}

impl<R> fmt::Debug for AlreadyCalled<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlreadyCalled").finish_non_exhaustive()
    }
}

impl<R> fmt::Display for AlreadyCalled<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Deferred has already been fired (it was cancelled)")
    }
}

impl<R> Error for AlreadyCalled<R> {}

/// The first failure among a list of Deferreds: the errback of
/// [`gather_results`](super::gather_results) and of a
/// [`DeferredList`](super::DeferredList) built with `fire_on_one_errback`.
///
/// Equal when the index is equal and the failure is the same failure.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstError {
    /// The position of the failed Deferred in the input list.
    pub index: usize,
    /// Its failure (Twisted's `subFailure`).
    pub failure: Failure,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirstError[#{}, {}]", self.index, self.failure)
    }
}

impl Error for FirstError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.failure.error())
    }
}

/// Every Deferred of a [`race`](super::race) (or a first-success
/// [`DeferredList`](super::DeferredList)) failed; the failures in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureGroup {
    /// One failure per input, in input order.
    pub failures: Vec<Failure>,
}

impl fmt::Display for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} Deferreds failed", self.failures.len())?;
        if let Some(first) = self.failures.first() {
            write!(f, "; the first with: {first}")?;
        }
        Ok(())
    }
}

impl Error for FailureGroup {}

/// [`DeferredQueue::put`](super::DeferredQueue::put) on a full queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOverflow<T>(pub T);

impl<T> fmt::Display for QueueOverflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the DeferredQueue is full")
    }
}

impl<T: fmt::Debug> Error for QueueOverflow<T> {}

/// [`DeferredQueue::get`](super::DeferredQueue::get) when the backlog of
/// waiting gets is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueUnderflow;

impl fmt::Display for QueueUnderflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the DeferredQueue's backlog of pending gets is full")
    }
}

impl Error for QueueUnderflow {}

/// A [`DeferredSemaphore`](super::DeferredSemaphore) needs at least one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidTokens;

impl fmt::Display for InvalidTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DeferredSemaphore needs at least one token")
    }
}

impl Error for InvalidTokens {}
