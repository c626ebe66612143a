//! Time and the way back onto a thread: the bottom layer that
//! [`defer`](crate::defer) builds on (Twisted hands `defer.py` an
//! `IReactorTime`; here this module is that interface).
//!
//! - [`ReactorTime`]: a source of time and timed calls, implemented by the
//!   current thread's reactor ([`Current`]) and by
//!   [`task::Clock`](crate::task::Clock).
//! - [`DelayedCall`]: a call scheduled on a heap of timers ordered by
//!   `(deadline, sequence)`, so equal deadlines run in scheduling order.
//! - [`Handle`]: a `Send + Clone` way to run a call on a thread from
//!   another thread.
//!
//! Each thread has one timer heap on monotonic time and one inbox of calls
//! from other threads. They live here, not in the reactor: the reactor of the
//! thread drives them (runs due timers, drains the inbox, installs the hook
//! that wakes its poll), and code below the reactor schedules on them without
//! knowing the reactor exists. This module imports nothing else of the crate.
//!
//! ```
//! use std::time::Duration;
//! use twined::time::{Current, ReactorTime};
//!
//! let call = Current.call_later_boxed(Duration::from_secs(60), Box::new(|| {}));
//! assert!(call.active());
//! assert!(call.time() >= Current.now());
//! call.cancel().unwrap();
//! ```

mod inbox;
mod timers;

use std::sync::Arc;
use std::time::Duration;

pub use inbox::Handle;
pub use timers::{DelayedCall, DelayedCallError};

pub(crate) use inbox::Inbox;
pub(crate) use timers::{TimerQueue, WeakDelayedCall};

thread_local! {
    static TIMERS: TimerQueue = TimerQueue::real();
    static INBOX: Arc<Inbox> = Arc::new(Inbox::default());
}

/// The current thread's timer heap (monotonic time since its first use).
///
/// While the thread exits and its thread-locals are destroyed, a fresh heap
/// that nothing runs is returned instead of panicking.
pub(crate) fn thread_timers() -> TimerQueue {
    TIMERS
        .try_with(TimerQueue::clone)
        .unwrap_or_else(|_| TimerQueue::real())
}

/// The current thread's inbox of calls from other threads (a fresh,
/// undrained one while the thread exits).
pub(crate) fn thread_inbox() -> Arc<Inbox> {
    INBOX
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Inbox::default()))
}

/// A source of time and timed calls: the reactor ([`Current`]) or a
/// [`task::Clock`](crate::task::Clock) (Twisted's `IReactorTime`). Code that
/// takes one can be tested deterministically with a `Clock`.
pub trait ReactorTime {
    /// Time since the clock's start.
    fn now(&self) -> Duration;
    /// Runs `f` once, `delay` from now.
    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall;
}

/// This thread's reactor as a [`ReactorTime`]: its timer heap, run by
/// [`reactor::run`](crate::reactor::run).
#[derive(Debug, Clone, Copy, Default)]
pub struct Current;

impl ReactorTime for Current {
    fn now(&self) -> Duration {
        thread_timers().now()
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        thread_timers().call_later(delay, f)
    }
}
