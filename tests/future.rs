//! async/await on Deferreds, ported from Twisted's `test_defer.py`
//! (`maybeDeferred`, `ensureDeferred`, the future adapters) and
//! `twisted/internet/test/test_inlinecb.py` (stack use, cancellation), the
//! two styles mixed on one reactor, and wakes from other threads.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{
    ensure_deferred, fail, gather_results, maybe_deferred, race, succeed, CancelledError, Deferred,
    Failure, Panicked,
};
use twined::{reactor, task};

mod support;
use support::wait;

#[derive(Debug)]
struct TestError(&'static str);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TestError {}

/// A Deferred that fires with `v` after `ms` milliseconds, made in callback
/// style (a stand-in for `get_page`).
fn later<T: 'static>(ms: u64, v: T) -> Deferred<T> {
    let (d, trigger) = Deferred::new();
    reactor::call_later(Duration::from_millis(ms), move || trigger.callback(v));
    d
}

// maybe_deferred handles a coroutine as it handles a Deferred.
#[test]
fn maybe_deferred_of_a_coroutine() {
    let d = maybe_deferred(|| ensure_deferred(async { Ok::<_, Failure>(7) }));
    assert_eq!(d.result().unwrap().unwrap(), 7);
    let d = maybe_deferred(|| {
        ensure_deferred(async { Err::<u8, _>(Failure::new(TestError("async raise"))) })
    });
    assert!(d.result().unwrap().unwrap_err().check::<TestError>());
}

// ensure_deferred rejects non-coroutines at compile time (its
// argument must be a Future), so there is no runtime TypeError to test; it
// passes a Deferred through.
#[test]
fn ensure_deferred_passes_a_deferred_through() {
    let d = ensure_deferred(succeed(5));
    assert_eq!(d.result().unwrap().unwrap(), 5);
    let (inner, trigger) = Deferred::new();
    let d = ensure_deferred(inner);
    assert!(!d.called());
    trigger.callback("later");
    assert_eq!(d.result().unwrap().unwrap(), "later");
}

// results and cancellation cross between futures and Deferreds in
// both directions.
#[test]
fn results_and_cancellation_cross_both_ways() {
    // Deferred -> future: a failure arrives as Err.
    let d = ensure_deferred(async {
        match fail::<u8>(TestError("boom")).await {
            Err(f) if f.check::<TestError>() => Ok::<_, Failure>("caught"),
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(d.result().unwrap().unwrap(), "caught");

    // Cancelling the task's Deferred while it awaits a plain future (not a
    // Deferred) drops the future and fails with CancelledError.
    let (tx, rx) = futures::channel::oneshot::channel::<u8>();
    let d = ensure_deferred(async move { rx.await.map_err(Failure::new) });
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
    assert!(
        tx.send(1).is_err(),
        "the future (and its receiver) was dropped"
    );
}

// contextvars have no Rust counterpart that needs porting; a task's
// locals are the async block's own variables, which survive every await.

// 5000 (here 100,000) synchronous awaits do not overflow the stack;
// awaiting a ready future returns its value; no await gives (); a raise is
// an errback; a failure caught inside does not propagate.
#[test]
fn many_synchronous_awaits_run_in_constant_stack() {
    let run = || {
        let d = ensure_deferred(async {
            let mut sum = 0u64;
            for i in 0..100_000u64 {
                sum += succeed(i).await?;
            }
            Ok::<_, Failure>(sum)
        });
        d.result().unwrap().unwrap()
    };
    let sum = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, (0..100_000u64).sum::<u64>());
}

#[test]
fn awaiting_a_ready_future_and_no_await() {
    let d = ensure_deferred(async { Ok::<_, Failure>(std::future::ready(3).await) });
    assert_eq!(d.result().unwrap().unwrap(), 3);
    let d = ensure_deferred(async { Ok::<_, Failure>(()) });
    assert_eq!(d.result().unwrap().unwrap(), ());
}

#[test]
fn an_error_is_an_errback_and_a_caught_failure_is_not() {
    let d = ensure_deferred(async {
        succeed(1).await?;
        Err::<(), _>(Failure::new(TestError("raised")))
    });
    assert!(d.result().unwrap().unwrap_err().check::<TestError>());
    let d = ensure_deferred(async {
        let recovered = fail::<u8>(TestError("handled inside"))
            .await
            .unwrap_or_default();
        Ok::<_, Failure>(recovered)
    });
    assert_eq!(d.result().unwrap().unwrap(), 0);
}

#[test]
fn a_panic_inside_the_future_becomes_a_failure() {
    let d = ensure_deferred(async {
        succeed(()).await?;
        if true {
            panic!("async panic");
        }
        Ok::<_, Failure>(())
    });
    let failure = d.result().unwrap().unwrap_err();
    assert!(failure
        .downcast_ref::<Panicked>()
        .unwrap()
        .message()
        .contains("async panic"));
}

// decorating a non-generator, returnValue: compile-time in Rust
// (an async block returns with `return`/its last expression), nothing to test.

// cancelling cascades into the awaited Deferred; the future sees
// CancelledError and may translate or suppress it.
#[test]
fn cancel_cascades_and_the_future_sees_cancelled_error() {
    let (inner, _trigger) = Deferred::<u8>::new();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = ensure_deferred(async move {
        let r = inner.await;
        *s.borrow_mut() = Some(
            r.as_ref()
                .err()
                .is_some_and(|f| f.check::<CancelledError>()),
        );
        r
    });
    d.cancel();
    assert_eq!(*seen.borrow(), Some(true));
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn error_to_error_translation() {
    let (inner, _t) = Deferred::<u8>::new();
    let d = ensure_deferred(async move {
        inner
            .await
            .map_err(|_| Failure::new(TestError("translated")))
    });
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().check::<TestError>());
}

#[test]
fn error_to_success_translation() {
    let (inner, _t) = Deferred::<u8>::new();
    let d = ensure_deferred(async move { Ok::<_, Failure>(inner.await.unwrap_or(99)) });
    d.cancel();
    assert_eq!(d.result().unwrap().unwrap(), 99);
}

#[test]
fn a_suppressed_cancel_leaves_the_outer_waiting_until_the_next() {
    let (first, _t1) = Deferred::<u8>::new();
    let (second, _t2) = Deferred::<u8>::new();
    let d = ensure_deferred(async move {
        // Swallow the first cancel and wait on something else.
        let _ = first.await;
        second.await
    });
    d.cancel();
    assert!(
        !d.has_result(),
        "a suppressed cancel leaves the outer waiting"
    );
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn a_canceller_of_the_awaited_deferred_may_fire_it() {
    // The awaited Deferred's canceller fires it with a value of its own.
    let (inner, _t) = Deferred::<&str>::with_canceller(|c| c.callback("canceller's value"));
    // An async block on purpose: the point is a task awaiting `inner`.
    #[allow(clippy::redundant_async_block)]
    let d = ensure_deferred(async move { inner.await });
    d.cancel();
    assert_eq!(wait(d).unwrap(), "canceller's value");
}

#[test]
fn cancel_from_outside_while_parked_on_the_reactor() {
    let d = ensure_deferred(async {
        task::sleep(Duration::from_secs(30)).await?;
        Ok::<_, Failure>("slept")
    });
    // Cancel it from a timer while the reactor runs.
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let d = Rc::new(d.add_both(move |res| {
        *r.borrow_mut() = Some(res.map(|_| ()));
        let _ = reactor::stop();
    }));
    let d2 = d.clone();
    reactor::call_later(Duration::from_millis(10), move || d2.cancel());
    let watchdog = reactor::call_later(Duration::from_secs(10), || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    let failure = result.borrow_mut().take().expect("fired").unwrap_err();
    assert!(failure.check::<CancelledError>());
}

#[test]
fn the_two_styles_mix_on_one_reactor() {
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    // An async function awaiting get_page-like Deferreds made in callback style.
    let fetch_both = ensure_deferred(async move {
        l.borrow_mut().push("start".into());
        let a = later(10, "page a").add_callback(|s| s.len()).await?;
        l.borrow_mut().push(format!("a={a}"));
        let b = later(5, "page bb").await?;
        l.borrow_mut().push(format!("b={b}"));
        let all = gather_results(vec![later(3, 1), later(1, 2)]).await?;
        let (index, winner) = race(vec![later(20, "slow"), later(2, "fast")]).await?;
        l.borrow_mut()
            .push(format!("all={all:?} race={winner}@{index}"));
        Ok::<_, Failure>(a + b.len())
    });
    // Callback code adds callbacks to the Deferred made by ensure_deferred.
    let l = log.clone();
    let d = fetch_both.add_callback(move |n| {
        l.borrow_mut().push(format!("callback got {n}"));
        n * 2
    });
    log.borrow_mut().push("after ensure_deferred".into());
    assert_eq!(wait(d).unwrap(), 26);
    assert_eq!(
        *log.borrow(),
        [
            "start",
            "after ensure_deferred",
            "a=6",
            "b=page bb",
            "all=[1, 2] race=fast@1",
            "callback got 13",
        ]
    );
}

#[test]
fn a_wake_from_another_thread_reaches_the_reactor() {
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let d = ensure_deferred(async move { rx.await.map_err(Failure::new) });
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(41).unwrap();
    });
    assert_eq!(wait(d.add_callback(|v| v + 1)).unwrap(), 42);
    sender.join().unwrap();
}

#[test]
fn react_async_runs_an_async_main() {
    let result = task::react_async(|| async {
        task::sleep(Duration::from_millis(2)).await?;
        let v = later(2, 20).await?;
        Ok::<_, Failure>(v + 1)
    });
    assert_eq!(result.unwrap(), 21);
}

#[test]
fn a_future_that_never_waits_fires_synchronously() {
    let d = ensure_deferred(async { Ok::<_, Failure>(succeed(1).await? + 1) });
    assert!(d.called());
    assert_eq!(d.result().unwrap().unwrap(), 2);
}
