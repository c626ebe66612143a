//! The thread pool: defer_to_thread results and panics, call_in_thread, the
//! pool bound, and host-name lookups. The pool is process-wide, so the test
//! that changes its size runs alone in a child process. A capturing logger
//! (process-wide, installed once) records what pool threads log.
//!
//! 8 threads x 10,000 `call_from_thread` calls arriving complete and in
//! per-thread order is tested in `tests/reactor_core.rs`.

mod support;

use support::run_bounded;

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, Once};
use std::time::Duration;

use log::{LevelFilter, Log, Metadata, Record};

use twined::defer::{Failure, Panicked};
use twined::reactor;
use twined::threads::{self, ResolveError};

/// Every log record of the process, as "LEVEL message".
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

fn install_logger() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
    });
}

fn logged(needle: &str) -> bool {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|line| line.contains(needle))
}

fn capture<T: 'static>(d: twined::defer::Deferred<T>) -> Rc<RefCell<Option<Result<T, Failure>>>> {
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    d.add_both(move |r| {
        *s.borrow_mut() = Some(r);
        let _ = reactor::stop();
    });
    slot
}

#[test]
fn defer_to_thread_delivers_the_result_on_the_reactor_thread() {
    let me = std::thread::current().id();
    let worker = Arc::new(std::sync::Mutex::new(None));
    let w = worker.clone();
    let result = capture(
        threads::defer_to_thread(move || {
            *w.lock().unwrap() = Some(std::thread::current().id());
            6 * 7
        })
        .add_callback(move |n| {
            assert_eq!(
                std::thread::current().id(),
                me,
                "callbacks run on the reactor thread"
            );
            n
        }),
    );
    run_bounded(Duration::from_secs(10));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), 42);
    assert_ne!(
        worker.lock().unwrap().unwrap(),
        me,
        "f ran on a pool thread"
    );
}

#[test]
fn nothing_is_delivered_before_the_reactor_runs() {
    let d = threads::defer_to_thread(|| 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!d.called(), "the result waits for the reactor");
    let result = capture(d);
    run_bounded(Duration::from_secs(10));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), 1);
}

#[test]
fn a_panic_in_defer_to_thread_becomes_a_failure() {
    let result = capture(threads::defer_to_thread(|| -> u32 {
        panic!("worker exploded")
    }));
    run_bounded(Duration::from_secs(10));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    let panicked = failure
        .downcast_ref::<Panicked>()
        .expect("a Panicked failure");
    assert!(panicked.message().contains("worker exploded"));
}

#[test]
fn an_error_result_goes_down_the_errback_chain() {
    let result = capture(
        threads::defer_to_thread(|| std::fs::read("/nonexistent/twined"))
            .and_then(|r| r.map_err(Failure::new)),
    );
    run_bounded(Duration::from_secs(10));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    assert!(failure.check::<std::io::Error>());
}

#[test]
fn call_in_thread_survives_a_panic_and_the_pool_keeps_working() {
    install_logger();
    threads::call_in_thread(|| panic!("fire and forget"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !logged("a call_in_thread function panicked: fire and forget") {
        assert!(
            std::time::Instant::now() < deadline,
            "the panic was not logged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(logged("ERROR a call_in_thread function panicked"));
    let handle = reactor::handle();
    let done = Rc::new(std::cell::Cell::new(false));
    let d2 = done.clone();
    threads::call_in_thread(move || {
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
    });
    reactor::call_when_running(move || d2.set(true));
    run_bounded(Duration::from_secs(10));
    assert!(done.get());
    // And defer_to_thread still works afterwards.
    let result = capture(threads::defer_to_thread(|| "ok"));
    run_bounded(Duration::from_secs(10));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), "ok");
}

/// Drops of this value are reported on a channel.
struct Tattle(mpsc::Sender<&'static str>);

impl Drop for Tattle {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

#[test]
fn a_result_for_a_thread_that_has_exited_is_dropped_quietly() {
    install_logger();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (drop_tx, drop_rx) = mpsc::channel();
    let asker = std::thread::spawn(move || {
        // This thread's reactor never runs; the thread exits before `f` ends.
        let d = threads::defer_to_thread(move || {
            let _ = gate_rx.recv_timeout(Duration::from_secs(10));
            Tattle(drop_tx)
        });
        drop(d);
    });
    asker.join().unwrap();
    gate_tx.send(()).unwrap();
    assert_eq!(
        drop_rx.recv_timeout(Duration::from_secs(10)),
        Ok("dropped"),
        "the undeliverable result is dropped"
    );
    // The pool is unharmed and nothing panicked on the way.
    let result = capture(threads::defer_to_thread(|| 5));
    run_bounded(Duration::from_secs(10));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), 5);
    assert!(!logged("a pool job panicked"));
}

#[test]
fn many_results_all_arrive() {
    let n = 500;
    let ds: Vec<_> = (0..n)
        .map(|i| threads::defer_to_thread(move || i * 2))
        .collect();
    let result = capture(twined::defer::gather_results(ds));
    run_bounded(Duration::from_secs(30));
    let values = result.borrow_mut().take().unwrap().unwrap();
    assert_eq!(values, (0..n).map(|i| i * 2).collect::<Vec<_>>());
}

const CHILD_ENV: &str = "TWINED_THREADS_TEST_CHILD";

/// The pool bound, in a child process so that no other test shares the pool.
#[test]
fn child_pool_bound() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    threads::set_pool_size(3);
    assert_eq!(threads::pool_size(), 3);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let ds: Vec<_> = (0..20)
        .map(|i| {
            let (running, peak) = (running.clone(), peak.clone());
            threads::defer_to_thread(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
                running.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let result = capture(twined::defer::gather_results(ds));
    run_bounded(Duration::from_secs(30));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap().len(), 20);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} jobs ran at once with a pool of 3");
    assert!(peak >= 2, "the pool should run jobs side by side");
    threads::set_pool_size(0);
    assert_eq!(
        threads::pool_size(),
        1,
        "the pool keeps at least one thread"
    );

    // With one thread allowed, a panicking call_in_thread does not take the
    // pool down: a dead worker would still be counted and the next job
    // would never run.
    install_logger();
    threads::call_in_thread(|| panic!("alone in the pool"));
    let result = capture(threads::defer_to_thread(|| "still here"));
    run_bounded(Duration::from_secs(30));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), "still here");
    assert!(logged(
        "a call_in_thread function panicked: alone in the pool"
    ));

    // Growing the pool starts threads for work already queued: three jobs
    // that can only finish together, queued while the pool has one thread.
    let meet = Arc::new(Barrier::new(3));
    let ds: Vec<_> = (0..3)
        .map(|i| {
            let meet = meet.clone();
            threads::defer_to_thread(move || {
                meet.wait();
                i
            })
        })
        .collect();
    threads::set_pool_size(3);
    let result = capture(twined::defer::gather_results(ds));
    run_bounded(Duration::from_secs(30));
    assert_eq!(result.borrow_mut().take().unwrap().unwrap(), vec![0, 1, 2]);
}

#[test]
fn the_pool_bound_holds() {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["child_pool_bound", "--exact", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .status()
        .unwrap();
    assert!(status.success(), "the child test failed: {status}");
}

#[test]
fn resolve_an_ip_literal_needs_no_lookup() {
    let d = threads::resolve("127.0.0.1", 80);
    assert_eq!(
        d.result().unwrap().unwrap(),
        vec!["127.0.0.1:80".parse().unwrap()]
    );
    let d = threads::resolve("[::1]", 8080);
    assert_eq!(
        d.result().unwrap().unwrap(),
        vec!["[::1]:8080".parse().unwrap()]
    );
}

#[test]
fn resolve_localhost_on_the_pool() {
    let result = capture(threads::resolve(String::from("localhost"), 8080));
    run_bounded(Duration::from_secs(20));
    let addrs = result.borrow_mut().take().unwrap().unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 8080));
}

#[test]
fn resolve_an_invalid_name_fails_with_a_named_error() {
    let result = capture(threads::resolve("no-such-host.invalid", 80));
    run_bounded(Duration::from_secs(30));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    let e = failure
        .downcast_ref::<ResolveError>()
        .expect("a ResolveError");
    assert_eq!(e.host, "no-such-host.invalid");
    assert!(
        failure
            .to_string()
            .contains("DNS lookup failed for no-such-host.invalid"),
        "{failure}"
    );
}

// ---------------------------------------------------------------------------
// blocking_call_from_thread (Twisted's `test_blockingCallFromThread*` in
// `twisted/test/test_threads.py`), and the hangs Twisted's version has
// ---------------------------------------------------------------------------

mod blocking_call {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    use twined::defer::{self, Deferred, Failure, Panicked};
    use twined::threads::{blocking_call_from_thread, BlockingCallError};
    use twined::{reactor, task};

    fn error_of(failure: &Failure) -> BlockingCallError {
        *failure
            .downcast_ref::<BlockingCallError>()
            .unwrap_or_else(|| panic!("not a BlockingCallError: {failure:?}"))
    }

    /// Runs this thread's reactor while `worker` runs on another thread with
    /// the reactor's handle; stops the reactor when the worker is done.
    fn with_worker<T: Send + 'static>(
        worker: impl FnOnce(reactor::Handle) -> T + Send + 'static,
    ) -> T {
        let handle = reactor::handle();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let h = handle.clone();
            let _ = tx.send(worker(handle));
            h.call_from_thread(|| {
                let _ = reactor::stop();
            });
        });
        let watchdog = reactor::call_later(Duration::from_secs(20), || {
            let _ = reactor::stop();
        });
        reactor::run().unwrap();
        let _ = watchdog.cancel();
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the worker did not finish")
    }

    /// Twisted's `test_blockingCallFromThread`, `test_asyncBlockingCallFromThread`,
    /// `test_errorBlockingCallFromThread`, `test_asyncErrorBlockingCallFromThread`.
    #[test]
    fn values_deferreds_and_failures_come_back() {
        let (plain, later, failed, panicked) = with_worker(|h| {
            let plain = blocking_call_from_thread(&h, || "foo".to_owned());
            let later = blocking_call_from_thread(&h, || {
                task::defer_later(Duration::from_millis(5), || Ok("egg".to_owned()))
            });
            let failed = blocking_call_from_thread(&h, || defer::fail::<u32>(Failure::msg("bar")));
            let panicked = blocking_call_from_thread(&h, || -> u32 { panic!("baz") });
            (plain, later, failed, panicked)
        });
        assert_eq!(plain.unwrap(), "foo");
        assert_eq!(later.unwrap(), "egg");
        assert_eq!(failed.unwrap_err().to_string(), "bar");
        assert!(panicked.unwrap_err().check::<Panicked>());
    }

    #[test]
    fn on_the_reactor_thread_it_fails_instead_of_deadlocking() {
        let handle = reactor::handle();
        let failure = blocking_call_from_thread(&handle, || 1).unwrap_err();
        assert_eq!(error_of(&failure), BlockingCallError::OnReactorThread);
    }

    #[test]
    fn after_the_reactor_shut_down_it_fails_at_once_without_running_f() {
        reactor::call_when_running(|| reactor::stop().unwrap());
        reactor::run().unwrap();
        let handle = reactor::handle();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let result = std::thread::spawn(move || {
            blocking_call_from_thread(&handle, move || r.store(true, Ordering::SeqCst))
        })
        .join()
        .unwrap();
        assert_eq!(
            error_of(&result.unwrap_err()),
            BlockingCallError::ReactorStopped
        );
        reactor::call_when_running(|| reactor::stop().unwrap());
        reactor::run().unwrap();
        assert!(!ran.load(Ordering::SeqCst), "an abandoned call never runs");
    }

    #[test]
    fn a_run_that_ends_before_the_result_fails_the_wait() {
        let handle = reactor::handle();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let h = handle.clone();
            let started = Instant::now();
            let result = blocking_call_from_thread(&handle, || {
                // A Deferred that never fires; the reactor stops meanwhile.
                let (d, trigger) = Deferred::<u32>::new();
                std::mem::forget(trigger);
                reactor::stop().unwrap();
                d
            });
            let _ = tx.send((result, started.elapsed()));
            drop(h);
        });
        let watchdog = reactor::call_later(Duration::from_secs(20), || {
            let _ = reactor::stop();
        });
        reactor::run().unwrap();
        let _ = watchdog.cancel();
        let (result, waited) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(
            error_of(&result.unwrap_err()),
            BlockingCallError::ReactorStopped
        );
        assert!(waited < Duration::from_secs(10));
    }

    #[test]
    fn a_reactor_thread_that_exits_fails_the_wait() {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel::<()>();
        let reactor_thread = std::thread::spawn(move || {
            handle_tx.send(reactor::handle()).unwrap();
            // Never runs its reactor; exits when told.
            let _ = exit_rx.recv();
        });
        let handle = handle_rx.recv().unwrap();
        let waiter = std::thread::spawn(move || blocking_call_from_thread(&handle, || 1));
        std::thread::sleep(Duration::from_millis(50));
        drop(exit_tx);
        reactor_thread.join().unwrap();
        let result = waiter.join().unwrap();
        assert_eq!(
            error_of(&result.unwrap_err()),
            BlockingCallError::ReactorGone
        );
    }
}
