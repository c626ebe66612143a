//! Cookies through the agent (Twisted's `CookieAgent` tests in
//! `twisted.web.test.test_agent.CookieAgentTests`, plus redirects, https
//! and a flood): `Set-Cookie` from one response comes back in the `Cookie`
//! of the next request; every server here records the heads it gets.

#[path = "support/certs.rs"]
mod certs;
mod support;

#[path = "support/recorder.rs"]
mod recorder;

use recorder::{fields, ok, path_of, recorder, redirect};
use support::wait;
use twined::reactor::tls;
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, CookieJar, PageOptions, TlsConfig,
};
use twined::web::server::{Request, Response, Site};
use twined::web::Headers;

fn with_jar(jar: Option<CookieJar>, headers: Headers) -> PageOptions {
    PageOptions {
        agent: Some(Agent::with_options(
            ConnectionPool::default(),
            AgentOptions {
                cookies: jar,
                headers,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// A response with `Set-Cookie` fields.
fn setting(cookies: &[&str]) -> Vec<u8> {
    let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
    for c in cookies {
        head.push_str(&format!("Set-Cookie: {c}\r\n"));
    }
    head.push_str("\r\nok");
    head.into_bytes()
}

/// The `Cookie` fields of each recorded head, by path.
fn cookies_seen(log: &recorder::Log) -> Vec<(String, Vec<String>)> {
    log.borrow()
        .iter()
        .map(|h| {
            (
                path_of(h).to_string(),
                fields(h, "cookie").iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn answer(head: &str) -> Vec<u8> {
    match path_of(head) {
        "/login" => setting(&["sid=abc; Path=/", "pref=1; Path=/admin"]),
        "/logout" => setting(&["sid=; Max-Age=0; Path=/"]),
        "/hop" => {
            let mut r = String::from_utf8(redirect(302, "/landed")).unwrap();
            r.insert_str(r.find("\r\n").unwrap() + 2, "Set-Cookie: hop=1; Path=/\r\n");
            r.into_bytes()
        }
        _ => ok("ok"),
    }
}

#[test]
fn a_cookie_set_by_one_response_is_sent_on_the_next_request_within_its_path() {
    let (base, log, port) = recorder(answer);
    let jar = CookieJar::new();
    let options = || with_jar(Some(jar.clone()), Headers::new());
    for path in [
        "/login",
        "/page",
        "/admin/users",
        "/administrator",
        "/logout",
        "/after",
    ] {
        wait(get_page_with(format!("{base}{path}"), options())).unwrap();
    }
    let seen = cookies_seen(&log);
    let expect: Vec<(String, Vec<String>)> = [
        ("/login", vec![]),
        ("/page", vec!["sid=abc"]),
        // Longer paths first.
        ("/admin/users", vec!["pref=1; sid=abc"]),
        ("/administrator", vec!["sid=abc"]),
        ("/logout", vec!["sid=abc"]),
        // Max-Age=0 deleted it.
        ("/after", vec![]),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(seen, expect);
    port.stop_listening();
}

#[test]
fn without_a_jar_no_cookie_is_ever_sent() {
    let (base, log, port) = recorder(answer);
    for path in ["/login", "/page", "/hop"] {
        wait(get_page_with(
            format!("{base}{path}"),
            with_jar(None, Headers::new()),
        ))
        .unwrap();
    }
    let seen = cookies_seen(&log);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|(_, c)| c.is_empty()), "{seen:?}");
    port.stop_listening();
}

#[test]
fn set_cookie_on_a_redirect_applies_to_the_redirected_request() {
    let (base, log, port) = recorder(answer);
    let jar = CookieJar::new();
    wait(get_page_with(
        format!("{base}/hop"),
        with_jar(Some(jar.clone()), Headers::new()),
    ))
    .unwrap();
    let seen = cookies_seen(&log);
    assert_eq!(
        seen,
        [
            ("/hop".to_string(), vec![]),
            ("/landed".to_string(), vec!["hop=1".to_string()])
        ]
    );
    port.stop_listening();
}

#[test]
fn cookies_stay_with_their_host_across_a_redirect_to_another_origin() {
    // Two names of the same loopback server are two hosts for cookies.
    let (base, log, port) = recorder(|head: &str| match path_of(head) {
        "/set" => setting(&["mine=1"]),
        "/away" => {
            let port = fields(head, "host")[0]
                .rsplit(':')
                .next()
                .unwrap()
                .to_string();
            redirect(302, &format!("http://localhost:{port}/there"))
        }
        _ => ok("ok"),
    });
    let jar = CookieJar::new();
    let options = || with_jar(Some(jar.clone()), Headers::new());
    wait(get_page_with(format!("{base}/set"), options())).unwrap();
    wait(get_page_with(format!("{base}/away"), options())).unwrap();
    let seen = cookies_seen(&log);
    assert_eq!(seen[1], ("/away".to_string(), vec!["mine=1".to_string()]));
    assert_eq!(seen[2], ("/there".to_string(), vec![]));
    port.stop_listening();
}

#[test]
fn a_user_cookie_is_kept_and_wins_over_the_jar_for_its_name() {
    let (base, log, port) = recorder(answer);
    let jar = CookieJar::new();
    let url = format!("{base}/");
    jar.set_cookie(&url, "sid=fromjar");
    jar.set_cookie(&url, "extra=2");
    let mut headers = Headers::new();
    headers.insert("Cookie", "sid=mine; other=1");
    wait(get_page_with(&url, with_jar(Some(jar), headers))).unwrap();
    let seen = cookies_seen(&log);
    assert_eq!(seen[0].1, ["sid=mine; other=1; extra=2"]);
    port.stop_listening();
}

#[test]
fn a_flood_of_set_cookie_fields_is_bounded() {
    // Each response sends 400 cookies (the client takes at most 512 fields
    // in a head) and one of 5000 bytes; 3200 in all. The jar keeps the
    // newest 50 for the host, and the requests stay small.
    let (base, log, port) = recorder(|head: &str| {
        let round: usize = path_of(head)[1..].parse().unwrap_or(0);
        let mut names: Vec<String> = (0..400).map(|i| format!("r{round}c{i}=v")).collect();
        names.push(format!("huge={}", "x".repeat(5000)));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        setting(&refs)
    });
    let jar = CookieJar::new();
    for round in 0..8 {
        wait(get_page_with(
            format!("{base}/{round}"),
            with_jar(Some(jar.clone()), Headers::new()),
        ))
        .unwrap();
    }
    assert_eq!(jar.len(), 50);
    let seen = cookies_seen(&log);
    let last = &seen[7].1[0];
    assert_eq!(last.split("; ").count(), 50);
    assert!(
        last.contains("r6c399=v") && last.contains("r6c350=v"),
        "{last}"
    );
    assert!(
        !last.contains("r6c349=v") && !last.contains("huge"),
        "{last}"
    );
    port.stop_listening();
}

#[test]
fn a_secure_cookie_goes_over_https_only() {
    let cert = certs::localhost();
    let cert_pem = cert.cert_pem.clone();
    let config = cert.server_tls();
    let echo = |request: Request| match request.path() {
        "/set" => Response::new(200)
            .header("Set-Cookie", "s=1; Secure; Path=/")
            .header("Set-Cookie", "p=2; Path=/")
            .body("set"),
        _ => Response::new(200).body(request.header("cookie").unwrap_or("-").to_string()),
    };
    let https = tls::listen_ssl("127.0.0.1:0", Site::new(echo), config).unwrap();
    let http = twined::reactor::listen_tcp("127.0.0.1:0", Site::new(echo)).unwrap();
    let jar = CookieJar::new();
    let tls = TlsConfig::default()
        .add_root_pem(cert_pem.as_bytes())
        .unwrap();
    let options = || PageOptions {
        agent: Some(Agent::with_options(
            ConnectionPool::new(),
            AgentOptions {
                tls: tls.clone(),
                cookies: Some(jar.clone()),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let s_port = https.address().port();
    let h_port = http.address().port();
    wait(get_page_with(
        format!("https://localhost:{s_port}/set"),
        options(),
    ))
    .unwrap();
    let over_https = wait(get_page_with(
        format!("https://localhost:{s_port}/echo"),
        options(),
    ))
    .unwrap();
    assert_eq!(over_https, b"s=1; p=2");
    // The same host over plain http (cookies ignore ports): no Secure one.
    let over_http = wait(get_page_with(
        format!("http://localhost:{h_port}/echo"),
        options(),
    ))
    .unwrap();
    assert_eq!(over_http, b"p=2");
    // A Secure cookie set over plain http is ignored.
    let plain = CookieJar::new();
    let http_setter = twined::reactor::listen_tcp("127.0.0.1:0", Site::new(echo)).unwrap();
    wait(get_page_with(
        format!("http://localhost:{}/set", http_setter.address().port()),
        with_jar(Some(plain.clone()), Headers::new()),
    ))
    .unwrap();
    assert_eq!(plain.len(), 1);
    assert_eq!(
        plain.cookie_header("https://localhost/").as_deref(),
        Some("p=2")
    );
    https.stop_listening();
    http.stop_listening();
    http_setter.stop_listening();
}
