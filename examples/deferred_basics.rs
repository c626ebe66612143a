//! A tour of twined's Deferreds and reactor, the way a Twisted programmer
//! would write it.
//!
//! Run it with `cargo run --example deferred_basics`.

use std::time::Duration;

use twined::defer::{self, Deferred, DeferredList, Failure};
use twined::reactor;

/// Something slow: fires with `n` after `n * 10` ms (think `getPage`).
fn slow_double(n: u32) -> Deferred<u32> {
    let (d, trigger) = Deferred::new();
    reactor::call_later(Duration::from_millis(10 * u64::from(n)), move || {
        trigger.callback(n * 2)
    });
    d
}

fn main() {
    // Unhandled failures are reported through the `log` crate.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    // d.addCallback(f).addCallback(g).addErrback(h)
    let d = slow_double(1)
        .add_callback(|x| x + 1)
        // A callback that can fail: `Err` (or `?`) goes down the errback chain.
        .and_then(|x| {
            if x > 100 {
                Err(Failure::msg("too big"))
            } else {
                Ok(x)
            }
        })
        // A callback that returns a Deferred: the chain waits for it.
        .and_then(slow_double)
        .add_errback(|failure| {
            eprintln!("recovered from: {failure}");
            0
        });

    // DeferredList(ds).addBoth(all_done), where all_done stops the reactor.
    let others = (2..=4).map(slow_double);
    let everything = std::iter::once(d).chain(others);
    DeferredList::new(everything).add_both(|results| {
        match results {
            Ok(results) => {
                for (i, result) in results.iter().enumerate() {
                    match result {
                        Ok(value) => println!("#{i}: {value}"),
                        Err(failure) => println!("#{i} failed: {failure}"),
                    }
                }
            }
            Err(failure) => println!("the list failed: {failure}"),
        }
        reactor::stop().expect("the reactor is running");
    });

    // A failing Deferred nobody handles is reported, once, when it is dropped.
    drop(defer::fail::<()>(Failure::msg("nobody handled me")));

    reactor::run().expect("the reactor runs");
}
