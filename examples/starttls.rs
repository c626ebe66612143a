//! STARTTLS, as SMTP and IMAP do it: a plain line protocol that switches the
//! live connection to TLS (Twisted's `transport.startTLS`). A server and a
//! client on loopback, with a throwaway certificate for "localhost":
//!
//! ```text
//! S: 220 ready              (clear)
//! C: STARTTLS               (clear)
//! S: 220 go ahead           (clear; the server switches right after)
//! C: HELLO secret           (encrypted)
//! S: 250 you said: HELLO secret  (encrypted)
//! ```
//!
//! Run with `cargo run --example starttls`.

use std::net::SocketAddr;

use twined::protocol::{ConnectionDone, Protocol, Transport};
use twined::reactor;
use twined::reactor::tls::{ClientTlsConfig, ServerTlsConfig};

/// Splits a byte stream into CRLF-terminated lines.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn feed(&mut self, data: &[u8]) -> Vec<String> {
        self.0.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(end) = self.0.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.0.drain(..end + 2).take(end).collect();
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }
}

struct Server {
    transport: Option<Transport>,
    config: ServerTlsConfig,
    lines: Lines,
}

impl Protocol for Server {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(b"220 ready\r\n");
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        for line in self.lines.feed(data) {
            println!("server got: {line}");
            if line == "STARTTLS" {
                t.write(b"220 go ahead\r\n"); // still in clear
                if let Err(e) = t.start_tls(self.config.clone()) {
                    eprintln!("server: {e}");
                    t.abort_connection();
                }
            } else {
                t.write(format!("250 you said: {line}\r\n").as_bytes());
            }
        }
    }
}

struct Client {
    transport: Option<Transport>,
    config: ClientTlsConfig,
    lines: Lines,
    secure: bool,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        for line in self.lines.feed(data) {
            let how = if self.secure { "over TLS" } else { "in clear" };
            println!("client got {how}: {line}");
            if line == "220 ready" {
                t.write(b"STARTTLS\r\n");
            } else if line == "220 go ahead" {
                if let Err(e) = t.start_tls(self.config.clone()) {
                    eprintln!("client: {e}");
                    t.abort_connection();
                    return;
                }
                self.secure = true;
                // Encrypted, sent once the handshake is done.
                t.write(b"HELLO secret\r\n");
            } else if line.starts_with("250 ") {
                t.lose_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: twined::defer::Failure) {
        if reason.check::<ConnectionDone>() {
            println!("client: closed cleanly");
        } else {
            eprintln!("client: {reason}");
            std::process::exit(1);
        }
        let _ = reactor::stop();
    }
}

fn main() {
    env_logger::init();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let cert_pem = certified.cert.pem();
    let server_config = ServerTlsConfig::from_pem(
        cert_pem.as_bytes(),
        certified.key_pair.serialize_pem().as_bytes(),
    )
    .expect("a server config");
    // Trust the throwaway certificate, and check it names "localhost"
    // although the connection is made to 127.0.0.1.
    let client_config = ClientTlsConfig::default()
        .add_root_pem(cert_pem.as_bytes())
        .expect("a CA")
        .with_server_name("localhost");

    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| Server {
        transport: None,
        config: server_config.clone(),
        lines: Lines::default(),
    })
    .expect("a port");
    let client = Client {
        transport: None,
        config: client_config,
        lines: Lines::default(),
        secure: false,
    };
    reactor::connect_protocol("127.0.0.1", port.address().port(), client).add_errback(|f| {
        eprintln!("connect: {f}");
        std::process::exit(1);
    });
    reactor::call_later(std::time::Duration::from_secs(10), || {
        eprintln!("timed out");
        std::process::exit(1);
    });
    reactor::run().expect("the reactor");
}
