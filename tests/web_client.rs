//! The web client against the project's own server and against raw servers
//! that misbehave on purpose. Loopback only, bounded in time.

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use std::error::Error as _;
use support::{raw_server, run_bounded, wait, web_error, Then};
use twined::defer::{Deferred, Failure};
use twined::protocol::{Factory, Protocol};
use twined::reactor;
use twined::task;
use twined::web::client::{
    download_page, fetch, fetch_with, get_page, get_page_with, read_body, Agent, AgentOptions,
    BeforeRequest, BodyConsumer, ConnectionPool, PageOptions, PoolOptions, Url,
};
use twined::web::server::{Request, Response, Site};
use twined::web::{ErrorKind, Headers, RobotsDenial, TimeoutStage};

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The test site: a handful of routes.
fn site() -> Site {
    Site::new(|req: Request| -> Deferred<Response> {
        let r = match req.path() {
            "/" => Response::new(200).body("hello"),
            "/big" => Response::new(200).body(vec![b'x'; 1 << 20]),
            "/echo" => Response::new(200)
                .header("X-Method", req.method.clone())
                .body(req.body.clone()),
            "/headers" => {
                let mut names: Vec<String> = req
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{}={v}", n.to_ascii_lowercase()))
                    .collect();
                names.sort();
                Response::new(200).body(names.join("\n"))
            }
            "/missing" => Response::new(404).body("no such page"),
            "/fail" => Response::new(500).body("broken"),
            "/redirect" => Response::new(302).header("Location", "/"),
            "/redirect-abs" => Response::new(301).header("Location", "/redirect"),
            "/see-other" => Response::new(303).header("Location", "/echo"),
            "/loop" => Response::new(302).header("Location", "/loop"),
            "/gzip" => Response::new(200)
                .header("Content-Encoding", "gzip")
                .body(gzip(&b"compressed ".repeat(1000))),
            "/chunked" => Response::new(200).chunked(
                vec![b"one ".to_vec(), b"two ".to_vec(), b"three".to_vec()],
                [("X-Checksum", "abc")].into_iter().collect(),
            ),
            "/slow" => {
                return task::defer_later(Duration::from_millis(300), || {
                    Ok::<_, Failure>(Response::new(200).body("late"))
                })
            }
            _ => Response::new(404),
        };
        twined::defer::succeed(r)
    })
}

fn serve() -> (String, reactor::Port) {
    let port = reactor::listen_tcp("127.0.0.1:0", site()).unwrap();
    (format!("http://{}", port.address()), port)
}

#[test]
fn get_page_returns_the_body() {
    let (base, port) = serve();
    assert_eq!(wait(get_page(format!("{base}/"))).unwrap(), b"hello");
    assert_eq!(
        wait(get_page(format!("{base}/big"))).unwrap().len(),
        1 << 20
    );
    port.stop_listening();
}

#[test]
fn status_400_and_up_is_an_http_error_with_the_body() {
    let (base, port) = serve();
    let failure = wait(get_page(format!("{base}/missing"))).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Http);
    assert_eq!(e.status(), Some(404));
    match e {
        twined::web::Error::Http { body, .. } => assert_eq!(body, b"no such page"),
        other => panic!("{other:?}"),
    }
    assert!(failure.to_string().contains("404"), "{failure}");
    let failure = wait(get_page(format!("{base}/fail"))).unwrap_err();
    assert_eq!(web_error(&failure).status(), Some(500));
    port.stop_listening();
}

#[test]
fn agent_fires_on_the_head_whatever_the_status() {
    let (base, port) = serve();
    let agent = Agent::new();
    let response =
        wait(agent.request("GET", format!("{base}/missing"), Headers::new(), None)).unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.reason, "Not Found");
    assert_eq!(response.headers.get("content-length"), Some("12"));
    assert_eq!(wait(read_body(response)).unwrap(), b"no such page");
    port.stop_listening();
}

#[test]
fn post_with_a_body_and_custom_headers() {
    let (base, port) = serve();
    let options = PageOptions {
        method: "POST".into(),
        body: Some(b"payload".to_vec()),
        headers: [("X-Custom", "yes")].into_iter().collect(),
        ..Default::default()
    };
    assert_eq!(
        wait(get_page_with(format!("{base}/echo"), options)).unwrap(),
        b"payload"
    );
    let sent = wait(get_page(format!("{base}/headers"))).unwrap();
    let sent = String::from_utf8(sent).unwrap();
    assert!(
        sent.contains(&format!("user-agent=twined/{}", env!("CARGO_PKG_VERSION"))),
        "{sent}"
    );
    assert!(sent.contains("host=127.0.0.1:"), "{sent}");
    assert!(sent.contains("accept-encoding=gzip"), "{sent}");
    port.stop_listening();
}

#[test]
fn redirects_are_followed_with_history() {
    let (base, port) = serve();
    let agent = Agent::new();
    let response =
        wait(agent.request("GET", format!("{base}/redirect-abs"), Headers::new(), None)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.url, format!("{base}/"));
    let history: Vec<u16> = response.history.iter().map(|r| r.status).collect();
    assert_eq!(history, [301, 302]);
    assert_eq!(wait(read_body(response)).unwrap(), b"hello");
    port.stop_listening();
}

#[test]
fn see_other_switches_to_get_and_drops_the_body() {
    let (base, port) = serve();
    let agent = Agent::new();
    let response = wait(agent.request(
        "POST",
        format!("{base}/see-other"),
        Headers::new(),
        Some(b"data".to_vec()),
    ))
    .unwrap();
    assert_eq!(response.headers.get("x-method"), Some("GET"));
    assert_eq!(wait(read_body(response)).unwrap(), b"");
    port.stop_listening();
}

#[test]
fn a_redirect_loop_stops_at_the_limit() {
    let (base, port) = serve();
    let options = PageOptions {
        redirect_limit: Some(5),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("{base}/loop"), options)).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Redirect);
    assert!(
        failure.to_string().contains("more than 5 redirects"),
        "{failure}"
    );
    port.stop_listening();
}

#[test]
fn redirects_can_be_turned_off() {
    let (base, port) = serve();
    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            follow_redirects: false,
            ..Default::default()
        },
    );
    let response =
        wait(agent.request("GET", format!("{base}/redirect"), Headers::new(), None)).unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.headers.get("location"), Some("/"));
    port.stop_listening();
}

#[test]
fn gzip_bodies_are_decoded() {
    let (base, port) = serve();
    let body = wait(get_page(format!("{base}/gzip"))).unwrap();
    assert_eq!(body, b"compressed ".repeat(1000));
    port.stop_listening();
}

#[test]
fn chunked_bodies_with_trailers() {
    let (base, port) = serve();
    assert_eq!(
        wait(get_page(format!("{base}/chunked"))).unwrap(),
        b"one two three"
    );
    port.stop_listening();
}

#[test]
fn refused_connection_is_a_connect_error() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failure = wait(get_page(format!("http://{addr}/"))).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert_eq!(e.kind().as_str(), "connect");
    assert_eq!(failure.to_string(), format!("connection refused: {addr}"));
}

#[test]
fn a_refused_connect_keeps_the_io_error_as_its_source() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failure = wait(get_page(format!("http://{addr}/"))).unwrap_err();
    let e = web_error(&failure);
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no io::Error under {e:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    // A clone shares the cause.
    let copy = e.clone();
    let copied = copy
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>());
    assert!(
        std::ptr::eq(copied.unwrap(), io),
        "the clone lost its source"
    );
    assert_eq!(copy.to_string(), e.to_string());
    assert_eq!(copy.kind(), ErrorKind::Connect);
}

#[test]
fn a_dns_error_keeps_the_resolver_error_as_its_source() {
    let failure = wait(get_page("http://no-such-host.invalid/")).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind().as_str(), "dns");
    let source = e.source().expect("a source");
    assert!(source.is::<std::io::Error>(), "{source:?}");
    assert!(e.clone().source().unwrap().is::<std::io::Error>());
}

#[test]
fn an_invalid_host_is_a_dns_error() {
    let failure = wait(get_page("http://no-such-host.invalid/")).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Dns);
    assert!(
        failure.to_string().contains("no-such-host.invalid"),
        "{failure}"
    );
}

#[test]
fn a_malformed_url_is_a_url_error() {
    for bad in [
        "not a url",
        "ftp://example.org/",
        "http://exa mple.com/",
        "http://",
    ] {
        let failure = wait(get_page(bad)).unwrap_err();
        assert_eq!(
            web_error(&failure).kind(),
            ErrorKind::Url,
            "{bad}: {failure}"
        );
    }
}

#[test]
fn a_slow_head_times_out() {
    let (base, port) = serve();
    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            head_timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    );
    let failure =
        wait(agent.request("GET", format!("{base}/slow"), Headers::new(), None)).unwrap_err();
    match web_error(&failure) {
        twined::web::Error::Timeout { stage, .. } => assert_eq!(*stage, TimeoutStage::Head),
        other => panic!("{other:?}"),
    }
    port.stop_listening();
}

#[test]
fn a_slow_body_hits_the_whole_request_timeout() {
    let (base, port) = raw_server(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
            b"cd",
            b"ef",
        ],
        Duration::from_millis(200),
        Then::Stay,
    );
    let options = PageOptions {
        timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("{base}/"), options)).unwrap_err();
    match web_error(&failure) {
        twined::web::Error::Timeout { stage, .. } => assert_eq!(*stage, TimeoutStage::Whole),
        other => panic!("{other:?}"),
    }
    assert_eq!(web_error(&failure).kind(), ErrorKind::Timeout);
    port.stop_listening();
}

#[test]
fn a_reset_mid_body_is_an_io_error() {
    let (base, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"],
        Duration::from_millis(20),
        Then::Abort,
    );
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Io, "{failure}");
    assert!(failure.to_string().contains("reset"), "{failure}");
    port.stop_listening();
}

#[test]
fn content_length_longer_than_the_body_is_a_protocol_error() {
    let (base, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        Duration::ZERO,
        Then::Close,
    );
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Protocol, "{failure}");
    assert!(failure.to_string().contains("3 of 10"), "{failure}");
    port.stop_listening();
}

#[test]
fn a_garbage_status_line_is_a_protocol_error() {
    let (base, port) = raw_server(vec![b"SPAM SPAM SPAM\r\n\r\n"], Duration::ZERO, Then::Close);
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Protocol, "{failure}");
    port.stop_listening();
}

#[test]
fn an_invalid_chunk_size_is_a_protocol_error() {
    let (base, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
        Duration::ZERO,
        Then::Stay,
    );
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Protocol, "{failure}");
    assert!(failure.to_string().contains("chunk size"), "{failure}");
    port.stop_listening();
}

#[test]
fn a_4_mib_header_is_too_large() {
    let mut huge = b"HTTP/1.1 200 OK\r\nX-Huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 << 20));
    huge.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let huge: &'static [u8] = Box::leak(huge.into_boxed_slice());
    let (base, port) = raw_server(vec![huge], Duration::ZERO, Then::Close);
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::TooLarge, "{failure}");
    port.stop_listening();
}

#[test]
fn a_close_delimited_body_is_read_to_the_end() {
    let (base, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the end"],
        Duration::from_millis(10),
        Then::Close,
    );
    assert_eq!(
        wait(get_page(format!("{base}/"))).unwrap(),
        b"until the end"
    );
    port.stop_listening();
}

#[test]
fn a_100_continue_before_the_response_is_skipped() {
    let (base, port) = raw_server(
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal",
        ],
        Duration::from_millis(5),
        Then::Stay,
    );
    assert_eq!(wait(get_page(format!("{base}/"))).unwrap(), b"real");
    port.stop_listening();
}

#[test]
fn a_raw_gzip_chunked_response_with_trailers() {
    let body = gzip(b"zipped and chunked");
    let mut wire =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(7) {
        wire.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let (base, port) = raw_server(vec![wire], Duration::ZERO, Then::Stay);
    assert_eq!(
        wait(get_page(format!("{base}/"))).unwrap(),
        b"zipped and chunked"
    );
    port.stop_listening();
}

#[test]
fn max_body_is_enforced() {
    let (base, port) = serve();
    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            max_body: Some(1000),
            ..Default::default()
        },
    );
    let options = PageOptions {
        agent: Some(agent),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("{base}/big"), options)).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::TooLarge, "{failure}");
    port.stop_listening();
}

#[test]
fn download_page_streams_to_a_file() {
    let (base, port) = serve();
    let dir = std::env::temp_dir().join(format!("twined-dl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.bin");
    let written = wait(download_page(format!("{base}/big"), &path)).unwrap();
    assert_eq!(written, 1 << 20);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
    let failure = wait(download_page(format!("{base}/missing"), dir.join("x"))).unwrap_err();
    assert_eq!(web_error(&failure).status(), Some(404));
    std::fs::remove_dir_all(&dir).unwrap();
    port.stop_listening();
}

/// Counts chunks as they arrive.
struct Counter {
    chunks: Rc<Cell<usize>>,
    bytes: Rc<Cell<usize>>,
    done: Rc<Cell<bool>>,
}

impl BodyConsumer for Counter {
    fn data(&mut self, chunk: &[u8]) {
        self.chunks.set(self.chunks.get() + 1);
        self.bytes.set(self.bytes.get() + chunk.len());
    }
    fn finished(&mut self, result: Result<(), twined::defer::Failure>) {
        assert!(result.is_ok());
        self.done.set(true);
        let _ = reactor::stop();
    }
}

#[test]
fn a_body_can_be_streamed_chunk_by_chunk() {
    let (base, port) = serve();
    let (chunks, bytes, done) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(false)),
    );
    let consumer = Counter {
        chunks: chunks.clone(),
        bytes: bytes.clone(),
        done: done.clone(),
    };
    Agent::new()
        .request("GET", format!("{base}/big"), Headers::new(), None)
        .add_callback(move |response| response.deliver_body(consumer));
    run_bounded(Duration::from_secs(10));
    assert!(done.get());
    assert_eq!(bytes.get(), 1 << 20);
    assert!(chunks.get() > 1, "a 1 MiB body arrives in several chunks");
    port.stop_listening();
}

/// A site factory that counts the connections it is given.
struct Counting {
    site: Site,
    connections: Rc<Cell<usize>>,
}

impl Factory for Counting {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        self.connections.set(self.connections.get() + 1);
        self.site.build_protocol(peer)
    }
}

#[test]
fn a_thousand_sequential_requests_use_one_connection() {
    let connections = Rc::new(Cell::new(0));
    let port = reactor::listen_tcp(
        "127.0.0.1:0",
        Counting {
            site: site(),
            connections: connections.clone(),
        },
    )
    .unwrap();
    let url = format!("http://{}/", port.address());
    let agent = Agent::new();
    let left = Rc::new(Cell::new(1000));
    fn next(agent: Agent, url: String, left: Rc<Cell<usize>>) {
        let (a, u, l) = (agent.clone(), url.clone(), left.clone());
        get_page_with(
            &url,
            PageOptions {
                agent: Some(agent),
                ..Default::default()
            },
        )
        .add_callback(move |body| {
            assert_eq!(body, b"hello");
            l.set(l.get() - 1);
            if l.get() == 0 {
                let _ = reactor::stop();
            } else {
                next(a, u, l);
            }
        })
        .add_errback(|f| panic!("{f}"));
    }
    next(agent.clone(), url, left.clone());
    run_bounded(Duration::from_secs(60));
    assert_eq!(left.get(), 0);
    assert_eq!(
        connections.get(),
        1,
        "keep-alive should reuse one connection"
    );
    assert_eq!(agent.pool().connections_opened(), 1);
    port.stop_listening();
}

#[test]
fn the_per_host_cap_holds_under_500_concurrent_requests() {
    let in_flight = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let (f, p) = (in_flight.clone(), peak.clone());
    let site = Site::new(move |_req: Request| {
        f.set(f.get() + 1);
        p.set(p.get().max(f.get()));
        let f = f.clone();
        task::defer_later(Duration::from_millis(2), move || {
            f.set(f.get() - 1);
            Ok::<_, Failure>(Response::new(200).body("ok"))
        })
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let url = format!("http://{}/", port.address());
    let pool = ConnectionPool::with_options(PoolOptions {
        max_per_host: Some(10),
        ..Default::default()
    });
    let agent = Agent::with_options(pool, AgentOptions::default());
    let ds: Vec<_> = (0..500)
        .map(|_| {
            get_page_with(
                &url,
                PageOptions {
                    agent: Some(agent.clone()),
                    ..Default::default()
                },
            )
        })
        .collect();
    let all = twined::defer::gather_results(ds);
    let bodies = wait(all).unwrap();
    assert_eq!(bodies.len(), 500);
    assert!(bodies.iter().all(|b| b == b"ok"));
    assert!(
        peak.get() <= 10,
        "the server saw {} requests at once",
        peak.get()
    );
    assert!(
        peak.get() >= 5,
        "requests should run side by side, peak {}",
        peak.get()
    );
    assert!(agent.pool().connections_opened() <= 10);
    port.stop_listening();
}

#[test]
fn a_server_that_closes_idle_connections_is_handled_by_the_retry() {
    // The site closes keep-alive connections idle for 50 ms.
    let site = site().idle_timeout(Some(Duration::from_millis(50)));
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let url = format!("http://{}/", port.address());
    let agent = Agent::new();
    let options = || PageOptions {
        agent: Some(agent.clone()),
        ..Default::default()
    };
    assert_eq!(wait(get_page_with(&url, options())).unwrap(), b"hello");
    assert_eq!(agent.pool().idle(), 1);
    // Let the server close it, but do not let the client notice first: run
    // the reactor only after the close happened on the server side.
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(wait(get_page_with(&url, options())).unwrap(), b"hello");
    assert_eq!(agent.pool().connections_opened(), 2);
    port.stop_listening();
}

#[test]
fn cancel_mid_body_closes_the_socket() {
    let (base, port) = raw_server(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nstart",
            b"more",
        ],
        Duration::from_millis(100),
        Then::Stay,
    );
    let agent = Agent::new();
    let response = wait(agent.request("GET", format!("{base}/"), Headers::new(), None)).unwrap();
    let d = read_body(response);
    reactor::call_later(Duration::from_millis(20), reactor::crash);
    reactor::run().unwrap();
    let before = twined::reactor::source_count();
    d.cancel();
    let failure = d.result().unwrap().unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Cancelled);
    assert_eq!(
        twined::reactor::source_count(),
        before - 1,
        "the connection should be closed"
    );
    assert_eq!(agent.pool().in_flight(), 0);
    assert_eq!(agent.pool().idle(), 0);
    port.stop_listening();
}

#[test]
fn cancelling_a_request_before_the_head() {
    let (base, port) = serve();
    let d = Agent::new().request("GET", format!("{base}/slow"), Headers::new(), None);
    reactor::call_later(Duration::from_millis(30), reactor::crash);
    reactor::run().unwrap();
    d.cancel();
    let failure = d.result().unwrap().unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Cancelled);
    port.stop_listening();
}

#[test]
fn credentials_are_stripped_on_a_cross_origin_redirect() {
    // The second site echoes the headers it got; the first redirects to it.
    let (second, second_port) = serve();
    let target = format!("{second}/headers");
    let first_site = Site::new(move |req: Request| match req.path() {
        "/same" => Response::new(302).header("Location", "/headers"),
        "/headers" => {
            let mut names: Vec<String> = req
                .headers
                .iter()
                .map(|(n, _)| n.to_ascii_lowercase())
                .collect();
            names.sort();
            Response::new(200).body(names.join(","))
        }
        _ => Response::new(307).header("Location", target.clone()),
    });
    let first_port = reactor::listen_tcp("127.0.0.1:0", first_site).unwrap();
    let first = format!("http://{}", first_port.address());
    let options = || PageOptions {
        headers: [("Authorization", "Bearer secret"), ("Cookie", "session=1")]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let other = String::from_utf8(wait(get_page_with(format!("{first}/away"), options())).unwrap())
        .unwrap();
    assert!(
        !other.contains("authorization") && !other.contains("cookie"),
        "{other}"
    );
    let same = String::from_utf8(wait(get_page_with(format!("{first}/same"), options())).unwrap())
        .unwrap();
    assert!(
        same.contains("authorization") && same.contains("cookie"),
        "{same}"
    );
    first_port.stop_listening();
    second_port.stop_listening();
}

#[test]
fn fetch_gives_status_headers_final_url_and_body_together() {
    let (base, port) = serve();
    let page = wait(fetch(format!("{base}/redirect"))).unwrap();
    assert_eq!((page.status, page.reason.as_str()), (200, "OK"));
    assert_eq!(page.body, b"hello");
    assert_eq!(page.url, format!("{base}/"));
    assert_eq!(page.history.len(), 1);
    assert_eq!(page.history[0].status, 302);
    assert_eq!(page.headers.get("content-length"), Some("5"));
    assert!(page.is_success());
    // gzip decoded, as get_page does.
    let zipped = wait(fetch(format!("{base}/gzip"))).unwrap();
    assert_eq!(zipped.body, b"compressed ".repeat(1000));
    assert_eq!(zipped.headers.get("content-encoding"), None);
    port.stop_listening();
}

#[test]
fn fetch_gives_a_404_or_a_500_as_a_page_not_a_failure() {
    let (base, port) = serve();
    let missing = wait(fetch(format!("{base}/missing"))).unwrap();
    assert_eq!(
        (missing.status, missing.text().as_ref()),
        (404, "no such page")
    );
    assert!(!missing.is_success());
    let broken = wait(fetch(format!("{base}/fail"))).unwrap();
    assert_eq!(
        (broken.status, broken.body.as_slice()),
        (500, &b"broken"[..])
    );
    port.stop_listening();
}

#[test]
fn fetch_fails_only_for_transport_errors() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failure = wait(fetch(format!("http://{refused}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Connect);
    let failure = wait(fetch("ftp://example.org/")).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Url);
}

#[test]
fn fetch_with_takes_the_page_options() {
    let (base, port) = serve();
    let page = wait(fetch_with(
        format!("{base}/echo"),
        PageOptions {
            method: "PUT".into(),
            body: Some(b"sent".to_vec()),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page.headers.get("x-method"), Some("PUT"));
    assert_eq!(page.body, b"sent");
    let page = wait(fetch_with(
        format!("{base}/redirect"),
        PageOptions {
            follow_redirects: Some(false),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page.status, 302);
    assert_eq!(page.headers.get("location"), Some("/"));
    let failure = wait(fetch_with(
        format!("{base}/slow"),
        PageOptions {
            timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    ))
    .unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Timeout);
    port.stop_listening();
}

/// A site that logs each request's path into `log` (as `sent /path`) and
/// answers `/a` with a redirect to `/b`, `/b` with one to `/c`, anything
/// else with 200.
fn hop_site(log: Rc<std::cell::RefCell<Vec<String>>>) -> (String, reactor::Port) {
    let site = Site::new(move |req: Request| {
        log.borrow_mut().push(format!("sent {}", req.path()));
        match req.path() {
            "/a" => Response::new(302).header("Location", "/b"),
            "/b" => Response::new(301).header("Location", "/c"),
            _ => Response::new(200).body("end"),
        }
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    (format!("http://{}", port.address()), port)
}

fn hooked(hook: BeforeRequest, timeout: Option<Duration>) -> Agent {
    Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            before_request: Some(hook),
            timeout,
            ..Default::default()
        },
    )
}

#[test]
fn before_request_runs_before_every_hop_in_order() {
    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    let seen = log.clone();
    // Each hop waits a little: the hop is sent only once the hook fires.
    let agent = hooked(
        BeforeRequest::new(move |url: &Url| {
            seen.borrow_mut().push(format!("hook {}", url.path()));
            task::defer_later(Duration::from_millis(20), || Ok::<_, Failure>(()))
        }),
        None,
    );
    let response = wait(agent.request("GET", format!("{base}/a"), Headers::new(), None)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.history.len(), 2);
    assert_eq!(wait(read_body(response)).unwrap(), b"end");
    assert_eq!(
        *log.borrow(),
        ["hook /a", "sent /a", "hook /b", "sent /b", "hook /c", "sent /c"]
    );
    port.stop_listening();
}

#[test]
fn a_hook_failing_on_the_second_hop_fails_the_request_and_sends_nothing_more() {
    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    let agent = hooked(
        BeforeRequest::new(|url: &Url| {
            if url.path() == "/b" {
                return twined::defer::fail(twined::web::Error::Robots {
                    url: url.to_string(),
                    robots_url: url.join("/robots.txt").unwrap().to_string(),
                    denial: RobotsDenial::Disallowed,
                });
            }
            twined::defer::succeed(())
        }),
        None,
    );
    let failure =
        wait(agent.request("GET", format!("{base}/a"), Headers::new(), None)).unwrap_err();
    let error = web_error(&failure);
    assert_eq!(error.kind(), ErrorKind::Robots);
    assert!(error.to_string().contains("/b"), "{error}");
    // Give a stray send the time to arrive: none does.
    wait(task::defer_later(Duration::from_millis(100), || {
        Ok::<_, Failure>(())
    }))
    .unwrap();
    assert_eq!(*log.borrow(), ["sent /a"]);
    port.stop_listening();
}

/// A failure of the hook's own type is the request's, as it is; so is a
/// panic in the hook, as a failure.
#[test]
fn a_hooks_own_failure_or_panic_is_the_requests_failure() {
    #[derive(Debug)]
    struct Refused;
    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused by policy")
        }
    }
    impl std::error::Error for Refused {}

    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    let agent = hooked(
        BeforeRequest::new(|_url: &Url| twined::defer::fail(Failure::new(Refused))),
        None,
    );
    let failure =
        wait(agent.request("GET", format!("{base}/c"), Headers::new(), None)).unwrap_err();
    assert!(failure.check::<Refused>(), "{failure:?}");

    let agent = hooked(
        BeforeRequest::new(|url: &Url| panic!("a bug in the hook for {url}")),
        None,
    );
    let failure =
        wait(agent.request("GET", format!("{base}/c"), Headers::new(), None)).unwrap_err();
    assert!(
        failure.to_string().contains("a bug in the hook"),
        "{failure}"
    );
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
    port.stop_listening();
}

#[test]
fn cancelling_while_the_hook_waits_ends_the_request_and_never_sends_it() {
    cancel_while_the_hook_waits(false);
}

/// The same when the hook's Deferred has fired and waits on an inner one
/// (a chain that asks for a pacer slot after a first step).
#[test]
fn cancelling_a_hook_chain_waiting_on_an_inner_deferred_cancels_the_inner_wait() {
    cancel_while_the_hook_waits(true);
}

/// A hook whose wait would let the request go after 300 ms, unless
/// cancelled (then it stops, as a pacer's timer does); `chained`: the
/// wait sits behind a chain that fired already. The request is cancelled
/// while it waits: it fails `Cancelled`, the wait is cancelled, and nothing
/// is ever sent.
fn cancel_while_the_hook_waits(chained: bool) {
    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    let cancelled = Rc::new(Cell::new(false));
    let flag = cancelled.clone();
    let agent = hooked(
        BeforeRequest::new(move |_url: &Url| {
            let flag = flag.clone();
            let wait = move || {
                let (d, trigger) = Deferred::with_canceller(move |_| flag.set(true));
                let timer =
                    reactor::call_later(Duration::from_millis(300), move || trigger.callback(()));
                d.then(move |result: Result<(), Failure>| {
                    let _ = timer.cancel();
                    result
                })
            };
            if chained {
                twined::defer::succeed(()).and_then(move |()| wait())
            } else {
                wait()
            }
        }),
        None,
    );
    let request = agent.request("GET", format!("{base}/c"), Headers::new(), None);
    reactor::call_later(Duration::from_millis(50), reactor::crash);
    reactor::run().unwrap();
    assert!(!request.called(), "the request did not wait for its hook");
    request.cancel();
    let failure = wait(request).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Cancelled);
    assert!(cancelled.get(), "the hook's wait was not cancelled");
    // Past the moment the wait would have fired: nothing was sent.
    wait(task::defer_later(Duration::from_millis(400), || {
        Ok::<_, Failure>(())
    }))
    .unwrap();
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
    port.stop_listening();
}

#[test]
fn the_whole_timeout_bounds_a_request_waiting_in_the_hook() {
    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    let agent = hooked(
        BeforeRequest::new(|_url: &Url| {
            task::defer_later(Duration::from_secs(20), || Ok::<_, Failure>(()))
        }),
        Some(Duration::from_millis(100)),
    );
    let failure =
        wait(agent.request("GET", format!("{base}/c"), Headers::new(), None)).unwrap_err();
    match web_error(&failure) {
        twined::web::Error::Timeout { stage, .. } => assert_eq!(*stage, TimeoutStage::Whole),
        other => panic!("{other:?}"),
    }
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
    port.stop_listening();
}

#[test]
fn an_untimed_hook_stops_the_whole_timeout_while_it_waits_and_only_then() {
    let log: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (base, port) = hop_site(log.clone());
    // Three hops of 150 ms waits each under a 200 ms timeout: the waits
    // do not count.
    let agent = hooked(
        BeforeRequest::new(|_url: &Url| {
            task::defer_later(Duration::from_millis(150), || Ok::<_, Failure>(()))
        })
        .untimed(),
        Some(Duration::from_millis(200)),
    );
    assert!(!agent.options().before_request.as_ref().unwrap().timed());
    let response = wait(agent.request("GET", format!("{base}/a"), Headers::new(), None)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(*log.borrow(), ["sent /a", "sent /b", "sent /c"]);
    port.stop_listening();

    // Outside the hook the clock runs: a slow head still times out.
    let (base, port) = serve();
    let agent = hooked(
        BeforeRequest::new(|_url: &Url| twined::defer::succeed(())).untimed(),
        Some(Duration::from_millis(100)),
    );
    let failure =
        wait(agent.request("GET", format!("{base}/slow"), Headers::new(), None)).unwrap_err();
    match web_error(&failure) {
        twined::web::Error::Timeout { stage, after, .. } => {
            assert_eq!(*stage, TimeoutStage::Whole);
            assert_eq!(*after, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    port.stop_listening();
}
