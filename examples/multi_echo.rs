//! One echo server listening on several endpoints at once, each named by an
//! endpoint string (Twisted's `serverFromString`): TCP, TLS (`ssl:`, with a
//! self-signed certificate it makes for `localhost`) and a Unix socket by
//! default, any `tcp:`/`ssl:`/`unix:` strings given.
//!
//! With no arguments it is its own client: it connects to each endpoint
//! through `client_from_string`, checks the echo, stops listening (the
//! Unix socket file goes away) and exits. With `--serve ENDPOINT...` it
//! serves until Ctrl-C.
//!
//! Run with `cargo run --example multi_echo` or
//! `cargo run --example multi_echo -- --serve tcp:8000 unix:/tmp/echo.sock`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use twined::defer::{gather_results, Deferred};
use twined::endpoints::{client_from_string, server_from_string, ListeningPort};
use twined::protocol::{Protocol, Transport};
use twined::reactor;

/// Twisted's Echo.
#[derive(Default)]
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

/// Sends a greeting, then fires once it came back whole.
struct Greeter {
    want: &'static [u8],
    got: Vec<u8>,
    done: Option<twined::defer::Trigger<Vec<u8>>>,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(self.want);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.want.len() {
            if let Some(done) = self.done.take() {
                done.callback(std::mem::take(&mut self.got));
            }
        }
    }
}

/// Escapes `:` and `\\` for an endpoint description.
fn quote(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// A self-signed certificate for `localhost` in `dir`: `cert.pem`,
/// `key.pem`, and `roots/ca.pem` for the client to trust.
fn make_certificate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("roots"))?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("cert.pem"), certified.cert.pem())?;
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem())?;
    std::fs::write(dir.join("roots/ca.pem"), certified.cert.pem())
}

/// The client string that reaches a listening port (`tls_roots`: the
/// directory of roots to trust when the port was described with `ssl:`).
fn client_for(port: &ListeningPort, tls_roots: Option<&Path>) -> String {
    match (port.tcp_address(), port.unix_path()) {
        (Some(addr), _) if tls_roots.is_some() => format!(
            "tls:localhost:{}:trustRoots={}",
            addr.port(),
            quote(tls_roots.unwrap_or(Path::new(".")))
        ),
        (Some(addr), _) => format!("tcp:host={}:port={}", addr.ip(), addr.port()),
        (None, Some(path)) => format!(
            "unix:path={}",
            path.display().to_string().replace(':', "\\:")
        ),
        _ => unreachable!("a listening port is TCP or Unix"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.first().is_some_and(|a| a == "--serve");
    let certs = std::env::temp_dir().join(format!("twined-multi-echo-{}", std::process::id()));
    let descriptions: Vec<String> = if serve && args.len() > 1 {
        args[1..].to_vec()
    } else {
        let sock =
            std::env::temp_dir().join(format!("twined-multi-echo-{}.sock", std::process::id()));
        if let Err(e) = make_certificate(&certs) {
            eprintln!(
                "cannot write a test certificate in {}: {e}",
                certs.display()
            );
            std::process::exit(1);
        }
        vec![
            "tcp:0:interface=127.0.0.1".to_string(),
            format!(
                "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
                quote(&certs.join("key.pem")),
                quote(&certs.join("cert.pem"))
            ),
            format!("unix:{}", quote(&sock)),
        ]
    };
    let mut listening = Vec::new();
    for description in &descriptions {
        let endpoint = server_from_string(description).unwrap_or_else(|e| {
            eprintln!("{description}: {e}");
            std::process::exit(2);
        });
        listening.push(endpoint.listen(|_: SocketAddr| Echo::default()));
    }
    let failed = Rc::new(Cell::new(false));
    let f = failed.clone();
    let ports = Rc::new(RefCell::new(Vec::new()));
    let p = ports.clone();
    let check_failed = failed.clone();
    let tls_dir = certs.clone();
    gather_results(listening)
        .add_callback(move |ports: Vec<ListeningPort>| {
            for port in &ports {
                println!("listening on {port}");
            }
            *p.borrow_mut() = ports.clone();
            if serve {
                println!("serving until Ctrl-C");
                return twined::defer::succeed(());
            }
            let checks: Vec<Deferred<()>> = ports
                .iter()
                .zip(&descriptions)
                .map(|(port, description)| {
                    let roots = tls_dir.join("roots");
                    let tls = description.starts_with("ssl:").then_some(roots.as_path());
                    let client = client_for(port, tls);
                    let (d, trigger) = Deferred::new();
                    let greeter = Greeter {
                        want: b"hello",
                        got: Vec::new(),
                        done: Some(trigger),
                    };
                    let endpoint = client_from_string(&client).expect("a client string we built");
                    endpoint
                        .connect_protocol(greeter)
                        .add_callback(drop)
                        .add_errback(|f| eprintln!("{f}"));
                    d.add_callback(move |echo| {
                        println!("{client} echoed {}", String::from_utf8_lossy(&echo));
                    })
                })
                .collect();
            gather_results(checks).add_both(move |r| {
                if let Err(failure) = r {
                    eprintln!("echo check failed: {failure}");
                    check_failed.set(true);
                }
                reactor::stop().unwrap();
            })
        })
        .add_errback(move |failure| {
            eprintln!("could not listen: {failure}");
            f.set(true);
            let _ = reactor::stop();
        });
    if !failed.get() {
        reactor::run().unwrap();
    }
    for port in ports.borrow().iter() {
        port.stop_listening();
        if let Some(path) = port.unix_path() {
            println!("{} removed: {}", path.display(), !path.exists());
        }
    }
    let _ = std::fs::remove_dir_all(&certs);
    if failed.get() {
        std::process::exit(1);
    }
}
