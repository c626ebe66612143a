//! HTTPS against a rustls server started by the test, with an rcgen
//! certificate for "localhost": trusted through an added root, untrusted,
//! and for the wrong host name.

#[path = "support/certs.rs"]
mod certs;
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use std::error::Error as _;
use support::{wait, web_error};
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, TlsConfig,
};
use twined::web::ErrorKind;

/// Serves `connections` TLS connections on 127.0.0.1, answering each request
/// with `response`. Returns the port.
fn tls_server(connections: usize, response: &'static [u8]) -> (u16, String) {
    let cert = certs::localhost();
    let pem = cert.cert_pem.clone();
    let config = cert.rustls_server();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let ok = loop {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            break true;
                        }
                    }
                }
            };
            if ok {
                let _ = tls.write_all(response);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    (port, pem)
}

fn agent_with_root(pem: &str) -> Agent {
    let tls = TlsConfig::default().add_root_pem(pem.as_bytes()).unwrap();
    Agent::with_options(
        ConnectionPool::new(),
        AgentOptions {
            tls,
            ..Default::default()
        },
    )
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure";

#[test]
fn a_trusted_certificate_through_an_added_root() {
    let (port, pem) = tls_server(1, OK);
    let options = PageOptions {
        agent: Some(agent_with_root(&pem)),
        ..Default::default()
    };
    let body = wait(get_page_with(format!("https://localhost:{port}/"), options)).unwrap();
    assert_eq!(body, b"secure");
}

#[test]
fn an_untrusted_certificate_is_a_tls_error() {
    let (port, _pem) = tls_server(1, OK);
    let options = PageOptions {
        agent: Some(Agent::new()),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("https://localhost:{port}/"), options)).unwrap_err();
    let e = web_error(&failure);
    assert_eq!(e.kind(), ErrorKind::Tls, "{failure}");
    assert_eq!(e.kind().as_str(), "tls");
    assert!(failure.to_string().contains("certificate"), "{failure}");
    // The cause is rustls's own error, and clones keep it.
    for e in [e.clone(), e.clone().clone()] {
        let source = e.source().expect("a source");
        match source.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(_)) => {}
            other => panic!("not a certificate error: {other:?} ({source})"),
        }
    }
}

#[test]
fn the_wrong_host_name_is_a_tls_error() {
    let (port, pem) = tls_server(1, OK);
    let options = PageOptions {
        agent: Some(agent_with_root(&pem)),
        ..Default::default()
    };
    // The certificate names localhost, not 127.0.0.1.
    let failure = wait(get_page_with(format!("https://127.0.0.1:{port}/"), options)).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Tls, "{failure}");
}

#[test]
fn an_https_to_http_redirect_is_refused() {
    let (port, pem) = tls_server(
        1,
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n",
    );
    let options = PageOptions {
        agent: Some(agent_with_root(&pem)),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("https://localhost:{port}/"), options)).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Redirect, "{failure}");
    assert!(failure.to_string().contains("insecure"), "{failure}");
}

#[test]
fn a_bad_ca_file_is_a_tls_error() {
    let e = TlsConfig::default()
        .add_root_pem_file("/nonexistent/ca.pem")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    let e = TlsConfig::default().add_root_pem(b"not pem").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
}

#[test]
fn a_tls_connect_timeout_covers_the_handshake() {
    // A plain TCP listener that never speaks TLS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            connect_timeout: Some(std::time::Duration::from_millis(100)),
            ..Default::default()
        },
    );
    let options = PageOptions {
        agent: Some(agent),
        ..Default::default()
    };
    let failure = wait(get_page_with(format!("https://localhost:{port}/"), options)).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Timeout, "{failure}");
    drop(listener);
}
