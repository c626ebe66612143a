//! HTTPS requests: twined's `get_page` beside tokio + hyper + hyper-rustls
//! (both on rustls with ring) against the same `web::server::Site` over
//! `listen_ssl`, on its own thread, in the same run. With a new TLS
//! connection per request (no keep-alive; both clients resume their TLS
//! sessions, as each shares one rustls `ClientConfig` and its session cache
//! between connections) and with keep-alive. Reports requests per second
//! and the client thread's CPU time per request (from
//! `/proc/thread-self/schedstat`: each client runs on one thread, its
//! connections included), and the ratios.
//!
//! The URL is `https://127.0.0.1:PORT/small` (the certificate names the IP
//! address), so neither client looks a name up; each client gets it parsed
//! once (a `Url`, a `Uri`) and clones it per request.
//!
//! hyper-rustls runs twice per round: on rustls's defaults (what its users
//! get) and on the very rustls configuration twined builds (its cipher
//! suite order), so the ratios show what the configuration buys apart from
//! the client.
//!
//! `cargo bench --bench https` prints the figures; under `cargo test` it
//! runs a tiny version as a smoke test.

#[path = "support/cpu.rs"]
mod cpu;

use cpu::{allocations, process_cpu, thread_cpu, thread_runs, Counting};

/// Counts the client thread's allocations.
#[global_allocator]
static ALLOCATOR: Counting = Counting;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use twined::reactor;
use twined::reactor::tls::{self, ServerTlsConfig};
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, PoolOptions, TlsConfig, Url,
};
use twined::web::server::{Request, Response, Site};

struct Cert {
    pem: String,
    der: CertificateDer<'static>,
}

/// Starts the HTTPS server on its own thread; returns its port and certificate.
fn start_server() -> (u16, Cert) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let cert = Cert {
        pem: c.cert.pem(),
        der: c.cert.der().clone(),
    };
    let key_pem = c.key_pair.serialize_pem();
    let cert_pem = cert.pem.clone();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::Builder::new().name("server".into());
    server
        .spawn(move || {
            let config = ServerTlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
                .expect("server config");
            let body = vec![b'x'; 100];
            let site = Site::new(move |_req: Request| Response::new(200).body(body.clone()));
            let port = tls::listen_ssl("127.0.0.1:0", site, config).expect("listen");
            tx.send(port.address().port()).expect("send port");
            reactor::run().expect("server reactor");
        })
        .expect("server thread");
    (rx.recv().expect("server port"), cert)
}

struct Figures {
    per_sec: f64,
    cpu_us: f64,
    /// Times the client thread was scheduled in, per request.
    runs: f64,
    /// The whole process's CPU time per request: the server's thread too.
    process_cpu_us: f64,
    /// The client thread's heap allocations per request.
    allocs: f64,
}

/// The counters a run's figures come from, read at its start.
struct Meter {
    cpu: Duration,
    runs: u64,
    process_cpu: Duration,
    allocs: u64,
    started: Instant,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            cpu: thread_cpu(),
            runs: thread_runs(),
            process_cpu: process_cpu(),
            allocs: allocations(),
            started: Instant::now(),
        }
    }

    /// The figures of `n` requests since the start.
    fn figures(self, n: usize) -> Figures {
        let per_request = |total: f64| total / n as f64;
        Figures {
            per_sec: n as f64 / self.started.elapsed().as_secs_f64(),
            cpu_us: per_request((thread_cpu() - self.cpu).as_secs_f64() * 1e6),
            runs: per_request((thread_runs() - self.runs) as f64),
            process_cpu_us: per_request((process_cpu() - self.process_cpu).as_secs_f64() * 1e6),
            allocs: per_request((allocations() - self.allocs) as f64),
        }
    }
}

fn twined_run(url: &str, cert: &Cert, n: usize, concurrency: usize, keep_alive: bool) -> Figures {
    let tls = TlsConfig::default()
        .add_root_pem(cert.pem.as_bytes())
        .expect("root");
    let agent = Agent::with_options(
        ConnectionPool::with_options(PoolOptions {
            persistent: keep_alive,
            max_idle_per_host: concurrency,
            ..Default::default()
        }),
        AgentOptions {
            tls,
            ..AgentOptions::default()
        },
    );
    let started = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    fn next(agent: Agent, url: Rc<Url>, n: usize, started: Rc<Cell<usize>>, done: Rc<Cell<usize>>) {
        if started.get() == n {
            return;
        }
        started.set(started.get() + 1);
        let options = PageOptions {
            agent: Some(agent.clone()),
            ..Default::default()
        };
        get_page_with((*url).clone(), options).add_both(move |r| {
            assert!(matches!(&r, Ok(b) if b.len() == 100), "{:?}", r.err());
            done.set(done.get() + 1);
            if done.get() == n {
                let _ = reactor::stop();
            } else {
                next(agent, url, n, started, done);
            }
        });
    }
    // Parsed once, as hyper's `Uri` below.
    let url = Rc::new(Url::parse(url).expect("url"));
    let meter = Meter::start();
    for _ in 0..concurrency.min(n) {
        next(agent.clone(), url.clone(), n, started.clone(), done.clone());
    }
    reactor::run().expect("run");
    let figures = meter.figures(n);
    agent.pool().close_idle();
    figures
}

fn hyper_run(
    url: &str,
    cert: &Cert,
    n: usize,
    concurrency: usize,
    keep_alive: bool,
    peer: Peer,
) -> Figures {
    // Session resumption is on by default (an in-memory cache of 256
    // sessions), shared by every connection of the connector.
    let config = match peer {
        Peer::Defaults => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.der.clone()).expect("root");
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
        }
        Peer::TwinedConfig => {
            let twined = TlsConfig::default()
                .add_root_pem(cert.pem.as_bytes())
                .expect("root")
                .client()
                .client_config()
                .expect("twined's rustls config");
            (*twined).clone()
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri: hyper::Uri = url.parse().expect("uri");
    let meter = Meter::start();
    rt.block_on(async {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let mut builder = Client::builder(TokioExecutor::new());
        if !keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        let client = builder.build::<_, Empty<Bytes>>(connector);
        futures::stream::iter(0..n)
            .map(|_| {
                let client = client.clone();
                let uri = uri.clone();
                async move {
                    let response = client.get(uri).await.expect("hyper request");
                    let body = response.into_body().collect().await.expect("hyper body");
                    assert_eq!(body.to_bytes().len(), 100);
                }
            })
            .buffer_unordered(concurrency)
            .for_each(|()| async {})
            .await;
    });
    meter.figures(n)
}

/// The median of `values` (not empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians of several runs' figures.
fn medians(runs: &[Figures]) -> Figures {
    Figures {
        per_sec: median(runs.iter().map(|f| f.per_sec).collect()),
        cpu_us: median(runs.iter().map(|f| f.cpu_us).collect()),
        runs: median(runs.iter().map(|f| f.runs).collect()),
        process_cpu_us: median(runs.iter().map(|f| f.process_cpu_us).collect()),
        allocs: median(runs.iter().map(|f| f.allocs).collect()),
    }
}

/// The peer hyper-rustls runs with: rustls's defaults, or the very
/// configuration twined builds (same cipher suite order and key exchange
/// groups), each with a session cache of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Defaults,
    TwinedConfig,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut n, rounds) = if bench { (20_000, 5) } else { (40, 1) };
    let (port, cert) = start_server();
    let url = format!("https://127.0.0.1:{port}/small");
    // TWINED_BENCH_ONLY=twined|hyper|hyper-same runs one side only, 10 in
    // flight (TWINED_BENCH_CONCURRENCY=N for another number; TWINED_BENCH_N=N
    // requests), for profiling; TWINED_BENCH_KEEPALIVE=0 without keep-alive.
    let only = std::env::var("TWINED_BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() {
        let keep_alive = std::env::var("TWINED_BENCH_KEEPALIVE").map_or(true, |v| v != "0");
        if let Some(count) = std::env::var("TWINED_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            n = count;
        }
        let concurrency = std::env::var("TWINED_BENCH_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let f = match only.as_str() {
            "hyper" => hyper_run(&url, &cert, n, concurrency, keep_alive, Peer::Defaults),
            "hyper-same" => hyper_run(&url, &cert, n, concurrency, keep_alive, Peer::TwinedConfig),
            _ => twined_run(&url, &cert, n, concurrency, keep_alive),
        };
        println!(
            "{only}: {:.0} req/s, {:.1} us CPU/req, {:.2} wake-ups/req, {:.1} us process CPU/req, {:.1} allocations/req",
            f.per_sec, f.cpu_us, f.runs, f.process_cpu_us, f.allocs
        );
        return;
    }
    for (keep_alive, concurrency) in [(false, 1), (false, 10), (true, 1), (true, 50)] {
        // A full TLS handshake costs far more than a request: fewer of them.
        let n = if keep_alive { n } else { n / 5 };
        // Alternating rounds, medians: a quiet moment or a noisy one falls
        // on every side alike.
        let (mut t, mut h, mut same) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            t.push(twined_run(&url, &cert, n, concurrency, keep_alive));
            h.push(hyper_run(
                &url,
                &cert,
                n,
                concurrency,
                keep_alive,
                Peer::Defaults,
            ));
            same.push(hyper_run(
                &url,
                &cert,
                n,
                concurrency,
                keep_alive,
                Peer::TwinedConfig,
            ));
        }
        let (t, h, same) = (medians(&t), medians(&h), medians(&same));
        println!(
            "https get_page, {n} requests, concurrency {concurrency}, {}, medians of {rounds}: twined {:.0} req/s ({:.1} us CPU/req), hyper-rustls {:.0} req/s ({:.1} us CPU/req); twined/hyper = {:.2}x req/s, {:.2}x CPU/req; hyper-rustls on twined's rustls config {:.0} req/s ({:.1} us CPU/req): twined/it = {:.2}x req/s, {:.2}x CPU/req",
            if keep_alive {
                "keep-alive"
            } else {
                "new TLS connection per request (resumed)"
            },
            t.per_sec,
            t.cpu_us,
            h.per_sec,
            h.cpu_us,
            t.per_sec / h.per_sec,
            t.cpu_us / h.cpu_us,
            same.per_sec,
            same.cpu_us,
            t.per_sec / same.per_sec,
            t.cpu_us / same.cpu_us,
        );
    }
}
