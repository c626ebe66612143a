//! [`Pacer`]: request slots spaced per key (a host) and overall (a rate),
//! shared by the reactors of every thread (Scrapy's `DOWNLOAD_DELAY` per
//! slot and a global request rate, exact under many workers).
//!
//! A caller *reserves* a slot: the earliest instant that is at least the
//! key's gap after the previous slot of that key, and at least `1 / rate`
//! away from every other slot already handed out. The reservation is made
//! under one lock, so slots from any number of threads keep both spacings
//! exactly; the caller then waits for its slot on its own reactor's timer
//! ([`Pacer::wait`]), never blocking the reactor thread.
//!
//! Memory stays bounded: a key whose next slot has passed constrains
//! nothing and is dropped at the next sweep, and a global slot further back
//! than `1 / rate` is dropped at once. What is held is at most the keys and
//! slots reserved for the future, that is, the callers waiting.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::defer::Deferred;

/// Keys held before the first sweep of passed ones; the next sweep waits
/// until twice as many keys as the last one kept.
const SWEEP_AT: usize = 1024;

/// Settings of a [`Pacer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerOptions {
    /// Least time between two slots of one key (Scrapy's `DOWNLOAD_DELAY`).
    /// Default: zero.
    pub delay: Duration,
    /// Most slots per second over all keys; `None` (the default) for no
    /// overall limit. Slots are then at least `1 / rate` seconds apart.
    /// A rate that is not a positive finite number is no limit.
    pub rate: Option<f64>,
}

impl Default for PacerOptions {
    fn default() -> PacerOptions {
        PacerOptions {
            delay: Duration::ZERO,
            rate: None,
        }
    }
}

struct State {
    /// Per key: the earliest instant of its next slot.
    next: HashMap<String, Instant>,
    /// Slots handed out under the rate, not yet `1 / rate` in the past.
    slots: BTreeSet<Instant>,
    /// Sweep passed keys when `next` grows past this.
    sweep_at: usize,
}

/// Hands out request slots spaced per key and overall. `Send + Sync`: put
/// it in an `Arc` and share it among the reactor threads of a crawl.
///
/// ```
/// use std::time::{Duration, Instant};
/// use twined::task::{Pacer, PacerOptions};
///
/// let pacer = Pacer::new(PacerOptions {
///     delay: Duration::from_secs(2),      // per host
///     rate: Some(4.0),                    // 4 requests per second overall
/// });
/// let t0 = Instant::now();
/// let a1 = pacer.reserve_at("a.example", Duration::ZERO, t0);
/// let a2 = pacer.reserve_at("a.example", Duration::ZERO, t0);
/// let b1 = pacer.reserve_at("b.example", Duration::ZERO, t0);
/// assert_eq!(a1, t0);
/// assert_eq!(a2, t0 + Duration::from_secs(2));      // the host's delay
/// assert_eq!(b1, t0 + Duration::from_millis(250));  // the overall rate
/// // A larger gap for one key (a robots.txt Crawl-delay) wins over the delay.
/// let b2 = pacer.reserve_at("b.example", Duration::from_secs(5), t0);
/// assert_eq!(b2, b1 + Duration::from_secs(2));
/// let b3 = pacer.reserve_at("b.example", Duration::from_secs(5), t0);
/// assert_eq!(b3, b2 + Duration::from_secs(5));
/// ```
///
/// On a reactor, [`wait`](Self::wait) reserves a slot and fires when it
/// comes:
///
/// ```
/// use std::time::{Duration, Instant};
/// use twined::task::{self, Pacer, PacerOptions};
///
/// let pacer = Pacer::new(PacerOptions { delay: Duration::from_millis(20), rate: None });
/// let start = Instant::now();
/// task::react(|| {
///     pacer.wait("example.org").and_then(move |()| pacer.wait("example.org"))
/// })
/// .unwrap();
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
pub struct Pacer {
    options: PacerOptions,
    /// `1 / rate`, when there is a rate.
    interval: Option<Duration>,
    state: Mutex<State>,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("options", &self.options)
            .field("keys", &self.keys())
            .finish()
    }
}

impl Pacer {
    /// A pacer with `options`.
    pub fn new(options: PacerOptions) -> Pacer {
        let interval = options
            .rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok())
            .filter(|i| !i.is_zero());
        Pacer {
            options,
            interval,
            state: Mutex::new(State {
                next: HashMap::new(),
                slots: BTreeSet::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    /// The settings.
    pub fn options(&self) -> &PacerOptions {
        &self.options
    }

    /// Whether the pacer ever makes anyone wait (a delay or a rate).
    pub fn is_active(&self) -> bool {
        !self.options.delay.is_zero() || self.interval.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-changed: every
        // change below is a single insert or remove.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys held now (those whose next slot may still be in the future).
    pub fn keys(&self) -> usize {
        self.lock().next.len()
    }

    /// Reserves the next slot of `key` as of now; see
    /// [`reserve_at`](Self::reserve_at).
    pub fn reserve(&self, key: &str, gap: Duration) -> Instant {
        self.reserve_at(key, gap, Instant::now())
    }

    /// Reserves the next slot of `key`, asked at `now`: the earliest instant
    /// not before `now`, at least `max(delay, gap)` after the key's previous
    /// slot, and at least `1 / rate` away from every slot reserved before
    /// (a slot may fill a free gap between two reserved ones). The slot is
    /// taken: the next caller gets a later one.
    pub fn reserve_at(&self, key: &str, gap: Duration, now: Instant) -> Instant {
        let gap = gap.max(self.options.delay);
        let mut state = self.lock();
        let mut slot = match state.next.get(key) {
            Some(&next) => next.max(now),
            None => now,
        };
        if let Some(interval) = self.interval {
            // Slots further back than one interval cannot clash with any
            // slot from now on.
            if let Some(horizon) = now.checked_sub(interval) {
                state.slots = state.slots.split_off(&horizon);
            }
            slot = free_slot(&state.slots, slot, interval);
            state.slots.insert(slot);
        }
        if !gap.is_zero() {
            state.next.insert(key.to_string(), slot + gap);
        }
        if state.next.len() >= state.sweep_at {
            state.next.retain(|_, next| *next > now);
            state.sweep_at = (state.next.len() * 2).max(SWEEP_AT);
        }
        slot
    }

    /// Reserves the next slot of `key` with the pacer's delay and fires on
    /// this thread's reactor when it comes.
    pub fn wait(&self, key: &str) -> Deferred<()> {
        self.wait_with(key, Duration::ZERO)
    }

    /// Reserves the next slot of `key` at least `gap` after its previous one
    /// (and the pacer's delay) and fires on this thread's reactor when it
    /// comes; fires at once when the slot is now. The reactor thread never
    /// blocks: the wait is a timer. Cancelling the Deferred cancels the
    /// timer (the slot stays taken).
    pub fn wait_with(&self, key: &str, gap: Duration) -> Deferred<()> {
        sleep_until(self.reserve(key, gap))
    }
}

/// The earliest instant from `from` that is at least `interval` away from
/// every slot in `slots`.
fn free_slot(slots: &BTreeSet<Instant>, from: Instant, interval: Duration) -> Instant {
    let mut t = from;
    loop {
        if let Some(&before) = slots.range(..=t).next_back() {
            if t - before < interval {
                t = before + interval;
                continue;
            }
        }
        if let Some(&after) = slots.range(t..).next() {
            if after - t < interval {
                t = after + interval;
                continue;
            }
        }
        return t;
    }
}

/// Fires on this thread's reactor once `Instant::now() >= at`.
fn sleep_until(at: Instant) -> Deferred<()> {
    let left = at.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return crate::defer::succeed(());
    }
    // A timer fires on the reactor's monotonic clock; check the instant
    // again so that a slot is never entered early.
    super::sleep(left).and_then(move |()| sleep_until(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_key_is_spaced_by_the_delay() {
        let pacer = Pacer::new(PacerOptions {
            delay: ms(500),
            rate: None,
        });
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..5).map(|_| pacer.reserve_at("h", ms(0), t0)).collect();
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(*s, t0 + ms(500) * i as u32);
        }
        // Asked later than the next slot: the slot is the asking time.
        let late = t0 + Duration::from_secs(10);
        assert_eq!(pacer.reserve_at("h", ms(0), late), late);
    }

    #[test]
    fn keys_do_not_wait_for_each_other_without_a_rate() {
        let pacer = Pacer::new(PacerOptions {
            delay: ms(500),
            rate: None,
        });
        let t0 = Instant::now();
        assert_eq!(pacer.reserve_at("a", ms(0), t0), t0);
        assert_eq!(pacer.reserve_at("b", ms(0), t0), t0);
        assert_eq!(pacer.reserve_at("a", ms(0), t0), t0 + ms(500));
    }

    #[test]
    fn the_rate_spaces_every_slot_and_fills_gaps() {
        let pacer = Pacer::new(PacerOptions {
            delay: Duration::from_secs(1),
            rate: Some(10.0),
        });
        let t0 = Instant::now();
        let a1 = pacer.reserve_at("a", ms(0), t0);
        let a2 = pacer.reserve_at("a", ms(0), t0);
        let b1 = pacer.reserve_at("b", ms(0), t0);
        let c1 = pacer.reserve_at("c", ms(0), t0);
        assert_eq!(a1, t0);
        assert_eq!(a2, t0 + Duration::from_secs(1));
        // b and c fill the gap before a2 instead of queueing behind it.
        assert_eq!(b1, t0 + ms(100));
        assert_eq!(c1, t0 + ms(200));
        let mut all = [a1, a2, b1, c1];
        all.sort();
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= ms(100));
        }
    }

    #[test]
    fn n_slots_under_a_rate_span_at_least_n_minus_1_intervals() {
        let pacer = Pacer::new(PacerOptions {
            delay: Duration::ZERO,
            rate: Some(4.0),
        });
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..9)
            .map(|i| pacer.reserve_at(&format!("k{i}"), ms(0), t0))
            .collect();
        assert_eq!(*slots.last().unwrap() - slots[0], Duration::from_secs(2));
    }

    #[test]
    fn a_larger_gap_for_one_reservation_wins() {
        let pacer = Pacer::new(PacerOptions {
            delay: ms(100),
            rate: None,
        });
        let t0 = Instant::now();
        pacer.reserve_at("h", Duration::from_secs(3), t0);
        assert_eq!(
            pacer.reserve_at("h", ms(0), t0),
            t0 + Duration::from_secs(3)
        );
    }

    #[test]
    fn passed_keys_and_slots_are_dropped() {
        let pacer = Pacer::new(PacerOptions {
            delay: ms(10),
            rate: Some(1000.0),
        });
        let t0 = Instant::now();
        for i in 0..10_000 {
            pacer.reserve_at(&format!("host{i}"), ms(0), t0 + ms(i));
        }
        // Every key but the last few has passed; sweeps keep the map small.
        assert!(pacer.keys() < 2 * SWEEP_AT, "{} keys held", pacer.keys());
        assert!(pacer.lock().slots.len() <= 2);
    }

    #[test]
    fn no_delay_and_no_rate_never_wait_and_hold_nothing() {
        let pacer = Pacer::new(PacerOptions::default());
        assert!(!pacer.is_active());
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(pacer.reserve_at("h", ms(0), t0), t0);
        }
        assert_eq!(pacer.keys(), 0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let p = Pacer::new(PacerOptions {
                delay: Duration::ZERO,
                rate: Some(bad),
            });
            assert!(!p.is_active(), "rate {bad}");
        }
    }

    #[test]
    fn threads_sharing_a_pacer_get_distinct_spaced_slots() {
        let pacer = std::sync::Arc::new(Pacer::new(PacerOptions {
            delay: ms(50),
            rate: Some(100.0),
        }));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = pacer.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| p.reserve_at("h", ms(0), t0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Instant> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        assert_eq!(all.len(), 200);
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= ms(50));
        }
    }
}
