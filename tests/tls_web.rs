//! `web::server::Site` over TLS (`listen_ssl`), fetched by the web client
//! and by `curl --cacert` (Twisted's `twisted.web.test.test_https` idea:
//! a site behind `listenSSL`, a client that trusts its certificate).

#[path = "support/certs.rs"]
mod certs;
mod support;

use std::process::Command;

use support::wait;
use twined::reactor::tls;
use twined::threads;
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, TlsConfig,
};
use twined::web::server::{Request, Response, Site};
use twined::web::ErrorKind;

struct Served {
    port: twined::reactor::Port,
    cert_pem: String,
}

fn https_site() -> Served {
    let cert = certs::localhost();
    let cert_pem = cert.cert_pem.clone();
    let config = cert.server_tls();
    let site = Site::new(|request: Request| match request.path() {
        "/big" => Response::new(200).body(vec![b'x'; 3 * 1024 * 1024]),
        path => Response::new(200).body(format!("secure {path}")),
    });
    let port = tls::listen_ssl("127.0.0.1:0", site, config).unwrap();
    Served { port, cert_pem }
}

fn trusting(pem: &str) -> PageOptions {
    let tls = TlsConfig::default().add_root_pem(pem.as_bytes()).unwrap();
    PageOptions {
        agent: Some(Agent::with_options(
            ConnectionPool::new(),
            AgentOptions {
                tls,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

#[test]
fn the_web_client_fetches_from_an_https_site() {
    let served = https_site();
    let port = served.port.address().port();
    let body = wait(get_page_with(
        format!("https://localhost:{port}/hello"),
        trusting(&served.cert_pem),
    ))
    .unwrap();
    assert_eq!(body, b"secure /hello");
    // A bigger answer, through the layer's flow control.
    let body = wait(get_page_with(
        format!("https://localhost:{port}/big"),
        trusting(&served.cert_pem),
    ))
    .unwrap();
    assert_eq!(body.len(), 3 * 1024 * 1024);
    // Without the root: a TLS error, not an answer.
    let failure = wait(get_page_with(
        format!("https://localhost:{port}/hello"),
        PageOptions::default(),
    ))
    .unwrap_err();
    let e = failure.downcast_ref::<twined::web::Error>().unwrap();
    assert_eq!(e.kind(), ErrorKind::Tls, "{failure}");
    // Plain HTTP to the TLS port: an error, never a hang.
    let failure = wait(get_page_with(
        format!("http://127.0.0.1:{port}/hello"),
        PageOptions::default(),
    ))
    .unwrap_err();
    assert!(
        failure.downcast_ref::<twined::web::Error>().is_some(),
        "{failure}"
    );
    served.port.stop_listening();
}

#[test]
fn curl_fetches_from_an_https_site() {
    let served = https_site();
    let port = served.port.address().port();
    let ca = std::env::temp_dir().join(format!("twined-tls-web-{}-{port}.pem", std::process::id()));
    std::fs::write(&ca, &served.cert_pem).unwrap();
    let ca_arg = ca.clone();
    let output = wait(threads::defer_to_thread(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&ca_arg)
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg(format!("https://localhost:{port}/from-curl"))
            .output()
    }))
    .unwrap()
    .expect("curl runs (the CI script installs it)");
    let _ = std::fs::remove_file(&ca);
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"secure /from-curl");
    served.port.stop_listening();
}

#[test]
fn curl_without_the_ca_refuses_the_site() {
    let served = https_site();
    let port = served.port.address().port();
    let output = wait(threads::defer_to_thread(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--resolve"])
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg(format!("https://localhost:{port}/"))
            .output()
    }))
    .unwrap()
    .expect("curl runs (the CI script installs it)");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    served.port.stop_listening();
}
