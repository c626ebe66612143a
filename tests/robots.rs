//! `web::client::robots`: the verdicts of RFC 9309 against servers this
//! test starts, the bounds (size, time, redirects, origins), and one fetch
//! per origin however many threads ask.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{raw_server, wait, web_error, Then};
use twined::defer::{Deferred, DeferredList, Failure};
use twined::reactor;
use twined::task;
use twined::web::client::{Access, Agent, RobotsCache, RobotsOptions, RobotsTxt};
use twined::web::server::{Request, Response, Site};
use twined::web::{ErrorKind, RobotsDenial};

/// A site whose `/robots.txt` is `answer`'s, counting its fetches.
fn site(
    answer: impl Fn(&Request) -> Deferred<Response> + 'static,
) -> (String, reactor::Port, Rc<Cell<usize>>) {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let site = Site::new(move |req: Request| -> Deferred<Response> {
        if req.path() == "/robots.txt" {
            c.set(c.get() + 1);
        }
        answer(&req)
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    (format!("http://{}", port.address()), port, count)
}

fn body(text: &'static str) -> impl Fn(&Request) -> Deferred<Response> {
    move |_req| twined::defer::succeed(Response::new(200).body(text))
}

fn status(code: u16) -> impl Fn(&Request) -> Deferred<Response> {
    move |_req| twined::defer::succeed(Response::new(code).body("x"))
}

fn rules(cache: &RobotsCache, url: &str) -> Arc<RobotsTxt> {
    wait(cache.rules(&Agent::new(), url)).expect("rules never fail for the file's sake")
}

#[test]
fn allow_disallow_longest_match_and_crawl_delay() {
    let (base, port, count) = site(body(
        "User-agent: *\nDisallow: /shop\nAllow: /shop/public\nDisallow: /*.pdf$\nCrawl-delay: 3\n",
    ));
    let cache = RobotsCache::new(RobotsOptions::default());
    let txt = rules(&cache, &format!("{base}/"));
    assert_eq!(txt.access(), &Access::Fetched { truncated: false });
    assert!(txt.is_allowed(&format!("{base}/index.html")));
    assert!(!txt.is_allowed(&format!("{base}/shop/cart")));
    assert!(txt.is_allowed(&format!("{base}/shop/public/list")));
    assert!(!txt.is_allowed(&format!("{base}/docs/a.pdf")));
    assert!(txt.is_allowed(&format!("{base}/docs/a.pdf?x")));
    assert_eq!(txt.crawl_delay(), Some(Duration::from_secs(3)));

    let refused = wait(cache.check(&Agent::new(), &format!("{base}/shop/cart"))).unwrap_err();
    let e = web_error(&refused);
    assert_eq!(e.kind(), ErrorKind::Robots);
    assert!(matches!(
        e,
        twined::web::Error::Robots {
            denial: RobotsDenial::Disallowed,
            ..
        }
    ));
    assert!(wait(cache.check(&Agent::new(), &format!("{base}/shop/public/x"))).is_ok());
    assert_eq!((count.get(), cache.fetches(), cache.len()), (1, 1, 1));
    port.stop_listening();
}

#[test]
fn a_crawl_delay_above_the_cap_is_the_cap() {
    let (base, port, _) = site(body("User-agent: *\nCrawl-delay: 100000\n"));
    let cache = RobotsCache::new(RobotsOptions {
        max_crawl_delay: Duration::from_secs(5),
        ..Default::default()
    });
    assert_eq!(
        rules(&cache, &base).crawl_delay(),
        Some(Duration::from_secs(5))
    );
    port.stop_listening();
}

#[test]
fn status_codes_decide_without_a_file() {
    let cases = [
        (404, true),
        (403, true),
        (410, true),
        (429, false),
        (500, false),
        (503, false),
    ];
    for (code, allowed) in cases {
        let (base, port, _) = site(status(code));
        let cache = RobotsCache::new(RobotsOptions::default());
        let txt = rules(&cache, &format!("{base}/a"));
        assert_eq!(txt.is_allowed(&format!("{base}/a")), allowed, "HTTP {code}");
        let reason = format!("HTTP {code}");
        let want = if allowed {
            Access::Unavailable { reason }
        } else {
            Access::Unreachable { reason }
        };
        assert_eq!(txt.access(), &want);
        port.stop_listening();
    }
}

#[test]
fn no_answer_is_unreachable_after_the_timeout() {
    let (base, port, count) = site(|_req: &Request| {
        task::defer_later(Duration::from_secs(60), || {
            Ok::<_, Failure>(Response::new(200).body(""))
        })
    });
    let cache = RobotsCache::new(RobotsOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let started = Instant::now();
    let txt = rules(&cache, &format!("{base}/a"));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!txt.is_allowed(&format!("{base}/a")));
    match txt.access() {
        Access::Unreachable { reason } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count.get(), 1);
    port.stop_listening();

    // A refused connection is unreachable too.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let txt = rules(&cache, &format!("http://{refused}/a"));
    match txt.access() {
        Access::Unreachable { reason } => assert!(reason.contains("refused"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_past_the_limit_is_read_up_to_it_and_no_further() {
    let mut text = String::from("User-agent: *\nDisallow: /early\n");
    while text.len() < 4096 {
        text.push_str("# padding\n");
    }
    text.push_str("Disallow: /late\n");
    let text: &'static str = Box::leak(text.into_boxed_str());
    let (base, port, _) = site(body(text));
    let cache = RobotsCache::new(RobotsOptions {
        max_bytes: 1024,
        ..Default::default()
    });
    let txt = rules(&cache, &base);
    assert_eq!(txt.access(), &Access::Fetched { truncated: true });
    assert!(!txt.is_allowed(&format!("{base}/early")));
    assert!(txt.is_allowed(&format!("{base}/late")));
    port.stop_listening();
}

#[test]
fn a_huge_declared_body_is_not_waited_for() {
    // The server claims a gigabyte, sends the rules, and then nothing: the
    // fetch ends at the limit, not at the timeout.
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
    let mut rules_part = b"User-agent: *\nDisallow: /x\n".to_vec();
    rules_part.resize(2048, b'#');
    let (base, port) = raw_server(vec![head, &rules_part], Duration::ZERO, Then::Stay);
    let cache = RobotsCache::new(RobotsOptions {
        max_bytes: 1024,
        timeout: Duration::from_secs(20),
        ..Default::default()
    });
    let started = Instant::now();
    let txt = rules(&cache, &base);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(txt.access(), &Access::Fetched { truncated: true });
    assert!(!txt.is_allowed(&format!("{base}/x")));
    port.stop_listening();
}

#[test]
fn redirects_are_followed_up_to_five_and_a_loop_allows_everything() {
    let (base, port, _) = site(|req: &Request| {
        let reply = match req.path() {
            "/robots.txt" => Response::new(301).header("Location", "/r1"),
            "/r1" => Response::new(302).header("Location", "/r2"),
            "/r2" => Response::new(200).body("User-agent: *\nDisallow: /x\n"),
            _ => Response::new(404),
        };
        twined::defer::succeed(reply)
    });
    let cache = RobotsCache::new(RobotsOptions::default());
    assert!(!rules(&cache, &base).is_allowed(&format!("{base}/x")));
    port.stop_listening();

    let (base, port, count) = site(|_req: &Request| {
        twined::defer::succeed(Response::new(302).header("Location", "/robots.txt"))
    });
    let txt = rules(&cache, &base);
    assert!(txt.is_allowed(&format!("{base}/x")));
    assert!(matches!(txt.access(), Access::Unavailable { .. }));
    // The first request and five redirects.
    assert_eq!(count.get(), 6);
    port.stop_listening();
}

#[test]
fn entries_expire_and_the_cache_stays_bounded() {
    let (a, port_a, count_a) = site(status(404));
    let (b, port_b, _) = site(status(404));
    let (c, port_c, _) = site(status(404));
    let cache = RobotsCache::new(RobotsOptions {
        ttl: Duration::ZERO,
        ..Default::default()
    });
    rules(&cache, &a);
    rules(&cache, &a);
    assert_eq!(count_a.get(), 2, "an expired file is fetched again");

    let small = RobotsCache::new(RobotsOptions {
        max_origins: 2,
        ..Default::default()
    });
    for base in [&a, &b, &c] {
        rules(&small, base);
        assert!(small.len() <= 2);
    }
    assert!(small.cached(&c).is_some(), "the newest stays");
    for port in [port_a, port_b, port_c] {
        port.stop_listening();
    }
}

#[test]
fn a_cancelled_asker_leaves_the_fetch_to_the_others() {
    let (base, port, count) = site(|_req: &Request| {
        task::defer_later(Duration::from_millis(100), || {
            Ok::<_, Failure>(Response::new(200).body("User-agent: *\nDisallow: /x\n"))
        })
    });
    let cache = RobotsCache::new(RobotsOptions::default());
    let agent = Agent::new();
    let first = cache.rules(&agent, &base);
    let second = cache.rules(&agent, &base);
    first.cancel();
    let txt = wait(second).unwrap();
    assert!(!txt.is_allowed(&format!("{base}/x")));
    assert_eq!(count.get(), 1);
    assert!(wait(first).is_err(), "the cancelled asker fails");
    port.stop_listening();
}

#[test]
fn many_threads_asking_fetch_each_origin_once() {
    let (a, port_a, count_a) = site(|_req: &Request| {
        // Slow enough that every thread asks while the fetch is in flight.
        task::defer_later(Duration::from_millis(200), || {
            Ok::<_, Failure>(Response::new(200).body("User-agent: *\nDisallow: /x\n"))
        })
    });
    let (b, port_b, count_b) = site(status(404));
    let cache = RobotsCache::new(RobotsOptions::default());
    let (a2, b2, cache2) = (a.clone(), b.clone(), cache.clone());
    let threads = task::ReactorThreads::spawn(3, move |_i| {
        let agent = Agent::new();
        let asks: Vec<Deferred<bool>> = (0..10)
            .flat_map(|n| {
                [
                    cache2
                        .rules(&agent, &format!("{a2}/x/{n}"))
                        .add_callback(|t: Arc<RobotsTxt>| !t.is_allowed("http://h/x/1")),
                    cache2
                        .rules(&agent, &format!("{b2}/x/{n}"))
                        .add_callback(|t: Arc<RobotsTxt>| t.is_allowed("http://h/x/1")),
                ]
            })
            .collect();
        DeferredList::new(asks).add_callback(|results: Vec<Result<bool, Failure>>| {
            assert!(results.into_iter().all(|r| r.unwrap()));
        })
    })
    .unwrap();
    // The servers run here until the threads are done.
    let here = reactor::handle();
    let joiner = std::thread::spawn(move || {
        let results = threads.join();
        here.call_from_thread(|| {
            let _ = reactor::stop();
        });
        results.into_iter().all(|r| r.is_ok())
    });
    support::run_bounded(Duration::from_secs(30));
    assert!(joiner.join().unwrap(), "every thread got its answers");
    assert_eq!((count_a.get(), count_b.get()), (1, 1));
    assert_eq!(cache.fetches(), 2);
    port_a.stop_listening();
    port_b.stop_listening();
}

#[test]
fn a_url_that_is_not_http_is_a_url_error() {
    let cache = RobotsCache::new(RobotsOptions::default());
    for url in ["ftp://example.org/", "not a url"] {
        let failure = wait(cache.rules(&Agent::new(), url)).unwrap_err();
        assert_eq!(web_error(&failure).kind(), ErrorKind::Url);
    }
}

#[test]
fn waiters_are_not_left_hanging_when_the_fetching_thread_ends() {
    let (base, port, count) = site(|_req: &Request| {
        task::defer_later(Duration::from_secs(60), || {
            Ok::<_, Failure>(Response::new(200).body(""))
        })
    });
    let cache = RobotsCache::new(RobotsOptions::default());
    // A thread starts the fetch, then its reactor ends and the thread exits.
    let (c, b) = (cache.clone(), base.clone());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let fetcher = std::thread::spawn(move || {
        let agent = Agent::new();
        task::react(move || {
            drop(c.rules(&agent, &b));
            let _ = started_tx.send(());
            // Wait until the main thread is waiting too, then end.
            let _ = go_rx.recv();
            twined::defer::succeed(())
        })
        .unwrap();
    });
    started_rx.recv().unwrap();
    let waiting = cache.rules(&Agent::new(), &base);
    go_tx.send(()).unwrap();
    let joiner = std::thread::spawn(move || {
        let _ = fetcher.join();
    });
    let txt = wait(waiting).unwrap();
    joiner.join().unwrap();
    assert!(
        matches!(txt.access(), Access::Unreachable { .. }),
        "{txt:?}"
    );
    assert!(count.get() <= 1);
    port.stop_listening();
}

/// A `before_request` hook that asks the cache through the very agent it
/// belongs to: the `robots.txt` fetch runs without the hook, so it does
/// not wait on itself, and every hop is checked, redirects included.
#[test]
fn a_hook_asking_through_its_own_agent_checks_every_hop_without_waiting_on_itself() {
    use std::cell::RefCell;
    use twined::web::client::{AgentOptions, BeforeRequest, ConnectionPool, Url};

    let pages: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = pages.clone();
    let (base, port, count) = site(move |req: &Request| {
        seen.borrow_mut().push(req.path().to_string());
        twined::defer::succeed(match req.path() {
            "/robots.txt" => Response::new(200).body("User-agent: *\nDisallow: /private\n"),
            "/go" => Response::new(302).header("Location", "/private/x"),
            _ => Response::new(200).body("page"),
        })
    });
    let cache = RobotsCache::new(RobotsOptions::default());
    let own: Rc<RefCell<Option<Agent>>> = Rc::default();
    let (c, a) = (cache.clone(), own.clone());
    let hook = BeforeRequest::new(move |url: &Url| {
        let agent = a.borrow().clone().expect("the agent is set");
        c.check(&agent, url.as_str()).add_callback(|_| ())
    });
    let agent = Agent::with_options(
        ConnectionPool::new(),
        AgentOptions {
            before_request: Some(hook),
            timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    );
    *own.borrow_mut() = Some(agent.clone());

    let response = wait(agent.request("GET", format!("{base}/open"), Default::default(), None));
    assert_eq!(response.unwrap().status, 200);
    let failure =
        wait(agent.request("GET", format!("{base}/go"), Default::default(), None)).unwrap_err();
    let error = web_error(&failure);
    assert_eq!(error.kind(), ErrorKind::Robots);
    assert!(error.to_string().contains("/private/x"), "{error}");
    assert_eq!(count.get(), 1);
    assert_eq!(*pages.borrow(), ["/robots.txt", "/open", "/go"]);
    own.borrow_mut().take(); // the agent and its hook held each other
    port.stop_listening();
}
