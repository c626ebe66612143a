//! Endpoints from strings: Twisted's description syntax (ports the cases of
//! Twisted's `twisted.internet.test.test_endpoints` `ServerStringTests` and
//! `ClientStringTests`), the errors that name the bad field, and listen /
//! connect over TCP, Unix sockets and UDP. Loopback only, bounded runs.

mod support;

use support::wait;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use twined::endpoints::{
    client_from_string, server_from_string, ClientSpec, EndpointError, ListeningPort, ServerSpec,
};
use twined::protocol::{Protocol, Transport};
use twined::reactor::{self, DatagramProtocol, DatagramTransport};

fn server(s: &str) -> ServerSpec {
    server_from_string(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .spec()
        .clone()
}

fn client(s: &str) -> ClientSpec {
    client_from_string(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .spec()
        .clone()
}

#[test]
fn server_strings() {
    assert_eq!(
        server("tcp:8080:interface=127.0.0.1"),
        ServerSpec::Tcp {
            port: 8080,
            interface: "127.0.0.1".into(),
            backlog: 50
        }
    );
    assert_eq!(
        server("tcp:port=80:backlog=7"),
        ServerSpec::Tcp {
            port: 80,
            interface: String::new(),
            backlog: 7
        }
    );
    // IPv6 interfaces need their colons escaped.
    assert_eq!(
        server(r"tcp:80:interface=\:\:1"),
        ServerSpec::Tcp {
            port: 80,
            interface: "::1".into(),
            backlog: 50
        }
    );
    assert_eq!(
        server("tcp6:80"),
        ServerSpec::Tcp {
            port: 80,
            interface: "::".into(),
            backlog: 50
        }
    );
    assert_eq!(
        server("ssl:8443:privateKey=key.pem:certKey=cert.pem"),
        ServerSpec::Ssl {
            port: 8443,
            interface: String::new(),
            backlog: 50,
            private_key: "key.pem".into(),
            cert_key: "cert.pem".into(),
            extra_cert_chain: None,
            dh_parameters: None,
            ssl_method: None,
        }
    );
    // certKey defaults to the private key's file, which defaults to server.pem.
    assert!(matches!(
        server("ssl:443:extraCertChain=chain.pem:sslmethod=TLSv1_2_METHOD"),
        ServerSpec::Ssl { private_key, cert_key, extra_cert_chain: Some(_), ssl_method: Some(_), .. }
            if private_key.as_path() == Path::new("server.pem") && cert_key == private_key
    ));
    assert_eq!(
        server(r"unix:/var/run/a\:b.sock:mode=660:lockfile=0"),
        ServerSpec::Unix {
            path: "/var/run/a:b.sock".into(),
            mode: 0o660,
            backlog: 50,
            lockfile: false
        }
    );
    assert_eq!(
        server("UDP:9999:interface=127.0.0.1"),
        ServerSpec::Udp {
            port: 9999,
            interface: "127.0.0.1".into()
        }
    );
}

#[test]
fn client_strings() {
    let tcp = ClientSpec::Tcp {
        host: "example.com".into(),
        port: 80,
        timeout: Duration::from_secs(30),
    };
    assert_eq!(client("tcp:host=example.com:port=80"), tcp);
    assert_eq!(client("tcp:example.com:80"), tcp);
    assert_eq!(client("tcp:example.com:port=80"), tcp);
    assert_eq!(client("tcp:80:host=example.com"), tcp);
    assert!(matches!(
        client("tcp:h:1:timeout=2.5"),
        ClientSpec::Tcp { timeout, .. } if timeout == Duration::from_millis(2500)
    ));
    assert_eq!(
        client("tls:example.com:443"),
        ClientSpec::Tls {
            host: "example.com".into(),
            port: 443,
            timeout: Duration::from_secs(30),
            certificate: None,
            private_key: None,
            trust_roots: None
        }
    );
    assert!(matches!(
        client("ssl:host=h:port=1:caCertsDir=/etc/ssl/certs:certKey=c.pem:privateKey=k.pem"),
        ClientSpec::Ssl {
            ca_certs_dir: Some(_),
            cert_key: Some(_),
            private_key: Some(_),
            ..
        }
    ));
    assert_eq!(
        client("unix:path=/run/app.sock"),
        ClientSpec::Unix {
            path: "/run/app.sock".into(),
            timeout: Duration::from_secs(30)
        }
    );
    assert_eq!(
        client("unix:/run/app.sock:checkPID=0"),
        client("unix:/run/app.sock")
    );
}

fn server_err(s: &str) -> EndpointError {
    server_from_string(s).expect_err(s)
}

fn client_err(s: &str) -> EndpointError {
    client_from_string(s).expect_err(s)
}

#[test]
fn malformed_strings_name_the_bad_field() {
    let cases: Vec<(EndpointError, &str)> = vec![
        (server_err("tcp:http"), "bad port \"http\""),
        (server_err("tcp:70000"), "bad port \"70000\""),
        (server_err("tcp:"), "bad port \"\""),
        (server_err("tcp:80:backlog=lots"), "bad backlog \"lots\""),
        (
            server_err("tcp:80:interfase=x"),
            "field named \"interfase\"",
        ),
        (server_err("tcp:80:81"), "more positional fields"),
        (server_err("unix:/a:mode=999"), "bad mode \"999\""),
        (server_err("unix:/a:lockfile=maybe"), "bad lockfile"),
        (server_err("unix"), "missing its address"),
        (server_err("quic:443"), "unknown endpoint type \"quic\""),
        (server_err(r"tcp:80\"), "backslash"),
        (
            server_err("tcp:80:backlog=1:backlog=2"),
            "\"backlog\" is given twice",
        ),
        (client_err("tcp:example.com"), "missing its port"),
        (client_err("tcp:port=80"), "missing its host"),
        (client_err("tcp:h:80:timeout=soon"), "bad timeout \"soon\""),
        (
            client_err("tcp:h:80:bindAddress=1.2.3.4"),
            "\"bindAddress\" is not supported",
        ),
        (
            client_err("unix:/a:checkPID=1"),
            "\"checkPID\" is not supported",
        ),
        (
            client_err("tls:h:443:endpoint=tcp\\:h\\:443"),
            "\"endpoint\" is not supported",
        ),
        (client_err("udp:h:53"), "unknown endpoint type \"udp\""),
    ];
    for (error, says) in cases {
        assert!(
            error.to_string().contains(says),
            "{error} should say {says}"
        );
    }
    assert!(matches!(
        server_err("tcp:x"),
        EndpointError::BadValue { field: "port", .. }
    ));
}

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

/// Records what comes back; stops the reactor on the first bytes.
struct Expect(Rc<RefCell<Vec<u8>>>);

impl Protocol for Expect {
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
        let _ = reactor::stop();
    }
}

fn echo_through(server_desc: &str, client_desc: impl FnOnce(&ListeningPort) -> String) {
    let port = wait(
        server_from_string(server_desc)
            .unwrap()
            .listen(|_: SocketAddr| Echo::default()),
    )
    .unwrap();
    assert!(port.listening());
    let got = Rc::new(RefCell::new(Vec::new()));
    let endpoint = client_from_string(&client_desc(&port)).unwrap();
    let transport = wait(endpoint.connect_protocol(Expect(got.clone()))).unwrap();
    transport.write(b"ping");
    support::run_bounded(Duration::from_secs(10));
    assert_eq!(*got.borrow(), b"ping");
    port.stop_listening();
}

#[test]
fn tcp_listen_and_connect_from_strings() {
    echo_through("tcp:0:interface=127.0.0.1", |port| {
        format!(
            "tcp:host=127.0.0.1:port={}",
            port.tcp_address().unwrap().port()
        )
    });
}

#[test]
fn tcp_connect_with_a_factory_builds_after_connecting() {
    let port = wait(
        server_from_string("tcp:0:interface=127.0.0.1")
            .unwrap()
            .listen(|_: SocketAddr| Echo::default()),
    )
    .unwrap();
    let addr = port.tcp_address().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let peers = Rc::new(RefCell::new(Vec::new()));
    let (g, p) = (got.clone(), peers.clone());
    let endpoint = client_from_string(&format!("tcp:127.0.0.1:{}", addr.port())).unwrap();
    let transport = wait(endpoint.connect(move |peer: SocketAddr| {
        p.borrow_mut().push(peer);
        Expect(g.clone())
    }))
    .unwrap();
    transport.write(b"built");
    support::run_bounded(Duration::from_secs(10));
    assert_eq!(*peers.borrow(), [addr]);
    assert_eq!(*got.borrow(), b"built");
    port.stop_listening();
}

#[test]
fn unix_listen_and_connect_from_strings_with_cleanup() {
    let path = std::env::temp_dir().join(format!("twined-ep-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // The path goes into the description with its colons escaped.
    let escaped = path.display().to_string().replace(':', r"\:");
    echo_through(&format!("unix:{escaped}:mode=600"), |port| {
        let p = port.unix_path().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        format!("unix:path={}", p.display())
    });
    assert!(!path.exists(), "stop_listening removes the socket file");
}

#[test]
fn connect_failures_keep_their_reactor_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    drop(taken);
    let failure = wait(
        client_from_string(&format!("tcp:127.0.0.1:{}:timeout=5", addr.port()))
            .unwrap()
            .connect_protocol(Echo::default()),
    )
    .unwrap_err();
    assert!(failure.check::<reactor::ConnectError>(), "{failure}");
    let failure = wait(
        client_from_string("unix:/nonexistent/twined.sock")
            .unwrap()
            .connect_protocol(Echo::default()),
    )
    .unwrap_err();
    assert!(failure.check::<reactor::UnixError>(), "{failure}");
}

/// A self-signed certificate for `localhost` in a fresh directory:
/// `cert.pem`, `key.pem`, and `roots/ca.pem` (the same certificate, as the
/// only trusted root).
fn tls_files(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("twined-endpoints-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("roots")).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("roots/ca.pem"), certified.cert.pem()).unwrap();
    dir
}

/// Escapes `:` and `\` for an endpoint description (Twisted's `quoteStringArgument`).
fn quote(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

#[test]
fn ssl_listen_and_tls_connect_from_strings() {
    let dir = tls_files("roundtrip");
    let server = format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        quote(&dir.join("key.pem")),
        quote(&dir.join("cert.pem"))
    );
    echo_through(&server, |port| {
        format!(
            "tls:localhost:{}:trustRoots={}",
            port.tcp_address().unwrap().port(),
            quote(&dir.join("roots"))
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_endpoints_fail_with_typed_errors() {
    let dir = tls_files("errors");
    // A missing key file is named in the error.
    let failure = wait(
        server_from_string("ssl:0:interface=127.0.0.1:privateKey=/nonexistent/key.pem")
            .unwrap()
            .listen(|_: SocketAddr| Echo::default()),
    )
    .unwrap_err();
    assert!(failure.check::<reactor::tls::TlsError>(), "{failure}");
    assert!(
        failure.to_string().contains("/nonexistent/key.pem"),
        "{failure}"
    );
    // A server whose certificate the client does not trust (webpki roots
    // only): the handshake fails with the TLS error.
    let port = wait(
        server_from_string(&format!(
            "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
            quote(&dir.join("key.pem")),
            quote(&dir.join("cert.pem"))
        ))
        .unwrap()
        .listen(|_: SocketAddr| Echo::default()),
    )
    .unwrap();
    let client = format!("tls:localhost:{}", port.tcp_address().unwrap().port());
    let failure = wait(
        client_from_string(&client)
            .unwrap()
            .connect_protocol(Echo::default()),
    )
    .unwrap_err();
    assert!(failure.check::<reactor::tls::TlsError>(), "{failure}");
    // A client certificate is refused clearly rather than ignored.
    let failure = wait(
        client_from_string(&format!("{client}:certificate=c.pem:privateKey=k.pem"))
            .unwrap()
            .connect_protocol(Echo::default()),
    )
    .unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<EndpointError>(),
            Some(EndpointError::Unsupported {
                field: "certificate",
                ..
            })
        ),
        "{failure}"
    );
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_endpoints_carry_datagrams_and_refuse_stream_factories() {
    struct Got(Rc<RefCell<Vec<u8>>>);
    impl DatagramProtocol for Got {
        fn datagram_received(&mut self, data: &[u8], _addr: SocketAddr) {
            self.0.borrow_mut().extend_from_slice(data);
            let _ = reactor::stop();
        }
    }
    let endpoint = server_from_string("udp:0:interface=127.0.0.1").unwrap();
    let failure = wait(endpoint.listen(|_: SocketAddr| Echo::default())).unwrap_err();
    assert!(matches!(
        failure.downcast_ref::<EndpointError>(),
        Some(EndpointError::WrongKind { kind: "udp", .. })
    ));
    let got = Rc::new(RefCell::new(Vec::new()));
    let port: DatagramTransport = wait(endpoint.listen_udp(Got(got.clone()))).unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"datagram", port.address()).unwrap();
    support::run_bounded(Duration::from_secs(10));
    assert_eq!(*got.borrow(), b"datagram");
    port.stop_listening();
    let tcp = server_from_string("tcp:0").unwrap();
    assert!(wait(tcp.listen_udp(Got(got))).is_err());
}
