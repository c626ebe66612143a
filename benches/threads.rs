//! `defer_to_thread` round trips, per call: the job crosses to a pool
//! thread and its result comes back through `call_from_thread` and fires a
//! Deferred on the reactor. Measured one at a time (each callback submits
//! the next: latency) and 1,000 in flight (throughput). Peers in the same
//! run: a persistent `std` worker thread fed by `mpsc` channels (the floor
//! for a cross-thread round trip) and `std::thread::spawn` + `join` per call.
//! Twisted's `deferToThread` is in `benches/peers/twisted_peer.py`.
//!
//! Run with `cargo bench --bench threads`.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twined::defer::gather_results;
use twined::{reactor, threads};

const CALLS: u64 = 1_000;

/// Submits the next call from the previous one's callback, `left` more times.
fn sequential(left: u64, done: Rc<Cell<u64>>) {
    let d = threads::defer_to_thread(move || black_box(left) + 1).add_callback(move |n| {
        done.set(done.get() + 1);
        if left > 1 {
            sequential(left - 1, done);
        } else {
            reactor::stop().unwrap();
        }
        black_box(n);
    });
    drop(d);
}

fn one_at_a_time() -> Duration {
    let done = Rc::new(Cell::new(0));
    let start = Instant::now();
    sequential(CALLS, done.clone());
    reactor::run().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(done.get(), CALLS);
    elapsed
}

fn in_flight() -> Duration {
    let start = Instant::now();
    let ds: Vec<_> = (0..CALLS)
        .map(|i| threads::defer_to_thread(move || black_box(i) + 1))
        .collect();
    let d = gather_results(ds).add_both(|r| {
        assert_eq!(r.map(|v| v.len() as u64).ok(), Some(CALLS));
        reactor::stop().unwrap();
    });
    reactor::run().unwrap();
    drop(d);
    start.elapsed()
}

type StdJob = Box<dyn FnOnce() -> u64 + Send>;

/// A persistent worker fed and answered through channels.
fn std_channel_one_at_a_time(
    jobs: &mpsc::Sender<StdJob>,
    results: &mpsc::Receiver<u64>,
) -> Duration {
    let start = Instant::now();
    for i in 0..CALLS {
        jobs.send(Box::new(move || black_box(i) + 1)).unwrap();
        black_box(results.recv().unwrap());
    }
    start.elapsed()
}

fn std_spawn_join() -> Duration {
    let start = Instant::now();
    for i in 0..CALLS {
        black_box(std::thread::spawn(move || black_box(i) + 1).join().unwrap());
    }
    start.elapsed()
}

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    group
        .throughput(Throughput::Elements(CALLS))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("defer_to_thread, one at a time (x1000)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| one_at_a_time()).sum())
    });
    group.bench_function("defer_to_thread, 1000 in flight", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| in_flight()).sum())
    });

    let (job_tx, job_rx) = mpsc::channel::<StdJob>();
    let (result_tx, result_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        for job in job_rx {
            if result_tx.send(job()).is_err() {
                break;
            }
        }
    });
    group.bench_function("peer: std worker + mpsc, one at a time (x1000)", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| std_channel_one_at_a_time(&job_tx, &result_rx))
                .sum()
        })
    });
    drop(job_tx);
    worker.join().unwrap();

    group.bench_function("peer: std thread spawn + join (x1000)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| std_spawn_join()).sum())
    });
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
