//! Unhandled-error reporting, ported from Twisted's `test_defer.py`
//! `LogTests` and the log side of its implicit-chaining, cancellation and
//! DeferredList tests, asserted on the `log` records twined emits.
//!
//! `log::set_logger` is process-global, so this file installs one capturing
//! logger and keeps the records per thread: each test runs on its own thread
//! and sees only what its own Deferreds logged. Debug mode is process-global
//! too; the test that turns it on takes the write side of `MODE`, every other
//! test the read side, so none of them runs while debugging is on.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::sync::{Once, RwLock, RwLockReadGuard};

use log::{Level, LevelFilter, Log, Metadata, Record};
use twined::defer::{
    self, CancelledError, Deferred, DeferredList, Failure, ListOptions, TriggerDropped,
};

// ---------------------------------------------------------------------------
// The capturing logger
// ---------------------------------------------------------------------------

struct Capture;

thread_local! {
    static RECORDS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let entry = (record.level(), record.args().to_string());
        // `try_with`: a Deferred dropped during thread teardown may still log.
        let _ = RECORDS.try_with(|records| records.borrow_mut().push(entry));
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;
static INSTALL: Once = Once::new();
/// Readers: ordinary tests. Writer: the test that turns debug mode on.
static MODE: RwLock<()> = RwLock::new(());

/// Installs the logger (once per process), clears this thread's records and
/// holds debug mode off for the duration of the test.
fn setup() -> RwLockReadGuard<'static, ()> {
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
    });
    let guard = MODE.read().unwrap_or_else(|e| e.into_inner());
    take_records();
    guard
}

/// This thread's records since the last call.
fn take_records() -> Vec<(Level, String)> {
    RECORDS.with(|records| std::mem::take(&mut *records.borrow_mut()))
}

const UNHANDLED: &str = "Unhandled error in Deferred";

/// The "Unhandled error in Deferred" records logged since the last call.
fn unhandled() -> Vec<String> {
    take_records()
        .into_iter()
        .filter(|(_, message)| message.contains(UNHANDLED))
        .map(|(level, message)| {
            assert_eq!(level, Level::Error, "{message}");
            message
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(&'static str);

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl Error for Boom {}

// ---------------------------------------------------------------------------
// an unhandled failure is logged once
// ---------------------------------------------------------------------------

/// D `LogTests.test_errorLog`: a Deferred whose final result is a
/// failure logs it once the last reference to it goes: here, at once, because
/// nobody holds the Deferred when its callback fails. Twisted logs two events
/// (the header and the traceback); twined logs one record that carries both
/// the message and the error's detail.
#[test]
fn unhandled_failure_is_logged_once_when_last_reference_goes() {
    let _mode = setup();
    let (d, trigger) = Deferred::<u32>::new();
    drop(d.and_then(|_| Err::<u32, _>(Failure::new(Boom("zero division")))));
    assert!(unhandled().is_empty());
    trigger.callback(1);
    let records = unhandled();
    assert_eq!(records.len(), 1, "{records:?}");
    let message = &records[0];
    assert!(
        message.starts_with("Unhandled error in Deferred: boom: zero division"),
        "{message}"
    );
    assert!(message.contains("Boom(\"zero division\")"), "{message}");
    assert!(take_records().is_empty(), "nothing else was logged");
}

/// the report comes when the last handle is dropped, not before:
/// as long as someone could still add an errback, nothing is logged
/// (deterministic, unlike Twisted's garbage collector).
#[test]
fn logged_when_the_handle_is_dropped_not_before() {
    let _mode = setup();
    let d = defer::fail::<u32>(Boom("later"));
    assert!(unhandled().is_empty());
    let d = d.add_callback(|x| x + 1);
    assert!(unhandled().is_empty());
    drop(d);
    assert_eq!(unhandled().len(), 1);

    // A panic in a callback is a failure like any other.
    let d = defer::succeed(1u32).add_callback(|_: u32| -> u32 { panic!("callback bug") });
    assert!(unhandled().is_empty());
    drop(d);
    let records = unhandled();
    assert_eq!(records.len(), 1);
    assert!(records[0].contains("panicked: callback bug"), "{records:?}");

    // A paused chain holding a failure that nobody can unpause any more.
    let (d, trigger) = Deferred::<u32>::new();
    d.pause();
    trigger.errback(Boom("paused"));
    assert!(unhandled().is_empty());
    drop(d);
    assert_eq!(unhandled().len(), 1);
}

// D `test_errorLogWithInnerFrameRef`, `test_errorLogWithInnerFrameCycle`:
// these guard against a traceback frame keeping the Deferred alive in a
// reference cycle. A `Failure` is `Send + Sync` and a Deferred is not, so a
// failure cannot hold its Deferred, and reporting does not wait for a collector.

/// D `test_errorLogNoRepr`: the record starts with the report's
/// header and the error's message, not the repr of a failure object.
#[test]
fn log_message_is_header_then_message() {
    let _mode = setup();
    drop(defer::fail::<()>(Failure::msg("plain words")));
    let records = unhandled();
    assert_eq!(records.len(), 1);
    assert!(
        records[0].starts_with("Unhandled error in Deferred: plain words\n"),
        "{}",
        records[0]
    );
}

/// D `test_errorLogDebugInfo`: with debugging on, the report says
/// where the Deferred was created and where it was fired.
#[test]
fn debug_mode_reports_where_the_deferred_was_created() {
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
    });
    let _mode = MODE.write().unwrap_or_else(|e| e.into_inner());
    take_records();

    struct DebugOff;
    impl Drop for DebugOff {
        fn drop(&mut self) {
            defer::set_debugging(false);
        }
    }
    defer::set_debugging(true);
    let _off = DebugOff;
    assert!(defer::get_debugging());

    /// A frame of its own that the optimizer may not inline away, so the
    /// creation backtrace names it in debug and release builds alike.
    #[inline(never)]
    fn create_the_deferred_here() -> (Deferred<u32>, defer::Trigger<u32>) {
        let made = Deferred::<u32>::new();
        std::hint::black_box(&made);
        made
    }
    let (d, trigger) = create_the_deferred_here();
    trigger.errback(Boom("debug"));
    drop(d);
    let records = unhandled();
    assert_eq!(records.len(), 1);
    let message = &records[0];
    assert!(
        message.contains("(debug: the Deferred was created at:"),
        "{message}"
    );
    assert!(message.contains("and fired at:"), "{message}");
    assert!(
        message.contains("create_the_deferred_here"),
        "the creation backtrace names the function that created it:\n{message}"
    );
    // The failure itself also records where it was created.
    assert!(message.contains("created at:"), "{message}");
}

// ---------------------------------------------------------------------------
// a failure moved on or handled is never logged
// ---------------------------------------------------------------------------

/// D `test_synchronousImplicitErrorChain`,
/// `test_asynchronousImplicitErrorChain`; D `test_chainedErrorCleanup`:
/// a failure moved into an outer Deferred by implicit chaining is not logged
/// by the inner one; the outer logs it once if nobody handles it there.
#[test]
fn failure_moved_by_implicit_chaining_is_not_logged_by_the_inner() {
    let _mode = setup();
    // Synchronous, handled in the outer.
    let d = defer::succeed(())
        .and_then(|()| defer::fail::<()>(Boom("zoop")))
        .add_errback(|f| assert!(f.check::<Boom>()));
    assert_eq!(d.result(), Some(Ok(())));
    assert!(unhandled().is_empty());

    // Asynchronous, handled in the outer.
    let (inner, inner_trigger) = Deferred::<()>::new();
    let d = defer::succeed(())
        .and_then(move |()| inner)
        .add_errback(|_| ());
    inner_trigger.errback(Boom("zoop"));
    drop(d);
    assert!(unhandled().is_empty());

    // Not handled anywhere: logged exactly once, by the outer.
    let (inner, inner_trigger) = Deferred::<()>::new();
    let d = defer::succeed(()).and_then(move |()| inner);
    inner_trigger.errback(Boom("zoop"));
    assert!(unhandled().is_empty());
    drop(d);
    assert_eq!(unhandled().len(), 1);
}

/// `chain_deferred` moves the failure too: only the last Deferred
/// of the chain can log it, and does not if it is handled.
#[test]
fn failure_moved_by_chain_deferred_is_not_logged() {
    let _mode = setup();
    let (a, a_trigger) = Deferred::<u32>::new();
    let (b, b_trigger) = Deferred::<u32>::new();
    a.chain_deferred(b_trigger);
    a_trigger.errback(Boom("explicit"));
    assert!(unhandled().is_empty());
    assert!(b.add_errback(|_| 0).result() == Some(Ok(0)));
    assert!(unhandled().is_empty());

    let (a, a_trigger) = Deferred::<u32>::new();
    let (b, b_trigger) = Deferred::<u32>::new();
    a.chain_deferred(b_trigger);
    a_trigger.errback(Boom("explicit"));
    drop(b);
    assert_eq!(unhandled().len(), 1);
}

/// D `test_errorClearedByChaining`: an errback that chains the
/// failing Deferred to another Deferred clears the failure; nothing is logged.
///
/// Twisted's test also drops the unfired `good` Deferred; in twined a dropped
/// trigger errbacks with `TriggerDropped` (documented), which is then the
/// unhandled failure, so it is reported once: a different failure, not the
/// original one.
#[test]
fn error_cleared_by_chaining() {
    let _mode = setup();
    let (good, good_trigger) = Deferred::<()>::new();
    let bad = defer::fail::<()>(Boom("oh no")).or_else(move |_| good);
    drop(bad);
    assert!(unhandled().is_empty());
    good_trigger.callback(());
    assert!(unhandled().is_empty());

    let (good, good_trigger) = Deferred::<()>::new();
    let bad = defer::fail::<()>(Boom("oh no")).or_else(move |_| good);
    drop(bad);
    drop(good_trigger);
    let records = unhandled();
    assert_eq!(records.len(), 1);
    assert!(
        records[0].contains(&TriggerDropped.to_string()),
        "{records:?}"
    );
    assert!(!records[0].contains("oh no"), "{records:?}");
}

/// A failure handled by an errback, or re-raised and handled further down, is
/// not logged.
#[test]
fn handled_failures_are_not_logged() {
    let _mode = setup();
    drop(defer::fail::<u32>(Boom("handled")).add_errback(|_| 0));
    drop(
        defer::fail::<u32>(Boom("re-raised"))
            .or_else(Err)
            .add_callback(|x| x + 1)
            .add_errback(|_| 0),
    );
    drop(defer::fail::<u32>(Boom("both")).add_both(|_| ()));
    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_errback(|_| 0);
    trigger.errback(Boom("later"));
    drop(d);
    assert!(unhandled().is_empty());
    assert!(take_records().is_empty());
}

// ---------------------------------------------------------------------------
// Combinators: consumed failures
// ---------------------------------------------------------------------------

/// D `testDeferredListConsumeErrors`: by default a combinator
/// consumes its inputs' failures (twined's documented default: it owns them),
/// so nothing is logged however they fail.
#[test]
fn combinators_consume_input_failures_by_default() {
    let _mode = setup();
    let list = DeferredList::new(vec![defer::fail::<u32>(Boom("1")), defer::succeed(2)]);
    assert_eq!(list.result().unwrap().unwrap().len(), 2);
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    drop(DeferredList::new(vec![d1, d2]));
    t1.errback(Boom("1"));
    t2.errback(Boom("2"));
    // fire_on_one_errback: the list's own FirstError is handled here; the
    // input that fails after the list fired is consumed too.
    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let list =
        DeferredList::with_options(vec![d1, d2], ListOptions::new().fire_on_one_errback(true));
    t1.errback(Boom("first"));
    t2.errback(Boom("late"));
    drop(list.add_errback(|_| Vec::new()));
    // gather_results and race.
    drop(defer::gather_results(vec![defer::fail::<u32>(Boom("g"))]).add_errback(|_| Vec::new()));
    drop(defer::race(vec![
        defer::fail::<u32>(Boom("r")),
        defer::succeed(1),
    ]));
    assert!(unhandled().is_empty());
}

/// D `testDeferredListDontConsumeErrors`: with
/// `consume_errors(false)`, each input failure is reported as unhandled, as in
/// Twisted when nothing else handles the input; including a failure that
/// arrives after a fire-on-one-errback list has fired.
#[test]
fn dont_consume_errors_logs_each_input_failure() {
    let _mode = setup();
    let options = ListOptions::new().consume_errors(false);
    let list = DeferredList::with_options(
        vec![
            defer::fail::<u32>(Boom("1")),
            defer::succeed(2),
            defer::fail(Boom("3")),
        ],
        options,
    );
    let records = unhandled();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records[0].contains("boom: 1") && records[1].contains("boom: 3"));
    assert_eq!(list.result().unwrap().unwrap().len(), 3);
    assert!(unhandled().is_empty(), "the list's own result is a success");

    let (d1, t1) = Deferred::<u32>::new();
    let (d2, t2) = Deferred::<u32>::new();
    let list = DeferredList::with_options(vec![d1, d2], options.fire_on_one_errback(true))
        .add_errback(|_| Vec::new());
    t1.errback(Boom("first"));
    assert_eq!(unhandled().len(), 1);
    t2.errback(Boom("late"));
    assert_eq!(unhandled().len(), 1);
    drop(list);
    assert!(unhandled().is_empty());
}

/// D `test_cancelDeferredListWithException`: a canceller that fails
/// (twined: panics) is logged; the Deferred fails with the panic (twined's
/// documented behaviour), which the list consumes.
#[test]
fn panicking_canceller_is_logged() {
    let _mode = setup();
    let (d1, _t1) = Deferred::<u32>::with_canceller(|_| panic!("canceller bug"));
    let list = DeferredList::new(vec![d1]);
    list.cancel();
    let records = take_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, Level::Error);
    assert!(records[0].1.contains("canceller panicked"), "{records:?}");
    assert!(list.result().unwrap().unwrap()[0].is_err());
    assert!(take_records().is_empty());
}

// ---------------------------------------------------------------------------
// Late results after a cancel
// ---------------------------------------------------------------------------

/// the one late result after a canceller-less cancel is swallowed
/// silently, a failure included.
#[test]
fn swallowed_late_results_are_not_logged() {
    let _mode = setup();
    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_errback(|f| {
        assert!(f.check::<CancelledError>());
        0
    });
    d.cancel();
    trigger.errback(Boom("late"));
    drop(d);
    let (d, trigger) = Deferred::<u32>::new();
    d.cancel();
    trigger.callback(1);
    drop(d.add_errback(|_| 0));
    assert!(take_records().is_empty());
}

/// a late result after a canceller that did not stop the work is not
/// swallowed: `Trigger::callback` logs a warning that the value was dropped,
/// `Trigger::errback` reports the failure as unhandled.
#[test]
fn late_results_after_a_canceller_are_logged() {
    let _mode = setup();
    let (d, trigger) = Deferred::<u32>::with_canceller(|_| {});
    d.cancel();
    drop(d.add_errback(|_| 0));
    trigger.callback(1);
    let records = take_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, Level::Warn);
    assert!(records[0].1.contains("already fired"), "{records:?}");

    let (d, trigger) = Deferred::<u32>::with_canceller(|_| {});
    d.cancel();
    drop(d.add_errback(|_| 0));
    trigger.errback(Boom("late failure"));
    let records = unhandled();
    assert_eq!(records.len(), 1);
    assert!(records[0].contains("boom: late failure"), "{records:?}");
}

/// twined's documented behaviour: a trigger dropped unfired errbacks its
/// Deferred with `TriggerDropped`, which, if nobody handles it, is reported
/// like any other failure; if the Deferred handles it, nothing is logged.
#[test]
fn dropped_trigger_failure_is_reported_unless_handled() {
    let _mode = setup();
    let (d, trigger) = Deferred::<u32>::new();
    drop(trigger);
    drop(d);
    let records = unhandled();
    assert_eq!(records.len(), 1);
    assert!(records[0].contains(&TriggerDropped.to_string()));

    let (d, trigger) = Deferred::<u32>::new();
    let d = d.add_errback(|_| 0);
    drop(trigger);
    assert_eq!(d.result(), Some(Ok(0)));
    assert!(unhandled().is_empty());
}
