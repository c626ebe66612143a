//! Scheduling helpers on top of the reactor (Twisted's `twisted.internet.task`).
//!
//! [`Clock`] is a deterministic [`ReactorTime`] for tests: time moves only when
//! [`Clock::advance`] says so. It shares the reactor's timer heap, so 100,000
//! timers stay fast (Twisted's `Clock` is quadratic) and calls due at the same
//! time run in the order they were scheduled.

use std::fmt;
use std::time::Duration;

use crate::reactor::{DelayedCall, ReactorTime, TimerQueue};

/// Virtual time for deterministic tests (Twisted's `task.Clock`). Starts at 0.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use twined::task::Clock;
///
/// let clock = Clock::new();
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// clock.call_later(Duration::from_secs(5), move || f.set(true));
/// clock.advance(Duration::from_secs(4));
/// assert!(!fired.get());
/// clock.advance(Duration::from_secs(1));
/// assert!(fired.get());
/// ```
#[derive(Clone)]
pub struct Clock {
    timers: TimerQueue,
}

impl Clock {
    /// A clock at time zero with no calls.
    pub fn new() -> Clock {
        Clock {
            timers: TimerQueue::virtual_time(),
        }
    }

    /// The current virtual time.
    pub fn seconds(&self) -> f64 {
        self.timers.now().as_secs_f64()
    }

    /// Schedules `f` at `delay` from the current virtual time.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        self.timers.call_later(delay, Box::new(f))
    }

    /// Moves time forward by `by` and runs every call that is then due, in
    /// (time, scheduling) order, including calls that those calls schedule
    /// within the window. A panicking call propagates to the caller, as an
    /// exception from Twisted's `Clock.advance` does.
    pub fn advance(&self, by: Duration) {
        let now = self.timers.now().saturating_add(by);
        self.timers.set_virtual_now(now);
        while let Some(call) = self.timers.pop_due(now, u64::MAX) {
            call();
        }
    }

    /// Advances by each amount in turn (Twisted's `pump`).
    pub fn pump(&self, steps: impl IntoIterator<Item = Duration>) {
        for step in steps {
            self.advance(step);
        }
    }

    /// The pending calls, earliest first; cancelled calls are not included.
    pub fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        self.timers.pending()
    }

    /// How many calls are pending.
    pub fn pending(&self) -> usize {
        self.timers.len()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("seconds", &self.seconds())
            .field("pending", &self.pending())
            .finish()
    }
}

impl ReactorTime for Clock {
    fn now(&self) -> Duration {
        self.timers.now()
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.timers.call_later(delay, f)
    }
}
