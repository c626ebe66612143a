//! TLS over the reactor's transports: `listen_ssl`, `connect_protocol_ssl`,
//! `connect_ssl` and `Transport::start_tls`, against each other, with rcgen
//! certificates made by the tests. Handshake failures (untrusted, wrong
//! name, expired, plain client to a TLS server, TLS client to a plain
//! server) end as typed failures within a timeout; a 64 MiB transfer keeps
//! both ends' buffers bounded; STARTTLS keeps the bytes in flight at the
//! switch. (Twisted's `twisted.protocols.test.test_tls` and
//! `twisted.internet.test.test_tls` cover the same ground.)

mod support;

use std::cell::RefCell;
use std::error::Error as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use support::{run_bounded, wait};
use twined::defer::Failure;
use twined::protocol::{ConnectionDone, Protocol, Transport};
use twined::reactor::tls::{self, ClientTlsConfig, ServerTlsConfig, TlsError};
use twined::reactor::{self, ConnectError, ConnectOptions};

/// A certificate for `names` and its key, PEM.
struct Cert {
    cert_pem: String,
    key_pem: String,
}

fn cert_for(names: &[&str]) -> Cert {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    Cert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.key_pair.serialize_pem(),
    }
}

fn expired_cert() -> Cert {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Cert {
    fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::default()
            .add_root_pem(self.cert_pem.as_bytes())
            .unwrap()
    }
}

/// What a protocol saw.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    lost: Option<Failure>,
}

/// Echoes everything, records what it saw.
struct Echo {
    transport: Option<Transport>,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.seen.borrow_mut().data.extend_from_slice(data);
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.seen.borrow_mut().lost = Some(reason);
    }
}

/// Records what arrives; stops the reactor when the connection is lost.
struct Record {
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Record {
    fn data_received(&mut self, data: &[u8]) {
        self.seen.borrow_mut().data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.seen.borrow_mut().lost = Some(reason);
        let _ = reactor::stop();
    }
}

fn echo_server(config: ServerTlsConfig) -> (reactor::Port, Rc<RefCell<Seen>>) {
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let s = seen.clone();
    let port = tls::listen_ssl(
        "127.0.0.1:0",
        move |_: SocketAddr| Echo {
            transport: None,
            seen: s.clone(),
        },
        config,
    )
    .unwrap();
    (port, seen)
}

fn short() -> ConnectOptions {
    ConnectOptions {
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    }
}

/// The TlsError inside a failure.
fn tls_error(failure: &Failure) -> &TlsError {
    failure
        .downcast_ref::<TlsError>()
        .unwrap_or_else(|| panic!("not a TlsError: {failure:?}"))
}

/// The rustls error of a handshake failure.
fn rustls_error(failure: &Failure) -> &rustls::Error {
    let e = tls_error(failure);
    e.source()
        .and_then(|s| s.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("no rustls source: {e:?}"))
}

#[test]
fn echo_over_tls_then_close_notify() {
    let cert = cert_for(&["localhost"]);
    let (port, server_seen) = echo_server(cert.server());
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let transport = wait(tls::connect_protocol_ssl(
        "localhost",
        port.address().port(),
        Record { seen: seen.clone() },
        &cert.client(),
        short(),
    ))
    .unwrap();
    assert!(transport.connected());
    assert_eq!(transport.peer(), Some(port.address()));
    transport.write(b"hello, ");
    transport.write_sequence(&[b"tls ", b"world"]);
    let s = seen.clone();
    let t = transport.clone();
    run_until(move || s.borrow().data.len() == 16);
    // Close politely: close_notify, then the TCP close.
    t.lose_connection();
    run_bounded(Duration::from_secs(10));
    assert_eq!(seen.borrow().data, b"hello, tls world");
    let lost = seen.borrow_mut().lost.take().expect("connection_lost");
    assert!(lost.check::<ConnectionDone>(), "{lost:?}");
    // The server saw a clean close_notify too.
    let s = server_seen.clone();
    run_until(move || s.borrow().lost.is_some());
    let lost = server_seen.borrow_mut().lost.take().unwrap();
    assert!(lost.check::<ConnectionDone>(), "{lost:?}");
    assert_eq!(server_seen.borrow().data, b"hello, tls world");
    port.stop_listening();
}

/// Runs the reactor until `done` (checked every millisecond), bounded.
fn run_until(done: impl Fn() -> bool + 'static) {
    run_until_within(Duration::from_secs(10), done)
}

fn run_until_within(limit: Duration, done: impl Fn() -> bool + 'static) {
    if done() {
        return;
    }
    let lc = twined::task::LoopingCall::new(move || {
        if done() {
            let _ = reactor::stop();
        }
    });
    let _ = lc.start(Duration::from_millis(1), false);
    run_bounded(limit);
    let _ = lc.stop();
}

fn handshake_failure(cert: &Cert, host: &str, client: ClientTlsConfig) -> Failure {
    let (port, server_seen) = echo_server(cert.server());
    let failure = wait(tls::connect_protocol_ssl(
        host,
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
        &client,
        short(),
    ))
    .unwrap_err();
    // The server's protocol hears of it as a TLS failure too.
    run_until(move || server_seen.borrow().lost.is_some());
    port.stop_listening();
    failure
}

#[test]
fn a_self_signed_certificate_is_refused_by_default() {
    let cert = cert_for(&["localhost"]);
    let failure = handshake_failure(&cert, "localhost", ClientTlsConfig::default());
    assert!(
        matches!(
            rustls_error(&failure),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{failure}"
    );
    assert!(failure.to_string().contains("localhost"), "{failure}");
}

#[test]
fn the_wrong_name_is_refused() {
    let cert = cert_for(&["localhost"]);
    let failure = handshake_failure(&cert, "127.0.0.1", cert.client());
    assert!(
        matches!(rustls_error(&failure), rustls::Error::InvalidCertificate(_)),
        "{failure}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let cert = expired_cert();
    let failure = handshake_failure(&cert, "localhost", cert.client());
    assert!(
        matches!(
            rustls_error(&failure),
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                | rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ExpiredContext { .. }
                )
        ),
        "{failure}"
    );
}

#[test]
fn the_server_name_can_be_set() {
    // Connect to an IP address, verify the certificate's DNS name.
    let cert = cert_for(&["service.test"]);
    let (port, _seen) = echo_server(cert.server());
    let transport = wait(tls::connect_protocol_ssl(
        "127.0.0.1",
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
        &cert.client().with_server_name("service.test"),
        short(),
    ))
    .unwrap();
    transport.abort_connection();
    port.stop_listening();
}

#[test]
fn a_plain_client_to_a_tls_server_is_refused_by_the_server() {
    let cert = cert_for(&["localhost"]);
    let (port, server_seen) = echo_server(cert.server());
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let transport = wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Record { seen: seen.clone() },
    ))
    .unwrap();
    transport.write(b"GET / HTTP/1.0\r\n\r\n");
    run_bounded(Duration::from_secs(10)); // until the server closes
                                          // The client got a TLS alert record (content type 21), then the close.
    assert_eq!(
        seen.borrow().data.first(),
        Some(&21),
        "{:?}",
        seen.borrow().data
    );
    assert!(seen.borrow().lost.is_some());
    run_until(move || server_seen.borrow().lost.is_some());
    let port_seen = port.clone();
    port_seen.stop_listening();
}

#[test]
fn the_server_protocol_gets_the_tls_failure() {
    let cert = cert_for(&["localhost"]);
    let (port, server_seen) = echo_server(cert.server());
    wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
    ))
    .unwrap()
    .write(b"not a client hello at all\r\n");
    let s = server_seen.clone();
    run_until(move || s.borrow().lost.is_some());
    let lost = server_seen.borrow_mut().lost.take().unwrap();
    assert!(
        matches!(tls_error(&lost), TlsError::Handshake { .. }),
        "{lost:?}"
    );
    assert!(server_seen.borrow().data.is_empty());
    port.stop_listening();
}

/// A plain server that greets every client in clear text.
struct Greeter;

impl Protocol for Greeter {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(b"220 plain text here, no TLS\r\n");
    }
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn a_tls_client_to_a_plain_server_is_a_tls_error() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Greeter).unwrap();
    let failure = wait(tls::connect_protocol_ssl(
        "localhost",
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
        &ClientTlsConfig::default(),
        short(),
    ))
    .unwrap_err();
    assert!(
        matches!(tls_error(&failure), TlsError::Handshake { .. }),
        "{failure:?}"
    );
    port.stop_listening();
}

/// A plain server that says nothing.
struct Silent;

impl Protocol for Silent {
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn a_silent_server_times_the_handshake_out() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Silent).unwrap();
    let failure = wait(tls::connect_protocol_ssl(
        "localhost",
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
        &ClientTlsConfig::default(),
        ConnectOptions {
            timeout: Some(Duration::from_millis(200)),
            ..ConnectOptions::default()
        },
    ))
    .unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<ConnectError>(),
            Some(ConnectError::TimedOut { .. })
        ),
        "{failure:?}"
    );
    port.stop_listening();
}

#[test]
fn a_server_that_closes_during_the_handshake() {
    struct Closer;
    impl Protocol for Closer {
        fn connection_made(&mut self, transport: Transport) {
            transport.lose_connection();
        }
        fn data_received(&mut self, _data: &[u8]) {}
    }
    let port = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Closer).unwrap();
    let failure = wait(tls::connect_protocol_ssl(
        "localhost",
        port.address().port(),
        Record {
            seen: Rc::default(),
        },
        &ClientTlsConfig::default(),
        short(),
    ))
    .unwrap_err();
    assert!(
        matches!(tls_error(&failure), TlsError::Closed { .. }),
        "{failure:?}"
    );
    port.stop_listening();
}

#[test]
fn bad_configuration_is_a_config_error() {
    let e = ClientTlsConfig::default()
        .add_root_pem_file("/nonexistent/ca.pem")
        .unwrap_err();
    assert!(matches!(e, TlsError::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
    assert!(ClientTlsConfig::default().add_root_pem(b"not pem").is_err());
    let cert = cert_for(&["localhost"]);
    let e = ServerTlsConfig::from_pem(cert.cert_pem.as_bytes(), b"no key").unwrap_err();
    assert!(e.to_string().contains("key"), "{e}");
    let e = ServerTlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    // A name that is neither DNS nor IP.
    let failure = wait(tls::connect_protocol_ssl(
        "bad name!",
        443,
        Record {
            seen: Rc::default(),
        },
        &ClientTlsConfig::default(),
        short(),
    ))
    .unwrap_err();
    assert!(matches!(tls_error(&failure), TlsError::ServerName { .. }));
}

const MIB: usize = 1024 * 1024;

/// The bulk stream's `len` bytes from `offset`: a 251-byte cycle, so a
/// lost, repeated or reordered piece shows.
fn pattern(offset: usize, len: usize) -> &'static [u8] {
    thread_local! {
        static CYCLE: &'static [u8] =
            Box::leak((0..64 * 1024 + 251).map(|i| (i % 251) as u8).collect());
    }
    let cycle = CYCLE.with(|c| *c);
    &cycle[offset % 251..][..len]
}

/// Sends `total` bytes as fast as flow control lets it, then closes.
struct Producer {
    transport: Option<Transport>,
    total: usize,
    sent: usize,
    paused: bool,
    stats: Rc<RefCell<ProducerStats>>,
}

#[derive(Default)]
struct ProducerStats {
    pauses: usize,
    max_buffered: usize,
    done: bool,
}

impl Producer {
    fn produce(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        while !self.paused && self.sent < self.total {
            let n = (64 * 1024).min(self.total - self.sent);
            t.write(pattern(self.sent, n));
            self.sent += n;
            let buffered = t.write_buffer_size();
            let mut stats = self.stats.borrow_mut();
            stats.max_buffered = stats.max_buffered.max(buffered);
            // pause_producing is delivered after this method returns, so
            // look at the buffer too (as with TCP).
            if buffered > 64 * 1024 {
                break;
            }
        }
        if self.sent == self.total && !self.stats.borrow().done {
            self.stats.borrow_mut().done = true;
            t.lose_connection();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.produce();
    }
    fn data_received(&mut self, _data: &[u8]) {}
    fn pause_producing(&mut self) {
        self.paused = true;
        self.stats.borrow_mut().pauses += 1;
    }
    fn resume_producing(&mut self) {
        self.paused = false;
        self.produce();
    }
}

/// What the reader saw: bytes, largest chunk, first bad offset, reason.
type ReadEnd = (usize, usize, Option<usize>, Failure);

/// Checks the bulk stream; pauses reading for a while every 8 MiB.
struct SlowReader {
    transport: Option<Transport>,
    received: usize,
    max_chunk: usize,
    bad_at: Option<usize>,
    lost: Rc<RefCell<Option<ReadEnd>>>,
}

impl Protocol for SlowReader {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.max_chunk = self.max_chunk.max(data.len());
        if self.bad_at.is_none() && data != pattern(self.received, data.len()) {
            self.bad_at = Some(self.received);
        }
        let before = self.received / (8 * MIB);
        self.received += data.len();
        if self.received / (8 * MIB) != before {
            if let Some(t) = self.transport.clone() {
                t.pause_producing();
                reactor::call_later(Duration::from_millis(30), move || t.resume_producing());
            }
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        *self.lost.borrow_mut() = Some((self.received, self.max_chunk, self.bad_at, reason));
        let _ = reactor::stop();
    }
}

#[test]
fn sixty_four_mib_with_backpressure_on_both_ends() {
    let total = 64 * MIB;
    let cert = cert_for(&["localhost"]);
    let stats: Rc<RefCell<ProducerStats>> = Rc::default();
    let s = stats.clone();
    let port = tls::listen_ssl(
        "127.0.0.1:0",
        move |_: SocketAddr| Producer {
            transport: None,
            total,
            sent: 0,
            paused: false,
            stats: s.clone(),
        },
        cert.server(),
    )
    .unwrap();
    let lost = Rc::default();
    let reader = SlowReader {
        transport: None,
        received: 0,
        max_chunk: 0,
        bad_at: None,
        lost: Rc::clone(&lost),
    };
    let _transport = wait(tls::connect_protocol_ssl(
        "localhost",
        port.address().port(),
        reader,
        &cert.client(),
        short(),
    ))
    .unwrap();
    let l = lost.clone();
    // Generous: debug builds on a busy machine are slow; speed is the
    // benchmark's business.
    run_until_within(Duration::from_secs(120), move || l.borrow().is_some());
    let (received, max_chunk, bad_at, reason) = lost.borrow_mut().take().unwrap();
    assert_eq!(received, total);
    assert_eq!(bad_at, None, "the stream was corrupted");
    assert!(reason.check::<ConnectionDone>(), "{reason:?}");
    // The reader got the stream in bounded pieces...
    assert!(max_chunk <= 64 * 1024, "a {max_chunk}-byte chunk");
    // ...and the writer was paused instead of buffering: its buffer stayed
    // within the high-water mark plus one chunk's records.
    let stats = stats.borrow();
    assert!(stats.pauses > 0, "never paused");
    assert!(
        stats.max_buffered <= 64 * 1024 + 2 * 64 * 1024,
        "{} bytes buffered",
        stats.max_buffered
    );
    port.stop_listening();
}

/// The STARTTLS server: a line protocol that answers `STARTTLS` with 1 MiB
/// of clear text, `OK`, and then switches, writing 1 MiB more encrypted at
/// once (in flight while the handshake runs).
struct StartTlsServer {
    transport: Option<Transport>,
    config: ServerTlsConfig,
    clear: Vec<u8>,
    switched: bool,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for StartTlsServer {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        if self.switched {
            self.seen.borrow_mut().data.extend_from_slice(data);
            return;
        }
        self.clear.extend_from_slice(data);
        if self.clear == b"STARTTLS\r\n" {
            t.write(&vec![b'c'; MIB]);
            t.write(b"OK\r\n");
            // Most of the clear megabyte is still buffered here.
            t.start_tls(self.config.clone()).unwrap();
            self.switched = true;
            t.write(&vec![b's'; MIB]);
            t.write(b"END\r\n");
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.seen.borrow_mut().lost = Some(reason);
    }
}

struct StartTlsClient {
    transport: Option<Transport>,
    config: ClientTlsConfig,
    clear: Vec<u8>,
    switched: bool,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for StartTlsClient {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(b"STARTTLS\r\n");
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        if !self.switched {
            self.clear.extend_from_slice(data);
            if self.clear.ends_with(b"OK\r\n") {
                t.start_tls(self.config.clone()).unwrap();
                self.switched = true;
                t.write(b"secret from the client");
            }
            return;
        }
        let mut seen = self.seen.borrow_mut();
        seen.data.extend_from_slice(data);
        if seen.data.ends_with(b"END\r\n") {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.seen.borrow_mut().lost = Some(reason);
        let _ = reactor::stop();
    }
}

#[test]
fn starttls_keeps_the_bytes_in_flight_at_the_switch() {
    let cert = cert_for(&["localhost"]);
    let server_seen: Rc<RefCell<Seen>> = Rc::default();
    let (s, config) = (server_seen.clone(), cert.server());
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| StartTlsServer {
        transport: None,
        config: config.clone(),
        clear: Vec::new(),
        switched: false,
        seen: s.clone(),
    })
    .unwrap();
    let client_seen: Rc<RefCell<Seen>> = Rc::default();
    let client = Rc::new(RefCell::new(StartTlsClient {
        transport: None,
        config: cert.client().with_server_name("localhost"),
        clear: Vec::new(),
        switched: false,
        seen: client_seen.clone(),
    }));
    wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        client.clone(),
    ))
    .unwrap();
    let c = client_seen.clone();
    run_until(move || c.borrow().lost.is_some());
    let mut expected_clear = vec![b'c'; MIB];
    expected_clear.extend_from_slice(b"OK\r\n");
    assert!(client.borrow().clear == expected_clear, "the clear part");
    let mut expected_secret = vec![b's'; MIB];
    expected_secret.extend_from_slice(b"END\r\n");
    assert!(
        client_seen.borrow().data == expected_secret,
        "the encrypted part"
    );
    let lost = client_seen.borrow_mut().lost.take().unwrap();
    assert!(lost.check::<ConnectionDone>(), "{lost:?}");
    let s = server_seen.clone();
    run_until(move || s.borrow().lost.is_some());
    assert_eq!(server_seen.borrow().data, b"secret from the client");
    port.stop_listening();
}

#[test]
fn starttls_with_the_wrong_name_fails_the_connection() {
    let cert = cert_for(&["localhost"]);
    let server_seen: Rc<RefCell<Seen>> = Rc::default();
    let (s, config) = (server_seen.clone(), cert.server());
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| StartTlsServer {
        transport: None,
        config: config.clone(),
        clear: Vec::new(),
        switched: false,
        seen: s.clone(),
    })
    .unwrap();
    let client_seen: Rc<RefCell<Seen>> = Rc::default();
    wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        StartTlsClient {
            transport: None,
            // No server name: the peer's IP, which the certificate lacks.
            config: cert.client(),
            clear: Vec::new(),
            switched: false,
            seen: client_seen.clone(),
        },
    ))
    .unwrap();
    let c = client_seen.clone();
    run_until(move || c.borrow().lost.is_some());
    let lost = client_seen.borrow_mut().lost.take().unwrap();
    assert!(
        matches!(rustls_error(&lost), rustls::Error::InvalidCertificate(_)),
        "{lost:?}"
    );
    assert!(client_seen.borrow().data.is_empty());
    port.stop_listening();
}

#[test]
fn start_tls_on_a_closed_connection_is_an_error() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Silent).unwrap();
    let transport = wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Silent,
    ))
    .unwrap();
    transport.abort_connection();
    let e = transport
        .start_tls(ClientTlsConfig::default().with_server_name("localhost"))
        .unwrap_err();
    assert!(matches!(e, TlsError::CannotStart { .. }), "{e:?}");
    port.stop_listening();
}
