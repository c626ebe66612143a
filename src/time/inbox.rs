//! The one way into a thread's reactor from another thread: a queue of calls
//! and a wake hook that the reactor installs to interrupt its poll.
//!
//! The queue lives here, below the reactor, so that code which only needs to
//! get back onto its own thread (the executor behind
//! [`ensure_deferred`](crate::defer::ensure_deferred)) can do it without
//! knowing about the reactor: the reactor drains the queue each iteration and
//! hands in the hook that wakes it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A call sent from another thread.
pub(crate) type RemoteCall = Box<dyn FnOnce() + Send>;

/// Wakes the thread that drains an [`Inbox`] (the reactor's poll waker).
pub(crate) type WakeHook = Arc<dyn Fn() + Send + Sync>;

/// One thread's queue of calls from other threads.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<RemoteCall>>,
    wake: Mutex<Option<WakeHook>>,
    /// Where the reactor is in its life, for threads blocked on it
    /// (`threads::blocking_call_from_thread`).
    life: Mutex<Life>,
}

/// What a thread waiting on a reactor needs to know about it.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Life {
    /// Whether `run` is under way.
    pub(crate) running: bool,
    /// How many runs have ended.
    pub(crate) runs_ended: u64,
    /// The reactor's thread has exited: queued calls will never run.
    pub(crate) gone: bool,
}

impl Inbox {
    fn lock_queue(&self) -> MutexGuard<'_, VecDeque<RemoteCall>> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (push/drain only), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, call: RemoteCall) {
        self.lock_queue().push_back(call);
        let wake = self
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(wake) = wake {
            wake();
        }
    }

    /// Takes every queued call, in arrival order.
    pub(crate) fn drain(&self) -> VecDeque<RemoteCall> {
        std::mem::take(&mut *self.lock_queue())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock_queue().is_empty()
    }

    fn lock_life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reactor's life now.
    pub(crate) fn life(&self) -> Life {
        *self.lock_life()
    }

    /// Records a change of the reactor's life.
    pub(crate) fn set_life(&self, change: impl FnOnce(&mut Life)) {
        change(&mut self.lock_life());
    }

    /// Installs the hook that wakes the draining thread after a push.
    pub(crate) fn set_wake_hook(&self, wake: WakeHook) {
        *self.wake.lock().unwrap_or_else(PoisonError::into_inner) = Some(wake);
    }
}

/// A `Send + Clone` handle on one thread's reactor, for other threads (Twisted's
/// `reactor.callFromThread`); [`reactor::handle`](crate::reactor::handle)
/// gives the current thread's.
///
/// Calls sent through a handle run on the reactor thread, in the order each
/// sending thread sent them, and never before that reactor runs.
///
/// ```
/// use twined::reactor;
///
/// let handle = reactor::handle();
/// std::thread::spawn(move || {
///     handle.call_from_thread(|| {
///         let _ = reactor::stop();
///     });
/// });
/// reactor::run().unwrap();
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) inbox: Arc<Inbox>,
}

impl Handle {
    /// The current thread's handle.
    pub(crate) fn current() -> Handle {
        Handle {
            inbox: super::thread_inbox(),
        }
    }

    /// Runs `f` on the reactor's thread at its next iteration.
    pub fn call_from_thread(&self, f: impl FnOnce() + Send + 'static) {
        self.inbox.push(Box::new(f));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reactor::Handle")
    }
}
