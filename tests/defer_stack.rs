//! Constant stack: chains of a million Deferreds (Twisted's
//! `test_defer.py` `test_boundedStackDepth`, and Twisted's recursion through
//! `chainDeferred`, which twined does not have).
//!
//! Every test runs on a thread with a 256 KiB stack: a runner (or a `Drop`)
//! that recursed once per link would need hundreds of megabytes for a million
//! links, so finishing at all proves the stack use is bounded. The same goes
//! for a DeferredLock/DeferredSemaphore handed through 100,000 waiters.

use std::thread;

use twined::defer::{Deferred, DeferredLock, DeferredSemaphore, Trigger, TriggerDropped};

const LINKS: usize = 1_000_000;
const STACK: usize = 256 * 1024;

/// Runs `f` on a fresh thread with a 256 KiB stack and returns its result.
/// Unhandled failures reported to a logger that keeps nothing: the tests
/// that drop a million unfired triggers would otherwise print a million
/// reports (seconds of output). What is reported is tested in `defer_log`.
fn quiet_reports() {
    struct Quiet;
    impl log::Log for Quiet {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, _: &log::Record) {}
        fn flush(&self) {}
    }
    static QUIET: Quiet = Quiet;
    if log::set_logger(&QUIET).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
}

fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    quiet_reports();
    thread::Builder::new()
        .name("small-stack".into())
        .stack_size(STACK)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the test thread panicked (or overflowed its stack)")
}

/// Twisted's `test_boundedStackDepth` structure, a million links long:
/// `top`'s callback returns `d[0]`, `d[i]`'s callback returns `d[i + 1]` (with
/// one extra callback that adds 1), and `d[LINKS - 1]`'s returns `last`.
struct Ladder {
    top: Deferred<usize>,
    top_trigger: Trigger<usize>,
    triggers: Vec<Trigger<usize>>,
}

impl Ladder {
    fn new(last: Deferred<usize>) -> Ladder {
        let (top, top_trigger) = Deferred::<usize>::new();
        let mut triggers = Vec::with_capacity(LINKS);
        let mut deferreds = Vec::with_capacity(LINKS);
        for _ in 0..LINKS {
            let (d, t) = Deferred::<usize>::new();
            deferreds.push(d);
            triggers.push(t);
        }
        let mut next = last;
        for d in deferreds.into_iter().rev() {
            next = d.and_then(move |_| next.add_callback(|n| n + 1));
        }
        let top = top.and_then(move |_| next);
        Ladder {
            top,
            top_trigger,
            triggers,
        }
    }
}

/// Fired front to back: each link waits on the next, unfired one, so when
/// `last` fires its result is handed back through a million waiting links.
#[test]
fn and_then_chain_of_a_million_fired_forwards() {
    let result = on_small_stack(|| {
        let (last, last_trigger) = Deferred::<usize>::new();
        let ladder = Ladder::new(last);
        ladder.top_trigger.callback(0);
        for t in ladder.triggers {
            t.callback(0);
        }
        assert!(ladder.top.is_waiting());
        last_trigger.callback(0);
        ladder.top.result()
    });
    assert_eq!(result, Some(Ok(LINKS)));
}

/// Fired back to front: each callback returns a Deferred that has already
/// fired, whose result is taken at once.
#[test]
fn and_then_chain_of_a_million_fired_backwards() {
    let result = on_small_stack(|| {
        let (last, last_trigger) = Deferred::<usize>::new();
        let mut ladder = Ladder::new(last);
        last_trigger.callback(0);
        while let Some(t) = ladder.triggers.pop() {
            t.callback(0);
        }
        ladder.top_trigger.callback(0);
        ladder.top.result()
    });
    assert_eq!(result, Some(Ok(LINKS)));
}

/// A failure travels the whole ladder the same way, and is handled at the top.
#[test]
fn and_then_chain_of_a_million_carries_a_failure() {
    let result = on_small_stack(|| {
        let (last, last_trigger) = Deferred::<usize>::new();
        let ladder = Ladder::new(last);
        ladder.top_trigger.callback(0);
        for t in ladder.triggers {
            t.callback(0);
        }
        last_trigger.errback(TriggerDropped);
        ladder
            .top
            .add_errback(|f| if f.check::<TriggerDropped>() { 7 } else { 0 })
            .result()
    });
    assert_eq!(result, Some(Ok(7)));
}

/// `d[i].chain_deferred(t[i + 1])` a million times, built front to back, then
/// the head fired. (Twisted recurses here and fails at about 2,000.)
#[test]
fn chain_deferred_a_million_built_forwards() {
    let result = on_small_stack(|| {
        let (head, head_trigger) = Deferred::<usize>::new();
        let mut current = head;
        for _ in 0..LINKS {
            let (d, t) = Deferred::<usize>::new();
            current.chain_deferred(t);
            current = d;
        }
        let tail = current.add_callback(|n| n + 1);
        head_trigger.callback(41);
        tail.result()
    });
    assert_eq!(result, Some(Ok(42)));
}

/// The same links made back to front, then the head fired; and the head fired
/// first, links added after (each delivers at once).
#[test]
fn chain_deferred_a_million_built_backwards_and_streaming() {
    let result = on_small_stack(|| {
        let mut ds = Vec::with_capacity(LINKS + 1);
        let mut ts = Vec::with_capacity(LINKS + 1);
        for _ in 0..=LINKS {
            let (d, t) = Deferred::<usize>::new();
            ds.push(Some(d));
            ts.push(Some(t));
        }
        for i in (0..LINKS).rev() {
            let d = ds[i].take().unwrap();
            d.chain_deferred(ts[i + 1].take().unwrap());
        }
        let tail = ds[LINKS].take().unwrap();
        ts[0].take().unwrap().errback(TriggerDropped);
        let backwards = tail.add_errback(|_| 9).result();

        let (head, head_trigger) = Deferred::<usize>::new();
        head_trigger.callback(5);
        let mut current = head;
        for _ in 0..LINKS {
            let (d, t) = Deferred::<usize>::new();
            current.chain_deferred(t);
            current = d;
        }
        (backwards, current.result())
    });
    assert_eq!(result, (Some(Ok(9)), Some(Ok(5))));
}

/// Dropping a million-link structure that never fired, in several orders:
/// dropped triggers errback their Deferreds (`TriggerDropped`), which runs
/// the chains instead of dropping them recursively.
#[test]
fn dropping_unfired_million_link_structures() {
    on_small_stack(|| {
        // The ladder, top first, then the triggers front to back.
        let (last, last_trigger) = Deferred::<usize>::new();
        let ladder = Ladder::new(last);
        drop(ladder.top);
        drop(ladder.top_trigger);
        drop(ladder.triggers);
        drop(last_trigger);

        // The ladder, triggers back to front first.
        let (last, last_trigger) = Deferred::<usize>::new();
        let mut ladder = Ladder::new(last);
        drop(last_trigger);
        while let Some(t) = ladder.triggers.pop() {
            drop(t);
        }
        drop(ladder);

        // A chain_deferred line whose head trigger is dropped.
        let (head, head_trigger) = Deferred::<usize>::new();
        let mut current = head;
        for _ in 0..LINKS {
            let (d, t) = Deferred::<usize>::new();
            current.chain_deferred(t);
            current = d;
        }
        drop(current);
        drop(head_trigger);
    });
}

/// A ladder fired forwards waits on its last link; dropping the last trigger
/// errbacks it, and the failure is handed back through every link.
#[test]
fn dropping_the_leaf_of_a_waiting_million_link_ladder() {
    let result = on_small_stack(|| {
        let (last, last_trigger) = Deferred::<usize>::new();
        let ladder = Ladder::new(last);
        ladder.top_trigger.callback(0);
        for t in ladder.triggers {
            t.callback(0);
        }
        drop(last_trigger);
        ladder
            .top
            .add_errback(|f| usize::from(f.check::<TriggerDropped>()))
            .result()
    });
    assert_eq!(result, Some(Ok(1)));
}

/// The leaf of a waiting ladder can also just go away: here it is a paused
/// Deferred that nobody can unpause, so the million links waiting on it can
/// never fire and are freed as soon as the leaf is. Freeing them must not
/// recurse once per link.
#[test]
fn freeing_a_million_links_waiting_on_a_dead_leaf() {
    let paused = on_small_stack(|| {
        let (last, last_trigger) = Deferred::<usize>::new();
        last_trigger.callback(0);
        last.pause();
        let ladder = Ladder::new(last);
        ladder.top_trigger.callback(0);
        for t in ladder.triggers {
            t.callback(0);
        }
        // The leaf and every link have been freed; only the top is left.
        ladder.top.paused()
    });
    assert_eq!(paused, 1);
}

/// A chain_deferred line whose head is paused for good is freed, all million
/// links of it, when the head's trigger goes.
#[test]
fn freeing_a_million_link_chain_deferred_line_behind_a_paused_head() {
    let called = on_small_stack(|| {
        let (head, head_trigger) = Deferred::<usize>::new();
        head.pause();
        let mut current = head;
        for _ in 0..LINKS {
            let (d, t) = Deferred::<usize>::new();
            current.chain_deferred(t);
            current = d;
        }
        head_trigger.callback(1);
        current.called()
    });
    assert!(!called);
}

/// A lock with a hundred thousand queued `run`s whose functions finish at
/// once: each holder releases the lock inside the callback that gave it the
/// lock. The hand-over must not nest one level per waiter (it used to, and
/// overflowed an 8 MiB stack at about 10,000 waiters).
#[test]
fn lock_handed_through_100k_synchronous_waiters() {
    let (order_ok, locked) = on_small_stack(|| {
        let lock = DeferredLock::new();
        let first = lock.acquire().result().unwrap().unwrap();
        let results: Vec<Deferred<usize>> = (0..100_000).map(|i| lock.run(move || Ok(i))).collect();
        drop(first);
        let order_ok = results
            .into_iter()
            .enumerate()
            .all(|(i, d)| d.result() == Some(Ok(i)));
        (order_ok, lock.locked())
    });
    assert!(order_ok);
    assert!(!locked);
}

/// The same for a semaphore with two tokens.
#[test]
fn semaphore_handed_through_100k_synchronous_waiters() {
    let (order_ok, tokens) = on_small_stack(|| {
        let sem = DeferredSemaphore::new(2).unwrap();
        let a = sem.acquire().result().unwrap().unwrap();
        let b = sem.acquire().result().unwrap().unwrap();
        let results: Vec<Deferred<usize>> = (0..100_000).map(|i| sem.run(move || Ok(i))).collect();
        drop(a);
        drop(b);
        let order_ok = results
            .into_iter()
            .enumerate()
            .all(|(i, d)| d.result() == Some(Ok(i)));
        (order_ok, sem.tokens())
    });
    assert!(order_ok);
    assert_eq!(tokens, 2);
}

#[test]
fn a_line_of_100k_deferreds_each_fired_from_the_previous_callback() {
    // Each callback fires the next Deferred's trigger. Twisted recurses once
    // per link here; twined runs the first levels synchronously and hands
    // the rest to the outermost runner, so the stack stays bounded and the
    // whole line has run when the first `callback` returns.
    let last = on_small_stack(|| {
        let (first, first_trigger) = Deferred::<u64>::new();
        let mut handles = Vec::new();
        let mut previous = first;
        for _ in 1..100_000 {
            let (d, trigger) = Deferred::<u64>::new();
            handles.push(previous.add_callback(move |v| trigger.callback(v + 1)));
            previous = d;
        }
        first_trigger.callback(0);
        let last = previous.result();
        drop(handles);
        last
    });
    assert_eq!(last.map(|r| r.ok()), Some(Some(99_999)));
}
