//! async/await on Deferreds: ns per `await` of an already-fired Deferred,
//! per `ensure_deferred` of a trivial future, and per await that really
//! waits (a Deferred fired after the task parked on it). Twisted on CPython
//! takes about 1,000 ns per `await succeed(x)`; the goal is under 50 ns.
//!
//! Run with `cargo bench --bench future`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twined::defer::{ensure_deferred, succeed, Deferred, Failure};

const AWAITS: u64 = 10_000;

fn awaits(c: &mut Criterion) {
    let mut group = c.benchmark_group("future");
    group.throughput(Throughput::Elements(AWAITS));
    group.bench_function("await fired Deferred (x10k, creation excluded)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ready: Vec<Deferred<u64>> = (0..AWAITS).map(succeed).collect();
                let start = Instant::now();
                let d = ensure_deferred(async move {
                    let mut sum = 0;
                    for d in ready {
                        sum += d.await?;
                    }
                    Ok::<_, Failure>(sum)
                });
                black_box(d.result());
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("await a Deferred fired after parking (x10k)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (ds, triggers): (Vec<_>, Vec<_>) =
                    (0..AWAITS).map(|_| Deferred::<u64>::new()).unzip();
                let start = Instant::now();
                let d = ensure_deferred(async move {
                    let mut sum = 0;
                    for d in ds {
                        sum += d.await?;
                    }
                    Ok::<_, Failure>(sum)
                });
                for (i, t) in triggers.into_iter().enumerate() {
                    t.callback(i as u64);
                }
                black_box(d.result());
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("ensure_deferred");
    group.bench_function("trivial future", |b| {
        b.iter(|| black_box(ensure_deferred(async { Ok::<_, Failure>(black_box(1u64)) }).result()))
    });
    group.finish();
}

criterion_group!(benches, awaits);
criterion_main!(benches);
