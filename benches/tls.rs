//! TLS through `Protocol`: bulk throughput of a twined `listen_ssl` server
//! fed by a tokio + tokio-rustls client, beside a tokio-rustls server fed by
//! the same client on the same loopback, and TLS handshakes per second
//! (twined client and server) with session resumption on and off; the
//! ratios come from one run.
//!
//! `cargo bench --bench tls` prints the figures. Under `cargo test` (no
//! `--bench` argument) it runs a tiny version as a smoke test.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twined::protocol::{Protocol, Transport};
use twined::reactor::tls::{self, ClientTlsConfig, ServerTlsConfig};
use twined::reactor::{self, ConnectOptions};

const CHUNK: usize = 64 * 1024;

struct Cert {
    pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn cert() -> Cert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Cert {
        pem: c.cert.pem(),
        key_pem: c.key_pair.serialize_pem(),
        der: c.cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_pair.serialize_der())),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tokio-rustls client: connects to `addr`, sends `total` bytes, closes.
fn tokio_sender(addr: SocketAddr, cert: &Cert, total: usize) -> std::thread::JoinHandle<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let chunk = vec![7u8; CHUNK];
            let mut left = total;
            while left > 0 {
                let n = left.min(CHUNK);
                tls.write_all(&chunk[..n]).await.unwrap();
                left -= n;
            }
            tls.shutdown().await.unwrap();
            // Read to the end, so the server's unread session tickets do not
            // make the close a reset that loses the tail of the data.
            let mut sink = vec![0u8; 4096];
            while let Ok(n) = tls.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        });
    })
}

/// Counts bytes and stops the reactor at `total`.
struct Sink {
    got: usize,
    total: usize,
}

impl Protocol for Sink {
    fn data_received(&mut self, data: &[u8]) {
        self.got += data.len();
        if self.got >= self.total {
            let _ = reactor::stop();
        }
    }
}

/// A twined TLS server receiving `total` bytes from the tokio client.
fn twined_receive(cert: &Cert, total: usize) -> Duration {
    let config = ServerTlsConfig::from_pem(cert.pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let port = tls::listen_ssl(
        "127.0.0.1:0",
        move |_: SocketAddr| Sink { got: 0, total },
        config,
    )
    .unwrap();
    let start = Instant::now();
    let peer = tokio_sender(port.address(), cert, total);
    reactor::run().unwrap();
    let took = start.elapsed();
    port.stop_listening();
    peer.join().unwrap();
    took
}

/// A tokio-rustls server receiving `total` bytes from the tokio client.
fn tokio_receive(cert: &Cert, total: usize) -> Duration {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            while got < total {
                let n = tls.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            assert_eq!(got, total);
        });
    });
    let peer = tokio_sender(addr, cert, total);
    server.join().unwrap();
    let took = start.elapsed();
    peer.join().unwrap();
    took
}

/// Writes one byte when made, closes when the echo comes back (by then the
/// session tickets have arrived too).
struct Ping {
    transport: Option<Transport>,
}

impl Protocol for Ping {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(b"x");
        self.transport = Some(transport);
    }
    fn data_received(&mut self, _data: &[u8]) {
        if let Some(t) = &self.transport {
            t.lose_connection();
        }
    }
}

struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            t.write(data);
        }
    }
}

/// `count` handshakes (each with one round trip) one after another.
fn handshakes(cert: &Cert, count: usize, resumption: bool) -> Duration {
    let mut server =
        ServerTlsConfig::from_pem(cert.pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let mut client = ClientTlsConfig::default()
        .add_root_pem(cert.pem.as_bytes())
        .unwrap();
    if !resumption {
        server = server.without_resumption();
        client = client.without_resumption();
    }
    let port = tls::listen_ssl("127.0.0.1:0", |_: SocketAddr| Echo(None), server).unwrap();
    let left = Rc::new(Cell::new(count));
    fn next(port: u16, client: ClientTlsConfig, left: Rc<Cell<usize>>) {
        if left.get() == 0 {
            let _ = reactor::stop();
            return;
        }
        left.set(left.get() - 1);
        let options = ConnectOptions::default();
        tls::connect_protocol_ssl(
            "localhost",
            port,
            Ping { transport: None },
            &client,
            options,
        )
        .add_callback(move |_t| {
            // The next one once this connection is closed: soon after.
            reactor::call_later(Duration::ZERO, move || next(port, client, left));
        })
        .add_errback(|f| panic!("handshake failed: {f}"));
    }
    let start = Instant::now();
    next(port.address().port(), client, left);
    reactor::run().unwrap();
    let took = start.elapsed();
    port.stop_listening();
    took
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (total, count) = if bench {
        (512 * 1024 * 1024, 2000)
    } else {
        (4 * 1024 * 1024, 20)
    };
    let cert = cert();
    let mib = total as f64 / (1024.0 * 1024.0);
    // Warm up both once, then measure.
    twined_receive(&cert, total / 8);
    tokio_receive(&cert, total / 8);
    let ours = twined_receive(&cert, total);
    let theirs = tokio_receive(&cert, total);
    println!(
        "tls bulk {mib:.0} MiB: twined Protocol {:.0} MiB/s, tokio-rustls {:.0} MiB/s, ratio {:.2}x",
        mib / ours.as_secs_f64(),
        mib / theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    let on = handshakes(&cert, count, true);
    let off = handshakes(&cert, count, false);
    println!(
        "tls handshakes ({count}, one round trip each): resumption on {:.0}/s, off {:.0}/s, ratio {:.2}x",
        count as f64 / on.as_secs_f64(),
        count as f64 / off.as_secs_f64(),
        off.as_secs_f64() / on.as_secs_f64()
    );
}
