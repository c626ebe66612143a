//! The one way into a reactor from another thread: a queue of calls and a
//! `mio::Waker` that interrupts the reactor's poll.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A call sent from another thread.
pub(crate) type RemoteCall = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(crate) struct Remote {
    queue: Mutex<VecDeque<RemoteCall>>,
    waker: Mutex<Option<Arc<mio::Waker>>>,
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

impl Remote {
    fn lock_queue(&self) -> MutexGuard<'_, VecDeque<RemoteCall>> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (push/drain only), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, call: RemoteCall) {
        self.lock_queue().push_back(call);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(waker) = waker {
            if let Err(e) = waker.wake() {
                log::error!("could not wake the reactor: {e}");
            }
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

    pub(crate) fn set_waker(&self, waker: Arc<mio::Waker>) {
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }
}

/// A `Send + Clone` handle on one thread's reactor, for other threads (Twisted's
/// `reactor.callFromThread`).
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
    pub(crate) remote: Arc<Remote>,
}

impl Handle {
    /// Runs `f` on the reactor's thread at its next iteration.
    pub fn call_from_thread(&self, f: impl FnOnce() + Send + 'static) {
        self.remote.push(Box::new(f));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reactor::Handle")
    }
}
