//! TCP connects per second to `localhost` (a name from `/etc/hosts`),
//! through a [`DnsCache`] against a system lookup for every connect, in the
//! same run. Each connect is aborted as soon as it is made (a reset: no
//! TIME_WAIT, so the run does not run out of ports); the server, on its own
//! thread, accepts and drops. The ratio is what the cache saves a client
//! that connects often to few hosts (a crawler without keep-alive).
//!
//! `cargo bench --bench connect` prints the figures; under `cargo test` it
//! runs a tiny version as a smoke test.

#[path = "support/cpu.rs"]
mod cpu;

use cpu::{process_cpu, thread_cpu};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use twined::protocol::{Protocol, Transport};
use twined::reactor::{self, ConnectOptions, DnsCache};

struct Ignore;
impl Protocol for Ignore {
    fn data_received(&mut self, _data: &[u8]) {}
}

/// Listens on 127.0.0.1 (and on ::1 with the same port where it can, for a
/// `localhost` that names both) on its own thread; returns the port.
fn start_server() -> u16 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let port = reactor::listen_tcp("127.0.0.1:0", |_| Ignore).expect("listen");
        let n = port.address().port();
        let _v6 = reactor::listen_tcp(format!("[::1]:{n}").as_str(), |_| Ignore);
        tx.send(n).expect("send port");
        reactor::run().expect("server reactor");
    });
    rx.recv().expect("server port")
}

struct Abort;
impl Protocol for Abort {
    fn connection_made(&mut self, transport: Transport) {
        transport.abort_connection();
    }
    fn data_received(&mut self, _data: &[u8]) {}
}

struct Figures {
    per_sec: f64,
    /// The client's reactor thread, per connect.
    cpu_us: f64,
    /// The whole process, per connect.
    process_us: f64,
}

fn run(
    host: &'static str,
    port: u16,
    n: usize,
    concurrency: usize,
    dns: Option<DnsCache>,
) -> Figures {
    let started = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    fn next(
        host: &'static str,
        port: u16,
        n: usize,
        dns: Option<DnsCache>,
        started: Rc<Cell<usize>>,
        done: Rc<Cell<usize>>,
    ) {
        if started.get() == n {
            return;
        }
        started.set(started.get() + 1);
        let options = ConnectOptions {
            dns: dns.clone(),
            ..ConnectOptions::default()
        };
        reactor::connect_protocol_with(host, port, Abort, options).add_both(move |r| {
            assert!(r.is_ok(), "{:?}", r.err());
            done.set(done.get() + 1);
            if done.get() == n {
                let _ = reactor::stop();
            } else {
                next(host, port, n, dns, started, done);
            }
        });
    }
    let cpu = thread_cpu();
    let all = process_cpu();
    let t = Instant::now();
    for _ in 0..concurrency.min(n) {
        next(host, port, n, dns.clone(), started.clone(), done.clone());
    }
    reactor::run().expect("run");
    let wall = t.elapsed();
    let cpu = thread_cpu() - cpu;
    let all = process_cpu() - all;
    Figures {
        per_sec: n as f64 / wall.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
        process_us: all.as_secs_f64() * 1e6 / n as f64,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if bench { (10_000, 3) } else { (50, 1) };
    let port = start_server();
    for concurrency in [1, 4, 16] {
        let mut best_cached: Option<Figures> = None;
        let mut best_plain: Option<Figures> = None;
        let mut best_literal: Option<Figures> = None;
        for _ in 0..rounds {
            let cache = DnsCache::new(Duration::from_secs(60));
            let cached = run("localhost", port, n, concurrency, Some(cache.clone()));
            assert_eq!(cache.lookups(), 1, "one lookup for the whole run");
            let plain = run("localhost", port, n, concurrency, None);
            let literal = run("127.0.0.1", port, n, concurrency, None);
            if best_literal
                .as_ref()
                .is_none_or(|b| literal.per_sec > b.per_sec)
            {
                best_literal = Some(literal);
            }
            if best_cached
                .as_ref()
                .is_none_or(|b| cached.per_sec > b.per_sec)
            {
                best_cached = Some(cached);
            }
            if best_plain
                .as_ref()
                .is_none_or(|b| plain.per_sec > b.per_sec)
            {
                best_plain = Some(plain);
            }
        }
        let (c, p, l) = (
            best_cached.expect("ran"),
            best_plain.expect("ran"),
            best_literal.expect("ran"),
        );
        println!(
            "connect to localhost, {n} connects, concurrency {concurrency}: DNS cache {:.0} connects/s ({:.1} us client-thread CPU, {:.1} us process CPU each), a lookup per connect {:.0} connects/s ({:.1} us, {:.1} us); cached/uncached = {:.2}x connects/s, {:.2}x process CPU per connect; to 127.0.0.1 (no lookup at all) {:.0} connects/s ({:.1} us, {:.1} us)",
            c.per_sec,
            c.cpu_us,
            c.process_us,
            p.per_sec,
            p.cpu_us,
            p.process_us,
            c.per_sec / p.per_sec,
            c.process_us / p.process_us,
            l.per_sec,
            l.cpu_us,
            l.process_us,
        );
    }
}
