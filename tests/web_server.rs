//! web::server::Site over real sockets: keep-alive, pipelining in order,
//! chunked requests, 100-continue, limits and failing handlers. A blocking
//! std client on a thread talks to the site on the reactor thread.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use support::run_bounded;
use twined::defer::{Deferred, Failure};
use twined::reactor;
use twined::task;
use twined::web::server::{Request, Response, Site};

fn site() -> Site {
    Site::new(|req: Request| -> Deferred<Response> {
        match req.path() {
            "/slow" => task::defer_later(Duration::from_millis(50), || {
                Ok::<_, Failure>(Response::new(200).body("slow"))
            }),
            "/panic" => panic!("handler bug"),
            "/fail" => twined::defer::fail(Failure::msg("handler failed")),
            "/echo" => twined::defer::succeed(Response::new(200).body(req.body)),
            "/chunks" => twined::defer::succeed(
                Response::new(200)
                    .chunked(vec![b"ab".to_vec(), b"cd".to_vec()], Default::default()),
            ),
            path => twined::defer::succeed(Response::new(200).body(path.to_string())),
        }
    })
    .head_limit(1024)
    .max_body(1000)
}

/// Runs `client` on a thread against a fresh site; returns what it returns.
fn with_client<T: Send + 'static>(site: Site, client: impl FnOnce(u16) -> T + Send + 'static) -> T {
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let number = port.address().port();
    let handle = reactor::handle();
    let worker = thread::spawn(move || {
        let out = client(number);
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
        out
    });
    run_bounded(Duration::from_secs(20));
    port.stop_listening();
    worker.join().unwrap()
}

/// Sends `request` and reads until the connection closes or `until` bytes
/// of the given marker count appear.
fn exchange(port: u16, request: &[u8], responses: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got);
        if text.matches("HTTP/1.").count() >= responses && complete(&text, responses) {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the last of `n` responses in `text` has its whole body.
fn complete(text: &str, n: usize) -> bool {
    let Some(last) = text
        .match_indices("HTTP/1.")
        .nth(n - 1)
        .map(|(i, _)| &text[i..])
    else {
        return false;
    };
    let Some((head, body)) = last.split_once("\r\n\r\n") else {
        return false;
    };
    match head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(len) => body.len() >= len,
        None => body.ends_with("0\r\n\r\n"),
    }
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let out = with_client(site(), |port| {
        exchange(
            port,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            2,
        )
    });
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.find("/a").unwrap() < out.find("/b").unwrap());
}

#[test]
fn pipelined_requests_are_answered_in_order_even_when_the_first_is_slow() {
    let out = with_client(site(), |port| {
        exchange(
            port,
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n",
            2,
        )
    });
    let slow = out.find("slow").expect("slow answered");
    let fast = out.find("/fast").expect("fast answered");
    assert!(slow < fast, "responses out of order: {out}");
}

#[test]
fn http_1_0_and_connection_close_close_after_the_response() {
    let out = with_client(site(), |port| exchange(port, b"GET /x HTTP/1.0\r\n\r\n", 1));
    assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
    assert!(out.contains("Connection: close"), "{out}");
    let out = with_client(site(), |port| {
        exchange(port, b"GET /y HTTP/1.1\r\nConnection: close\r\n\r\n", 1)
    });
    assert!(out.contains("Connection: close"), "{out}");
}

#[test]
fn a_chunked_request_body_and_100_continue() {
    let out = with_client(site(), |port| {
        exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            2,
        )
    });
    assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{out}");
    assert!(out.ends_with("abcde"), "{out}");
}

#[test]
fn chunked_responses_are_encoded() {
    let out = with_client(site(), |port| {
        exchange(port, b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    });
    assert!(out.contains("Transfer-Encoding: chunked"), "{out}");
    assert!(out.ends_with("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"), "{out}");
}

#[test]
fn head_requests_get_no_body() {
    let out = with_client(site(), |port| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(b"HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    assert!(out.contains("Content-Length: 4"), "{out}");
    assert!(
        out.ends_with("\r\n\r\n"),
        "a HEAD response has no body: {out:?}"
    );
}

#[test]
fn limits_and_malformed_requests_get_error_statuses() {
    let big_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
    let out = with_client(site(), move |port| exchange(port, big_head.as_bytes(), 1));
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let out = with_client(site(), |port| {
        exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
            1,
        )
    });
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    let out = with_client(site(), |port| exchange(port, b"BAD\x01REQUEST\r\n\r\n", 1));
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[test]
fn a_panicking_or_failing_handler_is_a_500_and_the_server_goes_on() {
    let out = with_client(site(), |port| {
        let a = exchange(port, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n", 1);
        let b = exchange(port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", 1);
        let c = exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", 1);
        format!("{a}\n---\n{b}\n---\n{c}")
    });
    let parts: Vec<&str> = out.split("\n---\n").collect();
    assert!(parts[0].starts_with("HTTP/1.1 500"), "{out}");
    assert!(parts[1].starts_with("HTTP/1.1 500"), "{out}");
    assert!(parts[2].starts_with("HTTP/1.1 200"), "{out}");
}

/// Sends `request` and reads until the server closes the connection (or
/// 5 s pass); returns everything read.
fn until_closed(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn requests_that_could_smuggle_another_are_refused_and_the_connection_closed() {
    // Each request is followed by a second one, which must never be
    // answered: the server cannot know where the first one ends.
    const NEXT: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let table: Vec<(&str, u16)> = vec![
        // RFC 9112 6.1: Content-Length and Transfer-Encoding together.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Chunk sizes that are not hexadecimal digits.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n0123456789abcdef\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5xyz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        // Transfer-Encoding in HTTP/1.0 is faulty framing.
        (
            "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Codings that do not end in chunked; codings the server lacks.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        // Content-Length values that disagree.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host.
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ];
    let rows = table.clone();
    let answers = with_client(site(), move |port| {
        rows.iter()
            .map(|(request, _)| until_closed(port, format!("{request}{NEXT}").as_bytes()))
            .collect::<Vec<_>>()
    });
    for ((request, status), out) in table.iter().zip(answers) {
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} got {out:?}"
        );
        assert!(out.contains("Connection: close"), "{request:?} got {out:?}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("HTTP/1.")).count(),
            1,
            "{request:?}: the next request was answered: {out:?}"
        );
        assert!(!out.contains("smuggled"), "{out:?}");
    }
}

#[test]
fn responses_carry_a_date_and_header_values_stay_bytes() {
    let site = Site::new(|req: Request| {
        let raw = req.header_bytes("x-name").unwrap_or_default().to_vec();
        Response::new(200).header_bytes("X-Echo", raw).body("ok")
    });
    let out = with_client(site, |port| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: J\xf6rg\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    });
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("a Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date:?}");
    assert!(
        out.windows(13).any(|w| w == b"X-Echo: J\xf6rg\r"),
        "the value went back byte for byte: {text}"
    );
}

#[test]
fn a_peer_that_takes_no_output_for_the_idle_timeout_is_cut_off() {
    let site = Site::new(|_req: Request| Response::new(200).body(vec![b'x'; 64 * 1024]))
        .max_unsent(16 * 1024)
        .idle_timeout(Some(Duration::from_millis(200)));
    let (read, error) = with_client(site, |port| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // 200 answers of 64 KiB: far more than the kernel buffers hold.
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
        s.write_all(&request).unwrap();
        // Take nothing for several idle timeouts, then read what is left.
        thread::sleep(Duration::from_millis(1500));
        let mut read = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let error = loop {
            match s.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => read += n,
                Err(e) => break Some(e.kind()),
            }
        };
        (read, error)
    });
    assert!(
        read < 200 * 64 * 1024,
        "every answer arrived ({read} bytes): the connection was not cut off"
    );
    assert_ne!(
        error,
        Some(std::io::ErrorKind::WouldBlock),
        "the read timed out: the connection was left open"
    );
}
