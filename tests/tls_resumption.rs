//! TLS session resumption: an agent (and a reactor-level `ClientTlsConfig`)
//! builds its rustls `ClientConfig`, and so its session cache, once, and
//! every new connection to a host after the first resumes the session
//! instead of making a full handshake. The server is plain rustls on a
//! thread, which reports each connection's handshake kind.

#[path = "support/certs.rs"]
mod certs;
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rustls::HandshakeKind;
use support::wait;
use twined::protocol::Protocol;
use twined::reactor::tls::{connect_protocol_ssl, ClientTlsConfig};
use twined::reactor::ConnectOptions;
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, PoolOptions, TlsConfig,
};

/// Serves `connections` TLS connections on 127.0.0.1: reads a request head
/// (or, for a bare TLS client, anything), answers, closes, and reports the
/// connection's handshake kind. Returns the port, the CA PEM and the reports.
fn tls_server(connections: usize) -> (u16, String, mpsc::Receiver<Option<HandshakeKind>>) {
    let cert = certs::localhost();
    let pem = cert.cert_pem.clone();
    let config = cert.rustls_server();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.ends_with(b"\n") {
                            break;
                        }
                    }
                }
            }
            let kind = tls.conn.handshake_kind();
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tx.send(kind);
        }
    });
    (port, pem, rx)
}

fn kinds(rx: &mpsc::Receiver<Option<HandshakeKind>>, n: usize) -> Vec<Option<HandshakeKind>> {
    (0..n)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("a report"))
        .collect()
}

#[test]
fn an_agents_new_connections_resume_their_tls_session() {
    let (port, pem, rx) = tls_server(3);
    let agent = Agent::with_options(
        // No keep-alive: every request makes a new TLS connection.
        ConnectionPool::with_options(PoolOptions {
            persistent: false,
            ..PoolOptions::default()
        }),
        AgentOptions {
            tls: TlsConfig::default().add_root_pem(pem.as_bytes()).unwrap(),
            ..AgentOptions::default()
        },
    );
    for _ in 0..3 {
        let body = wait(get_page_with(
            format!("https://localhost:{port}/"),
            PageOptions {
                agent: Some(agent.clone()),
                ..PageOptions::default()
            },
        ))
        .expect("the fetch succeeds");
        assert_eq!(body, b"ok");
    }
    assert_eq!(
        kinds(&rx, 3),
        vec![
            Some(HandshakeKind::Full),
            Some(HandshakeKind::Resumed),
            Some(HandshakeKind::Resumed)
        ]
    );
}

struct SayHello;
impl Protocol for SayHello {
    fn connection_made(&mut self, transport: twined::protocol::Transport) {
        transport.write(b"hello\n");
    }
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn clones_of_a_client_tls_config_share_one_session_cache() {
    let (port, pem, rx) = tls_server(2);
    let config = ClientTlsConfig::default()
        .add_root_pem(pem.as_bytes())
        .unwrap();
    let first = config.client_config().unwrap();
    // A clone shares the built rustls configuration, not a copy of it.
    assert!(Arc::ptr_eq(
        &first,
        &config.clone().client_config().unwrap()
    ));
    for config in [config.clone(), config] {
        let transport = wait(connect_protocol_ssl(
            "localhost",
            port,
            SayHello,
            &config,
            ConnectOptions::default(),
        ))
        .expect("connects");
        // The server answers once it has the line; then the session ticket
        // has arrived too.
        let closed = transport.when_closed();
        let _ = wait(closed);
    }
    assert_eq!(
        kinds(&rx, 2),
        vec![Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
    );
}
