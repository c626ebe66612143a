//! Timed calls and timeouts: Twisted's `Clock`, `DelayedCall` and
//! `addTimeout` behaviours, one test per behaviour, plus 100,000 random
//! timers on a `Clock` and on the reactor.
//!
//! T = `twisted/test/test_task.py`, N = `twisted/test/test_internet.py`,
//! D = `twisted/test/test_defer.py`. Reactor-core behaviours are
//! in `tests/reactor_core.rs`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{CancelledError, Deferred, Failure, TimeoutError};
use twined::reactor::{self, DelayedCallError};
use twined::task::Clock;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A small seeded PRNG (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// Clock basics (T testSeconds, testCallLater, testAdvance,
// testAdvanceCancel)
// ---------------------------------------------------------------------------

#[test]
fn clock_starts_at_zero() {
    let clock = Clock::new();
    assert_eq!(clock.seconds(), 0.0);
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn call_later_returns_an_active_call_due_at_now_plus_delay() {
    let clock = Clock::new();
    let call = clock.call_later(secs(1.0), || {});
    assert_eq!(call.time(), secs(1.0));
    assert!(call.active());
}

#[test]
fn advance_fires_due_calls_only() {
    let clock = Clock::new();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let call = clock.call_later(secs(2.0), move || f.set(f.get() + 1));
    clock.advance(secs(1.0));
    assert_eq!(fired.get(), 0);
    clock.advance(secs(1.0));
    assert_eq!(fired.get(), 1);
    assert!(!call.active());
    assert_eq!(clock.seconds(), 2.0);
}

#[test]
fn called_is_set_before_the_function_runs() {
    let clock = Clock::new();
    let seen = Rc::new(RefCell::new(None));
    let slot = Rc::new(RefCell::new(None::<reactor::DelayedCall>));
    let (s, sl) = (seen.clone(), slot.clone());
    let call = clock.call_later(secs(1.0), move || {
        let call = sl.borrow().clone().unwrap();
        *s.borrow_mut() = Some((call.called(), call.active(), call.cancel()));
    });
    *slot.borrow_mut() = Some(call);
    clock.advance(secs(1.0));
    assert_eq!(
        *seen.borrow(),
        Some((true, false, Err(DelayedCallError::AlreadyCalled)))
    );
}

// ---------------------------------------------------------------------------
// delay / reset and ordering (T testCallLaterDelayed,
// testCallLaterResetLater, testCallLaterResetSooner,
// test_callLaterKeepsCallsOrdered, test_callLaterResetKeepsCallsOrdered,
// test_callLaterResetInsideCallKeepsCallsOrdered)
// ---------------------------------------------------------------------------

#[test]
fn delay_moves_a_call_later() {
    let clock = Clock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(1.0), move || e.borrow_mut().push((1, 2)));
    call.delay(secs(1.0)).unwrap();
    assert_eq!(call.time(), secs(2.0));
    clock.advance(secs(1.5));
    assert!(events.borrow().is_empty());
    clock.advance(secs(1.0));
    assert_eq!(*events.borrow(), [(1, 2)]);
}

#[test]
fn reset_moves_a_call_later_from_now() {
    let clock = Clock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(2.0), move || e.borrow_mut().push("x"));
    clock.advance(secs(1.0));
    call.reset(secs(3.0)).unwrap();
    assert_eq!(call.time(), secs(4.0));
    clock.advance(secs(2.0));
    assert!(events.borrow().is_empty());
    clock.advance(secs(1.0));
    assert_eq!(*events.borrow(), ["x"]);
}

#[test]
fn reset_moves_a_call_sooner() {
    let clock = Clock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(4.0), move || e.borrow_mut().push("x"));
    call.reset(secs(3.0)).unwrap();
    assert_eq!(call.time(), secs(3.0));
    clock.advance(secs(3.0));
    assert_eq!(*events.borrow(), ["x"]);
}

fn logtime(clock: &Clock, result: &Log<(&'static str, f64)>, name: &'static str) -> impl FnOnce() {
    let (clock, result) = (clock.clone(), result.clone());
    move || result.borrow_mut().push((name, clock.seconds()))
}

#[test]
fn a_call_added_after_a_reset_keeps_deadline_order() {
    let clock = Clock::new();
    let result = log();
    let call_a = clock.call_later(secs(1.0), logtime(&clock, &result, "a"));
    call_a.reset(secs(3.0)).unwrap();
    clock.call_later(secs(2.0), logtime(&clock, &result, "b"));
    clock.pump([secs(1.0); 3]);
    assert_eq!(*result.borrow(), [("b", 2.0), ("a", 3.0)]);
}

#[test]
fn a_reset_after_a_later_call_keeps_deadline_order() {
    let clock = Clock::new();
    let result = log();
    let call_a = clock.call_later(secs(1.0), logtime(&clock, &result, "a"));
    clock.call_later(secs(2.0), logtime(&clock, &result, "b"));
    call_a.reset(secs(3.0)).unwrap();
    clock.pump([secs(1.0); 3]);
    assert_eq!(*result.borrow(), [("b", 2.0), ("a", 3.0)]);
}

#[test]
fn a_reset_made_inside_a_call_keeps_deadline_order() {
    let clock = Clock::new();
    let result = log();
    let call_b = clock.call_later(secs(2.0), logtime(&clock, &result, "b"));
    clock.call_later(secs(1.0), move || call_b.reset(secs(3.0)).unwrap());
    clock.call_later(secs(3.0), logtime(&clock, &result, "c"));
    clock.pump([secs(0.5); 10]);
    assert_eq!(*result.borrow(), [("c", 3.0), ("b", 4.0)]);
}

#[test]
fn reset_and_delay_after_the_call_are_already_called() {
    let clock = Clock::new();
    let call = clock.call_later(secs(1.0), || {});
    clock.advance(secs(1.0));
    assert_eq!(call.reset(secs(1.0)), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(call.delay(secs(1.0)), Err(DelayedCallError::AlreadyCalled));
}

// ---------------------------------------------------------------------------
// cancel errors and active() (N test_cancelCancelledDelayedCall,
// test_cancelCalledDelayedCallSynchronous/Asynchronous, DelayedTests.test_active)
// ---------------------------------------------------------------------------

#[test]
fn cancelling_twice_is_already_cancelled() {
    let clock = Clock::new();
    let call = clock.call_later(secs(1.0), || panic!("cancelled calls never run"));
    assert_eq!(call.cancel(), Ok(()));
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(
        call.reset(secs(1.0)),
        Err(DelayedCallError::AlreadyCancelled)
    );
    assert!(call.cancelled());
    clock.advance(secs(2.0));
}

#[test]
fn cancelling_after_the_call_ran_is_already_called_on_a_clock() {
    let clock = Clock::new();
    let call = clock.call_later(secs(1.0), || {});
    clock.advance(secs(1.0));
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCalled));
}

#[test]
fn cancelling_after_the_call_ran_is_already_called_on_the_reactor() {
    let call = reactor::call_later(Duration::from_millis(1), || {});
    let c = call.clone();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    reactor::call_later(Duration::from_millis(5), move || {
        s.set(Some(c.cancel()));
        reactor::stop().unwrap();
    });
    reactor::run().unwrap();
    assert_eq!(seen.get(), Some(Err(DelayedCallError::AlreadyCalled)));
    assert!(!call.active());
}

#[test]
fn cancelling_inside_the_call_itself_is_already_called_on_the_reactor() {
    let slot = Rc::new(RefCell::new(None::<reactor::DelayedCall>));
    let seen = Rc::new(Cell::new(None));
    let (sl, s) = (slot.clone(), seen.clone());
    let call = reactor::call_later(Duration::ZERO, move || {
        s.set(Some(sl.borrow().as_ref().unwrap().cancel()));
        reactor::stop().unwrap();
    });
    *slot.borrow_mut() = Some(call);
    reactor::run().unwrap();
    assert_eq!(seen.get(), Some(Err(DelayedCallError::AlreadyCalled)));
}

#[test]
fn active_is_true_until_the_call_runs() {
    let clock = Clock::new();
    let call = clock.call_later(secs(1.0), || {});
    assert!(call.active());
    clock.advance(secs(0.5));
    assert!(call.active());
    clock.advance(secs(0.5));
    assert!(!call.active());
    assert!(call.called());
}

// ---------------------------------------------------------------------------
// getDelayedCalls excludes cancelled calls (N testGetDelayedCalls,
// T test_getDelayedCalls)
// ---------------------------------------------------------------------------

#[test]
fn get_delayed_calls_lists_pending_calls_earliest_first() {
    let clock = Clock::new();
    let later = clock.call_later(secs(2.0), || {});
    let sooner = clock.call_later(secs(1.0), || {});
    let times: Vec<Duration> = clock.get_delayed_calls().iter().map(|c| c.time()).collect();
    assert_eq!(times, [sooner.time(), later.time()]);
}

#[test]
fn get_delayed_calls_excludes_cancelled_and_called_calls() {
    let clock = Clock::new();
    let ran = clock.call_later(secs(1.0), || {});
    let cancelled = clock.call_later(secs(2.0), || {});
    let pending = clock.call_later(secs(3.0), || {});
    cancelled.cancel().unwrap();
    clock.advance(secs(1.0));
    assert!(!ran.active());
    let calls = clock.get_delayed_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].time(), pending.time());
    assert_eq!(clock.pending(), 1);
}

#[test]
fn reactor_get_delayed_calls_excludes_cancelled_calls() {
    let keep = reactor::call_later(Duration::from_secs(3600), || {});
    let drop_me = reactor::call_later(Duration::from_secs(3600), || {});
    drop_me.cancel().unwrap();
    let calls = reactor::get_delayed_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].time(), keep.time());
    keep.cancel().unwrap();
    assert!(reactor::get_delayed_calls().is_empty());
}

// ---------------------------------------------------------------------------
// equal deadlines are FIFO (Twisted's Clock is; its reactors are
// not, issue 6718; twined is FIFO on both, the reactor in reactor_core.rs)
// ---------------------------------------------------------------------------

#[test]
fn equal_deadlines_fire_in_scheduling_order_on_a_clock() {
    let clock = Clock::new();
    let order = log();
    for i in 0..100 {
        let o = order.clone();
        clock.call_later(secs(1.0), move || o.borrow_mut().push(i));
    }
    clock.advance(secs(1.0));
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_reset_to_an_equal_deadline_goes_after_the_calls_already_there() {
    let clock = Clock::new();
    let order = log();
    let (o1, o2) = (order.clone(), order.clone());
    let first = clock.call_later(secs(1.0), move || o1.borrow_mut().push("first"));
    clock.call_later(secs(2.0), move || o2.borrow_mut().push("second"));
    first.reset(secs(2.0)).unwrap();
    clock.advance(secs(2.0));
    assert_eq!(*order.borrow(), ["second", "first"]);
}

// ---------------------------------------------------------------------------
// 100,000 timers with random cancels and resets fire in (deadline, order of
// scheduling) order and exactly once, on a Clock and on the reactor.
// ---------------------------------------------------------------------------

/// What the test expects of one timer: its last deadline, the order of its
/// last (re)scheduling, and whether it was cancelled.
struct Plan {
    calls: Vec<reactor::DelayedCall>,
    /// (deadline, scheduling order) per timer; `None` once cancelled.
    expected: Vec<Option<(Duration, u64)>>,
}

/// Schedules `n` timers with `schedule`, then cancels ~20% and resets ~20%
/// of them (some several times), recording what each one should do.
fn random_timers(
    n: usize,
    seed: u64,
    max_delay_us: u64,
    fired: &Log<usize>,
    schedule: impl Fn(Duration, Box<dyn FnOnce()>) -> reactor::DelayedCall,
) -> Plan {
    let mut rng = Rng(seed);
    let mut order = 0u64;
    let mut plan = Plan {
        calls: Vec::with_capacity(n),
        expected: Vec::with_capacity(n),
    };
    for i in 0..n {
        let f = fired.clone();
        let delay = Duration::from_micros(rng.below(max_delay_us));
        let call = schedule(delay, Box::new(move || f.borrow_mut().push(i)));
        plan.expected.push(Some((call.time(), order)));
        order += 1;
        plan.calls.push(call);
    }
    for _ in 0..n / 2 {
        let i = rng.below(n as u64) as usize;
        let call = &plan.calls[i];
        match rng.below(5) {
            0 => {
                let r = call.cancel();
                if plan.expected[i].is_some() {
                    assert_eq!(r, Ok(()));
                    plan.expected[i] = None;
                } else {
                    assert_eq!(r, Err(DelayedCallError::AlreadyCancelled));
                }
            }
            1 | 2 => {
                let delay = Duration::from_micros(rng.below(max_delay_us));
                let r = call.reset(delay);
                if plan.expected[i].is_some() {
                    assert_eq!(r, Ok(()));
                    plan.expected[i] = Some((call.time(), order));
                    order += 1;
                } else {
                    assert_eq!(r, Err(DelayedCallError::AlreadyCancelled));
                }
            }
            _ => {}
        }
    }
    plan
}

/// The fired sequence is exactly the uncancelled timers, in (deadline,
/// scheduling order) order.
fn check_order(plan: &Plan, fired: &[usize]) {
    let mut want: Vec<(Duration, u64, usize)> = plan
        .expected
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|(deadline, order)| (deadline, order, i)))
        .collect();
    want.sort();
    let want: Vec<usize> = want.into_iter().map(|(_, _, i)| i).collect();
    assert_eq!(
        fired.len(),
        want.len(),
        "every uncancelled timer fires once"
    );
    if let Some(at) = fired.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "timers fired out of order at position {at}: timer {} before timer {}",
            fired[at], want[at]
        );
    }
    for (i, call) in plan.calls.iter().enumerate() {
        assert_eq!(call.called(), plan.expected[i].is_some());
        assert!(!call.active());
    }
}

#[test]
fn hundred_thousand_random_timers_fire_in_deadline_order_on_a_clock() {
    let clock = Clock::new();
    let fired = log();
    // Deadlines over 0-10 s in whole microseconds: many equal deadlines.
    let plan = random_timers(100_000, 0x5eed, 10_000_000, &fired, |d, f| {
        clock.call_later(d, f)
    });
    // Advance in uneven steps, so some calls fire late, as on a busy reactor.
    let mut rng = Rng(7);
    while clock.pending() > 0 {
        clock.advance(Duration::from_micros(rng.below(300_000)));
    }
    check_order(&plan, &fired.borrow());
}

#[test]
fn hundred_thousand_random_timers_fire_in_deadline_order_on_the_reactor() {
    let fired = log();
    // Deadlines over 0-50 ms, scheduled (and reset) before the reactor runs.
    let plan = random_timers(100_000, 0xfeed, 50_000, &fired, |d, f| {
        reactor::call_later(d, f)
    });
    let expected = plan.expected.iter().filter(|e| e.is_some()).count();
    // The last uncancelled deadline, then a little: everything is due by then.
    let last = plan
        .expected
        .iter()
        .flatten()
        .map(|(d, _)| *d)
        .max()
        .unwrap();
    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    let watchdog = reactor::call_later(Duration::from_secs(30), move || {
        t.set(true);
        reactor::stop().unwrap();
    });
    let start = Duration::from_secs_f64(reactor::seconds());
    reactor::call_later(
        last.saturating_sub(start) + Duration::from_millis(1),
        || {
            reactor::stop().unwrap();
        },
    );
    reactor::run().unwrap();
    assert!(!timed_out.get(), "the watchdog stopped the reactor");
    let _ = watchdog.cancel();
    assert_eq!(fired.borrow().len(), expected);
    check_order(&plan, &fired.borrow());
}

// ---------------------------------------------------------------------------
// Deferred::add_timeout (D DeferredAddTimeoutTests)
// ---------------------------------------------------------------------------

/// `Some(result)` if `d` has fired, else `None` (the handle is consumed).
fn outcome<T: 'static>(d: Deferred<T>) -> Option<Result<T, Failure>> {
    d.result()
}

#[test]
fn add_timeout_times_out_with_timeout_error() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::new();
    let d = d.add_timeout_on(&clock, secs(10.0));
    clock.advance(secs(5.0));
    let d = d.try_result().expect_err("no result before the timeout");
    clock.advance(secs(5.0));
    let failure = outcome(d).unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref::<TimeoutError>(),
        Some(&TimeoutError {
            timeout: secs(10.0)
        })
    );
    assert_eq!(failure.to_string(), "Deferred timed out after 10s");
}

#[test]
fn add_timeout_success_before_timeout_cancels_the_timer_and_never_an_inner_deferred() {
    let clock = Clock::new();
    let (d, trigger) = Deferred::<&str>::new();
    let d = d.add_timeout_on(&clock, secs(10.0));
    let (inner, _inner_trigger) = Deferred::<()>::new();
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let inner = inner.add_errback(move |f| {
        ic.set(f.check::<CancelledError>());
    });
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d.and_then(move |v| {
        *s.borrow_mut() = Some(v);
        inner
    });
    trigger.callback("results");
    assert_eq!(*seen.borrow(), Some("results"));
    assert_eq!(clock.pending(), 0, "the timeout's call was cancelled");
    clock.advance(secs(15.0));
    assert!(!inner_cancelled.get());
    assert!(
        d.try_result().is_err(),
        "still waiting on the inner Deferred"
    );
}

#[test]
fn add_timeout_failure_before_timeout_is_kept() {
    let clock = Clock::new();
    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_timeout_on(&clock, secs(10.0));
    trigger.errback(Failure::msg("boom"));
    assert_eq!(clock.pending(), 0);
    clock.advance(secs(15.0));
    let failure = outcome(d).unwrap().unwrap_err();
    assert_eq!(failure.to_string(), "boom");
    assert!(!failure.check::<TimeoutError>());
}

#[test]
fn add_timeout_on_an_already_fired_deferred_leaves_no_timer() {
    let clock = Clock::new();
    let d = twined::defer::succeed(5).add_timeout_on(&clock, secs(1.0));
    assert_eq!(clock.pending(), 0);
    assert_eq!(outcome(d), Some(Ok(5)));
}

#[test]
fn add_timeout_with_on_timeout_cancel_replaces_the_result() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<String>::new();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let d = d.add_timeout_with(&clock, secs(10.0), move |result, timeout| {
        *g.borrow_mut() = Some((result.unwrap_err().check::<CancelledError>(), timeout));
        Ok("OVERRIDDEN".to_owned())
    });
    clock.advance(secs(15.0));
    assert_eq!(outcome(d), Some(Ok("OVERRIDDEN".to_owned())));
    assert_eq!(*got.borrow(), Some((true, secs(10.0))));
}

#[test]
fn add_timeout_with_is_not_called_when_the_result_comes_first() {
    let clock = Clock::new();
    let (d, trigger) = Deferred::<u32>::new();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let d = d.add_timeout_with(&clock, secs(10.0), move |_result, _timeout| {
        c.set(true);
        Ok(0)
    });
    trigger.callback(1);
    clock.advance(secs(15.0));
    assert_eq!(outcome(d), Some(Ok(1)));
    assert!(!called.get());
}

#[test]
fn add_timeout_with_may_return_a_deferred() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::new();
    let d = d.add_timeout_with(&clock, secs(1.0), |_result, _timeout| {
        twined::defer::succeed(99)
    });
    clock.advance(secs(1.0));
    assert_eq!(outcome(d), Some(Ok(99)));
}

#[test]
fn add_timeout_keeps_a_cancellers_success() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<&str>::with_canceller(|c| c.callback("I was cancelled!"));
    let d = d.add_timeout_on(&clock, secs(10.0));
    clock.advance(secs(15.0));
    assert_eq!(outcome(d), Some(Ok("I was cancelled!")));
}

#[derive(Debug)]
struct CancellerError;

impl std::fmt::Display for CancellerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the canceller's own error")
    }
}

impl std::error::Error for CancellerError {}

#[test]
fn add_timeout_keeps_a_cancellers_failure() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::with_canceller(|c| c.errback(CancellerError));
    let d = d.add_timeout_on(&clock, secs(10.0));
    clock.advance(secs(15.0));
    let failure = outcome(d).unwrap().unwrap_err();
    assert!(failure.check::<CancellerError>());
    assert!(!failure.check::<TimeoutError>());
}

#[test]
fn add_timeout_errback_added_before_sees_cancelled_error() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::new();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let d = d
        .or_else(move |f| {
            s.set(f.check::<CancelledError>());
            Err::<u32, _>(f)
        })
        .add_timeout_on(&clock, secs(10.0));
    clock.advance(secs(15.0));
    assert!(seen.get(), "the earlier errback saw CancelledError");
    assert!(outcome(d).unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn add_timeout_errback_added_before_may_suppress_the_cancellation() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<Option<u32>>::new();
    let d = d
        .add_errback(|f| {
            assert!(f.check::<CancelledError>());
            None
        })
        .add_timeout_on(&clock, secs(10.0));
    clock.advance(secs(15.0));
    assert_eq!(
        outcome(d),
        Some(Ok(None)),
        "no TimeoutError once suppressed"
    );
}

#[test]
fn add_timeout_manual_cancel_stays_cancelled_error() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::new();
    let d = d.add_timeout_on(&clock, secs(10.0));
    d.cancel();
    assert_eq!(clock.pending(), 0, "the timeout's call was cancelled");
    let failure = outcome(d).unwrap().unwrap_err();
    assert!(failure.check::<CancelledError>());
    assert!(!failure.check::<TimeoutError>());
}

#[test]
fn add_timeout_with_is_not_called_on_a_manual_cancel() {
    let clock = Clock::new();
    let (d, _trigger) = Deferred::<u32>::new();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let d = d.add_timeout_with(&clock, secs(10.0), move |result, _| {
        c.set(true);
        result
    });
    d.cancel();
    clock.advance(secs(15.0));
    assert!(!called.get());
    assert!(outcome(d).unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn add_timeout_cancels_a_deferred_waiting_on_an_inner_one() {
    // Fired, but its callback returned a Deferred that never fires: the
    // timeout cancels the inner one, and its CancelledError becomes the
    // TimeoutError.
    let clock = Clock::new();
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let (inner, _inner_trigger) = Deferred::<u32>::with_canceller(move |_c| ic.set(true));
    let d = twined::defer::succeed(())
        .and_then(move |()| inner)
        .add_timeout_on(&clock, secs(1.0));
    clock.advance(secs(1.0));
    assert!(inner_cancelled.get());
    assert!(outcome(d).unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn add_timeout_on_the_reactor_times_out() {
    let (d, _trigger) = Deferred::<u32>::new();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    d.add_timeout(Duration::from_millis(5)).add_both(move |r| {
        *g.borrow_mut() = Some(r.map_err(|f| f.check::<TimeoutError>()));
        reactor::stop().unwrap();
    });
    let watchdog = reactor::call_later(Duration::from_secs(10), || reactor::stop().unwrap());
    reactor::run().unwrap();
    assert!(watchdog.cancel().is_ok(), "the watchdog fired");
    assert_eq!(*got.borrow(), Some(Err(true)));
}

#[test]
fn timeout_error_message_gives_the_duration() {
    let e = TimeoutError {
        timeout: Duration::from_millis(2500),
    };
    assert_eq!(e.to_string(), "Deferred timed out after 2.5s");
}

/// Twisted's tests find their call with `call in reactor.getDelayedCalls()`
/// (`DelayedTests.testGetDelayedCalls`): handles compare by identity, and
/// order by when they are due, then by scheduling order.
#[test]
fn delayed_calls_compare_by_identity_and_order_by_time() {
    let clock = Clock::new();
    let late = clock.call_later(Duration::from_secs(5), || {});
    let early = clock.call_later(Duration::from_secs(1), || {});
    let tie = clock.call_later(Duration::from_secs(1), || {});
    let calls = clock.get_delayed_calls();
    assert!(calls.contains(&late) && calls.contains(&early) && calls.contains(&tie));
    assert_eq!(calls, [early.clone(), tie.clone(), late.clone()]);
    assert_eq!(early, early.clone());
    assert_ne!(early, tie);
    assert!(early < tie && tie < late);
    let mut sorted = vec![late.clone(), tie.clone(), early.clone()];
    sorted.sort();
    assert_eq!(sorted, [early.clone(), tie.clone(), late.clone()]);
    early.cancel().unwrap();
    assert!(!clock.get_delayed_calls().contains(&early));

    // The reactor's calls too.
    let call = reactor::call_later(Duration::from_secs(60), || {});
    assert!(reactor::get_delayed_calls().contains(&call));
    call.cancel().unwrap();
    assert!(!reactor::get_delayed_calls().contains(&call));
}
