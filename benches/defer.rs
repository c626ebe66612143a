//! Micro-benchmarks for `twined::defer`.
//!
//! - `short/*`: a Deferred with three callbacks, fired (the success and the
//!   errback paths), and a `succeed` with three callbacks;
//! - `chain_1M/*`: a million links (each callback returns the next Deferred,
//!   or `chain_deferred`), fired forwards or backwards; the throughput line
//!   gives links per second (ns per link = 1e9 / throughput);
//! - `list_10k/*`: a DeferredList over 10,000 Deferreds.
//!
//! Run with `cargo bench --bench defer`; add `-- --quick` or a filter for a
//! shorter run.

use std::error::Error;
use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use twined::defer::{self, Deferred, DeferredList, Failure, Trigger};

#[derive(Debug)]
struct Boom;

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boom")
    }
}

impl Error for Boom {}

fn short(c: &mut Criterion) {
    let mut group = c.benchmark_group("short");
    group.bench_function("new + 3 callbacks + fire", |b| {
        b.iter(|| {
            let (d, trigger) = Deferred::<u64>::new();
            let d = d
                .add_callback(|x| x + 1)
                .add_callback(|x| x * 2)
                .add_callback(|x| x + 3);
            trigger.callback(black_box(1));
            black_box(d.result())
        })
    });
    group.bench_function("new + errback through 3 steps", |b| {
        b.iter(|| {
            let (d, trigger) = Deferred::<u64>::new();
            let d = d
                .add_callback(|x| x + 1)
                .add_callback(|x| x * 2)
                .add_errback(|_failure| 0);
            trigger.errback(Failure::new(black_box(Boom)));
            black_box(d.result())
        })
    });
    group.bench_function("succeed + 3 callbacks", |b| {
        b.iter(|| {
            let d = defer::succeed(black_box(1u64))
                .add_callback(|x| x + 1)
                .add_callback(|x| x * 2)
                .add_callback(|x| x + 3);
            black_box(d.result())
        })
    });
    group.bench_function("new + and_then returning a fired Deferred + fire", |b| {
        b.iter(|| {
            let (d, trigger) = Deferred::<u64>::new();
            let d = d.and_then(|x| defer::succeed(x + 1));
            trigger.callback(black_box(1));
            black_box(d.result())
        })
    });
    group.finish();
}

const LINKS: usize = 1_000_000;

/// Twisted's `test_boundedStackDepth` ladder: `top`'s callback returns
/// `d[0]`, `d[i]`'s returns `d[i + 1]`, the last one's returns `last`.
struct Ladder {
    top: Deferred<usize>,
    top_trigger: Trigger<usize>,
    triggers: Vec<Trigger<usize>>,
    last_trigger: Trigger<usize>,
}

fn ladder() -> Ladder {
    let (top, top_trigger) = Deferred::<usize>::new();
    let (last, last_trigger) = Deferred::<usize>::new();
    let mut triggers = Vec::with_capacity(LINKS);
    let mut deferreds = Vec::with_capacity(LINKS);
    for _ in 0..LINKS {
        let (d, t) = Deferred::<usize>::new();
        deferreds.push(d);
        triggers.push(t);
    }
    let mut next = last;
    for d in deferreds.into_iter().rev() {
        next = d.and_then(move |_| next);
    }
    Ladder {
        top: top.and_then(move |_| next),
        top_trigger,
        triggers,
        last_trigger,
    }
}

fn fire_forwards(ladder: Ladder) -> Option<usize> {
    ladder.top_trigger.callback(0);
    for t in ladder.triggers {
        t.callback(0);
    }
    ladder.last_trigger.callback(7);
    ladder.top.result().and_then(Result::ok)
}

fn fire_backwards(mut ladder: Ladder) -> Option<usize> {
    ladder.last_trigger.callback(7);
    while let Some(t) = ladder.triggers.pop() {
        t.callback(0);
    }
    ladder.top_trigger.callback(0);
    ladder.top.result().and_then(Result::ok)
}

/// A million `chain_deferred` links, then the head fired.
fn chain_deferred_line() -> Option<usize> {
    let (head, head_trigger) = Deferred::<usize>::new();
    let mut current = head;
    for _ in 0..LINKS {
        let (d, t) = Deferred::<usize>::new();
        current.chain_deferred(t);
        current = d;
    }
    head_trigger.callback(7);
    current.result().and_then(Result::ok)
}

/// Times only the firing (and the drop of what is left), not the building.
fn fire_only(iters: u64, fire: fn(Ladder) -> Option<usize>) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let ladder = ladder();
        let start = Instant::now();
        assert_eq!(black_box(fire(ladder)), Some(7));
        total += start.elapsed();
    }
    total
}

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain_1M");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(LINKS as u64));
    group.bench_function("and_then forwards: build + fire + drop", |b| {
        b.iter(|| assert_eq!(fire_forwards(ladder()), Some(7)))
    });
    group.bench_function("and_then backwards: build + fire + drop", |b| {
        b.iter(|| assert_eq!(fire_backwards(ladder()), Some(7)))
    });
    group.bench_function("and_then forwards: fire only", |b| {
        b.iter_custom(|iters| fire_only(iters, fire_forwards))
    });
    group.bench_function("and_then backwards: fire only", |b| {
        b.iter_custom(|iters| fire_only(iters, fire_backwards))
    });
    group.bench_function("chain_deferred: build + fire + drop", |b| {
        b.iter(|| assert_eq!(chain_deferred_line(), Some(7)))
    });
    group.finish();
}

const LIST: usize = 10_000;

fn list(c: &mut Criterion) {
    let mut group = c.benchmark_group("list_10k");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("DeferredList over fired Deferreds", |b| {
        b.iter_batched(
            || (0..LIST).map(defer::succeed).collect::<Vec<_>>(),
            |ds| {
                let results = DeferredList::new(ds).result().unwrap().unwrap();
                assert_eq!(results.len(), LIST);
                results
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("DeferredList, inputs fired after", |b| {
        b.iter_batched(
            || (0..LIST).map(|_| Deferred::<usize>::new()).unzip(),
            |(ds, ts): (Vec<_>, Vec<_>)| {
                let list = DeferredList::new(ds);
                for (i, t) in ts.into_iter().enumerate() {
                    t.callback(i);
                }
                let results = list.result().unwrap().unwrap();
                assert_eq!(results.len(), LIST);
                results
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("gather_results over fired Deferreds", |b| {
        b.iter_batched(
            || (0..LIST).map(defer::succeed).collect::<Vec<_>>(),
            |ds| defer::gather_results(ds).result().unwrap().unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = short, chain, list
}
criterion_main!(benches);
