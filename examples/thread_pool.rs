//! `concurrent.futures.ThreadPoolExecutor` + `add_done_callback` as
//! `threads::defer_to_thread`: the blocking work runs on pool threads, the
//! callbacks run on the reactor thread.
//!
//! ```python
//! with ThreadPoolExecutor(max_workers=4) as ex:
//!     for n in numbers:
//!         ex.submit(slow_square, n).add_done_callback(report)
//! ```
//!
//! Run with `cargo run --example thread_pool`.

use std::thread;
use std::time::Duration;

use twined::defer::DeferredList;
use twined::{reactor, threads};

/// Blocking work: it would stall the reactor if run on its thread.
fn slow_square(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(30));
    n * n
}

fn main() {
    threads::set_pool_size(4);
    let reactor_thread = thread::current().id();
    let jobs = (1..=8u64).map(|n| {
        threads::defer_to_thread(move || slow_square(n)).add_callback(move |square| {
            // add_done_callback: runs on the reactor thread.
            assert_eq!(thread::current().id(), reactor_thread);
            println!("{n}^2 = {square}");
            square
        })
    });
    DeferredList::new(jobs).add_both(|results| {
        let sum: u64 = results
            .map(|r| r.into_iter().filter_map(Result::ok).sum())
            .unwrap_or(0);
        println!("sum of squares: {sum}");
        reactor::stop().expect("stop");
    });
    reactor::run().expect("run");
}
