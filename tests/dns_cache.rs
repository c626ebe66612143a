//! The DNS cache through the connect API and the web client: a host is
//! looked up once per TTL, not once per connection, and once for every
//! reactor thread sharing the cache.

mod support;

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::wait;
use twined::defer::{Deferred, Failure, TriggerDropped};
use twined::protocol::Protocol;
use twined::reactor::{self, ConnectOptions, DnsCache, DnsCacheOptions};
use twined::threads::{self, ResolveError};
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, PoolOptions,
};
use twined::web::server::{Request, Response, Site};

struct Idle;
impl Protocol for Idle {
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn connects_sharing_a_cache_look_the_name_up_once() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_| Idle).unwrap();
    let n = port.address().port();
    let cache = DnsCache::new(Duration::from_secs(60));
    for _ in 0..3 {
        let options = ConnectOptions {
            dns: Some(cache.clone()),
            ..ConnectOptions::default()
        };
        let transport = wait(reactor::connect_protocol_with(
            "localhost",
            n,
            Idle,
            options,
        ))
        .expect("connects");
        transport.abort_connection();
    }
    assert_eq!(cache.lookups(), 1);
    assert_eq!(cache.len(), 1);
    port.stop_listening();
}

fn fetch_three_times(agent: &Agent, url: &str) {
    for _ in 0..3 {
        let body = wait(get_page_with(
            url,
            PageOptions {
                agent: Some(agent.clone()),
                ..PageOptions::default()
            },
        ))
        .expect("the fetch succeeds");
        assert_eq!(body, b"hi");
    }
}

#[test]
fn an_agent_without_keep_alive_looks_a_host_up_once_per_ttl() {
    let site = Site::new(|_req: Request| Response::new(200).body(b"hi".to_vec()));
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let url = format!("http://localhost:{}/", port.address().port());
    let pool = || {
        ConnectionPool::with_options(PoolOptions {
            persistent: false,
            ..PoolOptions::default()
        })
    };
    let agent = Agent::with_options(pool(), AgentOptions::default());
    fetch_three_times(&agent, &url);
    let cache = agent.dns_cache().expect("on by default");
    assert_eq!(cache.options().ttl, Duration::from_secs(60));
    assert_eq!(cache.lookups(), 1, "three connections, one lookup");

    let uncached = Agent::with_options(
        pool(),
        AgentOptions {
            dns_ttl: None,
            ..AgentOptions::default()
        },
    );
    fetch_three_times(&uncached, &url);
    assert!(uncached.dns_cache().is_none());
    port.stop_listening();
}

/// Keeps every pool thread busy until dropped, so that a lookup submitted
/// meanwhile is queued behind them and stays in flight (jobs are taken in
/// order). Each held thread gives up after 20 s whatever happens.
struct PoolGate {
    open: Arc<(Mutex<bool>, Condvar)>,
}

fn hold_the_pool() -> PoolGate {
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    for _ in 0..threads::pool_size() {
        let open = open.clone();
        threads::call_in_thread(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let (lock, cond) = &*open;
            let mut is_open = lock.lock().unwrap();
            while !*is_open && Instant::now() < deadline {
                is_open = cond
                    .wait_timeout(is_open, Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
        });
    }
    PoolGate { open }
}

impl Drop for PoolGate {
    fn drop(&mut self) {
        let (lock, cond) = &*self.open;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }
}

fn assert_loopback(addrs: &[SocketAddr], port: u16) {
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == port));
}

#[test]
fn two_threads_asking_at_once_share_one_lookup() {
    let cache = DnsCache::new(Duration::from_secs(60));
    let gate = hold_the_pool();
    let here = cache.resolve("localhost", 80);
    assert!(!here.called(), "the lookup is held in flight");
    let (asked, was_waiting) = mpsc::channel();
    let there = {
        let cache = cache.clone();
        thread::spawn(move || {
            let d = cache.resolve("LOCALHOST", 443);
            asked.send(!d.called()).unwrap();
            // On this thread's own reactor.
            wait(d).map_err(|f| f.to_string())
        })
    };
    let waiting = was_waiting.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(waiting, "the other thread waits for the lookup in flight");
    assert_eq!(cache.lookups(), 1);
    assert_eq!(cache.len(), 1);
    drop(gate);
    assert_loopback(&wait(here).unwrap(), 80);
    assert_loopback(&there.join().unwrap().unwrap(), 443);
    assert_eq!(cache.lookups(), 1, "one lookup for both threads");
}

#[test]
fn an_answer_cached_by_one_thread_is_a_hit_on_another() {
    let cache = DnsCache::new(Duration::from_secs(60));
    let there = cache.clone();
    let addrs =
        thread::spawn(move || wait(there.resolve("localhost", 1)).map_err(|f| f.to_string()))
            .join()
            .unwrap()
            .unwrap();
    assert_loopback(&addrs, 1);
    // Already fired here: no lookup, no reactor run.
    let here = cache.resolve("localhost", 2).result().expect("a cache hit");
    assert_loopback(&here.unwrap(), 2);
    assert_eq!(cache.lookups(), 1);
}

#[test]
fn a_failure_is_cached_negatively_across_threads() {
    let cache = DnsCache::with_options(DnsCacheOptions {
        negative_ttl: Duration::from_secs(60),
        ..DnsCacheOptions::default()
    });
    let there = cache.clone();
    // `.invalid` never resolves (RFC 6761).
    let first = thread::spawn(move || {
        let failure = wait(there.resolve("no-such-host.invalid", 1)).unwrap_err();
        failure
            .downcast_ref::<ResolveError>()
            .map(|e| e.host.clone())
    })
    .join()
    .unwrap();
    assert_eq!(first.as_deref(), Some("no-such-host.invalid"));
    let again = cache
        .resolve("no-such-host.invalid", 1)
        .result()
        .expect("the failure is cached")
        .unwrap_err();
    let e = again
        .downcast_ref::<ResolveError>()
        .expect("a ResolveError");
    assert_eq!(e.host, "no-such-host.invalid");
    assert_eq!(cache.lookups(), 1);
}

#[test]
fn the_cache_stays_within_max_entries_under_concurrent_use() {
    const MAX: usize = 3;
    let cache = DnsCache::with_options(DnsCacheOptions {
        max_entries: MAX,
        ..DnsCacheOptions::default()
    });
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                for round in 0..3 {
                    // Several names at once, some shared by every thread.
                    // A name with a space is no host name: it fails at
                    // once, without asking a DNS server.
                    let names = [
                        "localhost".to_string(),
                        format!("shared {round}.invalid"),
                        format!("t{t} r{round}.invalid"),
                        format!("t{t} r{round} b.invalid"),
                    ];
                    let ds: Vec<Deferred<Vec<SocketAddr>>> =
                        names.iter().map(|n| cache.resolve(n, 7)).collect();
                    assert!(cache.len() <= MAX, "{} names held", cache.len());
                    for (name, d) in names.iter().zip(ds) {
                        match wait(d) {
                            Ok(addrs) => {
                                assert_eq!(name, "localhost");
                                assert_loopback(&addrs, 7);
                            }
                            Err(failure) => {
                                let e = failure.downcast_ref::<ResolveError>();
                                assert_eq!(e.map(|e| e.host.as_str()), Some(name.as_str()));
                            }
                        }
                        assert!(cache.len() <= MAX, "{} names held", cache.len());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(cache.len() <= MAX);
    assert!(cache.lookups() >= 1);
}

#[test]
fn a_thread_that_exits_while_waiting_is_dropped_cleanly() {
    let cache = DnsCache::new(Duration::from_secs(60));
    let gate = hold_the_pool();
    let seen: Arc<Mutex<Option<bool>>> = Arc::new(Mutex::new(None));
    let quitter = {
        let (cache, seen) = (cache.clone(), seen.clone());
        thread::spawn(move || {
            // Asks, and exits without running its reactor.
            let d = cache.resolve("localhost", 1);
            assert!(!d.called());
            d.add_both(move |r: Result<Vec<SocketAddr>, Failure>| {
                *seen.lock().unwrap() = Some(r.is_err_and(|f| f.check::<TriggerDropped>()));
            });
        })
    };
    quitter.join().expect("no panic while the thread exits");
    assert_eq!(
        *seen.lock().unwrap(),
        Some(true),
        "the waiter was dropped with its thread"
    );
    // The lookup it started still answers everyone else.
    let here = cache.resolve("localhost", 2);
    drop(gate);
    assert_loopback(&wait(here).unwrap(), 2);
    assert_eq!(cache.lookups(), 1);
}
