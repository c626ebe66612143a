//! Timer throughput: `call_later` + firing, per timer, over 1,000,000 timers,
//! on the real reactor and on a `task::Clock` (Twisted: about 4.0 µs per
//! `callLater` + call on CPython).
//!
//! Run with `cargo bench --bench timers`. Prints the median of 5 rounds per
//! case, in nanoseconds per timer.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twined::reactor;
use twined::task::Clock;

const N: usize = 1_000_000;
const ROUNDS: usize = 5;

/// splitmix64, for reproducible random delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The delays of one round: all zero (due in scheduling order) or random.
fn delays(random_up_to: Option<Duration>) -> Vec<Duration> {
    let mut rng = Rng(42);
    (0..N)
        .map(|_| match random_up_to {
            None => Duration::ZERO,
            Some(max) => Duration::from_nanos(rng.next() % max.as_nanos() as u64),
        })
        .collect()
}

/// Schedules `N` timers on the reactor, runs it until all have fired, and
/// returns the time per timer. The reactor stops from the last timer; the
/// wait for the latest deadline (at most `max` of idle time) is included.
fn reactor_round(delays: &[Duration]) -> Duration {
    let fired = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    for &delay in delays {
        let fired = fired.clone();
        reactor::call_later(delay, move || {
            let n = fired.get() + 1;
            fired.set(n);
            if n == N {
                reactor::stop().unwrap();
            }
        });
    }
    reactor::run().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(fired.get(), N);
    elapsed / N as u32
}

/// Schedules `N` timers on a Clock, advances past the last, and returns the
/// time per timer.
fn clock_round(delays: &[Duration]) -> Duration {
    let clock = Clock::new();
    let fired = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    for &delay in delays {
        let fired = fired.clone();
        clock.call_later(delay, move || fired.set(fired.get() + 1));
    }
    clock.advance(Duration::from_secs(3600));
    let elapsed = start.elapsed();
    assert_eq!(fired.get(), N);
    elapsed / N as u32
}

/// Schedules and cancels `N` timers on a Clock (nothing fires); the time per
/// timer, including the compaction of cancelled entries.
fn clock_cancel_round(delays: &[Duration]) -> Duration {
    let clock = Clock::new();
    let start = Instant::now();
    for &delay in delays {
        let call = clock.call_later(delay, || unreachable!("cancelled"));
        call.cancel().unwrap();
    }
    clock.advance(Duration::from_secs(3600));
    let elapsed = start.elapsed();
    black_box(&clock);
    elapsed / N as u32
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, round: impl Fn() -> Duration) {
    let samples: Vec<Duration> = (0..ROUNDS).map(|_| round()).collect();
    let best = *samples.iter().min().unwrap_or(&Duration::ZERO);
    println!(
        "{name:<52} median {:>6} ns/timer   best {:>6} ns/timer",
        median(samples).as_nanos(),
        best.as_nanos()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us with no
    // argument: then do one small smoke round only.
    if !std::env::args().any(|a| a == "--bench") {
        let d = delays(Some(Duration::from_millis(1)));
        let _ = clock_round(&d[..]);
        return;
    }
    println!("{N} timers per round, {ROUNDS} rounds (Twisted on CPython: ~4,000 ns per callLater + call)");
    let zero = delays(None);
    let random_ms = delays(Some(Duration::from_millis(1)));
    let random_s = delays(Some(Duration::from_secs(10)));
    report("reactor: call_later(0) + fire", || reactor_round(&zero));
    report("reactor: call_later(random 0-1 ms) + fire", || {
        reactor_round(&random_ms)
    });
    report("clock:   call_later(0) + fire", || clock_round(&zero));
    report("clock:   call_later(random 0-10 s) + fire", || {
        clock_round(&random_s)
    });
    report("clock:   call_later(random 0-10 s) + cancel", || {
        clock_cancel_round(&random_s)
    });
}
