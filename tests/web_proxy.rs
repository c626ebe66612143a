//! The web client through HTTP proxies (Twisted's `ProxyAgent`, tested in
//! `twisted.web.test.test_agent.ProxyAgentTests`; reqwest's `Proxy`):
//! absolute-form requests for `http://` URLs, `CONNECT` tunnels for
//! `https://` URLs with TLS to the origin inside, the proxy's credentials
//! sent to the proxy only, `NO_PROXY` exceptions, and proxies that refuse,
//! drop, babble, stall or are not there. A real `tinyproxy` checks both
//! paths against a proxy we did not write.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/recorder.rs"]
mod recorder;
mod support;

use std::cell::RefCell;
use std::error::Error as _;
use std::rc::Rc;
use std::time::Duration;

use proxy::{Mode, TestProxy, Tinyproxy};
use recorder::{fields, ok, path_of, recorder};
use support::{cancel_once_reached, page, web_error};
use twined::reactor::tls;
use twined::web::client::{
    Agent, AgentOptions, ConnectionPool, NoProxy, Proxies, Proxy, TlsConfig,
};
use twined::web::server::{Request, Response, Site};
use twined::web::{ErrorKind, ProxyError};

/// `alice:s3cret` as sent in Basic.
const CREDENTIALS: &str = "Basic YWxpY2U6czNjcmV0";

fn agent_with(proxies: Proxies, tls: Option<TlsConfig>) -> Agent {
    Agent::with_options(
        ConnectionPool::new(),
        AgentOptions {
            proxy: Some(proxies),
            tls: tls.unwrap_or_default(),
            connect_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    )
}

/// The proxy with credentials `alice:s3cret` (the `@` of the password
/// percent-encoded in another test).
fn with_credentials(proxy: &TestProxy) -> Proxy {
    Proxy::parse(&format!("http://alice:s3cret@{}", proxy.addr)).unwrap()
}

/// An https site for `localhost` with a fresh rcgen certificate; it keeps
/// the `Proxy-Authorization` each request arrived with (`-` for none).
struct HttpsOrigin {
    port: twined::reactor::Port,
    cert_pem: String,
    seen: Rc<RefCell<Vec<String>>>,
}

fn https_origin() -> HttpsOrigin {
    let cert = certs::localhost();
    let (cert_pem, config) = (cert.cert_pem.clone(), cert.server_tls());
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = seen.clone();
    let site = Site::new(move |request: Request| {
        let auth = request.header("proxy-authorization").unwrap_or("-");
        s.borrow_mut().push(auth.to_string());
        Response::new(200).body(format!("secure {}", request.path()))
    });
    let port = tls::listen_ssl("127.0.0.1:0", site, config).unwrap();
    HttpsOrigin {
        port,
        cert_pem,
        seen,
    }
}

impl HttpsOrigin {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port.address().port())
    }

    fn trust(&self) -> TlsConfig {
        TlsConfig::default()
            .add_root_pem(self.cert_pem.as_bytes())
            .unwrap()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    fields(head, name).into_iter().next()
}

#[test]
fn http_urls_go_to_the_proxy_in_absolute_form_on_one_shared_connection() {
    let proxy = TestProxy::start(Mode::Forward);
    let (a, a_log, a_port) = recorder(|head| ok(&format!("a {}", path_of(head))));
    let (b, b_log, b_port) = recorder(|head| ok(&format!("b {}", path_of(head))));
    let agent = agent_with(Proxies::all(with_credentials(&proxy)), None);

    assert_eq!(
        page(&agent, &format!("{a}/one?x=1")).unwrap(),
        b"a /one?x=1"
    );
    assert_eq!(page(&agent, &format!("{b}/two")).unwrap(), b"b /two");

    let heads = proxy.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let a_host = a.trim_start_matches("http://");
    assert!(
        heads[0].starts_with(&format!("GET {a}/one?x=1 HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    assert_eq!(header(&heads[0], "host"), Some(a_host));
    assert_eq!(header(&heads[0], "proxy-authorization"), Some(CREDENTIALS));
    assert!(heads[1].starts_with(&format!("GET {b}/two HTTP/1.1\r\n")));
    assert_eq!(header(&heads[1], "proxy-authorization"), Some(CREDENTIALS));
    // Both origins over one connection to the proxy.
    assert_eq!(agent.pool().connections_opened(), 1);
    assert_eq!(
        proxy.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // The origins got origin-form requests (the proxy rewrote them).
    assert_eq!(path_of(&a_log.borrow()[0]), "/one?x=1");
    assert_eq!(b_log.borrow().len(), 1);
    a_port.stop_listening();
    b_port.stop_listening();
}

#[test]
fn https_urls_go_through_a_connect_tunnel_with_tls_to_the_origin() {
    let proxy = TestProxy::start(Mode::Forward);
    let origin = https_origin();
    let agent = agent_with(Proxies::all(with_credentials(&proxy)), Some(origin.trust()));
    assert_eq!(page(&agent, &origin.url("/a")).unwrap(), b"secure /a");
    assert_eq!(page(&agent, &origin.url("/b")).unwrap(), b"secure /b");

    let heads = proxy.heads();
    let port = origin.port.address().port();
    assert_eq!(heads.len(), 1, "one tunnel for both requests: {heads:?}");
    assert!(
        heads[0].starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    assert_eq!(
        header(&heads[0], "host"),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(header(&heads[0], "proxy-authorization"), Some(CREDENTIALS));
    // The credentials stayed outside the tunnel.
    assert_eq!(*origin.seen.borrow(), vec!["-", "-"]);
    assert_eq!(agent.pool().connections_opened(), 1);
    origin.port.stop_listening();
}

#[test]
fn the_origin_certificate_is_checked_through_the_tunnel() {
    let proxy = TestProxy::start(Mode::Forward);
    let origin = https_origin();
    // The Mozilla roots only: the test certificate is refused, as directly.
    let agent = agent_with(Proxies::all(Proxy::parse(&proxy.url()).unwrap()), None);
    let failure = page(&agent, &origin.url("/")).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Tls, "{failure}");
    assert!(origin.seen.borrow().is_empty());
    origin.port.stop_listening();
}

#[test]
fn a_407_is_a_proxy_error_for_both_schemes() {
    let proxy = TestProxy::start(Mode::Refuse407);
    let origin = https_origin();
    let (http, log, port) = recorder(|_| ok("never"));
    let agent = agent_with(
        Proxies::all(Proxy::parse(&proxy.url()).unwrap()),
        Some(origin.trust()),
    );
    for url in [origin.url("/"), format!("{http}/")] {
        let failure = page(&agent, &url).unwrap_err();
        let e = web_error(&failure);
        assert_eq!(e.kind(), ErrorKind::Proxy, "{failure}");
        assert_eq!(e.kind().as_str(), "proxy");
        let message = e.to_string();
        assert!(message.contains(&proxy.addr.to_string()), "{message}");
        assert!(message.contains("407"), "{message}");
        assert!(
            matches!(
                e,
                twined::web::Error::Proxy {
                    error: ProxyError::Refused { status: 407, .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert!(log.borrow().is_empty());
    origin.port.stop_listening();
    port.stop_listening();
}

#[test]
fn a_proxy_that_drops_the_tunnel_after_accepting_is_a_proxy_error() {
    let proxy = TestProxy::start(Mode::AcceptThenDrop);
    let origin = https_origin();
    let agent = agent_with(
        Proxies::all(Proxy::parse(&proxy.url()).unwrap()),
        Some(origin.trust()),
    );
    let failure = page(&agent, &origin.url("/")).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Proxy, "{failure}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    // The cause is kept: the TLS layer's report of the close.
    let cause = e.source().and_then(|s| s.source()).expect("a cause");
    assert!(
        cause
            .downcast_ref::<twined::reactor::tls::TlsError>()
            .is_some(),
        "{cause:?}"
    );
    origin.port.stop_listening();
}

#[test]
fn a_proxy_that_closes_before_answering_connect_is_a_proxy_error() {
    let proxy = TestProxy::start(Mode::CloseAtOnce);
    let origin = https_origin();
    let agent = agent_with(
        Proxies::all(Proxy::parse(&proxy.url()).unwrap()),
        Some(origin.trust()),
    );
    let failure = page(&agent, &origin.url("/")).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Proxy, "{failure}");
    assert!(
        matches!(
            e,
            twined::web::Error::Proxy {
                error: ProxyError::Closed {
                    during: "before answering CONNECT",
                    ..
                },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(proxy.heads().len(), 1);
    origin.port.stop_listening();
}

#[test]
fn a_proxy_that_is_not_listening_is_a_proxy_error_with_the_connect_cause() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let agent = agent_with(
        Proxies::all(Proxy::parse(&format!("http://{addr}")).unwrap()),
        None,
    );
    for url in ["http://example.invalid/", "https://example.invalid/"] {
        let failure = page(&agent, url).unwrap_err();
        let e = web_error(&failure);
        assert_eq!(e.kind(), ErrorKind::Proxy, "{failure}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        let cause = e
            .source()
            .and_then(|s| s.source())
            .and_then(|c| c.downcast_ref::<twined::web::Error>())
            .expect("the connect error as the cause");
        assert_eq!(cause.kind(), ErrorKind::Connect, "{cause}");
    }
}

#[test]
fn garbage_an_endless_head_or_silence_from_the_proxy_fail_within_bounds() {
    let origin = https_origin();
    for (mode, kind) in [
        (Mode::Garbage, ErrorKind::Proxy),
        (Mode::EndlessHead, ErrorKind::Proxy),
        (Mode::Silent, ErrorKind::Timeout),
    ] {
        let proxy = TestProxy::start(mode);
        let agent = Agent::with_options(
            ConnectionPool::new(),
            AgentOptions {
                proxy: Some(Proxies::all(Proxy::parse(&proxy.url()).unwrap())),
                tls: origin.trust(),
                connect_timeout: Some(Duration::from_millis(500)),
                head_limit: 8 * 1024,
                ..Default::default()
            },
        );
        let failure = page(&agent, &origin.url("/")).unwrap_err();
        let e = web_error(&failure);
        assert_eq!(e.kind(), kind, "{mode:?}: {failure}");
        if mode == Mode::EndlessHead {
            assert!(e.to_string().contains("8192"), "{e}");
        }
    }
    assert!(origin.seen.borrow().is_empty());
    origin.port.stop_listening();
}

#[test]
fn cancelling_a_request_waiting_on_a_silent_proxy_ends_it_at_once() {
    let proxy = TestProxy::start(Mode::Silent);
    let origin = https_origin();
    let agent = agent_with(
        Proxies::all(Proxy::parse(&proxy.url()).unwrap()),
        Some(origin.trust()),
    );
    let d = agent.request("GET", origin.url("/"), Default::default(), None);
    // Run the reactor until the tunnel's CONNECT reached the proxy (at
    // most 5 s), then cancel with the request waiting for the answer.
    cancel_once_reached(&agent, d, || !proxy.heads().is_empty());
    assert_eq!(proxy.heads().len(), 1);
    origin.port.stop_listening();
}

#[test]
fn no_proxy_hosts_are_reached_directly_without_the_credentials() {
    let proxy = TestProxy::start(Mode::Forward);
    let (direct, log, port) = recorder(|head| ok(path_of(head)));
    let proxies = Proxies {
        no_proxy: NoProxy::parse("127.0.0.0/8"),
        ..Proxies::all(with_credentials(&proxy))
    };
    let agent = agent_with(proxies, None);
    assert_eq!(page(&agent, &format!("{direct}/d")).unwrap(), b"/d");
    assert!(proxy.heads().is_empty());
    let head = &log.borrow()[0];
    assert!(head.starts_with("GET /d HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(head, "proxy-authorization"), None);
    port.stop_listening();
}

#[test]
fn a_redirect_out_of_the_proxy_never_carries_the_proxy_credentials() {
    let proxy = TestProxy::start(Mode::Forward);
    let (direct, direct_log, direct_port) = recorder(|head| ok(path_of(head)));
    // "localhost" goes through the proxy, 127.0.0.1 directly.
    let target = format!("{direct}/landed");
    let (via, _, via_port) = recorder(move |_| recorder::redirect(302, &target));
    let via = via.replace("127.0.0.1", "localhost");
    let proxies = Proxies {
        no_proxy: NoProxy::parse("127.0.0.1"),
        ..Proxies::all(with_credentials(&proxy))
    };
    let agent = agent_with(proxies, None);
    assert_eq!(page(&agent, &format!("{via}/start")).unwrap(), b"/landed");
    assert_eq!(proxy.heads().len(), 1);
    let head = &direct_log.borrow()[0];
    assert_eq!(header(head, "proxy-authorization"), None, "{head}");
    direct_port.stop_listening();
    via_port.stop_listening();
}

#[test]
fn percent_encoded_credentials_are_decoded_before_basic() {
    let proxy = TestProxy::start(Mode::Forward);
    let (origin, _, port) = recorder(|_| ok("x"));
    let p = Proxy::parse(&format!("http://al%69ce:s3cret@{}", proxy.addr)).unwrap();
    let agent = agent_with(Proxies::all(p), None);
    page(&agent, &format!("{origin}/")).unwrap();
    assert_eq!(
        header(&proxy.heads()[0], "proxy-authorization"),
        Some(CREDENTIALS)
    );
    port.stop_listening();
}

#[test]
fn through_a_real_tinyproxy_both_schemes_work() {
    let Some(tiny) = Tinyproxy::start() else {
        panic!("tinyproxy is not installed (the CI script installs it)");
    };
    let (http, log, port) = recorder(|head| ok(&format!("plain {}", path_of(head))));
    let origin = https_origin();
    let agent = agent_with(
        Proxies::all(Proxy::parse(&tiny.url()).unwrap()),
        Some(origin.trust()),
    );
    let body = page(&agent, &format!("{http}/via-tinyproxy"));
    assert_eq!(
        body.as_deref().ok(),
        Some(&b"plain /via-tinyproxy"[..]),
        "{body:?}\n{}",
        tiny.log()
    );
    assert_eq!(path_of(&log.borrow()[0]), "/via-tinyproxy");
    let body = page(&agent, &origin.url("/tunnel"));
    assert_eq!(
        body.as_deref().ok(),
        Some(&b"secure /tunnel"[..]),
        "{body:?}\n{}",
        tiny.log()
    );
    assert_eq!(*origin.seen.borrow(), vec!["-"]);
    port.stop_listening();
    origin.port.stop_listening();
}
