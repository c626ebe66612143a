//! Pipelined Redis throughput: twined's client against `redis-benchmark -P 16`
//! and the `redis` crate's sync client (pipelines of 16), all on one
//! connection to the same `redis-server` in the same run, for `PING` and
//! `XADD`.
//!
//! `cargo bench --bench redis` prints the figures and ratios. Under
//! `cargo test` (no `--bench` argument) it runs a tiny version as a smoke
//! test. Needs `redis-server` and `redis-benchmark` on the PATH.

#[path = "../tests/support/redis.rs"]
mod redis_support;

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::Instant;

use redis_support::RedisServer;
use twined::reactor;
use twined::redis::Client;

/// Which command a run sends.
#[derive(Clone, Copy)]
enum Job {
    Ping,
    Xadd,
}

impl Job {
    fn args(self) -> &'static [&'static str] {
        match self {
            Job::Ping => &["PING"],
            Job::Xadd => &["XADD", "bench", "*", "f", "v"],
        }
    }
    fn name(self) -> &'static str {
        match self {
            Job::Ping => "PING",
            Job::Xadd => "XADD",
        }
    }
}

/// Runs `n` commands through twined with `window` in flight; returns
/// commands per second.
fn twined_rate(url: &str, job: Job, n: usize, window: usize) -> f64 {
    let client = Client::new(url).unwrap();
    reactor_wait(client.ping());
    let issued = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    fn issue(
        client: &Client,
        job: Job,
        n: usize,
        issued: &Rc<Cell<usize>>,
        done: &Rc<Cell<usize>>,
    ) {
        if issued.get() >= n {
            return;
        }
        issued.set(issued.get() + 1);
        let (c, i, d) = (client.clone(), issued.clone(), done.clone());
        client.command(job.args()).add_both(move |r| {
            if let Err(f) = r {
                panic!("{f}");
            }
            d.set(d.get() + 1);
            if d.get() == n {
                let _ = reactor::stop();
            } else {
                issue(&c, job, n, &i, &d);
            }
        });
    }
    let start = Instant::now();
    for _ in 0..window.min(n) {
        issue(&client, job, n, &issued, &done);
    }
    reactor::run().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(done.get(), n);
    n as f64 / elapsed.as_secs_f64()
}

fn reactor_wait<T: 'static>(d: twined::defer::Deferred<T>) {
    d.add_both(|r| {
        r.map_err(|f| f.to_string()).expect("redis");
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
}

/// The `redis` crate's sync client, pipelines of `depth` commands.
fn sync_rate(port: u16, job: Job, n: usize, depth: usize) -> f64 {
    let client = redis_crate::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(depth);
        let mut pipe = redis_crate::pipe();
        for _ in 0..k {
            let args = job.args();
            let mut cmd = redis_crate::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            pipe.add_command(cmd);
        }
        let _: Vec<redis_crate::Value> = pipe.query(&mut con).unwrap();
        left -= k;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `redis-benchmark -c 1 -P 16`: one connection, pipelines of 16.
fn redis_benchmark_rate(port: u16, job: Job, n: usize) -> Option<f64> {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-c",
        "1",
        "-P",
        "16",
        "-q",
    ])
    .args(["-n", &n.to_string()]);
    match job {
        Job::Ping => cmd.args(["-t", "ping"]),
        Job::Xadd => cmd.args(job.args()),
    };
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    // Lines like "PING_MBULK: 251256.28 requests per second, p50=..."; the
    // last report of each test is the final one.
    let wanted = match job {
        Job::Ping => "PING_MBULK",
        Job::Xadd => "XADD",
    };
    text.lines()
        .filter(|l| l.starts_with(wanted) && l.contains("requests per second"))
        .filter_map(|l| {
            l.split(':')
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .next_back()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 200_000 } else { 2_000 };
    let server = RedisServer::start();
    let url = server.url(0);
    println!("redis pipelined throughput, {n} commands per run, one connection each");
    for job in [Job::Ping, Job::Xadd] {
        let del = || server.admin(&["DEL", "bench"]);
        del();
        let t16 = twined_rate(&url, job, n, 16);
        del();
        let t1000 = twined_rate(&url, job, n, 1000);
        del();
        let sync = sync_rate(server.port(), job, n, 16);
        del();
        let rb = redis_benchmark_rate(server.port(), job, n);
        println!("{}:", job.name());
        println!("  twined, 16 in flight        {:>10.0} cmd/s", t16);
        println!("  twined, 1000 in flight      {:>10.0} cmd/s", t1000);
        println!(
            "  redis crate sync, pipe 16   {:>10.0} cmd/s   twined(16)/it = {:.2}x",
            sync,
            t16 / sync
        );
        match rb {
            Some(rb) => println!(
                "  redis-benchmark -c 1 -P 16  {:>10.0} cmd/s   twined(16)/it = {:.2}x, twined(1000)/it = {:.2}x",
                rb,
                t16 / rb,
                t1000 / rb
            ),
            None => println!("  redis-benchmark: not found or no figure parsed"),
        }
    }
}
