//! Many reactors, one per thread: run the same `main` on `n` threads, each
//! under [`react`], and collect what each returns.
//!
//! A reactor belongs to its thread (its Deferreds, transports and timers are
//! `Rc`-based and never cross threads), so scaling a reactor program up to
//! all cores means one reactor per thread, each with its own connections,
//! sharing only `Send` things (a `Mutex`-guarded writer, atomic counters, a
//! channel). Twisted has no equivalent (one reactor per process); this is
//! what a Twisted user does with `N` processes, without the processes.

use std::io;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use super::react::react;
use crate::defer::{Failure, Outcome, Panicked};
use crate::reactor::{self, Handle};

/// `n` threads, each running its own reactor under [`react`]; see
/// [`react_threads`] for the common case of waiting for all of them.
///
/// Each thread calls `main(i)` (`i` from 0 to `n - 1`) and runs its reactor
/// until the Deferred (or `Result`) it returns fires. SIGINT and SIGTERM stop
/// every running reactor (each one watches them), so Ctrl-C ends all the
/// threads; [`stop`](Self::stop) does the same from code.
///
/// ```
/// use std::time::Duration;
/// use twined::task::{self, ReactorThreads};
///
/// let threads = ReactorThreads::spawn(2, |i| {
///     task::defer_later(Duration::from_millis(5), move || Ok(i * 10))
/// })
/// .unwrap();
/// assert_eq!(threads.len(), 2);
/// let results: Vec<usize> = threads.join().into_iter().map(Result::unwrap).collect();
/// assert_eq!(results, [0, 10]);
/// ```
pub struct ReactorThreads<T> {
    workers: Vec<(Handle, JoinHandle<Result<T, Failure>>)>,
}

impl<T: Send + 'static> ReactorThreads<T> {
    /// Starts `n` threads (named `twined-reactor-I`), each running
    /// `react(|| main(i))`. Returns once every thread's reactor handle is
    /// known; `Err` only when the system refuses a thread (the threads
    /// already started are stopped and joined first).
    pub fn spawn<R, F>(n: usize, main: F) -> io::Result<ReactorThreads<T>>
    where
        F: Fn(usize) -> R + Send + Sync + 'static,
        R: Outcome<T>,
    {
        let main = std::sync::Arc::new(main);
        let mut threads = ReactorThreads {
            workers: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (tx, rx) = mpsc::channel();
            let main = main.clone();
            let spawned = thread::Builder::new()
                .name(format!("twined-reactor-{i}"))
                .spawn(move || {
                    let _ = tx.send(reactor::handle());
                    react(|| main(i))
                });
            let joined = match spawned {
                Ok(joined) => joined,
                Err(e) => {
                    threads.stop();
                    drop(threads.join());
                    return Err(e);
                }
            };
            // The thread sends its handle first thing; it cannot fail to.
            match rx.recv() {
                Ok(handle) => threads.workers.push((handle, joined)),
                Err(_) => {
                    threads.stop();
                    drop(threads.join());
                    return Err(io::Error::other("a reactor thread ended at start"));
                }
            }
        }
        Ok(threads)
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none (`spawn(0, ..)`).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Each thread's reactor handle, in thread order: send work to a thread
    /// with [`Handle::call_from_thread`].
    pub fn handles(&self) -> Vec<Handle> {
        self.workers.iter().map(|(h, _)| h.clone()).collect()
    }

    /// Asks every thread's reactor to stop (as `reactor::stop()` on each);
    /// a thread whose `main` has not finished then returns
    /// [`ReactorStopped`](super::ReactorStopped).
    pub fn stop(&self) {
        for (handle, _) in &self.workers {
            handle.call_from_thread(|| {
                let _ = reactor::stop();
            });
        }
    }

    /// Waits for every thread and returns each one's result, in thread
    /// order. A thread that panicked outside its reactor gives a
    /// [`Panicked`] failure (a panic inside a callback is already a
    /// `Failure` in that thread's Deferred).
    pub fn join(self) -> Vec<Result<T, Failure>> {
        self.workers
            .into_iter()
            .map(|(_, joined)| match joined.join() {
                Ok(result) => result,
                Err(payload) => Err(Failure::new(Panicked::from_payload(payload))),
            })
            .collect()
    }
}

/// Runs `main(i)` on `n` reactor threads (each under [`react`]) and returns
/// each thread's result, in thread order: `task::react` for all cores.
///
/// Every thread has its own reactor, so everything `main` builds (clients,
/// pools, Deferreds) belongs to its thread; share across threads only what
/// is `Send` (an `Arc<Mutex<_>>`, atomics, channels). Ctrl-C stops every
/// thread. `Err` of [`io::Error`] when a thread cannot be started.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use twined::defer::succeed;
/// use twined::task;
///
/// let total = Arc::new(AtomicUsize::new(0));
/// let t = total.clone();
/// let results = task::react_threads(4, move |i| {
///     t.fetch_add(i, Ordering::Relaxed);
///     succeed(i)
/// })
/// .unwrap();
/// assert_eq!(results.len(), 4);
/// assert_eq!(total.load(Ordering::Relaxed), 0 + 1 + 2 + 3);
/// ```
pub fn react_threads<T, R, F>(n: usize, main: F) -> io::Result<Vec<Result<T, Failure>>>
where
    T: Send + 'static,
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Outcome<T>,
{
    Ok(ReactorThreads::spawn(n, main)?.join())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defer::Deferred;
    use crate::task::ReactorStopped;

    #[test]
    fn stop_ends_threads_whose_main_never_fires() {
        let threads = ReactorThreads::spawn(3, |_| {
            // Fires never: only a stop ends this thread's reactor.
            let (d, trigger) = Deferred::<()>::new();
            std::mem::forget(trigger);
            d
        })
        .unwrap();
        assert_eq!(threads.handles().len(), 3);
        threads.stop();
        for result in threads.join() {
            assert!(result.unwrap_err().check::<ReactorStopped>());
        }
    }

    #[test]
    fn a_panicking_main_is_a_failure_of_its_thread_only() {
        let results = react_threads(2, |i| {
            if i == 1 {
                panic!("worker {i} fails");
            }
            Ok::<_, Failure>(i)
        })
        .unwrap();
        assert_eq!(results[0].as_ref().ok(), Some(&0));
        let failure = results[1].as_ref().unwrap_err();
        assert!(failure.check::<Panicked>(), "{failure:?}");
        assert!(failure.to_string().contains("worker 1 fails"));
    }

    #[test]
    fn no_threads_is_no_results() {
        let threads = ReactorThreads::<()>::spawn(0, |_| Ok::<_, Failure>(())).unwrap();
        assert!(threads.is_empty());
        assert!(threads.join().is_empty());
    }
}
