//! Request headers on the wire: a user header replaces the agent's default
//! of the same name, framing headers are refused before anything is sent,
//! and credentials stay with their origin across redirects. Each server
//! here records the request heads it gets, byte for byte.

mod support;

#[path = "support/recorder.rs"]
mod recorder;

use recorder::{fields, ok, path_of, recorder, redirect};
use support::{raw_server, wait, web_error, Then};
use twined::web::client::{get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions};
use twined::web::{Error, ErrorKind, Headers};

fn headers(fields: &[(&str, &str)]) -> Headers {
    fields.iter().copied().collect()
}

fn agent_with(headers: Headers) -> Agent {
    Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            headers,
            ..Default::default()
        },
    )
}

const SECRETS: [(&str, &str); 3] = [
    ("Authorization", "Bearer secret"),
    ("Cookie", "session=1"),
    ("Proxy-Authorization", "Basic cHJveHk6cHc="),
];

/// A second origin (`other`) and a first one whose `/away` redirects there,
/// whose `/same` redirects to its own `/landed`.
fn two_origins() -> (
    String,
    recorder::Log,
    String,
    recorder::Log,
    Vec<twined::reactor::Port>,
) {
    let (other, other_log, other_port) = recorder(|_| ok("there"));
    let away = format!("{other}/landed");
    let (first, first_log, first_port) = recorder(move |head| match path_of(head) {
        "/away" => redirect(302, &away),
        "/same" => redirect(307, "/landed"),
        _ => ok("here"),
    });
    (
        first,
        first_log,
        other,
        other_log,
        vec![first_port, other_port],
    )
}

fn assert_no_secrets(head: &str) {
    for (name, _) in SECRETS {
        assert!(fields(head, name).is_empty(), "{name} crossed: {head}");
    }
}

fn assert_secrets(head: &str) {
    for (name, value) in SECRETS {
        assert_eq!(fields(head, name), [value], "{head}");
    }
}

#[test]
fn agent_wide_credentials_do_not_follow_a_redirect_to_another_port() {
    let (first, first_log, _other, other_log, ports) = two_origins();
    let mut h = headers(&SECRETS);
    h.append("X-Trace", "kept");
    let agent = agent_with(h);
    let page = wait(get_page_with(
        format!("{first}/away"),
        PageOptions {
            agent: Some(agent.clone()),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page, b"there");
    assert_secrets(&first_log.borrow()[0]);
    let landed = &other_log.borrow()[0];
    assert_no_secrets(landed);
    assert_eq!(fields(landed, "x-trace"), ["kept"], "other fields still go");

    // A redirect within the origin keeps them.
    let page = wait(get_page_with(
        format!("{first}/same"),
        PageOptions {
            agent: Some(agent),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page, b"here");
    let log = first_log.borrow();
    assert_eq!(path_of(&log[2]), "/landed");
    assert_secrets(&log[2]);
    for p in ports {
        p.stop_listening();
    }
}

#[test]
fn request_credentials_and_host_do_not_follow_a_redirect_to_another_port() {
    let (first, first_log, other, other_log, ports) = two_origins();
    let mut h = headers(&SECRETS);
    h.append("Host", "example.test");
    let page = wait(get_page_with(
        format!("{first}/away"),
        PageOptions {
            headers: h,
            agent: Some(Agent::new()),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(page, b"there");
    let start = &first_log.borrow()[0];
    assert_secrets(start);
    assert_eq!(fields(start, "host"), ["example.test"]);
    let landed = &other_log.borrow()[0];
    assert_no_secrets(landed);
    let other_host = other.trim_start_matches("http://");
    assert_eq!(fields(landed, "host"), [other_host], "{landed}");
    for p in ports {
        p.stop_listening();
    }
}

#[test]
fn loopback_by_address_and_localhost_are_different_origins() {
    use std::net::ToSocketAddrs;
    let v4 = ("localhost", 80)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST))
        .unwrap_or(false);
    if !v4 {
        eprintln!("localhost does not resolve to 127.0.0.1 here; skipped");
        return;
    }
    let port_cell: std::rc::Rc<std::cell::Cell<u16>> = Default::default();
    let p = port_cell.clone();
    let (base, log, port) = recorder(move |head| match path_of(head) {
        "/start" => redirect(302, &format!("http://localhost:{}/landed", p.get())),
        _ => ok("landed"),
    });
    port_cell.set(port.address().port());
    for agent_wide in [true, false] {
        log.borrow_mut().clear();
        let (agent, per_request) = if agent_wide {
            (agent_with(headers(&SECRETS)), Headers::new())
        } else {
            (Agent::new(), headers(&SECRETS))
        };
        let page = wait(get_page_with(
            format!("{base}/start"),
            PageOptions {
                headers: per_request,
                agent: Some(agent),
                ..Default::default()
            },
        ))
        .unwrap();
        assert_eq!(page, b"landed");
        let log = log.borrow();
        assert_secrets(&log[0]);
        assert_no_secrets(&log[1]);
    }
    port.stop_listening();
}

#[test]
fn one_host_one_user_agent_one_accept_encoding_whoever_sets_them() {
    let (base, log, port) = recorder(|_| ok("x"));
    let url = format!("{base}/");
    let plain = Agent::new();
    wait(plain.request("GET", &url, Headers::new(), None)).unwrap();
    // The agent's headers replace its defaults, case-insensitively.
    let agent = agent_with(headers(&[
        ("user-agent", "agent-ua"),
        ("ACCEPT-ENCODING", "identity"),
    ]));
    wait(agent.request("GET", &url, Headers::new(), None)).unwrap();
    // A request's headers replace both.
    let own = headers(&[
        ("host", "example.test:8080"),
        ("User-Agent", "request-ua"),
        ("accept-encoding", "br"),
    ]);
    wait(agent.request("GET", &url, own, None)).unwrap();
    let log = log.borrow();
    let want = [
        (
            base.trim_start_matches("http://"),
            twined_user_agent(),
            default_accept_encoding(),
        ),
        (base.trim_start_matches("http://"), "agent-ua", "identity"),
        ("example.test:8080", "request-ua", "br"),
    ];
    for (head, (host, ua, ae)) in log.iter().zip(want) {
        assert_eq!(fields(head, "host"), [host], "{head}");
        assert_eq!(fields(head, "user-agent"), [ua], "{head}");
        assert_eq!(fields(head, "accept-encoding"), [ae], "{head}");
        // Host comes first, as RFC 9110 recommends.
        let first = head.split("\r\n").nth(1).unwrap_or("");
        assert!(first.to_ascii_lowercase().starts_with("host:"), "{head}");
    }
    port.stop_listening();
}

fn default_accept_encoding() -> &'static str {
    // The codings compiled in, gzip first.
    match (cfg!(feature = "br"), cfg!(feature = "zstd")) {
        (true, true) => "gzip, br, zstd",
        (true, false) => "gzip, br",
        (false, true) => "gzip, zstd",
        (false, false) => "gzip",
    }
}

fn twined_user_agent() -> &'static str {
    // The default User-Agent: twined/<version>.
    concat!("twined/", env!("CARGO_PKG_VERSION"))
}

#[test]
fn a_user_accept_encoding_gets_the_body_as_sent() {
    let zipped = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"plain text").unwrap();
        e.finish().unwrap()
    };
    // A server that sends gzip whatever it was asked.
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        zipped.len()
    )
    .into_bytes();
    wire.extend_from_slice(&zipped);
    let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let (base, port) = raw_server(vec![wire], std::time::Duration::ZERO, Then::Stay);
    let url = format!("{base}/");
    let identity = headers(&[("Accept-Encoding", "identity")]);

    let decoded = wait(Agent::new().request("GET", &url, Headers::new(), None)).unwrap();
    assert_eq!(decoded.headers.get("content-encoding"), None);
    assert_eq!(
        wait(twined::web::client::read_body(decoded)).unwrap(),
        b"plain text"
    );

    let as_sent = wait(Agent::new().request("GET", &url, identity.clone(), None)).unwrap();
    assert_eq!(as_sent.headers.get("content-encoding"), Some("gzip"));
    assert_eq!(
        wait(twined::web::client::read_body(as_sent)).unwrap(),
        zipped
    );

    let agent = agent_with(identity);
    let as_sent = wait(agent.request("GET", &url, Headers::new(), None)).unwrap();
    assert_eq!(
        wait(twined::web::client::read_body(as_sent)).unwrap(),
        zipped
    );
    port.stop_listening();
}

#[test]
fn framing_and_broken_headers_are_refused_before_anything_is_sent() {
    let (base, log, port) = recorder(|_| ok("x"));
    let url = format!("{base}/");
    let refused: &[&[(&str, &str)]] = &[
        &[("Content-Length", "5")],
        &[("content-length", "0")],
        &[("Transfer-Encoding", "chunked")],
        &[("TRANSFER-ENCODING", "gzip")],
        &[("Host", "a.test"), ("host", "b.test")],
        &[("X-Split", "a\r\nInjected: yes")],
        &[("Bad Name", "x")],
    ];
    for fields in refused {
        for agent_wide in [false, true] {
            let d = if agent_wide {
                agent_with(headers(fields)).request("GET", &url, Headers::new(), None)
            } else {
                Agent::new().request("POST", &url, headers(fields), Some(b"body".to_vec()))
            };
            // Refused at once, without connecting.
            assert!(d.called(), "{fields:?}");
            let failure = wait(d).unwrap_err();
            let error = web_error(&failure);
            assert_eq!(error.kind(), ErrorKind::Url, "{fields:?}: {failure}");
            let Error::Header { name, .. } = error else {
                panic!("not a header error: {error:?}");
            };
            assert!(
                fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)),
                "{name} for {fields:?}"
            );
        }
    }
    assert!(log.borrow().is_empty(), "nothing reached the server");
    port.stop_listening();
}

#[test]
fn a_refused_header_says_why() {
    let failure = wait(Agent::new().request(
        "GET",
        "http://127.0.0.1:9/",
        headers(&[("Content-Length", "5")]),
        None,
    ))
    .unwrap_err();
    let message = failure.to_string();
    assert!(
        message.contains("Content-Length") && message.contains("frames the request body"),
        "{message}"
    );
}
