//! The body limit (`AgentOptions::max_body`, `PageOptions::max_body`,
//! Scrapy's `DOWNLOAD_MAXSIZE`) against servers that ignore it: a huge
//! `Content-Length` fails at the head, a body without a length fails as
//! soon as it passes the limit, and a compressed body is measured both as
//! received and as decoded.

mod support;

#[path = "support/recorder.rs"]
mod recorder;

use std::time::Duration;

use support::{raw_server, wait, web_error, Then};
use twined::web::client::{
    fetch_with, get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, DEFAULT_MAX_BODY,
};
use twined::web::{Error, ErrorKind, Headers};

fn limited(limit: u64) -> Agent {
    Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            max_body: Some(limit),
            ..Default::default()
        },
    )
}

fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

fn assert_too_large(failure: &twined::defer::Failure, want: u64) {
    match web_error(failure) {
        Error::TooLarge { what, limit, .. } => {
            assert_eq!((*what, *limit), ("body", want), "{failure}");
        }
        other => panic!("not too_large: {other:?}"),
    }
    assert_eq!(web_error(failure).kind(), ErrorKind::TooLarge);
}

#[test]
fn the_default_limit_is_one_gib() {
    assert_eq!(DEFAULT_MAX_BODY, 1 << 30);
    assert_eq!(AgentOptions::default().max_body, Some(1 << 30));
}

#[test]
fn a_huge_content_length_fails_at_the_head_without_reading() {
    // 10 GiB announced; the server sends a little and then waits forever.
    let (base, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\nthe start"],
        Duration::ZERO,
        Then::Stay,
    );
    let agent = Agent::new();
    // The request itself fails: no response is handed out.
    let failure = wait(agent.request("GET", format!("{base}/"), Headers::new(), None)).unwrap_err();
    assert_too_large(&failure, DEFAULT_MAX_BODY);
    assert_eq!(agent.pool().in_flight(), 0);
    assert_eq!(agent.pool().idle(), 0, "the connection is closed, not kept");
    // The same for the conveniences, with their own limit.
    let failure = wait(get_page_with(
        format!("{base}/"),
        PageOptions {
            max_body: Some(100),
            ..Default::default()
        },
    ))
    .unwrap_err();
    assert_too_large(&failure, 100);
    port.stop_listening();
}

#[test]
fn a_body_without_a_length_fails_as_soon_as_it_passes_the_limit() {
    // Close-delimited: 8 parts of 1000 bytes, then the server keeps the
    // connection open; only the limit can end this request.
    let part: &'static [u8] = leak(vec![b'x'; 1000]);
    let mut parts: Vec<&[u8]> = vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"];
    parts.extend(std::iter::repeat_n(part, 8));
    let (base, port) = raw_server(parts, Duration::from_millis(5), Then::Stay);
    let failure = wait(fetch_with(
        format!("{base}/"),
        PageOptions {
            agent: Some(limited(2500)),
            ..Default::default()
        },
    ))
    .unwrap_err();
    assert_too_large(&failure, 2500);
    port.stop_listening();
}

#[test]
fn compressed_bytes_count_too_when_they_decode_to_nothing() {
    // A gzip stream of empty stored deflate blocks: endless on the wire,
    // nothing decoded. The limit on bytes received stops it.
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..2000 {
        body.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    }
    let mut wire =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    wire.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"\r\n");
    let (base, port) = raw_server(vec![leak(wire)], Duration::ZERO, Then::Stay);
    let failure = wait(get_page_with(
        format!("{base}/"),
        PageOptions {
            agent: Some(limited(4096)),
            ..Default::default()
        },
    ))
    .unwrap_err();
    assert_too_large(&failure, 4096);
    port.stop_listening();
}

#[test]
fn a_body_at_the_limit_is_accepted() {
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    wire.extend_from_slice(&[b'y'; 1000]);
    let (base, port) = raw_server(vec![leak(wire)], Duration::ZERO, Then::Stay);
    let page = wait(fetch_with(
        format!("{base}/"),
        PageOptions {
            max_body: Some(1000),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page.body.len(), 1000);
    port.stop_listening();
}

#[test]
fn a_redirect_with_a_huge_body_is_followed_without_reading_it() {
    let (base, log, port) = recorder::recorder(|head| match recorder::path_of(head) {
        "/moved" => {
            b"HTTP/1.1 302 Found\r\nLocation: /here\r\nContent-Length: 10737418240\r\n\r\njunk"
                .to_vec()
        }
        "/chunky" => {
            // A chunked redirect body that never ends.
            let mut w =
                b"HTTP/1.1 302 Found\r\nLocation: /here\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            for _ in 0..100 {
                w.extend_from_slice(b"400\r\n");
                w.extend_from_slice(&[b'j'; 1024]);
                w.extend_from_slice(b"\r\n");
            }
            w
        }
        _ => recorder::ok("here"),
    });
    for path in ["/moved", "/chunky"] {
        let page = wait(fetch_with(format!("{base}{path}"), PageOptions::default())).unwrap();
        assert_eq!((page.status, page.text().as_ref()), (200, "here"), "{path}");
        assert_eq!(page.history.len(), 1);
    }
    assert_eq!(log.borrow().len(), 4);
    port.stop_listening();
}
