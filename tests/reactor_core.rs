//! Reactor core: run/stop/crash/restart, timers, triggers and thread calls.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use twined::reactor::{self, Event, Phase, ReactorError};

type Log = Rc<RefCell<Vec<&'static str>>>;

fn record() -> (Log, impl Fn(&'static str) -> Box<dyn Fn()>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    (log, move |s| {
        let l = l.clone();
        Box::new(move || l.borrow_mut().push(s))
    })
}

/// Twisted's `test_stopWhenNotStarted` expects `ReactorNotRunning`; twined
/// accepts the stop and makes the next `run()` do one pass and return (as
/// asyncio does), so a program whose work all failed before `run()` does not
/// hang. A second stop while one is pending is refused.
#[test]
fn stop_when_not_running_is_kept_for_the_next_run() {
    assert!(reactor::stop().is_ok());
    assert!(matches!(reactor::stop(), Err(ReactorError::NotRunning)));
    reactor::run().unwrap();
    assert!(!reactor::running());
}

#[test]
fn run_stop_run_again_on_the_same_thread() {
    for _ in 0..3 {
        reactor::call_later(Duration::from_millis(1), || reactor::stop().unwrap());
        reactor::run().unwrap();
        assert!(!reactor::running());
    }
}

#[test]
fn nested_run_is_an_error() {
    let nested = Rc::new(RefCell::new(None));
    let n = nested.clone();
    reactor::call_when_running(move || {
        *n.borrow_mut() = Some(matches!(reactor::run(), Err(ReactorError::AlreadyRunning)));
        reactor::stop().unwrap();
    });
    reactor::run().unwrap();
    assert_eq!(*nested.borrow(), Some(true));
}

#[test]
fn equal_deadlines_fire_in_scheduling_order() {
    let (log, rec) = record();
    for name in ["a", "b", "c", "d"] {
        let f = rec(name);
        reactor::call_later(Duration::from_millis(5), f);
    }
    reactor::call_later(Duration::from_millis(5), || reactor::stop().unwrap());
    reactor::run().unwrap();
    assert_eq!(*log.borrow(), ["a", "b", "c", "d"]);
}

#[test]
fn shutdown_phases_run_in_order_after_stop_returns() {
    let (log, rec) = record();
    let (b, d, a) = (rec("before"), rec("during"), rec("after"));
    reactor::add_system_event_trigger(Phase::After, Event::Shutdown, a);
    reactor::add_system_event_trigger(Phase::During, Event::Shutdown, d);
    reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, b);
    let l = log.clone();
    reactor::call_when_running(move || {
        reactor::stop().unwrap();
        l.borrow_mut().push("stop returned");
    });
    reactor::run().unwrap();
    assert_eq!(
        *log.borrow(),
        ["stop returned", "before", "during", "after"]
    );
}

#[test]
fn a_before_shutdown_deferred_holds_shutdown() {
    let (log, rec) = record();
    let during = rec("during");
    let l = log.clone();
    reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        let (d, trigger) = twined::defer::Deferred::<()>::new();
        let l = l.clone();
        reactor::call_later(Duration::from_millis(20), move || {
            l.borrow_mut().push("released");
            trigger.callback(());
        });
        d
    });
    reactor::add_system_event_trigger(Phase::During, Event::Shutdown, during);
    reactor::call_when_running(|| reactor::stop().unwrap());
    reactor::run().unwrap();
    assert_eq!(*log.borrow(), ["released", "during"]);
}

#[test]
fn crash_skips_shutdown_triggers_and_allows_a_new_run() {
    let (log, rec) = record();
    let before = rec("before");
    let id = reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, before);
    reactor::call_when_running(reactor::crash);
    reactor::run().unwrap();
    assert!(log.borrow().is_empty());
    assert!(reactor::remove_system_event_trigger(id));
    reactor::call_when_running(|| reactor::stop().unwrap());
    reactor::run().unwrap();
}

#[test]
fn running_is_false_before_startup_and_true_during_and_after() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    for phase in [Phase::Before, Phase::During, Phase::After] {
        let s = seen.clone();
        reactor::add_system_event_trigger(phase, Event::Startup, move || {
            s.borrow_mut().push(reactor::running())
        });
    }
    reactor::call_when_running(|| reactor::stop().unwrap());
    reactor::run().unwrap();
    assert_eq!(*seen.borrow(), [false, true, true]);
}

#[test]
fn a_panicking_timed_call_is_logged_and_the_loop_goes_on() {
    reactor::call_later(Duration::ZERO, || panic!("boom"));
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    reactor::call_later(Duration::from_millis(1), move || {
        *r.borrow_mut() = true;
        reactor::stop().unwrap();
    });
    reactor::run().unwrap();
    assert!(*ran.borrow());
}

#[test]
fn call_from_thread_from_8_threads_arrives_complete_and_in_per_thread_order() {
    const THREADS: usize = 8;
    const CALLS: usize = 10_000;
    let seen: Rc<RefCell<Vec<Vec<usize>>>> = Rc::new(RefCell::new(vec![Vec::new(); THREADS]));
    let handle = reactor::handle();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for i in 0..CALLS {
                    handle.call_from_thread(move || {
                        SEEN.with(|s| s.borrow_mut().push((t, i)));
                    });
                }
            })
        })
        .collect();
    thread_local! {
        static SEEN: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }
    let h2 = handle.clone();
    std::thread::spawn(move || {
        for w in workers {
            w.join().unwrap();
        }
        h2.call_from_thread(|| reactor::stop().unwrap());
    });
    reactor::run().unwrap();
    SEEN.with(|s| {
        for (t, i) in s.borrow().iter() {
            seen.borrow_mut()[*t].push(*i);
        }
    });
    for per_thread in seen.borrow().iter() {
        assert_eq!(per_thread.len(), CALLS);
        assert!(per_thread.windows(2).all(|w| w[0] < w[1]));
    }
}

/// Twisted's `ThreePhaseEventTests.test_synchronousRemovePendingBefore`: a
/// "before" trigger that removes another "before" trigger of the same event
/// that has not run yet stops it from running, and the removal succeeds.
#[test]
fn before_trigger_removing_a_pending_before_trigger_stops_it() {
    let (log, rec) = record();
    let removed = Rc::new(std::cell::Cell::new(None));
    let pending = Rc::new(std::cell::Cell::new(None));
    let (r, p) = (removed.clone(), pending.clone());
    let first = rec("first");
    reactor::add_system_event_trigger(Phase::Before, Event::Custom("three-phase"), move || {
        first();
        r.set(Some(reactor::remove_system_event_trigger(p.get().unwrap())));
    });
    let second = rec("second");
    pending.set(Some(reactor::add_system_event_trigger(
        Phase::Before,
        Event::Custom("three-phase"),
        second,
    )));
    let during = rec("during");
    reactor::add_system_event_trigger(Phase::During, Event::Custom("three-phase"), move || {
        during()
    });
    let done = reactor::fire_system_event(Event::Custom("three-phase"));
    assert!(done.called());
    assert_eq!(*log.borrow(), ["first", "during"]);
    assert_eq!(removed.get(), Some(true));
}

/// Twisted's `test_synchronousRemoveAlreadyExecutedBefore`: removing a
/// "before" trigger that has already run finds nothing.
#[test]
fn removing_a_before_trigger_that_already_ran_finds_nothing() {
    let removed = Rc::new(std::cell::Cell::new(None));
    let first_id = Rc::new(std::cell::Cell::new(None));
    reactor::add_system_event_trigger(Phase::Before, Event::Custom("ran"), || {});
    let (r, f) = (removed.clone(), first_id.clone());
    let id = reactor::add_system_event_trigger(Phase::Before, Event::Custom("ran"), move || {
        r.set(Some(reactor::remove_system_event_trigger(f.get().unwrap())));
    });
    first_id.set(Some(id));
    reactor::fire_system_event(Event::Custom("ran"));
    assert_eq!(removed.get(), Some(false));
}

/// Twisted's `_ThreePhaseEvent.fireEvent` takes "before" triggers one at a
/// time: one that adds another "before" trigger of the same event gets it run
/// in the same event, before the "during" phase.
#[test]
fn before_trigger_adding_a_before_trigger_runs_it_in_the_same_event() {
    let (log, rec) = record();
    let added = rec("added");
    let first = rec("first");
    reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        first();
        reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, added);
    });
    let during = rec("during");
    reactor::add_system_event_trigger(Phase::During, Event::Shutdown, during);
    reactor::call_when_running(|| reactor::stop().unwrap());
    reactor::run().unwrap();
    assert_eq!(*log.borrow(), ["first", "added", "during"]);
}

/// Twisted's `reactor.fireSystemEvent` on an event of the program's own:
/// the "during" phase waits for a Deferred a "before" trigger returned, and
/// each trigger runs once (`test_asynchronousBefore`, `test_triggersRunOnce`).
#[test]
fn custom_event_runs_its_phases_and_waits_for_before_deferreds() {
    let (log, rec) = record();
    let (d, trigger) = twined::defer::Deferred::<()>::new();
    let before = rec("before");
    reactor::add_system_event_trigger(Phase::Before, Event::Custom("reload"), move || {
        before();
        d
    });
    let during = rec("during");
    reactor::add_system_event_trigger(Phase::During, Event::Custom("reload"), during);
    let after = rec("after");
    reactor::add_system_event_trigger(Phase::After, Event::Custom("reload"), after);
    let other = rec("other event");
    reactor::add_system_event_trigger(Phase::During, Event::Custom("other"), other);
    let done = reactor::fire_system_event(Event::Custom("reload"));
    assert_eq!(*log.borrow(), ["before"]);
    assert!(!done.called());
    trigger.callback(());
    assert_eq!(*log.borrow(), ["before", "during", "after"]);
    assert!(done.called());
    reactor::fire_system_event(Event::Custom("reload"));
    assert_eq!(log.borrow().len(), 3, "triggers run once");
}
