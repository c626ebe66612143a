//! `get_page` against `web::server` on loopback, with and without
//! keep-alive, beside tokio + hyper's client on the same server in the same
//! run. Reports requests per second and the client thread's CPU time per
//! request (from `/proc/thread-self/schedstat`); the server runs on its own
//! thread and reactor, so the client side is measured alone, on one core.
//! The last case fetches a 16 KiB HTML-like page served gzipped over a new
//! connection each time, so inflate and connection setup are both in the
//! client's CPU per request (`TWINED_BENCH_CASES=gzip` runs it alone).
//!
//! `cargo bench --bench http` prints the figures; under `cargo test` it runs
//! a tiny version as a smoke test.

#[path = "support/cpu.rs"]
mod cpu;

use cpu::thread_cpu;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use twined::reactor;
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, PoolOptions,
};
use twined::web::server::{Request, Response, Site};

/// Starts the server on its own thread; returns its port.
fn start_server() -> u16 {
    let (tx, rx) = mpsc::channel();
    // Named, so a profile tells its samples from the client's.
    let server = std::thread::Builder::new().name("server".into());
    server
        .spawn(move || {
            let body = vec![b'x'; 100];
            let gzipped = gzip(&page(GZIP_PAGE));
            let site = Site::new(move |req: Request| match req.path() {
                "/gzip" => Response::new(200)
                    .header("Content-Encoding", "gzip")
                    .body(gzipped.clone()),
                _ => Response::new(200).body(body.clone()),
            });
            let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");
            tx.send(port.address().port()).expect("send port");
            reactor::run().expect("server reactor");
        })
        .expect("server thread");
    rx.recv().expect("server port")
}

/// The decoded size of `/gzip`: a 16 KiB HTML-like page.
const GZIP_PAGE: usize = 16 << 10;

/// `size` bytes of list markup, every line a little different.
fn page(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    let mut i = 0u64;
    while out.len() < size {
        let line = format!(
            "<li class=\"item\"><a href=\"/item/{}\">item {i}</a> {}</li>\n",
            i.wrapping_mul(2_654_435_761) % 100_000,
            i * 7 % 13
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(size);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

struct Figures {
    per_sec: f64,
    cpu_us: f64,
}

fn twined_run(url: &str, n: usize, concurrency: usize, keep_alive: bool, len: usize) -> Figures {
    let agent = Agent::with_options(
        ConnectionPool::with_options(PoolOptions {
            persistent: keep_alive,
            max_idle_per_host: concurrency,
            ..Default::default()
        }),
        AgentOptions::default(),
    );
    let started = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    fn next(
        agent: Agent,
        url: Rc<str>,
        n: usize,
        len: usize,
        started: Rc<Cell<usize>>,
        done: Rc<Cell<usize>>,
    ) {
        if started.get() == n {
            return;
        }
        started.set(started.get() + 1);
        let options = PageOptions {
            agent: Some(agent.clone()),
            ..Default::default()
        };
        get_page_with(&url, options).add_both(move |r| {
            assert!(matches!(&r, Ok(b) if b.len() == len), "{:?}", r.err());
            done.set(done.get() + 1);
            if done.get() == n {
                let _ = reactor::stop();
            } else {
                next(agent, url, n, len, started, done);
            }
        });
    }
    let url: Rc<str> = url.into();
    let cpu = thread_cpu();
    let t = Instant::now();
    for _ in 0..concurrency.min(n) {
        next(
            agent.clone(),
            url.clone(),
            n,
            len,
            started.clone(),
            done.clone(),
        );
    }
    reactor::run().expect("run");
    let wall = t.elapsed();
    let cpu = thread_cpu() - cpu;
    agent.pool().close_idle();
    Figures {
        per_sec: n as f64 / wall.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
    }
}

/// hyper's client does not decode: a gzip body is inflated with flate2
/// after it is collected, as a hyper user would (reqwest's `gzip` does
/// the same work in a stream).
fn hyper_run(url: &str, n: usize, concurrency: usize, keep_alive: bool, len: usize) -> Figures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri: hyper::Uri = url.parse().expect("uri");
    let cpu = thread_cpu();
    let t = Instant::now();
    rt.block_on(async {
        let mut builder = Client::builder(TokioExecutor::new());
        if !keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        let client = builder.build_http::<Empty<Bytes>>();
        futures::stream::iter(0..n)
            .map(|_| {
                let client = client.clone();
                let uri = uri.clone();
                async move {
                    let response = client.get(uri).await.expect("hyper request");
                    let gzipped = response.headers().get("content-encoding").is_some();
                    let body = response.into_body().collect().await.expect("hyper body");
                    let body = body.to_bytes();
                    if gzipped {
                        use std::io::Read;
                        let mut decoded = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut decoded)
                            .expect("gzip body");
                        assert_eq!(decoded.len(), len);
                    } else {
                        assert_eq!(body.len(), len);
                    }
                }
            })
            .buffer_unordered(concurrency)
            .for_each(|()| async {})
            .await;
    });
    let wall = t.elapsed();
    let cpu = thread_cpu() - cpu;
    Figures {
        per_sec: n as f64 / wall.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if bench { (20_000, 3) } else { (200, 1) };
    // The body check in both clients expects /small's 100 bytes.
    // TWINED_BENCH_URL=http://127.0.0.1:8080/small measures against an
    // outside server (for example `cargo run --release --example serve`),
    // with the crawl benchmark's concurrency of 100.
    if let Ok(url) = std::env::var("TWINED_BENCH_URL") {
        for _ in 0..rounds {
            let t = twined_run(&url, n, 100, true, 100);
            let h = hyper_run(&url, n, 100, true, 100);
            println!(
                "{url}, {n} requests, concurrency 100: twined {:.0} req/s ({:.1} us CPU/req), hyper {:.0} req/s ({:.1} us CPU/req); twined/hyper = {:.2}x req/s",
                t.per_sec, t.cpu_us, h.per_sec, h.cpu_us, t.per_sec / h.per_sec
            );
        }
        return;
    }
    let port = start_server();
    let url = format!("http://127.0.0.1:{port}/small");
    // TWINED_BENCH_ONLY=twined|hyper runs one side only (for profiling).
    let only = std::env::var("TWINED_BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() {
        let keep_alive = std::env::var("TWINED_BENCH_KEEPALIVE").map_or(true, |v| v != "0");
        let f = if only == "hyper" {
            hyper_run(&url, n, 50, keep_alive, 100)
        } else {
            twined_run(&url, n, 50, keep_alive, 100)
        };
        println!("{only}: {:.0} req/s, {:.1} us CPU/req", f.per_sec, f.cpu_us);
        return;
    }
    let gzip_url = format!("http://127.0.0.1:{port}/gzip");
    // TWINED_BENCH_CASES=gzip runs only the gzip case.
    let gzip_only = std::env::var("TWINED_BENCH_CASES").is_ok_and(|c| c == "gzip");
    let cases: &[(bool, usize, bool)] = if gzip_only {
        &[(false, 50, true)]
    } else {
        &[
            (true, 1, false),
            (true, 50, false),
            (false, 50, false),
            (false, 50, true),
        ]
    };
    for &(keep_alive, concurrency, gzipped) in cases {
        let n = if keep_alive { n } else { n / 4 };
        let (url, len) = if gzipped {
            (&gzip_url, GZIP_PAGE)
        } else {
            (&url, 100)
        };
        let mut best_t: Option<Figures> = None;
        let mut best_h: Option<Figures> = None;
        for _ in 0..rounds {
            let t = twined_run(url, n, concurrency, keep_alive, len);
            let h = hyper_run(url, n, concurrency, keep_alive, len);
            if best_t.as_ref().is_none_or(|b| t.per_sec > b.per_sec) {
                best_t = Some(t);
            }
            if best_h.as_ref().is_none_or(|b| h.per_sec > b.per_sec) {
                best_h = Some(h);
            }
        }
        let (t, h) = (best_t.expect("ran"), best_h.expect("ran"));
        println!(
            "get_page{}, {} requests, concurrency {concurrency}, keep-alive {}: twined {:.0} req/s ({:.1} us CPU/req), hyper {:.0} req/s ({:.1} us CPU/req); twined/hyper = {:.2}x req/s, {:.2}x less CPU",
            if gzipped { " of 16 KiB gzip pages" } else { "" },
            n,
            if keep_alive { "on" } else { "off" },
            t.per_sec,
            t.cpu_us,
            h.per_sec,
            h.cpu_us,
            t.per_sec / h.per_sec,
            h.cpu_us / t.cpu_us,
        );
    }
}
