//! Unix stream sockets through the reactor: listen_unix, connect_unix, the
//! same Protocol as TCP, socket file cleanup, stale files, peer credentials.
//! Ports the ideas of Twisted's `twisted.test.test_unix` (`UnixSocketTests`:
//! `test_dumber`, `test_peerBind`, `test_socketLocking`). Every test bounds
//! its run.

mod support;

use support::{run_bounded, wait};

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::Failure;
use twined::protocol::{ConnectionDone, Protocol, Transport};
use twined::reactor::{self, UnixError, UnixListenOptions};

fn sock(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("twined-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
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

/// Collects what it reads; stops the reactor once `want` bytes came.
struct Collect {
    got: Rc<RefCell<Vec<u8>>>,
    want: usize,
    lost: Rc<RefCell<Option<Failure>>>,
}

impl Protocol for Collect {
    fn data_received(&mut self, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self.got.borrow().len() >= self.want {
            let _ = reactor::stop();
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
    }
}

#[test]
fn echo_over_a_unix_socket_with_peer_credentials() {
    let path = sock("echo");
    let creds = Rc::new(RefCell::new(None));
    let c = creds.clone();
    let port = reactor::listen_unix(&path, move |peer: SocketAddr| {
        assert!(peer.ip().is_unspecified());
        Rc::new(RefCell::new(CredEcho(Echo::default(), c.clone())))
    })
    .unwrap();
    struct CredEcho(Echo, Rc<RefCell<Option<reactor::PeerCredentials>>>);
    impl Protocol for CredEcho {
        fn connection_made(&mut self, transport: Transport) {
            *self.1.borrow_mut() = transport.peer_credentials();
            assert_eq!(transport.peer(), None);
            self.0.connection_made(transport);
        }
        fn data_received(&mut self, data: &[u8]) {
            self.0.data_received(data);
        }
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let lost = Rc::new(RefCell::new(None));
    let (g, l) = (got.clone(), lost.clone());
    let message = vec![b'x'; 300_000];
    let m = message.clone();
    reactor::connect_unix(&path, move |_: SocketAddr| Collect {
        got: g.clone(),
        want: 300_000,
        lost: l.clone(),
    })
    .add_callback(move |t| t.write(&m))
    .add_errback(|f| panic!("connect failed: {f}"));
    run_bounded(Duration::from_secs(20));
    assert_eq!(*got.borrow(), message);
    let creds = creds.borrow().expect("credentials on Linux");
    assert_eq!(creds.pid, std::process::id() as i32);
    assert_eq!(creds.uid, rustix_uid());
    port.stop_listening();
    assert!(
        !path.exists(),
        "the socket file is removed on stop_listening"
    );
}

fn rustix_uid() -> u32 {
    // The uid of this process, as the owner of a file it creates.
    use std::os::unix::fs::MetadataExt;
    let probe = std::env::temp_dir().join(format!("twined-uid-{}", std::process::id()));
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid
}

#[test]
fn stop_listening_removes_the_file_and_frees_the_source() {
    let path = sock("cleanup");
    let before = reactor::source_count();
    let port = reactor::listen_unix(&path, |_: SocketAddr| Echo::default()).unwrap();
    assert_eq!(reactor::source_count(), before + 1);
    assert!(path.exists() && port.listening());
    assert_eq!(port.path(), path);
    port.stop_listening();
    port.stop_listening();
    assert!(!path.exists());
    assert!(!port.listening());
    assert_eq!(reactor::source_count(), before);
    // The path is free again.
    let again = reactor::listen_unix(&path, |_: SocketAddr| Echo::default()).unwrap();
    again.stop_listening();
    assert!(!path.exists());
}

#[test]
fn a_file_replaced_since_listen_is_not_removed() {
    let path = sock("replaced");
    let port = reactor::listen_unix(&path, |_: SocketAddr| Echo::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"someone else's").unwrap();
    port.stop_listening();
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_stale_socket_file_is_reported_clearly_and_can_be_taken_over() {
    let path = sock("stale");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a dropped std listener leaves its file");
    let error = reactor::listen_unix(&path, |_: SocketAddr| Echo::default()).unwrap_err();
    assert!(
        matches!(&error, UnixError::Stale { path: p } if *p == path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("stale socket file"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    // Connecting to it is refused, by name.
    let failure = wait(reactor::connect_unix(&path, |_: SocketAddr| {
        Echo::default()
    }))
    .unwrap_err();
    assert!(matches!(
        failure.downcast_ref::<UnixError>(),
        Some(UnixError::Refused { .. })
    ));
    let options = UnixListenOptions {
        remove_stale: true,
        ..UnixListenOptions::default()
    };
    let port = reactor::listen_unix_with(&path, |_: SocketAddr| Echo::default(), options).unwrap();
    port.stop_listening();
    assert!(!path.exists());
}

#[test]
fn a_live_socket_is_in_use_never_removed() {
    let path = sock("live");
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let options = UnixListenOptions {
        remove_stale: true,
        ..UnixListenOptions::default()
    };
    let error =
        reactor::listen_unix_with(&path, |_: SocketAddr| Echo::default(), options).unwrap_err();
    assert!(matches!(error, UnixError::InUse { .. }), "{error:?}");
    assert!(path.exists());
    drop(live);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn connecting_to_nothing_is_not_found() {
    let path = sock("nothing");
    let failed = Rc::new(RefCell::new(None));
    struct F(Rc<RefCell<Option<String>>>);
    impl twined::protocol::Factory for F {
        fn build_protocol(&mut self, _: SocketAddr) -> Option<Box<dyn Protocol>> {
            Some(Box::new(Echo::default()))
        }
        fn client_connection_failed(&mut self, reason: Failure) {
            *self.0.borrow_mut() = Some(reason.to_string());
        }
    }
    let failure = wait(reactor::connect_unix(&path, F(failed.clone()))).unwrap_err();
    assert!(matches!(
        failure.downcast_ref::<UnixError>(),
        Some(UnixError::NotFound { .. })
    ));
    assert!(failure.to_string().contains("no such socket"), "{failure}");
    assert!(failed.borrow().is_some(), "client_connection_failed ran");
}

#[test]
fn lose_connection_flushes_then_the_peer_sees_a_clean_close() {
    let path = sock("lose");
    let got = Rc::new(RefCell::new(Vec::new()));
    let lost = Rc::new(RefCell::new(None));
    let (g, l) = (got.clone(), lost.clone());
    let port = reactor::listen_unix(&path, move |_: SocketAddr| Collect {
        got: g.clone(),
        want: usize::MAX,
        lost: l.clone(),
    })
    .unwrap();
    reactor::connect_unix(&path, |_: SocketAddr| Echo::default()).add_callback(|t| {
        t.write(&vec![7u8; 1 << 20]);
        t.lose_connection();
        assert!(!t.connected());
    });
    let l = lost.clone();
    let poll = twined::task::LoopingCall::new(move || {
        if l.borrow().is_some() {
            let _ = reactor::stop();
        }
    });
    let _done = poll.start(Duration::from_millis(5), false);
    run_bounded(Duration::from_secs(20));
    let _ = poll.stop();
    assert_eq!(got.borrow().len(), 1 << 20);
    assert!(lost.borrow().as_ref().unwrap().check::<ConnectionDone>());
    port.stop_listening();
}

/// A peer that never reads: writes pile up in the transport's buffer, the
/// protocol is told to pause past the high-water mark, and nothing is lost.
#[test]
fn a_peer_that_never_reads_pauses_the_writer() {
    let path = sock("stuck");
    // Accepts and never reads.
    let stuck = std::os::unix::net::UnixListener::bind(&path).unwrap();
    struct Writer(Rc<RefCell<(usize, usize)>>);
    impl Protocol for Writer {
        fn connection_made(&mut self, t: Transport) {
            for _ in 0..64 {
                t.write(&[1u8; 64 * 1024]);
            }
            self.0.borrow_mut().1 = t.write_buffer_size();
            let _ = reactor::stop();
        }
        fn data_received(&mut self, _data: &[u8]) {}
        fn pause_producing(&mut self) {
            self.0.borrow_mut().0 += 1;
        }
    }
    let seen = Rc::new(RefCell::new((0, 0)));
    let s = seen.clone();
    reactor::connect_unix(&path, move |_: SocketAddr| Writer(s.clone()))
        .add_callback(|t| t.abort_connection());
    run_bounded(Duration::from_secs(10));
    let (paused, buffered) = *seen.borrow();
    assert_eq!(paused, 1, "paused once past the high-water mark");
    assert!(buffered > 64 * 1024, "the unsent rest is kept: {buffered}");
    drop(stuck);
    std::fs::remove_file(&path).unwrap();
}

/// `Transport::when_closed` fires with the close reason on a Unix connection
/// too, after the protocol's `connection_lost`.
#[test]
fn when_closed_fires_with_the_reason() {
    let path = sock("when-closed");
    let port = reactor::listen_unix(&path, |_: SocketAddr| Echo::default()).unwrap();
    let transport = wait(reactor::connect_unix(&path, |_: SocketAddr| {
        Echo::default()
    }))
    .unwrap();
    let closed = transport.when_closed();
    transport.lose_connection();
    let reason = wait(closed).unwrap();
    assert!(reason.check::<ConnectionDone>(), "{reason:?}");
    // A late caller gets the same reason at once.
    assert!(transport
        .when_closed()
        .result()
        .unwrap()
        .unwrap()
        .check::<ConnectionDone>());
    port.stop_listening();
}
