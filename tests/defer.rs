//! Ports of Twisted's Deferred behaviours (chain mechanics, cancellation,
//! combinators, locks and queues), one test per behaviour, plus re-entrancy
//! tests for the chain runner.
//!
//! Each test names the Twisted tests it ports (D =
//! `src/twisted/test/test_defer.py`). Where a behaviour cannot apply in Rust
//! the test is replaced by a one-line comment saying why; where twined differs
//! from Twisted on purpose (see the `twined::defer` module docs), the test
//! checks twined's documented behaviour and says so.
//!
//! Unhandled-error logging is asserted in
//! `tests/defer_log.rs`; chains of a million links in `tests/defer_stack.rs`.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::fmt;
use std::rc::Rc;

use twined::defer::{
    self, AlreadyCalled, CancelledError, Canceller, CircularChain, Deferred, DeferredList,
    DeferredLock, DeferredQueue, DeferredSemaphore, Failure, FailureGroup, FirstError,
    InvalidTokens, ListOptions, Message, Panicked, QueueOverflow, QueueUnderflow, Trigger,
    TriggerDropped,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A call log shared between the test and its callbacks.
type Calls<T> = Rc<RefCell<Vec<T>>>;

/// Where a callback can reach the handle of its own (or another) chain.
type Slot<T> = Rc<RefCell<Option<Deferred<T>>>>;

fn calls<T>() -> Calls<T> {
    Rc::new(RefCell::new(Vec::new()))
}

fn taken<T: Clone>(calls: &Calls<T>) -> Vec<T> {
    calls.borrow().clone()
}

/// A test error with an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(&'static str);

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl Error for Boom {}

/// Another error type, to check that `trap`/`check` tell types apart.
#[derive(Debug)]
struct Other;

impl fmt::Display for Other {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("other")
    }
}

impl Error for Other {}

/// The Debug repr with every `0x…` address replaced by `ADDR`.
fn repr_without_addresses(repr: &str) -> String {
    let mut out = String::new();
    let mut rest = repr;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        out.push_str("ADDR");
        rest = rest[at + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// The first `0x…` address in a Debug repr.
fn first_address(repr: &str) -> String {
    let at = repr.find("0x").expect("an address");
    let digits: String = repr[at + 2..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    format!("0x{digits}")
}

/// The failure a finished Deferred ended with.
fn failure_of<T: fmt::Debug + 'static>(d: Deferred<T>) -> Failure {
    match d.result() {
        Some(Err(failure)) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Chain mechanics
// ---------------------------------------------------------------------------

/// D `testCallbackWithArgs`, `testCallbackWithKwArgs`: extra
/// arguments given to a callback come after the result. In twined they are
/// captured by the closure; keyword arguments have no Rust equivalent (a
/// captured variable plays their part), so both Twisted tests port to this one.
#[test]
fn callback_with_args_come_after_the_result() {
    fn cb(result: &str, arg: &str, kwarg: &str) -> String {
        format!("{result}{arg}{kwarg}")
    }
    let (d, trigger) = Deferred::new();
    let (arg, kwarg) = ("world", "!");
    let d = d.add_callback(move |result| cb(result, arg, kwarg));
    trigger.callback("hello ");
    assert_eq!(d.result(), Some(Ok("hello world!".to_owned())));
}

/// D `test_addCallbacksNoneErrback`: a callback without an errback
/// (twined's `add_callback`) passes a failure through untouched, to the next
/// errback. (`test_addCallbacksNoneCallbackArgs`/`NoneErrbackArgs`: there are
/// no argument tuples in Rust, so `None` tuples cannot occur.)
#[test]
fn callback_without_errback_passes_failures_through() {
    let order = calls();
    let (d, trigger) = Deferred::<u32>::new();
    let (o1, o2) = (order.clone(), order.clone());
    let original = Failure::new(Boom("pass me"));
    let expected = original.clone();
    let d = d
        .add_callback(move |x| {
            o1.borrow_mut().push("callback");
            x + 1
        })
        .add_errback(move |f| {
            o2.borrow_mut().push("errback");
            assert!(f == expected, "the very same failure arrives");
            0
        });
    trigger.errback(original);
    assert_eq!(d.result(), Some(Ok(0)));
    assert_eq!(taken(&order), ["errback"]);
}

/// D `testCallbackErrors`, `test_callbackMaybeReturnsFailure`: a
/// callback that raises (twined: returns `Err`, or panics) or returns a Failure
/// (twined: `Err(failure)`) switches the chain to the errbacks; an errback
/// that returns a plain value switches back to the callbacks.
#[test]
fn raise_switches_to_errbacks_and_recovery_switches_back() {
    let order = calls();
    let (d, trigger) = Deferred::<u32>::new();
    let (o1, o2, o3, o4, o5, o6) = (
        order.clone(),
        order.clone(),
        order.clone(),
        order.clone(),
        order.clone(),
        order.clone(),
    );
    let d = d
        .and_then(move |x| {
            o1.borrow_mut().push(format!("cb1({x})"));
            Err::<u32, _>(Failure::new(Boom("cb1")))
        })
        .add_callback(move |x| {
            o2.borrow_mut().push(format!("skipped({x})"));
            x
        })
        .add_errback(move |f| {
            o3.borrow_mut().push(format!("eb1({f})"));
            assert!(f.check::<Boom>());
            10
        })
        .add_callback(move |x: u32| -> u32 {
            o4.borrow_mut().push(format!("cb2({x})"));
            panic!("cb2 panics")
        })
        .or_else(move |f| {
            o5.borrow_mut().push(format!("eb2({f})"));
            assert_eq!(
                f.downcast_ref::<Panicked>().unwrap().message(),
                "cb2 panics"
            );
            Ok(20)
        })
        .add_callback(move |x| {
            o6.borrow_mut().push(format!("cb3({x})"));
            x + 1
        });
    trigger.callback(1);
    assert_eq!(d.result(), Some(Ok(21)));
    assert_eq!(
        taken(&order),
        [
            "cb1(1)",
            "eb1(boom: cb1)",
            "cb2(10)",
            "eb2(panicked: cb2 panics)",
            "cb3(20)"
        ]
    );

    // "Returns a Failure": the failure a callback returns is the one the
    // errbacks see, not a copy.
    let returned = Failure::new(Boom("returned"));
    let expected = returned.clone();
    let d = defer::succeed(1u32).and_then(move |_| Err::<u32, _>(returned));
    assert!(failure_of(d) == expected);
}

/// D `test_succeedMatchesManualSuccess`, `testImmediateSuccess`,
/// `testImmediateFailure`: `succeed(x)` leaves the same state as
/// `new()` + `callback(x)`, and callbacks added to a fired Deferred run at once.
#[test]
fn succeed_matches_manual_success_and_runs_callbacks_at_once() {
    let (manual, trigger) = Deferred::new();
    trigger.callback(7u32);
    let automatic = defer::succeed(7u32);
    assert_eq!(manual.called(), automatic.called());
    assert_eq!(manual.paused(), automatic.paused());
    assert_eq!(manual.has_result(), automatic.has_result());
    assert_eq!(manual.is_waiting(), automatic.is_waiting());
    assert_eq!(
        repr_without_addresses(&format!("{manual:?}")),
        repr_without_addresses(&format!("{automatic:?}"))
    );
    assert_eq!(
        repr_without_addresses(&format!("{automatic:?}")),
        "<Deferred at ADDR current result: 7>"
    );
    assert_eq!(manual.result(), automatic.result());

    // Immediate success: the callback runs inside add_callback.
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let d = defer::succeed("success").add_callback(move |v| s.set(Some(v)));
    assert_eq!(seen.get(), Some("success"));
    assert_eq!(d.result(), Some(Ok(())));

    // Immediate failure: the errback runs inside add_errback.
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let d = defer::fail::<u32>(Boom("fail")).add_errback(move |f| {
        s.set(f.downcast_ref::<Boom>() == Some(&Boom("fail")));
        0
    });
    assert!(seen.get());
    assert_eq!(d.result(), Some(Ok(0)));
}

/// D `testPausedFailure`, `testUnpauseBeforeCallback`: a paused
/// Deferred holding a result runs nothing until `unpause()` brings the counter
/// back to 0; an unpause before firing just lets the later firing run.
#[test]
fn paused_deferred_runs_nothing_until_unpaused() {
    let order = calls();
    let (o1, o2) = (order.clone(), order.clone());
    let (d, trigger) = Deferred::<u32>::new();
    d.pause();
    d.pause();
    assert_eq!(d.paused(), 2);
    let d = d
        .and_then(move |x| {
            o1.borrow_mut().push(format!("cb({x})"));
            Err::<u32, _>(Failure::new(Boom("paused")))
        })
        .add_errback(move |f| {
            o2.borrow_mut().push(format!("eb({f})"));
            5
        });
    trigger.callback(1);
    assert!(d.called());
    assert!(taken(&order).is_empty(), "paused: nothing runs");
    d.unpause();
    assert_eq!(d.paused(), 1);
    assert!(taken(&order).is_empty(), "still paused once");
    d.unpause();
    assert_eq!(taken(&order), ["cb(1)", "eb(boom: paused)"]);
    assert_eq!(d.result(), Some(Ok(5)));

    // testUnpauseBeforeCallback: pause/unpause before firing changes nothing.
    let (d, trigger) = Deferred::<u32>::new();
    d.pause();
    let d = d.add_callback(|x| x * 2);
    d.unpause();
    assert!(!d.called());
    trigger.callback(21);
    assert_eq!(d.result(), Some(Ok(42)));
}

/// D `test_callbackReturnsDeferred`: a callback returning an unfired
/// Deferred pauses the outer chain until the inner fires, then the outer
/// resumes with the inner's result.
#[test]
fn callback_returns_deferred_pauses_outer() {
    let results = calls();
    let r = results.clone();
    let (outer, outer_trigger) = Deferred::<&str>::new();
    let (inner, inner_trigger) = Deferred::<&str>::new();
    let outer = outer
        .and_then(move |_| inner)
        .add_callback(move |v| r.borrow_mut().push(v));
    outer_trigger.callback("outer");
    assert!(taken(&results).is_empty());
    assert_eq!(outer.paused(), 1, "waiting counts as one pause");
    assert!(outer.is_waiting());
    assert!(!outer.has_result());
    inner_trigger.callback("inner");
    assert_eq!(taken(&results), ["inner"]);
    assert_eq!(outer.paused(), 0);
    assert!(!outer.is_waiting());
}

/// Twisted's `test_callbackReturnsDeferred` through `add_callback` itself:
/// a callback returning a Deferred makes a `Deferred<U>`, not a nested
/// `Deferred<Deferred<U>>`, and the outer chain waits for the inner one,
/// fired later.
#[test]
fn add_callback_returning_a_deferred_chains_and_waits() {
    let results = calls();
    let r = results.clone();
    let (outer, outer_trigger) = Deferred::<&str>::new();
    let (inner, inner_trigger) = Deferred::<usize>::new();
    let outer: Deferred<usize> = outer.add_callback(move |_| inner);
    let outer = outer.add_callback(move |n| r.borrow_mut().push(n));
    outer_trigger.callback("outer");
    assert!(taken(&results).is_empty(), "the outer chain waits");
    assert!(outer.is_waiting());
    inner_trigger.callback(7);
    assert_eq!(taken(&results), [7]);
    assert!(!outer.is_waiting());

    // The same through add_both, and with an inner that fails.
    let (outer, outer_trigger) = Deferred::<u32>::new();
    let (inner, inner_trigger) = Deferred::<u32>::new();
    let outer = outer.add_both(move |_| inner);
    outer_trigger.errback(Boom("outer"));
    assert!(outer.is_waiting());
    inner_trigger.errback(Boom("inner"));
    let failure = outer.result().unwrap().unwrap_err();
    assert_eq!(failure.downcast_ref::<Boom>(), Some(&Boom("inner")));
}

/// The README's pattern `get_page(a).add_callback(|_| get_page(b))`: the
/// inner Deferred fires later, from the reactor, and the outer result is the
/// inner's value.
#[test]
fn add_callback_waits_for_a_deferred_fired_later_by_the_reactor() {
    use std::time::Duration;
    use twined::{reactor, task};

    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let d = task::defer_later(Duration::from_millis(1), || Ok::<_, Failure>(1u32))
        .add_callback(|n| task::defer_later(Duration::from_millis(5), move || Ok(n + 41)))
        .add_callback(move |n| {
            g.set(n);
            reactor::stop().unwrap();
        });
    let watchdog = reactor::call_later(Duration::from_secs(10), || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    assert_eq!(got.get(), 42);
    drop(d);
}

/// D `test_chainedPausedDeferredWithResult`: a *paused*
/// inner blocks the outer even though it already has a result.
///
/// Twisted's test then unpauses the inner and sees the outer resume. That is
/// impossible in twined: returning the inner from a callback moves its handle
/// into the chain, so nobody can call `unpause` on it any more. The outer
/// stays blocked for good; a paused Deferred handed to a chain cannot be unpaused.
#[test]
fn paused_inner_with_result_blocks_outer() {
    let results = calls();
    let r = results.clone();
    let (paused, paused_trigger) = Deferred::<&str>::new();
    paused_trigger.callback("expected");
    paused.pause();
    let (outer, outer_trigger) = Deferred::<()>::new();
    let outer = outer
        .and_then(move |_| paused)
        .add_callback(move |v| r.borrow_mut().push(v));
    outer_trigger.callback(());
    assert!(
        taken(&results).is_empty(),
        "the paused inner's result is not stolen"
    );
    assert_eq!(outer.paused(), 1);
    assert!(outer.try_result().is_err());
}

/// D `test_errbackReturnsDeferred`: errbacks may return Deferreds
/// too; the chain waits for them and goes on with their result, success or
/// failure.
#[test]
fn errback_returns_deferred() {
    let (outer, outer_trigger) = Deferred::<&str>::new();
    let (inner, inner_trigger) = Deferred::<&str>::new();
    let outer = outer.or_else(move |_| inner);
    outer_trigger.errback(Boom("outer"));
    assert!(outer.is_waiting());
    inner_trigger.callback("inner");
    assert_eq!(outer.result(), Some(Ok("inner")));

    // The Deferred an errback returns may fail as well.
    let (outer, outer_trigger) = Deferred::<&str>::new();
    let (inner, inner_trigger) = Deferred::<&str>::new();
    let outer = outer.or_else(move |_| inner);
    outer_trigger.errback(Boom("outer"));
    inner_trigger.errback(Boom("inner"));
    assert_eq!(
        failure_of(outer).downcast_ref::<Boom>(),
        Some(&Boom("inner"))
    );
}

/// D `test_pausedDeferredChained`: pausing the outer does not stop
/// the inner's callbacks; the inner's result waits in the paused outer.
///
/// Twisted's test adds the inner's callback *after* the inner was returned;
/// in twined the returned handle has been moved, so the inner's callbacks are
/// added before it is returned. The behaviour checked is the same.
#[test]
fn pausing_outer_does_not_stop_inner_callbacks() {
    let order = calls();
    let (o1, o2) = (order.clone(), order.clone());
    let (first, first_trigger) = Deferred::<()>::new();
    let (second, second_trigger) = Deferred::<()>::new();
    let second = second.add_callback(move |()| o1.borrow_mut().push("inner callback"));
    let first = first
        .and_then(move |()| second)
        .add_callback(move |()| o2.borrow_mut().push("outer callback"));
    first_trigger.callback(());
    first.pause();
    second_trigger.callback(());
    assert_eq!(taken(&order), ["inner callback"]);
    assert!(!first.is_waiting(), "the inner's result was delivered");
    assert_eq!(first.paused(), 1, "only the user's pause is left");
    first.unpause();
    assert_eq!(taken(&order), ["inner callback", "outer callback"]);
}

/// D `test_innerCallbacksPreserved`: the inner's own callbacks run
/// before the outer continues.
#[test]
fn inner_callbacks_preserved() {
    let results = calls();
    let failures = calls::<String>();
    let (inner, inner_trigger) = Deferred::<String>::new();
    let inner = Rc::new(RefCell::new(Some(inner)));
    let (r, f) = (results.clone(), failures.clone());
    let cb = move |result: String| {
        r.borrow_mut().push(format!("start-of-cb {result}"));
        let (r1, r2) = (r.clone(), r.clone());
        let inner = inner.clone();
        let f = f.clone();
        defer::succeed("inner".to_owned())
            .and_then(move |_| {
                r1.borrow_mut().push("firstCallback inner".to_owned());
                inner.borrow_mut().take().unwrap()
            })
            .add_callback(move |result| {
                r2.borrow_mut().push(format!("secondCallback {result}"));
                result.repeat(2)
            })
            .add_errback(move |failure| {
                f.borrow_mut().push(failure.to_string());
                String::new()
            })
    };
    let r = results.clone();
    let outer = defer::succeed("outer".to_owned())
        .and_then(cb)
        .add_callback(move |result| r.borrow_mut().push(format!("outer {result}")));
    assert_eq!(
        taken(&results),
        ["start-of-cb outer", "firstCallback inner"]
    );
    inner_trigger.callback("orange".to_owned());
    assert_eq!(
        taken(&results),
        [
            "start-of-cb outer",
            "firstCallback inner",
            "secondCallback orange",
            "outer orangeorange"
        ]
    );
    assert!(taken(&failures).is_empty());
    assert_eq!(outer.result(), Some(Ok(())));
}

/// D `test_continueCallbackNotFirst`, `test_callbackOrderPreserved`:
/// the step that resumes the outer need not be the inner's first pending step,
/// and the outer's later callbacks keep their order after the inner's.
#[test]
fn continue_callback_not_first_and_order_preserved() {
    let results = calls::<String>();
    let failures = calls::<String>();
    let (a, a_trigger) = Deferred::<&str>::new();
    let a = Rc::new(RefCell::new(Some(a)));
    let (r, f) = (results.clone(), failures.clone());
    let cb = move |result: &str| {
        r.borrow_mut().push(format!("cb {result}"));
        let (d, trigger) = Deferred::<()>::new();
        let (r1, r2, a, f) = (r.clone(), r.clone(), a.clone(), f.clone());
        let d = d
            .and_then(move |()| {
                r1.borrow_mut().push("firstCallback".to_owned());
                defer::gather_results(a.borrow_mut().take())
            })
            .add_callback(move |values| r2.borrow_mut().push(format!("secondCallback {values:?}")))
            .add_errback(move |failure| f.borrow_mut().push(failure.to_string()));
        trigger.callback(());
        d
    };
    let (outer, outer_trigger) = Deferred::<&str>::new();
    let (r, f) = (results.clone(), failures.clone());
    let _outer = outer
        .and_then(cb)
        .add_callback(move |()| r.borrow_mut().push("final".to_owned()))
        .add_errback(move |failure| f.borrow_mut().push(failure.to_string()));
    outer_trigger.callback("outer");
    assert_eq!(taken(&results), ["cb outer", "firstCallback"]);
    a_trigger.callback("withers");
    assert!(taken(&failures).is_empty());
    assert_eq!(
        taken(&results),
        [
            "cb outer",
            "firstCallback",
            "secondCallback [\"withers\"]",
            "final"
        ]
    );
}

/// D `test_reentrantRunCallbacks`, `test_nonReentrantCallbacks`: a
/// callback added from inside a running callback of the same Deferred is
/// appended and runs only after the current callback returns.
#[test]
fn callback_added_while_running_runs_after_current_returns() {
    let called = calls();
    let slot: Slot<()> = Rc::new(RefCell::new(None));
    let (d, trigger) = Deferred::<()>::new();
    let (c1, c2, s) = (called.clone(), called.clone(), slot.clone());
    let d = d
        .add_callback(move |()| {
            c1.borrow_mut().push(1);
            let mut slot = s.borrow_mut();
            let d = slot.take().unwrap();
            let c3 = c1.clone();
            *slot = Some(d.add_callback(move |()| c3.borrow_mut().push(3)));
            // test_nonReentrantCallbacks: not run yet.
            assert_eq!(*c1.borrow(), [1]);
        })
        .add_callback(move |()| c2.borrow_mut().push(2));
    *slot.borrow_mut() = Some(d);
    trigger.callback(());
    assert_eq!(taken(&called), [1, 2, 3]);
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.result(), Some(Ok(())));
}

/// D `test_reentrantRunCallbacksWithFailure`: the same holds when the
/// callback added re-entrantly fails: its failure is the chain's result.
#[test]
fn reentrant_callback_with_failure() {
    let slot: Slot<()> = Rc::new(RefCell::new(None));
    let (d, trigger) = Deferred::<()>::new();
    let s = slot.clone();
    let d = d.add_callback(move |()| {
        let mut slot = s.borrow_mut();
        let d = slot.take().unwrap();
        *slot = Some(d.and_then(|()| Err(Failure::new(Boom("reentrant")))));
    });
    *slot.borrow_mut() = Some(d);
    trigger.callback(());
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(
        failure_of(d).downcast_ref::<Boom>(),
        Some(&Boom("reentrant"))
    );
}

/// D `test_synchronousImplicitChain`, `test_asynchronousImplicitChain`:
/// returning a Deferred hands its result to the outer, by moving it: the value
/// that arrives is the very value the inner had, and the inner keeps no
/// reference to it (Twisted: the inner's result becomes `None`).
#[test]
fn implicit_chain_moves_the_result() {
    // Synchronous: the inner has already fired.
    let value = Rc::new("result");
    let first = defer::succeed(value.clone());
    let (second, second_trigger) = Deferred::<()>::new();
    let second = second.and_then(move |()| first);
    second_trigger.callback(());
    let got = second.result().unwrap().unwrap();
    assert!(Rc::ptr_eq(&got, &value));
    assert_eq!(
        Rc::strong_count(&value),
        2,
        "no copy left behind in the inner"
    );

    // Asynchronous: the inner fires later.
    let value = Rc::new("result");
    let (first, first_trigger) = Deferred::<Rc<&str>>::new();
    let (second, second_trigger) = Deferred::<()>::new();
    let second = second.and_then(move |()| first);
    second_trigger.callback(());
    assert!(second.is_waiting());
    first_trigger.callback(value.clone());
    let got = second.result().unwrap().unwrap();
    assert!(Rc::ptr_eq(&got, &value));
    assert_eq!(
        Rc::strong_count(&value),
        2,
        "no copy left behind in the inner"
    );
}

/// D `test_synchronousImplicitErrorChain`,
/// `test_asynchronousImplicitErrorChain`: the same move happens for failures:
/// the outer gets the inner's very failure. (That the inner then never logs
/// an unhandled error is checked in `tests/defer_log.rs`.)
#[test]
fn implicit_chain_moves_failures() {
    let failure = Failure::new(Boom("sync"));
    let first = defer::fail::<()>(failure.clone());
    let second = defer::succeed(()).and_then(move |()| first);
    assert!(failure_of(second) == failure);

    let failure = Failure::new(Boom("async"));
    let (first, first_trigger) = Deferred::<()>::new();
    let (second, second_trigger) = Deferred::<()>::new();
    let second = second.and_then(move |()| first);
    second_trigger.callback(());
    first_trigger.errback(failure.clone());
    assert!(failure_of(second) == failure);
}

/// D `test_doubleAsynchronousImplicitChaining`: chaining is
/// transitive: third waits on second, which waits on first.
#[test]
fn double_asynchronous_implicit_chaining() {
    let (first, first_trigger) = Deferred::<&str>::new();
    let (second, second_trigger) = Deferred::<()>::new();
    let second = second.and_then(move |()| first);
    let (third, third_trigger) = Deferred::<()>::new();
    let third = third.and_then(move |()| second);
    third_trigger.callback(());
    second_trigger.callback(());
    assert!(third.is_waiting());
    first_trigger.callback("result");
    assert_eq!(third.result(), Some(Ok("result")));
}

/// D `test_nestedAsynchronousChainedDeferreds`,
/// `test_nestedAsynchronousChainedDeferredsWithExtraCallbacks`: nested chains
/// with extra callbacks on every level run in order.
///
/// In the "WithExtraCallbacks" variant Twisted adds callbacks to the inner
/// after returning it; twined moves the returned handle, so they are added
/// before it is returned.
#[test]
fn nested_asynchronous_chained_deferreds_with_extra_callbacks() {
    let results = calls::<String>();
    let (inner, inner_trigger) = Deferred::<Vec<&str>>::new();
    let inner = Rc::new(RefCell::new(Some(inner)));
    let r = results.clone();
    let cb = move |result: &str| {
        r.borrow_mut().push(format!("start-of-cb {result}"));
        let (r1, r2, r3) = (r.clone(), r.clone(), r.clone());
        let inner = inner.clone();
        defer::succeed("inner")
            .and_then(move |result| {
                r1.borrow_mut().push(format!("firstCallback {result}"));
                inner
                    .borrow_mut()
                    .take()
                    .unwrap()
                    .add_callback(move |mut v| {
                        r2.borrow_mut().push(format!("inner extra {v:?}"));
                        v.push("withExtraCallbacks");
                        v
                    })
            })
            .add_callback(move |v| {
                r3.borrow_mut().push(format!("secondCallback {v:?}"));
                v.len()
            })
    };
    let r = results.clone();
    let outer = defer::succeed("outer").and_then(cb).add_callback(move |n| {
        r.borrow_mut().push(format!("outer {n}"));
        n
    });
    assert_eq!(
        taken(&results),
        ["start-of-cb outer", "firstCallback inner"]
    );
    inner_trigger.callback(vec!["orange"]);
    assert_eq!(
        taken(&results),
        [
            "start-of-cb outer",
            "firstCallback inner",
            "inner extra [\"orange\"]",
            "secondCallback [\"orange\", \"withExtraCallbacks\"]",
            "outer 2"
        ]
    );
    assert_eq!(outer.result(), Some(Ok(2)));
}

/// D `test_resultOfDeferredResultOfDeferredOfFiredDeferredCalled`:
/// first waits on second, which waits on third; firing third last delivers
/// its result all the way up.
#[test]
fn result_of_deferred_result_of_deferred_of_fired_deferred() {
    let (first, first_trigger) = Deferred::<()>::new();
    let (second, second_trigger) = Deferred::<()>::new();
    let (third, third_trigger) = Deferred::<&str>::new();
    let second = second.and_then(move |()| third);
    let first = first.and_then(move |()| second);
    second_trigger.callback(());
    first_trigger.callback(());
    assert!(first.is_waiting());
    third_trigger.callback("third");
    assert_eq!(first.result(), Some(Ok("third")));
}

/// D `test_chainDeferredRecordsImplicitChain`,
/// `test_explicitChainClearedWhenResolved`: the Deferred a chain waits on is
/// recorded (Twisted's `_chainedTo`) and cleared once it resolves.
#[test]
fn implicit_chain_is_recorded_and_cleared() {
    let (a, a_trigger) = Deferred::<u32>::new();
    let (b, b_trigger) = Deferred::<u32>::new();
    let a_repr = format!("{a:?}");
    let b = b.and_then(move |_| a);
    assert!(!b.is_waiting());
    b_trigger.callback(0);
    assert!(b.is_waiting());
    let b_repr = format!("{b:?}");
    assert!(
        b_repr.ends_with(&format!(
            "waiting on Deferred at {}>",
            first_address(&a_repr)
        )),
        "{b_repr} should name {a_repr}"
    );
    a_trigger.callback(3);
    assert!(!b.is_waiting());
    assert_eq!(b.paused(), 0);
    assert_eq!(b.result(), Some(Ok(3)));
}

/// D `test_chainDeferredRecordsExplicitChain`,
/// `test_explicitChainClearedWhenResolved`: `a.chain_deferred(b)` records that
/// `b` waits on `a`, until `a` fires.
#[test]
fn explicit_chain_is_recorded_and_cleared() {
    let (a, a_trigger) = Deferred::<u32>::new();
    let (b, b_trigger) = Deferred::<u32>::new();
    let a_repr = format!("{a:?}");
    a.chain_deferred(b_trigger);
    assert!(b.is_waiting());
    assert_eq!(b.paused(), 0, "explicit chaining does not pause b");
    let b_repr = format!("{b:?}");
    assert!(
        b_repr.ends_with(&format!(
            "waiting on Deferred at {}>",
            first_address(&a_repr)
        )),
        "{b_repr} should name {a_repr}"
    );
    a_trigger.callback(5);
    assert!(!b.is_waiting());
    assert_eq!(b.result(), Some(Ok(5)));

    // Cancelling the target of an explicit chain cancels it alone (Twisted:
    // its result is not a Deferred), clears the record, and swallows the one
    // late result the source then delivers.
    let (a, a_trigger) = Deferred::<u32>::new();
    let (b, b_trigger) = Deferred::<u32>::new();
    a.chain_deferred(b_trigger);
    b.cancel();
    assert!(!b.is_waiting());
    b.cancel(); // a second cancel must not reach `a`
    assert!(!a_trigger.is_cancelled());
    a_trigger.callback(1);
    assert!(failure_of(b).check::<CancelledError>());
}

// D `test_circularChainWarning`, `test_circularChainException`: Rust
// has no warnings at run time, so the Twisted "warnings as errors" variant is
// twined's only behaviour: the chain fails with `CircularChain`.
/// twined's documented behaviour: a callback that returns the
/// Deferred it belongs to fails the chain with [`CircularChain`].
#[test]
fn circular_chain_fails_with_circular_chain() {
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    let seen = calls();
    let (d, trigger) = Deferred::<u32>::new();
    let (s, seen2) = (slot.clone(), seen.clone());
    let d = d
        .and_then(move |_| s.borrow_mut().take().unwrap())
        .add_errback(move |f| {
            seen2.borrow_mut().push(f.check::<CircularChain>());
            9
        });
    *slot.borrow_mut() = Some(d);
    trigger.callback(1);
    assert_eq!(taken(&seen), [true]);
}

/// D `test_repr`, `test_reprWithResult`, `test_reprWithChaining`:
/// the Debug output is Twisted's repr: plain, with the current result, or
/// "waiting on".
#[test]
fn repr() {
    let (d, trigger) = Deferred::<u32>::new();
    let repr = format!("{d:?}");
    assert_eq!(repr_without_addresses(&repr), "<Deferred at ADDR>");
    assert_eq!(first_address(&format!("{trigger:?}")), first_address(&repr));
    trigger.callback(3);
    assert_eq!(
        repr_without_addresses(&format!("{d:?}")),
        "<Deferred at ADDR current result: 3>"
    );
    let d = defer::fail::<u32>(Boom("r"));
    assert_eq!(
        repr_without_addresses(&format!("{d:?}")),
        "<Deferred at ADDR current result: Failure(Boom(\"r\"))>"
    );
    d.add_errback(|_| 0);
}

/// D `test_boundedStackDepth`: the stack depth stays constant however
/// long the implicit chain is. Twisted's test compares the depth for 10 and
/// 20 links; here 100,000 links run on a 128 KiB stack, which recursion could
/// not survive. (A million links, and `chain_deferred`, in
/// `tests/defer_stack.rs`.)
#[test]
fn bounded_stack_depth() {
    let handle = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            const LINKS: usize = 100_000;
            let (top, top_trigger) = Deferred::<usize>::new();
            let mut triggers = Vec::with_capacity(LINKS);
            let mut deferreds = Vec::with_capacity(LINKS);
            for _ in 0..LINKS {
                let (d, t) = Deferred::<usize>::new();
                deferreds.push(d);
                triggers.push(t);
            }
            // top -> d0 -> d1 -> ... -> d(n-1) -> last
            let (last, last_trigger) = Deferred::<usize>::new();
            let mut next = last;
            for d in deferreds.into_iter().rev() {
                next = d.and_then(move |_| next.add_callback(|n| n + 1));
            }
            let top = top.and_then(move |_| next);
            top_trigger.callback(0);
            for t in triggers {
                t.callback(0);
            }
            assert!(top.is_waiting());
            last_trigger.callback(0);
            top.result()
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), Some(Ok(100_000)));
}

// D `test_errbackWithNoArgs*`, `test_errorInCallback*Vars*`: Rust has
// no "exception currently being handled" and no frame locals; an errback always
// takes its error explicitly.

/// D `test_canceller_circular_reference_callback`, `_errback`,
/// `_non_final`: the canceller (and whatever it holds, here a reference cycle
/// back to the Deferred itself) is dropped as soon as the Deferred fires,
/// even when the result is not final because a callback returned a Deferred.
#[test]
fn canceller_dropped_once_fired() {
    fn deferred_holding_itself() -> (Slot<u32>, Trigger<u32>) {
        let slot: Slot<u32> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let (d, trigger) = Deferred::with_canceller(move |_: Canceller<u32>| {
            let _keep = &s;
        });
        *slot.borrow_mut() = Some(d);
        assert_eq!(Rc::strong_count(&slot), 2, "the canceller holds the slot");
        (slot, trigger)
    }

    let (slot, trigger) = deferred_holding_itself();
    trigger.callback(1);
    assert_eq!(Rc::strong_count(&slot), 1, "callback drops the canceller");

    let (slot, trigger) = deferred_holding_itself();
    trigger.errback(Boom("e"));
    assert_eq!(Rc::strong_count(&slot), 1, "errback drops the canceller");
    slot.borrow_mut().take().unwrap().add_errback(|_| 0);

    let (slot, trigger) = deferred_holding_itself();
    let (inner, inner_trigger) = Deferred::<u32>::new();
    let d = slot.borrow_mut().take().unwrap().and_then(move |_| inner);
    *slot.borrow_mut() = Some(d);
    trigger.callback(1);
    assert!(slot.borrow().as_ref().unwrap().is_waiting());
    assert_eq!(
        Rc::strong_count(&slot),
        1,
        "a non-final result drops it too"
    );
    inner_trigger.callback(2);
    assert_eq!(slot.borrow_mut().take().unwrap().result(), Some(Ok(2)));
}

/// D `AlreadyCalledTests.testAlreadyCalled_CC` (and `_CE`, `_EC`,
/// `_EE`): firing twice. In twined `callback`/`errback` consume the
/// `Trigger`, so firing twice does not compile. The one way a Deferred can
/// already have fired when its trigger is used is a cancel whose canceller did
/// not stop the work; `try_callback` then returns `AlreadyCalled` with the
/// value. (`testAlreadyCalledDebug_*`, `testNoDebugging`,
/// `testSwitchDebugging`: `AlreadyCalled` is returned to the caller, who has
/// the stack; it carries no creator/invoker stacks.)
#[test]
fn already_called() {
    let (d, trigger) = Deferred::<u32>::with_canceller(|_| {});
    d.cancel();
    assert!(trigger.is_called());
    let AlreadyCalled { rejected } = trigger.try_callback(7).unwrap_err();
    assert_eq!(rejected, 7);
    assert!(failure_of(d).check::<CancelledError>());

    let (d, trigger) = Deferred::<u32>::new();
    assert!(!trigger.is_called());
    assert!(trigger.try_callback(1).is_ok());
    assert_eq!(d.result(), Some(Ok(1)));
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

/// D `test_noCanceller`: with no canceller, `cancel()` errbacks with
/// `CancelledError`.
#[test]
fn no_canceller_errbacks_cancelled_error() {
    let (d, trigger) = Deferred::<u32>::new();
    d.cancel();
    assert!(trigger.is_called());
    assert!(trigger.is_cancelled());
    assert!(failure_of(d).check::<CancelledError>());
}

/// D `test_raisesAfterCancelAndCallback`,
/// `test_raisesAfterCancelAndErrback`: after a canceller-less cancel, one late
/// `callback` or `errback` is swallowed. (Twisted's "a second one raises"
/// cannot happen: a Deferred has one trigger, and firing consumes it.)
#[test]
fn one_late_result_is_swallowed_after_cancel() {
    let (d, trigger) = Deferred::<u32>::new();
    d.cancel();
    assert!(trigger.try_callback(1).is_ok(), "swallowed, not rejected");
    assert!(failure_of(d).check::<CancelledError>());

    let (d, trigger) = Deferred::<u32>::new();
    d.cancel();
    trigger.errback(Boom("late"));
    assert!(failure_of(d).check::<CancelledError>());
}

/// D `test_noCancellerMultipleCancel`, `test_cancellerMultipleCancel`,
/// `test_noCancellerMultipleCancelsAfterCancelAndCallback`: further `cancel()`
/// calls are no-ops, and a canceller runs at most once.
#[test]
fn multiple_cancels_are_noops() {
    let (d, _trigger) = Deferred::<u32>::new();
    d.cancel();
    d.cancel();
    d.cancel();
    assert!(failure_of(d).check::<CancelledError>());

    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let (d, _trigger) = Deferred::<u32>::with_canceller(move |_| r.set(r.get() + 1));
    d.cancel();
    d.cancel();
    assert_eq!(runs.get(), 1);
    assert!(failure_of(d).check::<CancelledError>());

    let (d, trigger) = Deferred::<u32>::new();
    d.cancel();
    trigger.callback(1);
    d.cancel();
    assert!(failure_of(d).check::<CancelledError>());
}

/// D `test_simpleCanceller`, `test_cancellerArg`: a canceller that
/// does not fire the Deferred leaves it failed with `CancelledError`, and a
/// late result is *not* swallowed; the canceller receives the Deferred itself
/// (twined: a `Canceller` that fires that very Deferred).
#[test]
fn canceller_that_does_not_fire() {
    let seen = Rc::new(RefCell::new(String::new()));
    let s = seen.clone();
    let (d, trigger) = Deferred::<u32>::with_canceller(move |c| *s.borrow_mut() = format!("{c:?}"));
    let repr = format!("{d:?}");
    d.cancel();
    assert_eq!(first_address(&seen.borrow()), first_address(&repr));
    assert!(trigger.is_cancelled());
    let rejected = trigger.try_callback(5).unwrap_err();
    assert_eq!(rejected.rejected, 5, "not swallowed: handed back");
    assert!(failure_of(d).check::<CancelledError>());
}

/// D `test_cancellerThatCallbacks`, `test_cancellerThatErrbacks`: a
/// canceller may fire the Deferred with a success or with any failure.
#[test]
fn canceller_may_fire() {
    let (d, trigger) = Deferred::<&str>::with_canceller(|c| c.callback("hello!"));
    d.cancel();
    assert!(trigger.is_called());
    assert_eq!(d.result(), Some(Ok("hello!")));

    let (d, _trigger) = Deferred::<&str>::with_canceller(|c| c.errback(Boom("cancel")));
    d.cancel();
    assert_eq!(failure_of(d).downcast_ref::<Boom>(), Some(&Boom("cancel")));
}

/// D `test_cancelAfterCallback`, `test_cancelAfterErrback`:
/// cancelling a fired Deferred does nothing, and its canceller is not called.
#[test]
fn cancel_after_fire_does_nothing() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let (d, trigger) = Deferred::<&str>::with_canceller(move |_| r.set(r.get() + 1));
    trigger.callback("biff!");
    d.cancel();
    assert_eq!(runs.get(), 0);
    assert_eq!(d.result(), Some(Ok("biff!")));

    let r = runs.clone();
    let (d, trigger) = Deferred::<&str>::with_canceller(move |_| r.set(r.get() + 1));
    trigger.errback(Boom("biff"));
    d.cancel();
    assert_eq!(runs.get(), 0);
    assert_eq!(failure_of(d).downcast_ref::<Boom>(), Some(&Boom("biff")));
}

/// D `test_cancelNestedDeferred`: cancelling an outer Deferred that
/// waits on an inner one cancels the inner instead (the outer's canceller is
/// not called), and the inner's `CancelledError` flows into the outer.
#[test]
fn cancel_nested_deferred_cancels_inner() {
    let inner_runs = Rc::new(Cell::new(0));
    let r = inner_runs.clone();
    let (inner, _inner_trigger) = Deferred::<u32>::with_canceller(move |_| r.set(r.get() + 1));
    let (outer, outer_trigger) =
        Deferred::<u32>::with_canceller(|_| panic!("the outer canceller must not run"));
    outer_trigger.callback(0);
    let outer = outer.and_then(move |_| inner);
    let results = calls();
    let r = results.clone();
    let outer = outer.add_callbacks(
        |v| format!("callback {v}"),
        move |f| {
            r.borrow_mut().push(f.check::<CancelledError>());
            "errback".to_owned()
        },
    );
    outer.cancel();
    assert_eq!(inner_runs.get(), 1);
    assert_eq!(taken(&results), [true]);
    assert_eq!(outer.result(), Some(Ok("errback".to_owned())));

    // Several levels deep: the innermost unfired Deferred is the one cancelled.
    let (innermost, innermost_trigger) = Deferred::<u32>::new();
    let middle = defer::succeed(0u32).and_then(move |_| innermost);
    let outer = defer::succeed(0u32).and_then(move |_| middle);
    outer.cancel();
    assert!(innermost_trigger.is_cancelled());
    assert!(failure_of(outer).check::<CancelledError>());
}

// ---------------------------------------------------------------------------
// Combinators
// ---------------------------------------------------------------------------

/// D `testDeferredList`, `testEmptyDeferredList`: a DeferredList
/// fires with every result in input order (twined: `Ok(value)` /
/// `Err(failure)` for Twisted's `(True, value)` / `(False, failure)`), once
/// all have fired; an empty list fires `[]` at once.
#[test]
fn deferred_list_results_in_input_order() {
    let (d1, t1) = Deferred::<&str>::new();
    let (d2, t2) = Deferred::<&str>::new();
    let (d3, t3) = Deferred::<&str>::new();
    let list = DeferredList::new(vec![d1, d2, d3]);
    t1.callback("1");
    assert!(!list.called());
    t2.errback(Boom("2"));
    assert!(!list.called());
    t3.callback("3");
    let results = list.result().unwrap().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().ok(), Some(&"1"));
    assert_eq!(
        results[1].as_ref().unwrap_err().downcast_ref::<Boom>(),
        Some(&Boom("2"))
    );
    assert_eq!(results[2].as_ref().ok(), Some(&"3"));

    // Firing in reverse order changes nothing in the result's order.
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let list = DeferredList::new(vec![d1, d2]);
    t2.callback(2);
    t1.callback(1);
    let results: Vec<u32> = list
        .result()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, [1, 2]);

    let empty = DeferredList::new(Vec::<Deferred<u32>>::new());
    assert!(empty.result().unwrap().unwrap().is_empty());
}

/// D `DeferredListEmptyTests.testDeferredListEmpty`: Twisted's empty
/// list with `fireOnOneCallback` never fires. twined differs on purpose
/// (documented on `DeferredList::first_success`): it errbacks at once with an
/// empty `FailureGroup`.
#[test]
fn empty_first_success_errbacks_at_once() {
    let d = DeferredList::first_success(Vec::<Deferred<u32>>::new());
    let failure = failure_of(d);
    assert!(failure
        .downcast_ref::<FailureGroup>()
        .unwrap()
        .failures
        .is_empty());
}

/// D `testDeferredListFireOnOneError`: with `fire_on_one_errback`,
/// the list errbacks with `FirstError` (the failed input's index and its very
/// failure) as soon as one input fails.
#[test]
fn fire_on_one_errback() {
    let (d1, t1) = Deferred::<&str>::new();
    let (d2, t2) = Deferred::<&str>::new();
    let (d3, _t3) = Deferred::<&str>::new();
    let list = DeferredList::with_options(
        vec![d1, d2, d3],
        ListOptions::new().fire_on_one_errback(true),
    );
    t1.callback("1");
    let failure = Failure::new(Boom("from deferred 2"));
    t2.errback(failure.clone());
    let list_failure = failure_of(list);
    let first = list_failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert!(first.failure == failure);
    assert_eq!(first.failure.to_string(), "boom: from deferred 2");
}

/// D `testDeferredListFireOnOneErrorWithAlreadyFiredDeferreds`,
/// `testDeferredListWithAlreadyFiredDeferreds`: inputs that had already fired
/// are processed at construction.
#[test]
fn already_fired_inputs_processed_at_construction() {
    let list = DeferredList::with_options(
        vec![defer::fail::<u32>(Boom("first")), defer::succeed(1)],
        ListOptions::new().fire_on_one_errback(true),
    );
    let failure = failure_of(list);
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 0);
    assert!(first.failure.check::<Boom>());

    let list = DeferredList::new(vec![defer::fail::<u32>(Boom("first")), defer::succeed(1)]);
    let results = list.result().unwrap().unwrap();
    assert!(results[0].as_ref().unwrap_err().check::<Boom>());
    assert_eq!(results[1].as_ref().ok(), Some(&1));
}

/// D `testDeferredListConsumeErrors`,
/// `testDeferredListDontConsumeErrors`: Twisted's `consumeErrors` decides
/// whether the inputs' callbacks added *after* the list see the failure or
/// `None`. twined's combinators own their inputs, so no callback can be added
/// to them later; both settings give the list every failure, and
/// `consume_errors(false)` additionally reports each as unhandled (checked in
/// `tests/defer_log.rs`).
#[test]
fn consume_errors_list_still_gets_the_failures() {
    for consume in [true, false] {
        let failure = Failure::new(Boom("input"));
        let (d, t) = Deferred::<u32>::new();
        let list = DeferredList::with_options(vec![d], ListOptions::new().consume_errors(consume));
        t.errback(failure.clone());
        let results = list.result().unwrap().unwrap();
        assert!(results[0].as_ref().unwrap_err() == &failure);
    }
}

/// D `test_cancelDeferredList`, `test_cancelDeferredListCallback`:
/// cancelling a DeferredList cancels its inputs: those without a canceller
/// fail with `CancelledError`, one whose canceller fires gives that result.
#[test]
fn cancel_deferred_list_cancels_inputs() {
    let (d1, t1) = Deferred::<&str>::new();
    let (d2, t2) = Deferred::<&str>::new();
    let list = DeferredList::new(vec![d1, d2]);
    list.cancel();
    assert!(t1.is_cancelled() && t2.is_cancelled());
    let results = list.result().unwrap().unwrap();
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().check::<CancelledError>()));

    let (d1, _t1) = Deferred::<&str>::with_canceller(|c| c.callback("hello"));
    let (d2, _t2) = Deferred::<&str>::new();
    let list = DeferredList::new(vec![d1, d2]);
    list.cancel();
    let results = list.result().unwrap().unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&"hello"));
    assert!(results[1].as_ref().unwrap_err().check::<CancelledError>());
}

/// D `test_cancelDeferredListWithFireOnOneCallback`,
/// `test_cancelDeferredListWithFireOnOneCallbackAndDeferredCallback`: a
/// first-success list, cancelled, fires with the result of a canceller that
/// callbacks, or (twined, documented on `first_success`) errbacks with the
/// `FailureGroup` of every `CancelledError`.
#[test]
fn cancel_first_success_list() {
    let (d1, t1) = Deferred::<&str>::new();
    let (d2, t2) = Deferred::<&str>::new();
    let list = DeferredList::first_success(vec![d1, d2]);
    list.cancel();
    assert!(t1.is_cancelled() && t2.is_cancelled());
    let failure = failure_of(list);
    let group = failure.downcast_ref::<FailureGroup>().unwrap();
    assert_eq!(group.failures.len(), 2);
    assert!(group.failures.iter().all(|f| f.check::<CancelledError>()));

    let (d1, _t1) = Deferred::<&str>::with_canceller(|c| c.callback("hello"));
    let (d2, _t2) = Deferred::<&str>::new();
    let list = DeferredList::first_success(vec![d1, d2]);
    list.cancel();
    assert_eq!(list.result(), Some(Ok((0, "hello"))));
}

/// D `test_cancelDeferredListWithFireOnOneErrback`,
/// `test_cancelDeferredListWithFireOnOneErrbackAllDeferredsCallback`.
#[test]
fn cancel_fire_on_one_errback_list() {
    let (d1, _t1) = Deferred::<&str>::new();
    let (d2, _t2) = Deferred::<&str>::new();
    let options = ListOptions::new().fire_on_one_errback(true);
    let list = DeferredList::with_options(vec![d1, d2], options);
    list.cancel();
    let failure = failure_of(list);
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 0);
    assert!(first.failure.check::<CancelledError>());

    let (d1, _t1) = Deferred::<&str>::with_canceller(|c| c.callback("hello"));
    let (d2, _t2) = Deferred::<&str>::with_canceller(|c| c.callback("world"));
    let list = DeferredList::with_options(vec![d1, d2], options);
    list.cancel();
    let results: Vec<&str> = list
        .result()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, ["hello", "world"]);
}

/// D `test_cancelDeferredListWithOriginalDeferreds`: only the
/// Deferreds passed in are cancelled, not others created alongside.
#[test]
fn cancel_reaches_only_the_inputs() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let (d3, t3) = Deferred::<u32>::new();
    let mut inputs = vec![d1, d2.add_callback(|x| x + 1)];
    let list = DeferredList::new(inputs.drain(..));
    inputs.push(d3);
    list.cancel();
    assert!(t1.is_cancelled());
    assert!(t2.is_cancelled());
    assert!(!t3.is_cancelled());
    assert!(!inputs[0].called());
}

/// D `test_cancelDeferredListWithException`: a canceller that fails
/// does not stop the others. Twisted logs the exception and leaves that input
/// unfired; twined (documented on `with_canceller`) fails it with the panic,
/// so the list still fires. (The log record is checked in
/// `tests/defer_log.rs`.)
#[test]
fn cancel_with_panicking_canceller() {
    let (d1, _t1) = Deferred::<u32>::with_canceller(|_| panic!("canceller bug"));
    let (d2, t2) = Deferred::<u32>::new();
    let list = DeferredList::new(vec![d1, d2]);
    list.cancel();
    assert!(t2.is_cancelled());
    let results = list.result().unwrap().unwrap();
    let panicked = results[0].as_ref().unwrap_err();
    assert_eq!(
        panicked.downcast_ref::<Panicked>().unwrap().message(),
        "canceller bug"
    );
    assert!(results[1].as_ref().unwrap_err().check::<CancelledError>());
}

/// D `test_cancelFiredOnOneCallbackDeferredList`,
/// `test_cancelFiredOnOneErrbackDeferredList`: once the list has fired,
/// cancelling it does nothing to the inputs still running.
#[test]
fn cancel_fired_list_does_nothing() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let list = DeferredList::first_success(vec![d1, d2]);
    t1.callback(1);
    list.cancel();
    assert!(!t2.is_cancelled());
    assert_eq!(list.result(), Some(Ok((0, 1))));

    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let options = ListOptions::new().fire_on_one_errback(true);
    let list = DeferredList::with_options(vec![d1, d2], options);
    t1.errback(Boom("first"));
    list.cancel();
    assert!(!t2.is_cancelled());
    assert!(failure_of(list).check::<FirstError>());
}

/// D `test_gatherResults`, `test_gatherResultsWithConsumeErrors`:
/// `gather_results` fires with the values in input order, or errbacks with
/// `FirstError` on the first failure. (twined always consumes the inputs'
/// errors: it owns them; see the combinator tests.)
#[test]
fn gather_results() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let all = defer::gather_results(vec![d1, d2]);
    t2.callback(2);
    t1.callback(1);
    assert_eq!(all.result(), Some(Ok(vec![1, 2])));

    let failure = Failure::new(Boom("second"));
    let all = defer::gather_results(vec![defer::succeed(1u32), defer::fail(failure.clone())]);
    let got = failure_of(all);
    let first = got.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert!(first.failure == failure);
}

/// D `test_cancelGatherResults`,
/// `test_cancelGatherResultsWithAllDeferredsCallback`: cancelling
/// `gather_results` cancels every input.
#[test]
fn cancel_gather_results() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let all = defer::gather_results(vec![d1, d2]);
    all.cancel();
    assert!(t1.is_cancelled() && t2.is_cancelled());
    let failure = failure_of(all);
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert!(first.failure.check::<CancelledError>());

    let (d1, _t1) = Deferred::<&str>::with_canceller(|c| c.callback("hello"));
    let (d2, _t2) = Deferred::<&str>::with_canceller(|c| c.callback("world"));
    let all = defer::gather_results(vec![d1, d2]);
    all.cancel();
    assert_eq!(all.result(), Some(Ok(vec!["hello", "world"])));
}

/// A Deferred whose canceller counts its runs.
fn counted(cancels: &Rc<Cell<u32>>) -> (Deferred<u32>, Trigger<u32>) {
    let c = cancels.clone();
    Deferred::with_canceller(move |_| c.set(c.get() + 1))
}

/// D `RaceTests.test_success`: the winner is `(index, value)` and
/// every loser is cancelled exactly once.
#[test]
fn race_winner_and_losers_cancelled_once() {
    let cancels: Vec<Rc<Cell<u32>>> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
    let (mut ds, mut ts): (Vec<_>, Vec<_>) = cancels.iter().map(counted).unzip();
    let d = defer::race(ds.drain(..));
    ts.remove(1).callback(42);
    assert_eq!(d.result(), Some(Ok((1, 42))));
    let counts: Vec<u32> = cancels.iter().map(|c| c.get()).collect();
    assert_eq!(counts, [1, 0, 1]);
    assert!(ts.iter().all(Trigger::is_called));
}

/// Twisted's `RaceTests.test_success` checks the losers' cancellation from
/// the winner's callback: the losers are cancelled before the winner's
/// result reaches the race's callbacks.
#[test]
fn race_cancels_the_losers_before_the_callbacks_see_the_winner() {
    let cancels: Vec<Rc<Cell<u32>>> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
    let (mut ds, mut ts): (Vec<_>, Vec<_>) = cancels.iter().map(counted).unzip();
    let seen = Rc::new(RefCell::new(None));
    let (s, c) = (seen.clone(), cancels.clone());
    let d = defer::race(ds.drain(..)).add_callback(move |winner| {
        *s.borrow_mut() = Some(c.iter().map(|c| c.get()).collect::<Vec<u32>>());
        winner
    });
    ts.remove(0).callback(7);
    assert_eq!(d.result(), Some(Ok((0, 7))));
    assert_eq!(seen.borrow().as_deref(), Some(&[0, 1, 1][..]));
}

/// D `RaceTests.test_failure`: if every input fails, the race fails
/// with a `FailureGroup` of their failures in input order.
#[test]
fn race_all_fail_gives_failure_group() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let race = defer::race(vec![d1, d2]);
    let (f1, f2) = (Failure::new(Boom("1")), Failure::new(Boom("2")));
    t2.errback(f2.clone());
    assert!(!race.called());
    t1.errback(f1.clone());
    let failure = failure_of(race);
    let group = failure.downcast_ref::<FailureGroup>().unwrap();
    assert_eq!(group.failures, [f1, f2]);
}

/// D `RaceTests.test_resultAfterCancel`, `test_resultFromCancel`: a
/// loser that fires after being cancelled, or whose canceller fires it with a
/// value, goes nowhere.
#[test]
fn late_losers_go_nowhere() {
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let race = defer::race(vec![d1, d2]);
    t2.callback(2);
    assert!(t1.try_callback(1).is_ok(), "the late result is swallowed");
    assert_eq!(race.result(), Some(Ok((1, 2))));

    let (d1, _t1) = Deferred::<u32>::with_canceller(|c| c.callback(100));
    let (d2, t2) = Deferred::<u32>::new();
    let race = defer::race(vec![d1, d2]);
    t2.callback(2);
    assert_eq!(race.result(), Some(Ok((1, 2))));
}

/// D `RaceTests.test_cancel`: cancelling the race cancels every
/// input.
#[test]
fn cancel_race_cancels_all() {
    let cancels: Vec<Rc<Cell<u32>>> = (0..2).map(|_| Rc::new(Cell::new(0))).collect();
    let (ds, _ts): (Vec<_>, Vec<_>) = cancels.iter().map(counted).unzip();
    let race = defer::race(ds);
    race.cancel();
    let counts: Vec<u32> = cancels.iter().map(|c| c.get()).collect();
    assert_eq!(counts, [1, 1]);
    let failure = failure_of(race);
    let group = failure.downcast_ref::<FailureGroup>().unwrap();
    assert!(group.failures.iter().all(|f| f.check::<CancelledError>()));
}

/// D `FirstErrorTests.*`: `FirstError` has a defined Display, Debug
/// and equality (same index and the same failure).
#[test]
fn first_error_repr_str_and_equality() {
    let failure = Failure::new(Boom("some text"));
    let error = FirstError {
        index: 3,
        failure: failure.clone(),
    };
    assert_eq!(error.to_string(), "FirstError[#3, boom: some text]");
    let debug = format!("{error:?}");
    assert!(debug.contains("index: 3"), "{debug}");
    assert!(debug.contains("Boom(\"some text\")"), "{debug}");
    assert!(error.source().unwrap().is::<Boom>());

    let same = FirstError {
        index: 3,
        failure: failure.clone(),
    };
    assert_eq!(error, same);
    let other_index = FirstError {
        index: 4,
        failure: failure.clone(),
    };
    assert_ne!(error, other_index);
    let other_failure = FirstError {
        index: 3,
        failure: Failure::new(Boom("some text")),
    };
    assert_ne!(
        error, other_failure,
        "an equal message is not the same failure"
    );
}

// ---------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------

/// D `testLock`: a DeferredLock serves waiters in order, and `run`
/// releases the lock only once the Deferred the function returned has fired.
#[test]
fn lock_fifo_and_run_releases_after_returned_deferred() {
    let lock = DeferredLock::new();
    let order = calls();
    let o = order.clone();
    let first = lock.acquire().add_callback(move |guard| {
        o.borrow_mut().push(1);
        guard
    });
    assert!(lock.locked());
    let waiters: Vec<Deferred<()>> = (2..=4)
        .map(|n| {
            let o = order.clone();
            lock.acquire().add_callback(move |guard| {
                o.borrow_mut().push(n);
                drop(guard);
            })
        })
        .collect();
    assert_eq!(lock.waiting(), 3);
    assert_eq!(taken(&order), [1]);
    drop(first.result());
    assert_eq!(taken(&order), [1, 2, 3, 4], "each waiter released in turn");
    assert!(!lock.locked());
    drop(waiters);

    // run: the lock is held until the returned Deferred fires.
    let (control, control_trigger) = Deferred::<&str>::new();
    let result = lock.run(move || control);
    assert!(lock.locked());
    let o = order.clone();
    let next = lock.acquire().add_callback(move |guard| {
        o.borrow_mut().push(5);
        guard
    });
    assert_eq!(taken(&order), [1, 2, 3, 4]);
    control_trigger.callback("second unique");
    assert_eq!(result.result(), Some(Ok("second unique")));
    assert_eq!(taken(&order), [1, 2, 3, 4, 5]);
    assert!(lock.locked(), "now held by the next waiter");
    drop(next);
    assert!(!lock.locked());

    // run releases after a failure too.
    let result = lock.run(|| Err::<(), _>(Failure::new(Boom("run"))));
    assert!(failure_of(result).check::<Boom>());
    assert!(!lock.locked());
}

/// D `test_cancelLockBeforeAcquired`, `test_cancelLockAfterAcquired`:
/// cancelling a waiting acquire errbacks it with `CancelledError` and removes
/// it from the queue; cancelling after acquisition does nothing.
#[test]
fn cancel_lock_waiter() {
    let lock = DeferredLock::new();
    let held = lock.acquire();
    held.cancel();
    let guard = held.result().unwrap().unwrap();
    assert!(lock.locked());

    let waiter = lock.acquire();
    assert_eq!(lock.waiting(), 1);
    waiter.cancel();
    assert_eq!(lock.waiting(), 0);
    assert!(failure_of(waiter).check::<CancelledError>());
    drop(guard);
    assert!(!lock.locked(), "the cancelled waiter did not get the lock");
}

/// A holder that releases the lock from inside the callback that gave it the
/// lock (while an earlier release is still handing the lock on) passes it to
/// the next waiter as soon as that callback returns, not in the middle of it:
/// the hand-over runs in a loop, in constant stack (see
/// `tests/defer_stack.rs`). Re-acquiring there queues behind the others.
#[test]
fn lock_released_during_a_handoff_goes_to_the_next_waiter_in_order() {
    let lock = DeferredLock::new();
    let order = calls();
    let first = lock.acquire().result().unwrap().unwrap();
    let (o, l) = (order.clone(), lock.clone());
    let again = Rc::new(RefCell::new(None));
    let a = again.clone();
    let _w1 = lock.acquire().add_callback(move |guard| {
        o.borrow_mut().push("w1 got it");
        drop(guard);
        o.borrow_mut().push("w1 released");
        let o2 = o.clone();
        *a.borrow_mut() = Some(l.acquire().add_callback(move |guard| {
            o2.borrow_mut().push("w1 again");
            guard
        }));
    });
    let o = order.clone();
    let _w2 = lock.acquire().add_callback(move |guard| {
        o.borrow_mut().push("w2 got it");
        drop(guard);
    });
    drop(first);
    assert_eq!(
        taken(&order),
        ["w1 got it", "w1 released", "w2 got it", "w1 again"]
    );
    assert!(lock.locked(), "held by w1's second acquire");
    drop(again.borrow_mut().take());
    assert!(!lock.locked());
}

/// D `testSemaphore`, `test_semaphoreInvalidTokens`: a semaphore caps
/// concurrency at N (max concurrency observed is N), and zero tokens is an
/// error.
#[test]
fn semaphore_caps_concurrency() {
    assert_eq!(DeferredSemaphore::new(0).unwrap_err(), InvalidTokens);

    let sem = DeferredSemaphore::new(2).unwrap();
    let running = Rc::new(Cell::new(0));
    let max = Rc::new(Cell::new(0));
    let mut triggers = Vec::new();
    let mut results = Vec::new();
    for i in 0..6u32 {
        let (job, trigger) = Deferred::<u32>::new();
        triggers.push(trigger);
        let (running, max, running2) = (running.clone(), max.clone(), running.clone());
        results.push(sem.run(move || {
            running.set(running.get() + 1);
            max.set(max.get().max(running.get()));
            job.add_callback(move |v| {
                running2.set(running2.get() - 1);
                v + i
            })
        }));
    }
    assert_eq!(running.get(), 2);
    assert_eq!(sem.tokens(), 0);
    assert_eq!(sem.waiting(), 4);
    // Finish them out of order.
    for (n, trigger) in triggers.into_iter().enumerate().rev() {
        trigger.callback(n as u32 * 10);
    }
    assert_eq!(max.get(), 2);
    assert_eq!(running.get(), 0);
    assert_eq!(sem.tokens(), 2);
    let values: Vec<u32> = results
        .into_iter()
        .map(|d| d.result().unwrap().unwrap())
        .collect();
    assert_eq!(values, [0, 11, 22, 33, 44, 55]);
}

/// D `test_cancelSemaphoreBeforeAcquired`,
/// `test_cancelSemaphoreAfterAcquired`.
#[test]
fn cancel_semaphore_waiter() {
    let sem = DeferredSemaphore::new(1).unwrap();
    let held = sem.acquire();
    held.cancel();
    let guard = held.result().unwrap().unwrap();
    let waiter = sem.acquire();
    waiter.cancel();
    assert!(failure_of(waiter).check::<CancelledError>());
    assert_eq!(sem.waiting(), 0);
    drop(guard);
    assert_eq!(sem.tokens(), 1);
}

/// D `testQueue`: a DeferredQueue hands values to waiting gets in
/// order, enforces `size` (`QueueOverflow` gives the value back) and
/// `backlog` (`QueueUnderflow`).
#[test]
fn queue_size_and_backlog() {
    let queue = DeferredQueue::<u32>::with_limits(Some(2), Some(2));
    let got: Vec<Deferred<u32>> = (0..2).map(|_| queue.get().unwrap()).collect();
    assert_eq!(queue.get().unwrap_err(), QueueUnderflow);
    assert_eq!(queue.waiting(), 2);
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    let values: Vec<u32> = got
        .into_iter()
        .map(|d| d.result().unwrap().unwrap())
        .collect();
    assert_eq!(values, [1, 2]);

    queue.put(3).unwrap();
    queue.put(4).unwrap();
    assert_eq!(queue.put(5).unwrap_err(), QueueOverflow(5));
    assert_eq!(queue.pending(), 2);
    assert_eq!(queue.get().unwrap().result(), Some(Ok(3)));
    assert_eq!(queue.get().unwrap().result(), Some(Ok(4)));
    assert_eq!(queue.pending(), 0);
}

/// D `test_cancelQueueAfterSynchronousGet`, `test_cancelQueueAfterGet`:
/// cancelling a get that already has its value does nothing; cancelling a
/// pending get removes it (the next value goes to the next get).
#[test]
fn cancel_queue_get() {
    let queue = DeferredQueue::<u32>::new();
    queue.put(1).unwrap();
    let d = queue.get().unwrap();
    d.cancel();
    assert_eq!(d.result(), Some(Ok(1)));

    let cancelled = queue.get().unwrap();
    let next = queue.get().unwrap();
    cancelled.cancel();
    assert_eq!(queue.waiting(), 1);
    assert!(failure_of(cancelled).check::<CancelledError>());
    queue.put(2).unwrap();
    assert_eq!(next.result(), Some(Ok(2)));
    assert_eq!(queue.pending(), 0);
}

// ---------------------------------------------------------------------------
// Failure basics used throughout (Twisted's `Failure.trap`/`check`/`value`)
// ---------------------------------------------------------------------------

/// `trap` lets a matching failure through and re-raises any other one, `?`
/// style; `Failure::msg` carries a `Message`; `TriggerDropped` fails a
/// Deferred whose trigger is dropped (twined's documented behaviour).
#[test]
fn failure_trap_check_and_trigger_dropped() {
    let d = defer::fail::<u32>(Other).or_else(|f| {
        f.trap::<Boom>()?;
        Ok(1)
    });
    assert!(failure_of(d).check::<Other>());
    let d = defer::fail::<u32>(Boom("x")).or_else(|f| {
        f.trap::<Boom>()?;
        Ok(1)
    });
    assert_eq!(d.result(), Some(Ok(1)));

    let d = defer::fail::<u32>(Failure::msg("just words"));
    let failure = failure_of(d);
    assert_eq!(failure.downcast_ref::<Message>().unwrap().0, "just words");

    let (d, trigger) = Deferred::<u32>::new();
    drop(trigger);
    assert!(failure_of(d).check::<TriggerDropped>());
}

// ---------------------------------------------------------------------------
// Re-entrancy: callbacks that touch their own and other chains while running
// ---------------------------------------------------------------------------

/// A callback adds callbacks to its own Deferred, and one of those adds more:
/// all run, in order, after the callback that added them.
#[test]
fn reentrancy_callbacks_add_to_their_own_chain_recursively() {
    let order = calls();
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    fn add(slot: &Slot<u32>, order: &Calls<u32>, depth: u32) {
        let d = slot.borrow_mut().take().unwrap();
        let (s, o) = (slot.clone(), order.clone());
        let d = d.add_callback(move |v| {
            o.borrow_mut().push(v);
            if depth < 5 {
                add(&s, &o, depth + 1);
            }
            v + 1
        });
        *slot.borrow_mut() = Some(d);
    }
    let (d, trigger) = Deferred::<u32>::new();
    *slot.borrow_mut() = Some(d);
    add(&slot, &order, 0);
    trigger.callback(0);
    assert_eq!(taken(&order), [0, 1, 2, 3, 4, 5]);
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.result(), Some(Ok(6)));
}

/// A callback inspects its own Deferred while it runs: nothing is final yet,
/// and no borrow error happens.
#[test]
fn reentrancy_callback_inspects_its_own_chain() {
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_callback(move |v| {
        let d = s.borrow_mut().take().unwrap();
        assert!(d.called());
        assert!(!d.has_result(), "the result is with the running callback");
        let repr = format!("{d:?}");
        assert!(!repr.contains("current result"), "{repr}");
        d.cancel(); // fired: a no-op
        let d = d.try_result().expect_err("not final while running");
        *s.borrow_mut() = Some(d);
        v + 1
    });
    *slot.borrow_mut() = Some(d);
    trigger.callback(1);
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.result(), Some(Ok(2)));
}

/// A callback fires other Deferreds whose callbacks add steps to the first
/// one and fire yet another: everything runs in a well-defined order.
#[test]
fn reentrancy_callback_fires_other_deferreds() {
    let order = calls();
    let slot: Slot<()> = Rc::new(RefCell::new(None));
    let (a, a_trigger) = Deferred::<()>::new();
    let (b, b_trigger) = Deferred::<()>::new();
    let (c, c_trigger) = Deferred::<()>::new();
    let (o, s) = (order.clone(), slot.clone());
    let _c = c.add_callback(move |()| {
        o.borrow_mut().push("c: adds to a");
        let d = s.borrow_mut().take().unwrap();
        let o2 = o.clone();
        *s.borrow_mut() = Some(d.add_callback(move |()| o2.borrow_mut().push("a: added by c")));
    });
    let o = order.clone();
    let _b = b.add_callback(move |()| {
        o.borrow_mut().push("b: fires c");
        c_trigger.callback(());
        o.borrow_mut().push("b: c fired");
    });
    let o = order.clone();
    let a = a.add_callback(move |()| {
        o.borrow_mut().push("a: fires b");
        b_trigger.callback(());
        o.borrow_mut().push("a: b fired");
    });
    *slot.borrow_mut() = Some(a);
    a_trigger.callback(());
    assert_eq!(
        taken(&order),
        [
            "a: fires b",
            "b: fires c",
            "c: adds to a",
            "b: c fired",
            "a: b fired",
            "a: added by c"
        ]
    );
}

/// A callback cancels another Deferred, cancels the Deferred its own chain
/// waits for (from one of that Deferred's callbacks), and drops handles and
/// triggers of other chains: no borrow errors, and the results are right.
#[test]
fn reentrancy_callbacks_cancel_and_drop() {
    // Cancel another Deferred, whose canceller fires a third one.
    let (other, other_trigger) = Deferred::<u32>::with_canceller(|c| c.callback(7));
    let (third, third_trigger) = Deferred::<u32>::new();
    let third = third.add_callback(|v| v * 2);
    let other = other.add_callback(move |v| {
        third_trigger.callback(v);
        v
    });
    let other = Rc::new(RefCell::new(Some(other)));
    let o = other.clone();
    let d = defer::succeed(()).add_callback(move |()| {
        let other = o.borrow_mut().take().unwrap();
        other.cancel();
        other.result()
    });
    assert_eq!(d.result(), Some(Ok(Some(Ok(7)))));
    assert_eq!(third.result(), Some(Ok(14)));
    assert!(other_trigger.is_called());
    assert!(other.borrow().is_none());

    // A callback cancels its own outer chain while that chain waits on the
    // Deferred the callback belongs to.
    let outer_slot: Slot<u32> = Rc::new(RefCell::new(None));
    let (inner, inner_trigger) = Deferred::<u32>::new();
    let s = outer_slot.clone();
    let inner = inner.and_then(move |v| {
        // The outer waits on us: cancel forwards to us, and we are running
        // (already fired), so nothing happens.
        s.borrow().as_ref().unwrap().cancel();
        Ok(v + 1)
    });
    let outer = defer::succeed(0u32).and_then(move |_| inner);
    *outer_slot.borrow_mut() = Some(outer);
    inner_trigger.callback(1);
    let outer = outer_slot.borrow_mut().take().unwrap();
    assert_eq!(outer.result(), Some(Ok(2)));

    // A callback drops the trigger of a Deferred whose errback adds to... the
    // running chain's own handle, held in a slot.
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    let (victim, victim_trigger) = Deferred::<u32>::new();
    let s = slot.clone();
    let _victim = victim.add_errback(move |f| {
        assert!(f.check::<TriggerDropped>());
        let d = s.borrow_mut().take().unwrap();
        *s.borrow_mut() = Some(d.add_callback(|v| v * 100));
        0
    });
    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_callback(move |v| {
        drop(victim_trigger);
        v + 1
    });
    *slot.borrow_mut() = Some(d);
    trigger.callback(1);
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.result(), Some(Ok(200)));
}

/// A callback drops its own chain's only handle while running: the chain
/// finishes its work, nothing panics.
#[test]
fn reentrancy_callback_drops_its_own_handle() {
    let order = calls();
    let slot: Slot<()> = Rc::new(RefCell::new(None));
    let (d, trigger) = Deferred::<()>::new();
    let (s, o1, o2) = (slot.clone(), order.clone(), order.clone());
    let d = d
        .add_callback(move |()| {
            o1.borrow_mut().push("first");
            drop(s.borrow_mut().take());
        })
        .add_callback(move |()| o2.borrow_mut().push("second"));
    *slot.borrow_mut() = Some(d);
    trigger.callback(());
    assert_eq!(taken(&order), ["first", "second"]);
    assert!(slot.borrow().is_none());
}

/// A callback pauses its own chain; the rest runs only when someone unpauses
/// it. A callback that pauses and unpauses at once goes straight on.
#[test]
fn reentrancy_pause_and_unpause_while_running() {
    let order = calls();
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    let (d, trigger) = Deferred::<u32>::new();
    let (s1, s2, o1, o2, o3) = (
        slot.clone(),
        slot.clone(),
        order.clone(),
        order.clone(),
        order.clone(),
    );
    let d = d
        .add_callback(move |v| {
            o1.borrow_mut().push(format!("pause-unpause({v})"));
            let slot = s1.borrow();
            let d = slot.as_ref().unwrap();
            d.pause();
            d.unpause();
            v + 1
        })
        .add_callback(move |v| {
            o2.borrow_mut().push(format!("pause({v})"));
            s2.borrow().as_ref().unwrap().pause();
            v + 1
        })
        .add_callback(move |v| {
            o3.borrow_mut().push(format!("after({v})"));
            v + 1
        });
    *slot.borrow_mut() = Some(d);
    trigger.callback(0);
    assert_eq!(taken(&order), ["pause-unpause(0)", "pause(1)"]);
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.paused(), 1);
    // Unpausing from another Deferred's callback resumes it.
    let d = Rc::new(d);
    let d2 = d.clone();
    let _other = defer::succeed(()).add_callback(move |()| d2.unpause());
    assert_eq!(taken(&order), ["pause-unpause(0)", "pause(1)", "after(2)"]);
    let d = Rc::try_unwrap(d).ok().unwrap();
    assert_eq!(d.result(), Some(Ok(3)));
}

/// A canceller that cancels its own Deferred again, and a callback that
/// cancels the DeferredList its Deferred is an input of.
#[test]
fn reentrancy_cancel_from_inside_cancel() {
    let runs = Rc::new(Cell::new(0));
    let slot: Slot<u32> = Rc::new(RefCell::new(None));
    let (s, r) = (slot.clone(), runs.clone());
    let (d, _trigger) = Deferred::<u32>::with_canceller(move |c| {
        r.set(r.get() + 1);
        s.borrow().as_ref().unwrap().cancel(); // re-entrant: a no-op
        c.callback(5);
    });
    *slot.borrow_mut() = Some(d);
    slot.borrow().as_ref().unwrap().cancel();
    assert_eq!(runs.get(), 1);
    assert_eq!(slot.borrow_mut().take().unwrap().result(), Some(Ok(5)));

    let list_slot: Slot<Vec<Result<u32, Failure>>> = Rc::new(RefCell::new(None));
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let s = list_slot.clone();
    let d1 = d1.add_callback(move |v| {
        s.borrow().as_ref().unwrap().cancel();
        v
    });
    *list_slot.borrow_mut() = Some(DeferredList::new(vec![d1, d2]));
    t1.callback(1);
    assert!(t2.is_cancelled());
    // The cancel ran before d1's own result reached the list, so the
    // canceller could not fire the list: it fails with CancelledError, and
    // d1's result, arriving after, goes nowhere.
    let list = list_slot.borrow_mut().take().unwrap();
    assert!(failure_of(list).check::<CancelledError>());
}

/// Regression: an unbalanced `unpause()` on a chain that waits on an inner
/// Deferred used to run the chain with no result, silently dropping every
/// callback after the one that returned the inner Deferred.
#[test]
fn unbalanced_unpause_while_waiting_keeps_the_callbacks() {
    let order = calls();
    let o = order.clone();
    let (inner, inner_trigger) = Deferred::<u32>::new();
    let outer = defer::succeed(0u32)
        .and_then(move |_| inner)
        .add_callback(move |v| {
            o.borrow_mut().push(v);
            v + 1
        });
    assert_eq!(outer.paused(), 1);
    outer.unpause(); // unbalanced: the user never paused it
    outer.unpause();
    assert!(taken(&order).is_empty());
    inner_trigger.callback(41);
    assert_eq!(taken(&order), [41]);
    assert_eq!(outer.result(), Some(Ok(42)));
}
