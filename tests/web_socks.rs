//! The web client through SOCKS5 proxies (reqwest's and curl's `socks5://`
//! and `socks5h://`): `http://` and `https://` URLs through a tunnel per
//! origin, with and without RFC 1929 credentials, against a real
//! `microsocks`; the name or the address sent in `CONNECT`; and proxies
//! that refuse, babble, hang up or say nothing, each a typed proxy error
//! within the connect timeout.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/recorder.rs"]
mod recorder;
#[path = "support/socks.rs"]
mod socks;
mod support;

use std::time::Duration;

use recorder::{ok, path_of, recorder};
use socks::{Answer, FakeSocks, Microsocks};
use support::{cancel_once_reached, page, web_error};
use twined::reactor::tls;
use twined::web::client::{
    Agent, AgentOptions, ConnectionPool, Proxies, Proxy, ProxyScheme, TlsConfig,
};
use twined::web::server::{Request, Response, Site};
use twined::web::{Error, ErrorKind, ProxyError};

fn agent_with(proxy: &str, tls: TlsConfig, timeout: Duration) -> Agent {
    Agent::with_options(
        ConnectionPool::new(),
        AgentOptions {
            proxy: Some(Proxies::all(Proxy::parse(proxy).unwrap())),
            tls,
            connect_timeout: Some(timeout),
            ..Default::default()
        },
    )
}

/// An https site for `localhost` on 127.0.0.1 with a fresh certificate,
/// and the trust settings that accept it.
fn https_origin() -> (twined::reactor::Port, TlsConfig) {
    let cert = certs::localhost();
    let (cert_pem, config) = (cert.cert_pem.clone(), cert.server_tls());
    let site =
        Site::new(|request: Request| Response::new(200).body(format!("secure {}", request.path())));
    let port = tls::listen_ssl("127.0.0.1:0", site, config).unwrap();
    let trust = TlsConfig::default()
        .add_root_pem(cert_pem.as_bytes())
        .unwrap();
    (port, trust)
}

/// Both schemes through `proxy` (a setting), twice each: the bodies, the
/// origin-form requests, one tunnel per origin reused.
fn both_schemes_through(proxy: &str) {
    let (http, log, port) = recorder(|head| ok(&format!("plain {}", path_of(head))));
    let (https_port, trust) = https_origin();
    let https = format!("https://localhost:{}", https_port.address().port());
    let agent = agent_with(proxy, trust, Duration::from_secs(10));
    for round in 0..2 {
        let body = page(&agent, &format!("{http}/p{round}"));
        assert_eq!(body.unwrap(), format!("plain /p{round}").as_bytes());
        let body = page(&agent, &format!("{https}/s{round}"));
        assert_eq!(body.unwrap(), format!("secure /s{round}").as_bytes());
    }
    // Origin form inside the tunnel, never absolute form.
    let heads = log.borrow();
    assert!(heads[0].starts_with("GET /p0 HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(!heads[0]
        .to_ascii_lowercase()
        .contains("proxy-authorization"));
    // One tunnel per origin, kept and reused.
    assert_eq!(agent.pool().connections_opened(), 2);
    drop(heads);
    port.stop_listening();
    https_port.stop_listening();
}

#[test]
fn through_a_real_microsocks_both_schemes_work() {
    let Some(proxy) = Microsocks::start(None) else {
        panic!("microsocks is not installed (the CI script installs it)");
    };
    both_schemes_through(&format!("socks5://127.0.0.1:{}", proxy.port));
    // socks5h: microsocks resolves `localhost` itself.
    both_schemes_through(&format!("socks5h://127.0.0.1:{}", proxy.port));
}

#[test]
fn through_a_real_microsocks_with_credentials_both_schemes_work() {
    let Some(proxy) = Microsocks::start(Some(("alice", "s3cr@t"))) else {
        panic!("microsocks is not installed (the CI script installs it)");
    };
    both_schemes_through(&format!(
        "socks5h://alice:s3cr%40t@127.0.0.1:{}",
        proxy.port
    ));
}

fn proxy_error(failure: &twined::defer::Failure) -> &ProxyError {
    match web_error(failure) {
        Error::Proxy { error, .. } => error,
        other => panic!("not a proxy error: {other}"),
    }
}

#[test]
fn a_wrong_password_or_none_at_all_is_a_proxy_error() {
    let Some(proxy) = Microsocks::start(Some(("alice", "s3cret"))) else {
        panic!("microsocks is not installed (the CI script installs it)");
    };
    let (http, _, port) = recorder(|_| ok("never"));
    let url = format!("{http}/");
    let wrong = format!("socks5://alice:wrong@127.0.0.1:{}", proxy.port);
    let agent = agent_with(&wrong, TlsConfig::default(), Duration::from_secs(10));
    let failure = page(&agent, &url).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Proxy);
    assert!(
        matches!(proxy_error(&failure), ProxyError::SocksAuthFailed { .. }),
        "{failure}"
    );
    assert!(!failure.to_string().contains("wrong"), "{failure}");

    let none = format!("socks5://127.0.0.1:{}", proxy.port);
    let agent = agent_with(&none, TlsConfig::default(), Duration::from_secs(10));
    let failure = page(&agent, &url).unwrap_err();
    assert!(
        matches!(
            proxy_error(&failure),
            ProxyError::SocksNoAcceptableMethod {
                offered_password: false
            }
        ),
        "{failure}"
    );
    port.stop_listening();
}

#[test]
fn socks5h_sends_the_name_and_socks5_the_address() {
    // The fake refuses every CONNECT after keeping it.
    let fake = FakeSocks::start(Answer::Code(5));
    for (scheme, want) in [
        (
            "socks5h",
            [&[5, 1, 0, 3, 9][..], b"localhost", &[0x1f, 0x90]].concat(),
        ),
        ("socks5", vec![5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]),
    ] {
        let agent = agent_with(
            &fake.url(scheme),
            TlsConfig::default(),
            Duration::from_secs(10),
        );
        assert_eq!(
            Proxy::parse(&fake.url(scheme)).unwrap().scheme().as_str(),
            scheme
        );
        let failure = page(&agent, "http://localhost:8080/").unwrap_err();
        assert!(
            matches!(
                proxy_error(&failure),
                ProxyError::SocksRefused { code: 5, .. }
            ),
            "{failure}"
        );
        assert!(
            failure
                .to_string()
                .contains("connection refused by destination host"),
            "{failure}"
        );
        assert_eq!(fake.requests().last(), Some(&want), "{scheme}");
    }
    assert_eq!(
        Proxy::parse("socks5h://h").unwrap().scheme(),
        ProxyScheme::Socks5h
    );
}

#[test]
fn garbage_a_short_reply_or_silence_from_the_proxy_fail_within_bounds() {
    let (https_port, trust) = https_origin();
    let https = format!("https://localhost:{}/", https_port.address().port());
    for answer in [
        Answer::Garbage,
        Answer::ShortThenClose,
        Answer::Silent,
        Answer::Code(1),
    ] {
        let fake = FakeSocks::start(answer);
        for url in ["http://127.0.0.1:9/", https.as_str()] {
            let agent = agent_with(
                &fake.url("socks5h"),
                trust.clone(),
                Duration::from_millis(500),
            );
            let failure = page(&agent, url).unwrap_err();
            let e = web_error(&failure);
            match answer {
                // As through an HTTP proxy's tunnel, silence is the
                // connect timeout.
                Answer::Silent => assert_eq!(e.kind(), ErrorKind::Timeout, "{failure}"),
                _ => {
                    let error = proxy_error(&failure);
                    let right = match answer {
                        Answer::Garbage => matches!(error, ProxyError::SocksBadReply { .. }),
                        Answer::ShortThenClose => matches!(
                            error,
                            ProxyError::Closed {
                                during: "before answering SOCKS5 CONNECT",
                                ..
                            }
                        ),
                        Answer::Code(1) => {
                            matches!(error, ProxyError::SocksRefused { code: 1, .. })
                        }
                        _ => false,
                    };
                    assert!(right, "{answer:?} {url}: {failure}");
                }
            }
        }
    }
    https_port.stop_listening();
}

#[test]
fn a_proxy_that_is_not_listening_is_unreachable() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let agent = agent_with(
        &format!("socks5://{addr}"),
        TlsConfig::default(),
        Duration::from_secs(10),
    );
    let failure = page(&agent, "http://127.0.0.1:9/").unwrap_err();
    assert!(
        matches!(proxy_error(&failure), ProxyError::Unreachable { .. }),
        "{failure}"
    );
}

#[test]
fn cancelling_a_request_waiting_on_a_silent_socks_proxy_ends_it_at_once() {
    let fake = FakeSocks::start(Answer::Silent);
    // socks5: the name is resolved here first, then the proxy is reached.
    let agent = agent_with(
        &fake.url("socks5"),
        TlsConfig::default(),
        Duration::from_secs(10),
    );
    let d = agent.request("GET", "http://localhost:9/", Default::default(), None);
    // Run the reactor until the CONNECT reached the proxy (at most 5 s),
    // then cancel with the request waiting for the reply.
    cancel_once_reached(&agent, d, || !fake.requests().is_empty());
    assert_eq!(fake.requests().len(), 1);
}
