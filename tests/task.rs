//! `twined::task`: LoopingCall, defer_later, react and Cooperator, ported from
//! Twisted's `test_task.py` and `test_cooperator.py`, one test per behaviour.
//!
//! T = `twisted/test/test_task.py`, CO = `twisted/test/test_cooperator.py`.
//! Most tests run on a `task::Clock` (or, for the Cooperator, a scheduler the
//! test pumps by hand); a few run on the real reactor, each with a watchdog
//! timer that stops it and fails the test.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{
    self, CancelledError, Deferred, DeferredList, Failure, Panicked, Trigger, TriggerDropped,
};
use twined::reactor::{self, Event, Phase, ReactorError};
use twined::task::{
    self, Clock, Cooperator, LoopingCall, LoopingCallError, ReactorStopped, SystemExit, TaskError,
    WorkResult,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log<T> = Rc<RefCell<Vec<T>>>;

/// Cooperator ticks a test scheduler holds until the test pumps them.
type Ticks = Rc<RefCell<Vec<Box<dyn FnOnce()>>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

#[derive(Debug)]
struct TestError(&'static str);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "test error: {}", self.0)
    }
}

impl std::error::Error for TestError {}

/// Runs the reactor with a watchdog; panics if the watchdog had to stop it.
fn run_with_watchdog() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let watchdog = reactor::call_later(Duration::from_secs(10), move || {
        f.set(true);
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    assert!(!fired.get(), "the watchdog stopped the reactor");
    let _ = watchdog.cancel();
}

/// The result of a Deferred that must have fired.
fn fired<T: 'static>(d: Deferred<T>) -> Result<T, Failure> {
    d.result().expect("the Deferred has fired")
}

// ---------------------------------------------------------------------------
// LoopingCall
// ---------------------------------------------------------------------------

/// A loop on `clock` that records the clock's time at each call.
fn timing_loop(clock: &Clock) -> (LoopingCall, Log<f64>) {
    let times = log();
    let (t, c) = (times.clone(), clock.clone());
    let lc = LoopingCall::new(move || t.borrow_mut().push(c.seconds())).with_clock(clock.clone());
    (lc, times)
}

#[test]
fn looping_call_with_now_calls_at_once_then_every_interval() {
    // T testBasicFunction
    let clock = Clock::new();
    let (lc, times) = timing_loop(&clock);
    let d = lc.start(secs(0.1), true).unwrap();
    clock.pump([secs(0.05), secs(0.1), secs(0.1)]);
    assert_eq!(times.borrow().len(), 3);
    lc.stop().unwrap();
    assert!(fired(d).unwrap() == lc, "the Deferred fires with the loop");
    assert_eq!(clock.pending(), 0, "nothing left scheduled");
}

#[test]
fn looping_call_without_now_waits_one_interval() {
    // T testDelayedStart
    let clock = Clock::new();
    let (lc, times) = timing_loop(&clock);
    let d = lc.start(secs(0.1), false).unwrap();
    assert!(times.borrow().is_empty());
    clock.pump([secs(0.05), secs(0.1), secs(0.1)]);
    assert_eq!(times.borrow().len(), 2);
    lc.stop().unwrap();
    assert!(fired(d).is_ok());
    assert_eq!(clock.pending(), 0);
}

#[test]
fn looping_call_stop_at_once_prevents_every_call() {
    // T testStopAtOnce, testStoppingBeforeDelayedStart
    for interval in [0.0, 10.0] {
        let clock = Clock::new();
        let (lc, times) = timing_loop(&clock);
        let d = lc.start(secs(interval), false).unwrap();
        lc.stop().unwrap();
        clock.advance(secs(20.0));
        assert!(times.borrow().is_empty());
        assert_eq!(clock.pending(), 0);
        assert!(fired(d).is_ok());
    }
}

#[test]
fn looping_call_reset_restarts_the_interval() {
    // T test_reset
    let clock = Clock::new();
    let (lc, times) = timing_loop(&clock);
    lc.start(secs(2.0), false).unwrap();
    clock.advance(secs(1.0));
    lc.reset().unwrap();
    clock.advance(secs(1.0));
    assert!(times.borrow().is_empty());
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [3.0]);
    lc.stop().unwrap();
}

#[test]
fn looping_call_skips_intervals_missed_while_the_reactor_was_busy() {
    // T test_reactorTimeSkips
    let clock = Clock::new();
    let (lc, times) = timing_loop(&clock);
    lc.start(secs(0.5), true).unwrap();
    assert_eq!(*times.borrow(), [0.0]);
    clock.advance(secs(2.0));
    assert_eq!(*times.borrow(), [0.0, 2.0]);
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [0.0, 2.0, 3.0]);
    clock.advance(secs(0.0));
    assert_eq!(*times.borrow(), [0.0, 2.0, 3.0]);
    lc.stop().unwrap();
}

#[test]
fn looping_call_skips_intervals_missed_while_the_function_ran() {
    // T test_callbackTimeSkips: the function itself advances the clock.
    let clock = Clock::new();
    let times = log();
    let duration = Rc::new(Cell::new(secs(2.0)));
    let (t, c, dur) = (times.clone(), clock.clone(), duration.clone());
    let lc = LoopingCall::new(move || {
        t.borrow_mut().push(c.seconds());
        c.advance(dur.get());
    })
    .with_clock(clock.clone());
    lc.start(secs(0.5), true).unwrap();
    assert_eq!(*times.borrow(), [0.0]);
    assert_eq!(clock.seconds(), 2.0);
    clock.advance(secs(0.0));
    assert_eq!(*times.borrow(), [0.0], "2.0 is the present, not the future");
    duration.set(secs(1.0));
    clock.advance(secs(0.5));
    assert_eq!(*times.borrow(), [0.0, 2.5]);
    assert_eq!(clock.seconds(), 3.5);
    clock.advance(secs(0.0));
    assert_eq!(*times.borrow(), [0.0, 2.5]);
    duration.set(secs(0.0));
    clock.advance(secs(0.5));
    assert_eq!(*times.borrow(), [0.0, 2.5, 4.0]);
    lc.stop().unwrap();
}

/// A `with_count` loop on `clock` that records (time, count).
fn counting_loop(clock: &Clock) -> (LoopingCall, Log<(f64, u64)>) {
    let times = log();
    let (t, c) = (times.clone(), clock.clone());
    let lc = LoopingCall::with_count(move |n| t.borrow_mut().push((c.seconds(), n)))
        .with_clock(clock.clone());
    (lc, times)
}

#[test]
fn with_count_reports_the_intervals_skipped() {
    // T test_reactorTimeCountSkips
    let clock = Clock::new();
    let (lc, times) = counting_loop(&clock);
    lc.start(secs(0.5), true).unwrap();
    assert_eq!(*times.borrow(), [(0.0, 1)]);
    clock.advance(secs(0.51));
    assert_eq!(*times.borrow(), [(0.0, 1), (0.51, 1)]);
    clock.advance(secs(1.51));
    assert_eq!(*times.borrow(), [(0.0, 1), (0.51, 1), (2.02, 3)]);
    clock.advance(secs(0.0));
    assert_eq!(times.borrow().len(), 3);
    lc.stop().unwrap();
}

/// After `reset()`, the first call counts one interval, as Twisted's
/// `LoopingCall.reset` + `withCount` give (its interval number of the call
/// before the reset truncates to 0).
#[test]
fn with_count_first_call_after_reset_counts_one() {
    let clock = Clock::new();
    let (lc, times) = counting_loop(&clock);
    lc.start(secs(1.0), true).unwrap();
    assert_eq!(times.borrow_mut().pop(), Some((0.0, 1)));
    clock.advance(secs(0.5));
    lc.reset().unwrap();
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [(1.5, 1)]);
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [(1.5, 1), (2.5, 1)]);
    lc.stop().unwrap();
}

#[test]
fn with_count_counts_only_interval_boundaries_crossed() {
    // T test_countLengthyIntervalCounts
    let clock = Clock::new();
    let (lc, times) = counting_loop(&clock);
    lc.start(secs(0.5), true).unwrap();
    assert_eq!(times.borrow_mut().pop(), Some((0.0, 1)));
    clock.advance(secs(0.51));
    assert_eq!(times.borrow_mut().pop(), Some((0.51, 1)));
    clock.advance(secs(0.875));
    assert_eq!(times.borrow_mut().pop(), Some((1.385, 1)));
    clock.advance(secs(0.125));
    assert_eq!(times.borrow_mut().pop(), Some((1.51, 1)));
    lc.stop().unwrap();
}

#[test]
fn with_count_sums_to_the_elapsed_intervals_and_never_passes_zero() {
    // T test_withCountFloatingPointBoundary (no floating point here, but the
    // property stands)
    let clock = Clock::new();
    let counts = log();
    let c = counts.clone();
    let lc = LoopingCall::with_count(move |n| c.borrow_mut().push(n)).with_clock(clock.clone());
    lc.start(Duration::from_nanos(333_333_333), false).unwrap();
    for _ in 0..9 {
        clock.advance(Duration::from_nanos(333_333_333));
    }
    assert_eq!(counts.borrow().iter().sum::<u64>(), 9);
    assert!(!counts.borrow().contains(&0));
    lc.stop().unwrap();
}

#[test]
fn with_count_and_zero_interval_always_counts_one() {
    // T test_withCountIntervalZero
    let clock = Clock::new();
    let counts = log();
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let (c, s) = (counts.clone(), slot.clone());
    let lc = LoopingCall::with_count(move |n| {
        c.borrow_mut().push(n);
        if c.borrow().len() > 4 {
            s.borrow().as_ref().unwrap().stop().unwrap();
        }
    })
    .with_clock(clock.clone());
    *slot.borrow_mut() = Some(lc.clone());
    let d = lc.start(secs(0.0), false).unwrap();
    clock.advance(secs(0.0));
    assert!(fired(d).is_ok());
    assert_eq!(*counts.borrow(), [1, 1, 1, 1, 1]);
    slot.borrow_mut().take();
}

#[test]
fn with_count_and_zero_interval_waits_for_a_returned_deferred() {
    // T test_withCountIntervalZeroDelay
    let clock = Clock::new();
    let counts = log();
    let held: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let (c, h, s) = (counts.clone(), held.clone(), slot.clone());
    let lc = LoopingCall::with_count(move |n| {
        c.borrow_mut().push(n);
        let len = c.borrow().len();
        if len == 2 {
            let (d, t) = Deferred::new();
            *h.borrow_mut() = Some(t);
            return Some(d);
        }
        if len > 4 {
            s.borrow().as_ref().unwrap().stop().unwrap();
        }
        None
    })
    .with_clock(clock.clone());
    *slot.borrow_mut() = Some(lc.clone());
    lc.start(secs(0.0), false).unwrap();
    clock.advance(secs(0.0));
    assert_eq!(*counts.borrow(), [1, 1]);
    clock.advance(secs(2.0));
    assert_eq!(*counts.borrow(), [1, 1]);
    held.borrow_mut().take().unwrap().callback(());
    clock.advance(secs(0.0));
    assert_eq!(*counts.borrow(), [1, 1, 1, 1, 1]);
    slot.borrow_mut().take();
}

#[test]
fn with_count_keeps_its_last_time_across_an_interval_change() {
    // T test_withCountIntervalZeroDelayThenNonZeroInterval
    let clock = Clock::new();
    let counts = log();
    let held: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let (c, h) = (counts.clone(), held.clone());
    let lc = LoopingCall::with_count(move |n| {
        c.borrow_mut().push(n);
        if c.borrow().len() == 2 {
            let (d, t) = Deferred::new();
            *h.borrow_mut() = Some(t);
            return Some(d);
        }
        None
    })
    .with_clock(clock.clone());
    lc.start(secs(0.0), false).unwrap();
    clock.advance(secs(10.0));
    assert_eq!(*counts.borrow(), [1, 1]);
    lc.set_interval(secs(2.0));
    held.borrow_mut().take().unwrap().callback(());
    clock.advance(secs(7.0));
    assert_eq!(*counts.borrow(), [1, 1, 3]);
    clock.advance(secs(2.0));
    assert_eq!(*counts.borrow(), [1, 1, 3, 1]);
    clock.advance(secs(4.0));
    assert_eq!(*counts.borrow(), [1, 1, 3, 1, 2]);
    lc.stop().unwrap();
}

#[test]
fn with_count_counts_calls_missed_while_a_deferred_was_pending() {
    // T test_deferredWithCount (firing the function's own Deferred)
    let clock = Clock::new();
    let counts = log();
    let held: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let (c, h) = (counts.clone(), held.clone());
    let lc = LoopingCall::with_count(move |n| {
        c.borrow_mut().push(n);
        if c.borrow().len() == 1 {
            let (d, t) = Deferred::new();
            *h.borrow_mut() = Some(t);
            return Some(d);
        }
        None
    })
    .with_clock(clock.clone());
    lc.start(secs(0.2), false).unwrap();
    assert!(counts.borrow().is_empty());
    clock.pump([secs(0.2), secs(0.4)]);
    assert_eq!(*counts.borrow(), [1]);
    held.borrow_mut().take().unwrap().callback(());
    clock.pump([secs(0.2)]);
    assert_eq!(*counts.borrow(), [1, 3]);
    lc.stop().unwrap();
}

#[test]
fn looping_call_a_returned_deferred_delays_the_next_call() {
    // T testWaitDeferred
    let clock = Clock::new();
    let calls = Rc::new(Cell::new(0));
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let (n, c, s) = (calls.clone(), clock.clone(), slot.clone());
    let lc = LoopingCall::new(move || {
        n.set(n.get() + 1);
        let (d, t) = Deferred::<()>::new();
        c.call_later(secs(1.0), move || t.callback(()));
        let s = s.clone();
        d.add_callback(move |()| {
            s.borrow().as_ref().unwrap().stop().unwrap();
        })
    })
    .with_clock(clock.clone());
    *slot.borrow_mut() = Some(lc.clone());
    let d = lc.start(secs(0.2), true).unwrap();
    clock.pump([secs(0.2), secs(0.8)]);
    assert_eq!(calls.get(), 1, "no call while the Deferred was pending");
    assert_eq!(clock.pending(), 0);
    assert!(fired(d).is_ok());
    slot.borrow_mut().take();
}

#[test]
fn looping_call_a_failed_deferred_stops_the_loop_and_errbacks() {
    // T testFailurePropagation
    let clock = Clock::new();
    let c = clock.clone();
    let lc = LoopingCall::new(move || {
        let (d, t) = Deferred::<()>::new();
        c.call_later(secs(0.3), move || t.errback(TestError("later")));
        d
    })
    .with_clock(clock.clone());
    let d = lc.start(secs(1.0), true).unwrap();
    clock.pump([secs(0.3)]);
    assert_eq!(clock.pending(), 0);
    assert!(!lc.running());
    assert!(fired(d).unwrap_err().check::<TestError>());
}

#[test]
fn looping_call_an_err_stops_the_loop_and_errbacks() {
    // T testFailure
    let clock = Clock::new();
    let calls = Rc::new(Cell::new(0));
    let n = calls.clone();
    let lc = LoopingCall::new(move || {
        n.set(n.get() + 1);
        if n.get() == 2 {
            Err(TestError("bar"))
        } else {
            Ok(())
        }
    })
    .with_clock(clock.clone());
    let d = lc.start(secs(0.1), true).unwrap();
    clock.pump([secs(0.1); 5]);
    assert_eq!(calls.get(), 2);
    assert!(!lc.running());
    assert_eq!(lc.stop(), Err(LoopingCallError::NotRunning));
    let failure = fired(d).unwrap_err();
    assert_eq!(failure.to_string(), "test error: bar");
}

#[test]
fn looping_call_a_panic_stops_the_loop_and_errbacks() {
    let clock = Clock::new();
    let lc = LoopingCall::new(|| -> () { panic!("loop body exploded") }).with_clock(clock.clone());
    let d = lc.start(secs(0.1), true).unwrap();
    assert!(!lc.running());
    assert_eq!(clock.pending(), 0);
    let failure = fired(d).unwrap_err();
    assert_eq!(
        failure.downcast_ref::<Panicked>().map(Panicked::message),
        Some("loop body exploded")
    );
}

#[test]
fn looping_call_stop_then_err_in_the_same_call_errbacks() {
    // T testFailAndStop
    let clock = Clock::new();
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let s = slot.clone();
    let lc = LoopingCall::new(move || {
        s.borrow().as_ref().unwrap().stop().unwrap();
        Err(TestError("bar"))
    })
    .with_clock(clock.clone());
    *slot.borrow_mut() = Some(lc.clone());
    let d = lc.start(secs(0.1), true).unwrap();
    assert!(fired(d).unwrap_err().check::<TestError>());
    slot.borrow_mut().take();
}

#[test]
fn looping_call_stop_during_a_pending_deferred_fires_when_it_does() {
    let clock = Clock::new();
    let held: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let h = held.clone();
    let lc = LoopingCall::new(move || {
        let (d, t) = Deferred::new();
        *h.borrow_mut() = Some(t);
        d
    })
    .with_clock(clock.clone());
    let d = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    let d = d.try_result().expect_err("waits for the call in progress");
    held.borrow_mut().take().unwrap().callback(());
    assert!(fired(d).is_ok());
    assert_eq!(clock.pending(), 0);
}

#[test]
fn looping_call_start_twice_stop_and_reset_when_idle_are_errors() {
    let clock = Clock::new();
    let lc = LoopingCall::new(|| ()).with_clock(clock.clone());
    assert_eq!(lc.stop(), Err(LoopingCallError::NotRunning));
    assert_eq!(lc.reset(), Err(LoopingCallError::NotRunning));
    let _d = lc.start(secs(1.0), false).unwrap();
    assert!(matches!(
        lc.start(secs(1.0), false),
        Err(LoopingCallError::AlreadyRunning)
    ));
    assert_eq!(lc.interval(), Some(secs(1.0)));
    lc.stop().unwrap();
}

#[test]
fn looping_call_can_be_started_again_after_stop() {
    let clock = Clock::new();
    let (lc, times) = timing_loop(&clock);
    let first = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    assert!(fired(first).is_ok());
    let second = lc.start(secs(1.0), true).unwrap();
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [0.0, 0.0, 1.0]);
    lc.stop().unwrap();
    assert!(fired(second).is_ok());
}

#[test]
fn looping_call_stopped_and_restarted_during_a_pending_deferred_keeps_runs_apart() {
    let clock = Clock::new();
    let held: Log<Trigger<()>> = log();
    let h = held.clone();
    let lc = LoopingCall::new(move || {
        let (d, t) = Deferred::new();
        h.borrow_mut().push(t);
        d
    })
    .with_clock(clock.clone());
    let first = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    let second = lc.start(secs(1.0), true).unwrap();
    assert_eq!(held.borrow().len(), 2);
    // The first run's call finishes: only the first run's Deferred fires,
    // and it does not schedule anything for the second run.
    let t0 = held.borrow_mut().remove(0);
    t0.callback(());
    assert!(fired(first).is_ok());
    assert_eq!(clock.pending(), 0);
    let t1 = held.borrow_mut().remove(0);
    t1.callback(());
    assert_eq!(clock.pending(), 1, "the second run goes on");
    lc.stop().unwrap();
    assert!(fired(second).is_ok());
}

#[test]
fn looping_call_runs_every_iteration_on_the_reactor() {
    // T testEveryIteration: interval 0 on the real reactor.
    let ran = Rc::new(Cell::new(0));
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let (r, s) = (ran.clone(), slot.clone());
    let lc = LoopingCall::new(move || {
        r.set(r.get() + 1);
        if r.get() > 5 {
            s.borrow().as_ref().unwrap().stop().unwrap();
        }
    });
    *slot.borrow_mut() = Some(lc.clone());
    let result = Rc::new(Cell::new(None));
    let res = result.clone();
    lc.start(Duration::ZERO, true).unwrap().add_both(move |r| {
        res.set(Some(r.is_ok()));
        reactor::stop().unwrap();
    });
    run_with_watchdog();
    assert_eq!(ran.get(), 6);
    assert_eq!(result.get(), Some(true));
    slot.borrow_mut().take();
}

#[test]
fn looping_call_failure_on_the_reactor_errbacks() {
    // T testFailure on the real reactor
    let lc = LoopingCall::new(|| Err(TestError("bar")));
    let result = Rc::new(RefCell::new(None));
    let res = result.clone();
    lc.start(ms(1), false).unwrap().add_both(move |r| {
        *res.borrow_mut() = Some(r.map(|_| ()).map_err(|f| f.to_string()));
        reactor::stop().unwrap();
    });
    run_with_watchdog();
    assert_eq!(*result.borrow(), Some(Err("test error: bar".to_owned())));
}

// ---------------------------------------------------------------------------
// defer_later (T DeferLaterTests)
// ---------------------------------------------------------------------------

#[test]
fn defer_later_fires_after_the_delay_with_the_result() {
    let clock = Clock::new();
    let calls = log();
    let c = calls.clone();
    let d = task::defer_later_on(&clock, secs(3.0), move || {
        c.borrow_mut().push(("foo", "bar"));
        Ok(42)
    });
    clock.advance(secs(2.0));
    assert!(calls.borrow().is_empty());
    let d = d.try_result().expect_err("not yet");
    clock.advance(secs(1.0));
    assert_eq!(*calls.borrow(), [("foo", "bar")]);
    assert_eq!(fired(d), Ok(42));
}

#[test]
fn defer_later_errbacks_when_the_function_fails() {
    let clock = Clock::new();
    let d = task::defer_later_on(&clock, secs(1.0), || Err::<(), _>(TestError("x").into()));
    clock.advance(secs(1.0));
    assert!(fired(d).unwrap_err().check::<TestError>());
}

#[test]
fn defer_later_errbacks_when_the_function_panics() {
    let clock = Clock::new();
    let d = task::defer_later_on(&clock, secs(1.0), || -> Result<u8, Failure> {
        panic!("deferred work exploded")
    });
    clock.advance(secs(1.0));
    let failure = fired(d).unwrap_err();
    assert_eq!(
        failure.downcast_ref::<Panicked>().map(Panicked::message),
        Some("deferred work exploded")
    );
}

#[test]
fn defer_later_waits_for_a_deferred_the_function_returns() {
    let clock = Clock::new();
    let c = clock.clone();
    let d = task::defer_later_on(&clock, secs(1.0), move || {
        task::defer_later_on(&c, secs(1.0), || Ok("inner"))
    });
    clock.advance(secs(1.0));
    let d = d.try_result().expect_err("waiting on the inner one");
    clock.advance(secs(1.0));
    assert_eq!(fired(d), Ok("inner"));
}

#[test]
fn defer_later_cancel_removes_the_pending_call() {
    let clock = Clock::new();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let d = task::defer_later_on(&clock, secs(1.0), move || {
        c.set(true);
        Ok(())
    });
    d.cancel();
    assert!(clock.get_delayed_calls().is_empty());
    clock.advance(secs(2.0));
    assert!(!called.get());
    assert!(fired(d).unwrap_err().check::<CancelledError>());
}

#[test]
fn defer_later_on_a_dropped_clock_fails_with_trigger_dropped() {
    let clock = Clock::new();
    let d = task::defer_later_on(&clock, secs(1.0), || Ok(()));
    drop(clock);
    assert!(fired(d).unwrap_err().check::<TriggerDropped>());
}

#[test]
fn defer_later_on_the_reactor() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    task::defer_later(ms(2), || Ok(7)).add_callback(move |v: u32| {
        g.set(Some(v));
        reactor::stop().unwrap();
    });
    run_with_watchdog();
    assert_eq!(got.get(), Some(7));
}

// ---------------------------------------------------------------------------
// react (T ReactTests)
// ---------------------------------------------------------------------------

/// Counts shutdowns of this thread's reactor.
fn count_shutdowns() -> Rc<Cell<u32>> {
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    reactor::add_system_event_trigger(Phase::During, Event::Shutdown, move || c.set(c.get() + 1));
    n
}

#[test]
fn react_runs_until_the_deferred_fires_then_stops() {
    // T test_runsUntilAsyncCallback
    let shutdowns = count_shutdowns();
    let passed = Rc::new(Cell::new(false));
    let p = passed.clone();
    let result = task::react(move || {
        reactor::call_later(ms(1), move || p.set(true));
        task::defer_later(ms(2), || Ok("finished"))
    });
    assert_eq!(result, Ok("finished"));
    assert!(passed.get());
    assert_eq!(shutdowns.get(), 1, "stopped exactly once");
    assert!(!reactor::running());
    assert_eq!(task::exit_code(&result), 0);
}

#[test]
fn react_with_an_already_fired_deferred_runs_and_stops_once() {
    // T test_runsUntilSyncCallback
    let shutdowns = count_shutdowns();
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    reactor::call_when_running(move || s.set(true));
    assert_eq!(task::react(|| defer::succeed(5)), Ok(5));
    assert!(started.get(), "the reactor ran");
    assert_eq!(shutdowns.get(), 1);
}

#[test]
fn react_returns_an_asynchronous_failure() {
    // T test_runsUntilAsyncErrback
    let result: Result<(), Failure> = task::react(|| {
        let (d, t) = Deferred::new();
        reactor::call_later(ms(1), move || t.errback(TestError("expected")));
        d
    });
    let failure = result.as_ref().unwrap_err();
    assert!(failure.check::<TestError>());
    assert_eq!(task::exit_code(&result), 1);
}

#[test]
fn react_returns_a_synchronous_failure() {
    // T test_runsUntilSyncErrback
    let shutdowns = count_shutdowns();
    let result = task::react(|| defer::fail::<()>(TestError("expected")));
    assert!(result.as_ref().unwrap_err().check::<TestError>());
    assert_eq!(task::exit_code(&result), 1);
    assert_eq!(shutdowns.get(), 1);
}

#[test]
fn react_does_not_stop_again_when_the_result_arrives_during_shutdown() {
    // T test_singleStopCallback
    let shutdowns = count_shutdowns();
    let result = task::react(|| {
        reactor::call_later(ms(1), || reactor::stop().unwrap());
        let (d, t) = Deferred::new();
        reactor::add_system_event_trigger(Phase::During, Event::Shutdown, move || {
            t.callback("late")
        });
        d
    });
    assert_eq!(result, Ok("late"));
    assert_eq!(shutdowns.get(), 1);
}

#[test]
fn react_does_not_stop_again_when_a_failure_arrives_during_shutdown() {
    // T test_singleStopErrback
    let shutdowns = count_shutdowns();
    let result: Result<(), Failure> = task::react(|| {
        reactor::call_later(ms(1), || reactor::stop().unwrap());
        let (d, t) = Deferred::new();
        reactor::add_system_event_trigger(Phase::During, Event::Shutdown, move || {
            t.errback(TestError("expected"))
        });
        d
    });
    assert_eq!(task::exit_code(&result), 1);
    assert_eq!(shutdowns.get(), 1);
}

#[test]
fn react_exit_code_comes_from_a_system_exit_failure() {
    // T test_exitWithDefinedCode
    let result = task::react(|| defer::fail::<()>(SystemExit(23)));
    assert_eq!(task::exit_code(&result), 23);
}

#[test]
fn react_handles_a_stop_just_before_the_deferred_fires() {
    // T test_synchronousStop
    let shutdowns = count_shutdowns();
    let result = task::react(|| {
        let (d, t) = Deferred::new();
        reactor::call_when_running(move || {
            reactor::stop().unwrap();
            t.callback(1);
        });
        d
    });
    assert_eq!(result, Ok(1));
    assert_eq!(shutdowns.get(), 1);
}

#[test]
fn react_cancels_main_and_reports_reactor_stopped_if_the_reactor_stops_first() {
    // T test_asynchronousStop (Twisted exits 0; so does exit_code)
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let result = task::react(move || {
        reactor::call_later(ms(1), || reactor::stop().unwrap());
        let (d, t) = Deferred::<()>::with_canceller(move |_| c.set(true));
        std::mem::forget(t); // the producer never answers
        d
    });
    assert!(result.as_ref().unwrap_err().check::<ReactorStopped>());
    assert!(cancelled.get(), "main's Deferred was cancelled");
    assert_eq!(task::exit_code(&result), 0);
}

#[test]
fn react_inside_a_running_reactor_is_an_error_and_does_not_call_main() {
    let called = Rc::new(Cell::new(false));
    let outcome = Rc::new(RefCell::new(None));
    let (c, o) = (called.clone(), outcome.clone());
    reactor::call_when_running(move || {
        let result = task::react(move || {
            c.set(true);
            defer::succeed(())
        });
        *o.borrow_mut() = Some(result.unwrap_err().check::<ReactorError>());
        reactor::stop().unwrap();
    });
    run_with_watchdog();
    assert_eq!(*outcome.borrow(), Some(true));
    assert!(!called.get());
}

#[test]
fn react_turns_a_panic_in_main_into_a_failure() {
    let result = task::react(|| -> Deferred<()> { panic!("main exploded") });
    let failure = result.unwrap_err();
    assert_eq!(
        failure.downcast_ref::<Panicked>().map(Panicked::message),
        Some("main exploded")
    );
}

#[test]
fn react_accepts_a_plain_result_and_can_run_twice() {
    assert_eq!(task::react(|| Ok::<_, Failure>(1)), Ok(1));
    assert_eq!(task::react(|| task::defer_later(ms(1), || Ok(2))), Ok(2));
}

// ---------------------------------------------------------------------------
// Cooperator (CO CooperatorTests, RunStateTests, AliasTests)
// ---------------------------------------------------------------------------

#[test]
fn cooperator_runs_tasks_round_robin() {
    // CO testCooperation
    let out: Log<String> = log();
    let coop = Cooperator::new();
    let groups = [
        vec!["a", "b", "c"],
        vec!["1", "2", "3"],
        vec!["d", "e", "f"],
    ];
    let tasks: Vec<Deferred<()>> = groups
        .iter()
        .map(|group| {
            let o = out.clone();
            let group = group.clone();
            coop.coiterate(
                group
                    .into_iter()
                    .map(move |x| o.borrow_mut().push(x.to_owned())),
            )
            .add_callback(|_| ())
        })
        .collect();
    DeferredList::new(tasks).add_callback(|_| reactor::stop().unwrap());
    run_with_watchdog();
    assert_eq!(*out.borrow(), ["a", "1", "d", "b", "2", "e", "c", "3", "f"]);
}

#[test]
fn coiterate_fires_with_the_exhausted_iterator() {
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let d = coop.coiterate(vec![(), (), ()]);
    clock.advance(Duration::ZERO);
    let mut iter = fired(d).unwrap();
    assert_eq!(iter.next(), None);
}

#[test]
fn a_stopped_cooperator_rejects_new_tasks() {
    // CO testStoppedRejectsNewTasks
    let coop = Cooperator::new();
    coop.stop();
    assert!(!coop.running());
    let d = coop.coiterate(std::iter::empty::<()>());
    let failure = fired(d).unwrap_err();
    assert_eq!(
        failure.downcast_ref::<TaskError>(),
        Some(&TaskError::SchedulerStopped)
    );
}

#[test]
fn stopping_a_cooperator_stops_a_running_iterator() {
    // CO testStopRunning
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let advanced = Rc::new(Cell::new(0));
    let a = advanced.clone();
    let d = coop.coiterate((0..3).map(move |_| a.set(a.get() + 1)));
    coop.stop();
    clock.advance(Duration::ZERO);
    assert_eq!(advanced.get(), 0);
    assert_eq!(
        fired(d).unwrap_err().downcast_ref::<TaskError>(),
        Some(&TaskError::SchedulerStopped)
    );
    assert_eq!(clock.pending(), 0);
}

#[test]
fn stopping_a_cooperator_finishes_a_task_waiting_on_a_deferred() {
    // CO testStopOutstanding
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let held: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let h = held.clone();
    let mut yielded = false;
    let d = coop.coiterate(std::iter::from_fn(move || {
        assert!(!yielded, "not resumed after the stop");
        yielded = true;
        let (d, t) = Deferred::new();
        *h.borrow_mut() = Some(t);
        Some(d)
    }));
    clock.advance(Duration::ZERO);
    coop.stop();
    held.borrow_mut().take().unwrap().callback(());
    clock.advance(Duration::ZERO);
    assert_eq!(
        fired(d).unwrap_err().downcast_ref::<TaskError>(),
        Some(&TaskError::SchedulerStopped)
    );
}

#[test]
fn cooperator_task_failures_reach_coiterate() {
    // CO testUnexpectedError, testUnexpectedErrorActuallyLater,
    // testUnexpectedErrorNotActuallyLater
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let err = coop.coiterate(std::iter::once(Err::<(), _>(TestError("now"))));
    let panicked = coop.coiterate(std::iter::from_fn(|| -> Option<()> {
        panic!("iterator exploded")
    }));
    let failed_now = coop.coiterate(std::iter::once(defer::fail::<()>(TestError("failed"))));
    let c = clock.clone();
    let failed_later = coop.coiterate(std::iter::once_with(move || {
        let (d, t) = Deferred::<()>::new();
        c.call_later(secs(1.0), move || t.errback(TestError("later")));
        d
    }));
    clock.advance(Duration::ZERO);
    clock.advance(secs(1.0));
    assert_eq!(fired(err).unwrap_err().to_string(), "test error: now");
    assert!(fired(panicked).unwrap_err().check::<Panicked>());
    assert_eq!(
        fired(failed_now).unwrap_err().to_string(),
        "test error: failed"
    );
    assert_eq!(
        fired(failed_later).unwrap_err().to_string(),
        "test error: later"
    );
}

#[test]
fn cooperator_runs_at_most_units_per_tick() {
    // CO testResourceExhaustion (a termination predicate after 10 units)
    let ticks: Ticks = Rc::default();
    let t = ticks.clone();
    let coop = Cooperator::with_scheduler(move |tick| t.borrow_mut().push(tick)).units_per_tick(10);
    let out = log();
    let o = out.clone();
    let _task = coop.cooperate((0..100).map(move |i| o.borrow_mut().push(i)));
    let tick = ticks.borrow_mut().pop().unwrap();
    tick();
    assert_eq!(*out.borrow(), (0..10).collect::<Vec<_>>());
    coop.stop();
}

#[test]
fn a_when_done_callback_may_add_a_task() {
    // CO testCallbackReCoiterate
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let done = Rc::new(Cell::new(false));
    let (c, dn) = (coop.clone(), done.clone());
    coop.coiterate(std::iter::empty::<()>())
        .add_callback(move |_| {
            c.coiterate(std::iter::empty::<()>())
                .add_callback(move |_| dn.set(true));
        });
    clock.advance(Duration::ZERO);
    assert!(done.get());
    assert_eq!(clock.pending(), 0);
}

#[test]
fn removing_the_last_task_cancels_the_scheduled_tick() {
    // CO test_removingLastTaskStopsScheduledCall
    let clock = Clock::new();
    let coop = Cooperator::on(clock.clone());
    let task1 = coop.cooperate(vec![(), ()]);
    let task2 = coop.cooperate(vec![(), ()]);
    assert_eq!(clock.pending(), 1);
    task1.stop().unwrap();
    assert_eq!(clock.pending(), 1);
    task2.stop().unwrap();
    assert_eq!(clock.pending(), 0);
    let _task3 = coop.cooperate(vec![(), ()]);
    assert_eq!(clock.pending(), 1);
    coop.stop();
    assert_eq!(clock.pending(), 0);
}

#[test]
fn cooperator_running_reflects_start_and_stop() {
    // CO test_runningWhenStarted, ...NotStarted, ...Running, ...Stopped
    assert!(Cooperator::new().running());
    let clock = Clock::new();
    let c = Cooperator::on(clock.clone()).unstarted();
    assert!(!c.running());
    let task = c.cooperate(vec![()]);
    assert_eq!(
        clock.pending(),
        0,
        "an unstarted cooperator schedules nothing"
    );
    c.start();
    assert!(c.running());
    clock.advance(Duration::ZERO);
    assert_eq!(task.ended(), Some(TaskError::Done));
    c.stop();
    assert!(!c.running());
}

#[test]
fn global_cooperate_runs_the_iterator_on_the_reactor() {
    // CO AliasTests.test_cooperate
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let task = task::cooperate((0..3).map(move |_| c.set(c.get() + 1)));
    task.when_done().add_callback(|()| reactor::stop().unwrap());
    run_with_watchdog();
    assert_eq!(count.get(), 3);
}

#[test]
fn a_long_task_does_not_starve_the_reactor() {
    let timer_fired = Rc::new(Cell::new(false));
    let units = Rc::new(Cell::new(0u64));
    let (tf, u) = (timer_fired.clone(), units.clone());
    // Endless work, 1 ms slices: the timer must still get its turn.
    let coop = Cooperator::new().time_slice(ms(1));
    let task = coop.cooperate(std::iter::repeat_with(move || u.set(u.get() + 1)));
    let t = task.clone();
    reactor::call_later(ms(20), move || {
        tf.set(true);
        t.stop().unwrap();
        reactor::stop().unwrap();
    });
    run_with_watchdog();
    assert!(timer_fired.get());
    assert!(units.get() > 0);
    assert_eq!(task.ended(), Some(TaskError::Stopped));
}

/// Twisted's RunStateTests fixture: a Cooperator that runs one unit per tick
/// on a scheduler the test pumps, and a worker whose next step the test
/// chooses.
struct RunState {
    ticks: Ticks,
    coop: Cooperator,
    task: task::CooperativeTask,
    ctl: Rc<RefCell<Ctl>>,
}

#[derive(Default)]
struct Ctl {
    defer_next: bool,
    stop_next: bool,
    die_next: bool,
    work: Vec<Work>,
}

/// The worker's item: go on, wait for a Deferred, or fail (a user-defined
/// `WorkResult`).
enum Step {
    Go,
    Wait(Deferred<()>),
    Die,
}

impl WorkResult for Step {
    fn into_work(self) -> Result<Option<Deferred<()>>, Failure> {
        match self {
            Step::Go => Ok(None),
            Step::Wait(d) => Ok(Some(d)),
            Step::Die => Err(Failure::new(TestError("unhandled"))),
        }
    }
}

enum Work {
    Num(u32),
    Deferred(Option<Trigger<()>>),
}

impl Work {
    fn num(&self) -> Option<u32> {
        match self {
            Work::Num(n) => Some(*n),
            Work::Deferred(_) => None,
        }
    }
}

impl RunState {
    fn new() -> RunState {
        let ticks: Ticks = Rc::default();
        let t = ticks.clone();
        let coop = Cooperator::with_scheduler(move |tick| t.borrow_mut().push(tick))
            .units_per_tick(1)
            .unstarted();
        let ctl: Rc<RefCell<Ctl>> = Rc::default();
        let c = ctl.clone();
        let mut i = 0;
        let worker = std::iter::from_fn(move || {
            i += 1;
            let mut ctl = c.borrow_mut();
            if ctl.defer_next {
                ctl.defer_next = false;
                let (d, t) = Deferred::new();
                ctl.work.push(Work::Deferred(Some(t)));
                Some(Step::Wait(d))
            } else if ctl.stop_next {
                None
            } else if ctl.die_next {
                Some(Step::Die)
            } else {
                ctl.work.push(Work::Num(i));
                Some(Step::Go)
            }
        });
        let task = coop.cooperate(worker);
        coop.start();
        RunState {
            ticks,
            coop,
            task,
            ctl,
        }
    }

    fn pump(&self) {
        let ticks = std::mem::take(&mut *self.ticks.borrow_mut());
        for tick in ticks {
            tick();
        }
    }

    fn nums(&self) -> Vec<u32> {
        self.ctl
            .borrow()
            .work
            .iter()
            .filter_map(Work::num)
            .collect()
    }

    fn work_len(&self) -> usize {
        self.ctl.borrow().work.len()
    }
}

#[test]
fn run_state_pause_and_resume() {
    // CO test_pauseResume
    let rs = RunState::new();
    rs.pump();
    assert_eq!(rs.nums(), [1]);
    rs.pump();
    assert_eq!(rs.nums(), [1, 2]);
    rs.task.pause().unwrap();
    rs.pump();
    assert_eq!(rs.nums(), [1, 2]);
    rs.task.resume().unwrap();
    assert_eq!(rs.nums(), [1, 2], "resuming does no work by itself");
    rs.pump();
    assert_eq!(rs.nums(), [1, 2, 3]);
}

#[test]
fn run_state_resume_when_not_paused_is_not_paused() {
    // CO test_resumeNotPaused
    let rs = RunState::new();
    assert_eq!(rs.task.resume(), Err(TaskError::NotPaused));
    rs.task.pause().unwrap();
    rs.task.resume().unwrap();
    assert_eq!(rs.task.resume(), Err(TaskError::NotPaused));
}

#[test]
fn run_state_pauses_nest() {
    // CO test_pauseTwice
    let rs = RunState::new();
    rs.task.pause().unwrap();
    rs.pump();
    assert!(rs.nums().is_empty());
    rs.task.pause().unwrap();
    rs.pump();
    rs.task.resume().unwrap();
    rs.pump();
    assert!(rs.nums().is_empty());
    rs.task.resume().unwrap();
    rs.pump();
    assert_eq!(rs.nums(), [1]);
}

#[test]
fn run_state_pause_while_waiting_on_a_deferred_needs_both() {
    // CO test_pauseWhileDeferred
    let rs = RunState::new();
    rs.ctl.borrow_mut().defer_next = true;
    rs.pump();
    assert_eq!(rs.work_len(), 1);
    assert!(rs.task.is_paused());
    rs.pump();
    assert_eq!(rs.work_len(), 1);
    rs.task.pause().unwrap();
    rs.pump();
    rs.task.resume().unwrap();
    rs.pump();
    assert_eq!(rs.work_len(), 1);
    let trigger = match &mut rs.ctl.borrow_mut().work[0] {
        Work::Deferred(t) => t.take().unwrap(),
        Work::Num(_) => unreachable!(),
    };
    trigger.callback(());
    rs.pump();
    assert_eq!(rs.work_len(), 2);
    assert_eq!(rs.nums(), [2]);
}

#[test]
fn run_state_each_when_done_gets_its_own_deferred() {
    // CO test_whenDone
    let rs = RunState::new();
    let d1 = rs.task.when_done().add_callback(|()| 1);
    let d2 = rs.task.when_done().add_callback(|()| 2);
    rs.ctl.borrow_mut().stop_next = true;
    rs.pump();
    assert_eq!(fired(d1), Ok(1));
    assert_eq!(fired(d2), Ok(2));
}

#[test]
fn run_state_when_done_fails_with_the_iterators_error() {
    // CO test_whenDoneError
    let rs = RunState::new();
    let d = rs.task.when_done();
    rs.ctl.borrow_mut().die_next = true;
    rs.pump();
    assert!(fired(d).unwrap_err().check::<TestError>());
}

#[test]
fn run_state_when_done_fails_with_task_stopped_on_stop() {
    // CO test_whenDoneStop
    let rs = RunState::new();
    let d = rs.task.when_done();
    rs.task.stop().unwrap();
    assert_eq!(
        fired(d).unwrap_err().downcast_ref::<TaskError>(),
        Some(&TaskError::Stopped)
    );
    // And after the stop, a new when_done has the same answer.
    assert_eq!(
        fired(rs.task.when_done())
            .unwrap_err()
            .downcast_ref::<TaskError>(),
        Some(&TaskError::Stopped)
    );
}

#[test]
fn run_state_when_done_after_the_end_has_fired() {
    // CO test_whenDoneAlreadyDone
    let rs = RunState::new();
    rs.ctl.borrow_mut().stop_next = true;
    rs.pump();
    assert_eq!(fired(rs.task.when_done()), Ok(()));
}

#[test]
fn run_state_a_stopped_task_refuses_stop_and_pause() {
    // CO test_stopStops
    let rs = RunState::new();
    rs.task.stop().unwrap();
    rs.pump();
    assert_eq!(rs.work_len(), 0);
    assert_eq!(rs.task.stop(), Err(TaskError::Stopped));
    assert_eq!(rs.task.pause(), Err(TaskError::Stopped));
    rs.pump();
    assert_eq!(rs.work_len(), 0);
}

#[test]
fn run_state_resuming_a_paused_stopped_task_does_nothing() {
    // CO test_pauseStopResume
    let rs = RunState::new();
    rs.task.pause().unwrap();
    rs.task.stop().unwrap();
    rs.task.resume().unwrap();
    rs.pump();
    assert_eq!(rs.work_len(), 0);
}

#[test]
fn run_state_a_task_stopped_while_waiting_is_not_resumed_by_the_deferred() {
    // CO test_stopDeferred
    let rs = RunState::new();
    rs.ctl.borrow_mut().defer_next = true;
    rs.pump();
    let trigger = match rs.ctl.borrow_mut().work.pop() {
        Some(Work::Deferred(t)) => t.unwrap(),
        _ => unreachable!(),
    };
    assert!(rs.task.is_paused());
    rs.pump();
    rs.task.stop().unwrap();
    rs.pump();
    trigger.callback(());
    rs.pump();
    assert_eq!(rs.work_len(), 0);
}

#[test]
fn run_state_stopping_an_exhausted_task_is_task_done() {
    // CO test_stopExhausted
    let rs = RunState::new();
    rs.ctl.borrow_mut().stop_next = true;
    rs.pump();
    assert_eq!(rs.task.stop(), Err(TaskError::Done));
}

#[test]
fn run_state_stopping_a_failed_task_is_task_failed() {
    // CO test_stopErrored
    let rs = RunState::new();
    let _d = rs.task.when_done().add_errback(|_| ());
    rs.ctl.borrow_mut().die_next = true;
    rs.pump();
    assert_eq!(rs.task.stop(), Err(TaskError::Failed));
}

#[test]
fn run_state_a_when_done_callback_may_stop_the_cooperator() {
    // CO test_stopCooperatorReentrancy
    let rs = RunState::new();
    let phases = log();
    let (p, coop) = (phases.clone(), rs.coop.clone());
    rs.task.when_done().add_callback(move |()| {
        p.borrow_mut().push("done callback");
        coop.stop();
        p.borrow_mut().push("stopped");
    });
    rs.ctl.borrow_mut().stop_next = true;
    rs.pump();
    assert_eq!(*phases.borrow(), ["done callback", "stopped"]);
    assert_eq!(rs.task.ended(), Some(TaskError::Done));
}

#[test]
fn stopping_a_cooperator_also_finishes_paused_tasks() {
    // twined differs from Twisted here: a paused task does not wait to be
    // resumed before it learns that its Cooperator stopped.
    let rs = RunState::new();
    rs.task.pause().unwrap();
    let d = rs.task.when_done();
    rs.coop.stop();
    assert_eq!(
        fired(d).unwrap_err().downcast_ref::<TaskError>(),
        Some(&TaskError::SchedulerStopped)
    );
}

/// Twisted code calls `lc.stop()` from inside the loop's function; with
/// `LoopingCall::with_handle` the function receives the loop and can. The
/// run's Deferred fires with the loop after the call that stopped it; when
/// that call returned a pending Deferred, only once it fires.
#[test]
fn looping_call_with_handle_stops_itself_from_its_function() {
    let clock = Clock::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let lc = LoopingCall::with_handle(move |lc| {
        c.set(c.get() + 1);
        if c.get() == 3 {
            lc.stop().unwrap();
        }
    })
    .with_clock(clock.clone());
    let done = lc.start(secs(1.0), true).unwrap();
    clock.pump([secs(1.0); 5]);
    assert_eq!(calls.get(), 3);
    assert!(!lc.running());
    assert_eq!(done.result().unwrap().unwrap(), lc);

    let pending: Rc<RefCell<Option<Trigger<()>>>> = Rc::new(RefCell::new(None));
    let p = pending.clone();
    let lc = LoopingCall::with_handle(move |lc| {
        lc.stop().unwrap();
        let (d, t) = Deferred::<()>::new();
        *p.borrow_mut() = Some(t);
        d
    })
    .with_clock(clock.clone());
    let done = lc.start(secs(1.0), true).unwrap();
    let done = done
        .try_result()
        .expect_err("waits for the function's Deferred");
    pending.borrow_mut().take().unwrap().callback(());
    assert_eq!(done.result().unwrap().unwrap(), lc);
}
