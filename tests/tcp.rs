//! TCP through the reactor: listen_tcp, connect_tcp, connect_protocol, the
//! Transport's writes, flow control, closing, and the errors users meet.
//! Loopback only; every test bounds its run with a watchdog timer.

mod support;

use support::run_bounded;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{CancelledError, Failure, Panicked};
use twined::protocol::{ConnectionAborted, ConnectionDone, Factory, Protocol, Transport};
use twined::reactor::{self, ConnectError, ConnectOptions};

fn stop() {
    let _ = reactor::stop();
}

/// Records what a protocol sees.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    made: bool,
    lost: Option<Failure>,
    paused: usize,
    resumed: usize,
}

type Shared = Rc<RefCell<Seen>>;
type OnMade = Box<dyn FnOnce(&Transport)>;
type OnData = Box<dyn FnMut(&Transport, &[u8])>;

/// A protocol that records everything and can be told what to do.
struct Recorder {
    seen: Shared,
    transport: Option<Transport>,
    on_made: Option<OnMade>,
    on_data: Option<OnData>,
    on_lost: Option<Box<dyn FnOnce()>>,
}

impl Recorder {
    fn new(seen: &Shared) -> Recorder {
        Recorder {
            seen: seen.clone(),
            transport: None,
            on_made: None,
            on_data: None,
            on_lost: None,
        }
    }
    fn on_made(mut self, f: impl FnOnce(&Transport) + 'static) -> Self {
        self.on_made = Some(Box::new(f));
        self
    }
    fn on_data(mut self, f: impl FnMut(&Transport, &[u8]) + 'static) -> Self {
        self.on_data = Some(Box::new(f));
        self
    }
    fn on_lost(mut self, f: impl FnOnce() + 'static) -> Self {
        self.on_lost = Some(Box::new(f));
        self
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.seen.borrow_mut().made = true;
        if let Some(f) = self.on_made.take() {
            f(&transport);
        }
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.seen.borrow_mut().data.extend_from_slice(data);
        if let (Some(f), Some(t)) = (self.on_data.as_mut(), self.transport.as_ref()) {
            f(t, data);
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        let mut seen = self.seen.borrow_mut();
        assert!(seen.lost.is_none(), "connection_lost called twice");
        seen.lost = Some(reason);
        drop(seen);
        if let Some(f) = self.on_lost.take() {
            f();
        }
    }
    fn pause_producing(&mut self) {
        self.seen.borrow_mut().paused += 1;
    }
    fn resume_producing(&mut self) {
        self.seen.borrow_mut().resumed += 1;
    }
}

/// An echo server whose writes pause its reading past `high_water`.
struct Echo {
    transport: Option<Transport>,
    high_water: usize,
    pauses: Rc<Cell<usize>>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        transport.set_write_buffer_limits(self.high_water, 0);
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
    fn pause_producing(&mut self) {
        self.pauses.set(self.pauses.get() + 1);
        if let Some(t) = &self.transport {
            t.pause_producing();
        }
    }
    fn resume_producing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_producing();
        }
    }
}

fn echo_server(high_water: usize, pauses: Rc<Cell<usize>>) -> reactor::Port {
    reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| Echo {
        transport: None,
        high_water,
        pauses: pauses.clone(),
    })
    .unwrap()
}

/// A client that sends `total` bytes of a pattern, pausing when its own
/// buffer is full, and checks what comes back.
struct Pump {
    transport: Option<Transport>,
    sent: usize,
    total: usize,
    received: Rc<RefCell<Vec<u8>>>,
    paused: bool,
    client_pauses: Rc<Cell<usize>>,
    server_pauses: Rc<Cell<usize>>,
}

/// Polls every 10 ms, at most `tries` times, for the server to have paused,
/// then lets `transport` read again.
fn resume_when_server_paused(transport: Transport, server_pauses: Rc<Cell<usize>>, tries: u32) {
    if server_pauses.get() > 0 || tries == 0 {
        transport.resume_producing();
        return;
    }
    reactor::call_later(Duration::from_millis(10), move || {
        resume_when_server_paused(transport, server_pauses, tries - 1)
    });
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

impl Pump {
    fn pump(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        while !self.paused && self.sent < self.total {
            let n = (self.total - self.sent).min(16 * 1024);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern).collect();
            self.sent += n;
            t.write(&chunk);
            // pause_producing is delivered after this method returns, so
            // look at the buffer too.
            if t.write_buffer_size() > 64 * 1024 {
                break;
            }
        }
    }
}

impl Protocol for Pump {
    fn connection_made(&mut self, transport: Transport) {
        transport.set_write_buffer_limits(32 * 1024, 0);
        // Read nothing until the echo server's writes have backed up and its
        // flow control has engaged (or 10 s have passed: the test then fails
        // on its assertion, not by hanging), however slow the machine is.
        transport.pause_producing();
        resume_when_server_paused(transport.clone(), self.server_pauses.clone(), 1000);
        self.transport = Some(transport);
        self.pump();
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut received = self.received.borrow_mut();
        received.extend_from_slice(data);
        if received.len() >= self.total {
            if let Some(t) = &self.transport {
                t.lose_connection();
            }
        }
        drop(received);
        self.pump();
    }
    fn pause_producing(&mut self) {
        self.paused = true;
        self.client_pauses.set(self.client_pauses.get() + 1);
    }
    fn resume_producing(&mut self) {
        self.paused = false;
        self.pump();
    }
    fn connection_lost(&mut self, _reason: Failure) {
        stop();
    }
}

#[test]
fn echo_10_mib_with_backpressure_loses_nothing_and_keeps_order() {
    let server_pauses = Rc::new(Cell::new(0));
    let port = echo_server(8 * 1024, server_pauses.clone());
    let total = 10 * 1024 * 1024;
    let received = Rc::new(RefCell::new(Vec::new()));
    let client_pauses = Rc::new(Cell::new(0));
    let pump = Pump {
        transport: None,
        sent: 0,
        total,
        received: received.clone(),
        paused: false,
        client_pauses: client_pauses.clone(),
        server_pauses: server_pauses.clone(),
    };
    reactor::connect_protocol("127.0.0.1", port.address().port(), pump)
        .add_errback(|f| panic!("connect failed: {f}"));
    run_bounded(Duration::from_secs(60));
    port.stop_listening();
    let received = received.borrow();
    assert_eq!(received.len(), total);
    assert!(
        received.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "bytes out of order or corrupted"
    );
    assert!(
        server_pauses.get() > 0,
        "the server's backpressure never engaged"
    );
}

#[test]
fn connection_made_then_data_then_connection_done() {
    let server_seen: Shared = Default::default();
    let s = server_seen.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        Recorder::new(&s).on_made(|t| {
            t.write(b"hello ");
            t.write_sequence(&[b"wor", b"ld"]);
            t.lose_connection();
        })
    })
    .unwrap();
    let client_seen: Shared = Default::default();
    let proto = Recorder::new(&client_seen).on_lost(stop);
    reactor::connect_protocol("127.0.0.1", port.address().port(), proto)
        .add_errback(|f| panic!("{f}"));
    run_bounded(Duration::from_secs(10));
    let c = client_seen.borrow();
    assert!(c.made);
    assert_eq!(c.data, b"hello world");
    assert!(c.lost.as_ref().unwrap().check::<ConnectionDone>());
    assert!(server_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
}

#[test]
fn lose_connection_flushes_a_large_buffer_first() {
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(pattern).collect();
    let expected = big.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        let big = big.clone();
        Recorder::new(&Default::default()).on_made(move |t| {
            t.write(&big);
            assert!(
                t.write_buffer_size() > 0,
                "4 MiB should not fit in the kernel"
            );
            t.lose_connection();
            // Writes after lose_connection are ignored.
            t.write(b"ignored");
        })
    })
    .unwrap();
    let seen: Shared = Default::default();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&seen).on_lost(stop),
    );
    run_bounded(Duration::from_secs(20));
    let seen = seen.borrow();
    assert_eq!(seen.data.len(), expected.len());
    assert!(seen.data == expected);
    assert!(seen.lost.as_ref().unwrap().check::<ConnectionDone>());
}

#[test]
fn abort_connection_reports_connection_aborted() {
    let server_seen: Shared = Default::default();
    let s = server_seen.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        Recorder::new(&s).on_data(|t, _| t.abort_connection())
    })
    .unwrap();
    let client_seen: Shared = Default::default();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&client_seen)
            .on_made(|t| t.write(b"x"))
            .on_lost(stop),
    );
    run_bounded(Duration::from_secs(10));
    assert!(server_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionAborted>());
    assert!(client_seen.borrow().lost.is_some());
}

#[test]
fn refused_connection_is_a_typed_readable_error() {
    // Bind and close a port so nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    reactor::connect_protocol("127.0.0.1", addr.port(), Recorder::new(&Default::default()))
        .add_both(move |res| {
            *r.borrow_mut() = Some(res.map(|_| ()));
            stop();
        });
    run_bounded(Duration::from_secs(10));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    match failure.downcast_ref::<ConnectError>() {
        Some(ConnectError::Refused { addr: a }) => assert_eq!(*a, addr),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(failure.to_string(), format!("connection refused: {addr}"));
}

#[test]
fn connect_timeout_is_a_typed_error() {
    let port = echo_server(64 * 1024, Default::default());
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    // A zero timeout fires before the connection's first readiness event.
    reactor::connect_protocol_with(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&Default::default()),
        ConnectOptions {
            timeout: Some(Duration::ZERO),
            ..ConnectOptions::default()
        },
    )
    .add_both(move |res| {
        *r.borrow_mut() = Some(res.map(|_| ()));
        stop();
    });
    run_bounded(Duration::from_secs(10));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<ConnectError>(),
            Some(ConnectError::TimedOut { .. })
        ),
        "{failure:?}"
    );
    assert!(failure.to_string().contains("timed out"), "{failure}");
    port.stop_listening();
}

#[test]
fn cancelling_connect_protocol_abandons_the_attempt() {
    let port = echo_server(64 * 1024, Default::default());
    let made = Rc::new(Cell::new(false));
    let m = made.clone();
    let d = reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&Default::default()).on_made(move |_| m.set(true)),
    );
    d.cancel();
    let failure = d.result().unwrap().unwrap_err();
    assert!(failure.check::<CancelledError>());
    reactor::call_later(Duration::from_millis(50), stop);
    run_bounded(Duration::from_secs(10));
    assert!(!made.get(), "a cancelled attempt must not connect");
    port.stop_listening();
}

#[test]
fn peer_and_host_are_the_two_ends() {
    let server_ends = Rc::new(RefCell::new(None));
    let s = server_ends.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        let s = s.clone();
        Recorder::new(&Default::default()).on_made(move |t| {
            *s.borrow_mut() = Some((t.peer().unwrap(), t.host().unwrap()));
            t.lose_connection();
        })
    })
    .unwrap();
    let client_ends = Rc::new(RefCell::new(None));
    let c = client_ends.clone();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&Default::default()).on_lost(stop),
    )
    .add_callback(move |t| {
        assert!(t.set_tcp_nodelay(true).is_ok());
        *c.borrow_mut() = Some((t.peer().unwrap(), t.host().unwrap()));
    });
    run_bounded(Duration::from_secs(10));
    let (server_peer, server_host) = server_ends.borrow().unwrap();
    let (client_peer, client_host) = client_ends.borrow().unwrap();
    assert_eq!(server_host, port.address());
    assert_eq!(client_peer, port.address());
    assert_eq!(server_peer, client_host);
}

#[test]
fn stop_listening_refuses_new_connections() {
    let port = echo_server(64 * 1024, Default::default());
    assert!(port.listening());
    port.stop_listening();
    assert!(!port.listening());
    port.stop_listening(); // twice is fine
    let failed = Rc::new(Cell::new(false));
    let f = failed.clone();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&Default::default()),
    )
    .add_both(move |r| {
        f.set(r.is_err());
        stop();
    });
    run_bounded(Duration::from_secs(10));
    assert!(failed.get());
}

#[test]
fn cannot_listen_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // mio sets SO_REUSEADDR, which still refuses a port with a listener.
    let err =
        reactor::listen_tcp(addr, |_p: SocketAddr| Recorder::new(&Default::default())).unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// A factory recording the client-side hooks.
struct ClientFactory {
    failed: Rc<RefCell<Option<Failure>>>,
    lost: Rc<RefCell<Option<Failure>>>,
    seen: Shared,
}

impl Factory for ClientFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(
            Recorder::new(&self.seen).on_made(|t| t.lose_connection()),
        ))
    }
    fn client_connection_failed(&mut self, reason: Failure) {
        *self.failed.borrow_mut() = Some(reason);
        stop();
    }
    fn client_connection_lost(&mut self, reason: Failure) {
        assert!(
            self.seen.borrow().lost.is_some(),
            "protocol first, then factory"
        );
        *self.lost.borrow_mut() = Some(reason);
        stop();
    }
}

#[test]
fn connect_tcp_calls_the_factory_hooks() {
    let port = echo_server(64 * 1024, Default::default());
    let factory = ClientFactory {
        failed: Default::default(),
        lost: Default::default(),
        seen: Default::default(),
    };
    let (failed, lost) = (factory.failed.clone(), factory.lost.clone());
    let connector = reactor::connect_tcp("127.0.0.1", port.address().port(), factory);
    assert_eq!(
        connector.destination(),
        ("127.0.0.1", port.address().port())
    );
    run_bounded(Duration::from_secs(10));
    assert!(failed.borrow().is_none());
    assert!(lost.borrow().as_ref().unwrap().check::<ConnectionDone>());
    port.stop_listening();

    // And a refused one.
    let factory = ClientFactory {
        failed: Default::default(),
        lost: Default::default(),
        seen: Default::default(),
    };
    let failed = factory.failed.clone();
    reactor::connect_tcp("127.0.0.1", port.address().port(), factory);
    run_bounded(Duration::from_secs(10));
    let failure = failed.borrow_mut().take().unwrap();
    assert!(matches!(
        failure.downcast_ref::<ConnectError>(),
        Some(ConnectError::Refused { .. })
    ));
}

#[test]
fn a_panicking_protocol_is_disconnected_and_the_reactor_goes_on() {
    let server_seen: Shared = Default::default();
    let s = server_seen.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        Recorder::new(&s).on_data(|_, _| panic!("bad input"))
    })
    .unwrap();
    let client_seen: Shared = Default::default();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Recorder::new(&client_seen)
            .on_made(|t| t.write(b"boom"))
            .on_lost(stop),
    );
    run_bounded(Duration::from_secs(10));
    let lost = server_seen.borrow_mut().lost.take().unwrap();
    let panicked = lost.downcast_ref::<Panicked>().expect("a Panicked reason");
    assert!(panicked.message().contains("bad input"));
    assert!(client_seen.borrow().lost.is_some());
}

#[test]
fn io_callbacks_may_stop_connect_cancel_timers_and_add_readers() {
    let port = echo_server(64 * 1024, Default::default());
    let p = port.address().port();
    let log: Rc<RefCell<Vec<&str>>> = Default::default();
    let stop_when_done = {
        let log = log.clone();
        move || {
            let log = log.borrow();
            if log.contains(&"readable") && log.contains(&"second connected") {
                stop();
            }
        }
    };
    let l = log.clone();
    let timer = reactor::call_later(Duration::from_secs(5), || panic!("cancelled timer ran"));
    let timer = RefCell::new(Some(timer));
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let b = Rc::new(b);
    let proto = Recorder::new(&Default::default())
        .on_made(|t| t.write(b"ping"))
        .on_data(move |t, _| {
            // From inside an I/O callback: cancel a timer, start another
            // connection, add a reader, close this connection.
            if let Some(timer) = timer.borrow_mut().take() {
                timer.cancel().unwrap();
            }
            let (l2, done2) = (l.clone(), stop_when_done.clone());
            reactor::connect_protocol("127.0.0.1", p, Recorder::new(&Default::default()))
                .add_callback(move |t2| {
                    l2.borrow_mut().push("second connected");
                    t2.lose_connection();
                    done2();
                });
            let (l3, done3) = (l.clone(), stop_when_done.clone());
            let reader = b.clone();
            reactor::add_reader(&*b, move || {
                l3.borrow_mut().push("readable");
                reactor::remove_reader(&*reader);
                done3();
            })
            .unwrap();
            t.lose_connection();
            l.borrow_mut().push("echoed");
        });
    reactor::connect_protocol("127.0.0.1", p, proto);
    use std::io::Write;
    (&a).write_all(b"!").unwrap();
    run_bounded(Duration::from_secs(10));
    let log = log.borrow();
    assert_eq!(log[0], "echoed");
    assert!(log.contains(&"readable"));
    assert!(log.contains(&"second connected"));
    port.stop_listening();
}

#[test]
fn ipv6_loopback_works_when_available() {
    let Ok(port) = reactor::listen_tcp("[::1]:0", |_peer: SocketAddr| {
        Recorder::new(&Default::default()).on_made(|t| {
            t.write(b"v6");
            t.lose_connection();
        })
    }) else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    let seen: Shared = Default::default();
    reactor::connect_protocol(
        "[::1]",
        port.address().port(),
        Recorder::new(&seen).on_lost(stop),
    );
    run_bounded(Duration::from_secs(10));
    assert_eq!(seen.borrow().data, b"v6");
    port.stop_listening();
}

#[test]
fn a_shared_protocol_is_reachable_from_outside() {
    let port = echo_server(64 * 1024, Default::default());
    let seen: Shared = Default::default();
    let shared = Rc::new(RefCell::new(Recorder::new(&seen)));
    let outside = shared.clone();
    reactor::connect_protocol("127.0.0.1", port.address().port(), shared).add_callback(move |_t| {
        let t = outside.borrow().transport.clone().unwrap();
        t.write(b"via the Rc");
        reactor::call_later(Duration::from_millis(50), move || t.lose_connection());
    });
    let s = seen.clone();
    reactor::call_later(Duration::from_millis(10), move || {
        let _ = &s;
    });
    // Stop once the echo came back and the connection closed.
    let s2 = seen.clone();
    let poll = Rc::new(RefCell::new(None::<Box<dyn Fn()>>));
    let p2 = poll.clone();
    *poll.borrow_mut() = Some(Box::new(move || {
        if s2.borrow().lost.is_some() {
            stop();
        } else {
            let p3 = p2.clone();
            reactor::call_later(Duration::from_millis(5), move || {
                if let Some(f) = p3.borrow().as_ref() {
                    f()
                }
            });
        }
    }));
    if let Some(f) = poll.borrow().as_ref() {
        f()
    }
    run_bounded(Duration::from_secs(10));
    *poll.borrow_mut() = None;
    assert_eq!(seen.borrow().data, b"via the Rc");
    port.stop_listening();
}

#[test]
fn an_unknown_host_fails_with_the_lookup_error() {
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    reactor::connect_protocol(
        "no-such-host.invalid",
        80,
        Recorder::new(&Default::default()),
    )
    .add_both(move |res| {
        *r.borrow_mut() = Some(res.map(|_| ()));
        stop();
    });
    run_bounded(Duration::from_secs(30));
    let failure = result.borrow_mut().take().unwrap().unwrap_err();
    assert!(
        failure.check::<twined::threads::ResolveError>(),
        "{failure:?}"
    );
    assert!(
        failure.to_string().contains("no-such-host.invalid"),
        "{failure}"
    );
}

#[test]
fn a_host_name_connects_through_the_pool() {
    let port = echo_server(64 * 1024, Default::default());
    let seen: Shared = Default::default();
    reactor::connect_protocol(
        "localhost",
        port.address().port(),
        Recorder::new(&seen)
            .on_made(|t| t.write(b"named"))
            .on_data(|t, _| t.lose_connection())
            .on_lost(stop),
    )
    .add_errback(|f| panic!("{f}"));
    run_bounded(Duration::from_secs(20));
    // localhost may resolve to ::1 first, where nothing listens: the next
    // address is tried.
    assert_eq!(seen.borrow().data, b"named");
    port.stop_listening();
}

/// Writes the number of the thread whose listener accepted, then closes.
struct Announce(u8);

impl Protocol for Announce {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&[self.0]);
        transport.lose_connection();
    }
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn reuse_port_spreads_one_ports_connections_over_two_reactor_threads() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use twined::reactor::ListenOptions;
    use twined::task::ReactorThreads;

    let options = ListenOptions {
        reuse_port: true,
        ..Default::default()
    };
    // The port thread 0 got, and how many threads listen on it.
    let port: Arc<Mutex<(Option<SocketAddr>, usize)>> = Arc::default();
    let published = port.clone();
    let threads = ReactorThreads::spawn(2, move |i| {
        let (d, trigger) = twined::defer::Deferred::<()>::new();
        // Runs until the test stops the threads.
        std::mem::forget(trigger);
        let addr = if i == 0 {
            "127.0.0.1:0".parse().unwrap()
        } else {
            // Thread 1 binds the port thread 0 got (at most 5 s of waiting).
            let mut waited = 0;
            loop {
                if let (Some(addr), _) = *published.lock().unwrap() {
                    break addr;
                }
                assert!(waited < 500, "thread 0 never listened");
                waited += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let id = i as u8;
        let listening =
            reactor::listen_tcp_with(addr, move |_: SocketAddr| Announce(id), options.clone())
                .unwrap();
        let mut published = published.lock().unwrap();
        published.0 = Some(listening.address());
        published.1 += 1;
        d
    })
    .unwrap();
    // Both threads listen before the first connection (at most 5 s).
    let mut waited = 0;
    let addr = loop {
        if let (Some(addr), 2) = *port.lock().unwrap() {
            break addr;
        }
        assert!(waited < 500, "the threads never listened");
        waited += 1;
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut seen = [0usize; 2];
    for _ in 0..200 {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut id = Vec::new();
        stream.read_to_end(&mut id).unwrap();
        seen[usize::from(id[0])] += 1;
    }
    threads.stop();
    let _ = threads.join();
    // The kernel hashes each connection to one of the two sockets.
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    assert_eq!(seen[0] + seen[1], 200);
}

#[test]
fn a_port_in_use_without_reuse_port_cannot_be_listened_on() {
    use twined::reactor::ListenOptions;

    let first = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Announce(0)).unwrap();
    let reuse = ListenOptions {
        reuse_port: true,
        ..Default::default()
    };
    // Neither a plain socket nor a SO_REUSEPORT one shares a port whose
    // first socket did not ask for sharing.
    for options in [ListenOptions::default(), reuse] {
        let err = reactor::listen_tcp_with(first.address(), |_: SocketAddr| Announce(1), options)
            .unwrap_err();
        assert_eq!(
            std::error::Error::source(&err)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::AddrInUse),
            "{err}"
        );
    }
    first.stop_listening();
}

/// Several writes in one callback reach the peer whole and in order, and a
/// write made just before `reactor::stop()` still goes out (the loop's last
/// flush): the peer is a plain blocking socket on another thread.
#[test]
fn coalesced_writes_and_writes_before_stop_reach_the_peer() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_peer: SocketAddr| {
        Recorder::new(&Default::default()).on_data(|t, data| {
            if data.contains(&b'\n') {
                t.write(b"one ");
                t.write_sequence(&[b"two ", b"three\n"]);
                // Stopping in the same callback: the writes are not lost.
                stop();
            }
        })
    })
    .unwrap();
    let addr = port.address();
    let peer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"go\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    run_bounded(Duration::from_secs(10));
    assert_eq!(peer.join().unwrap(), b"one two three\n");
}

/// A server that answers and closes while the peer's further input sits
/// unread (an HTTP error reply to a request whose body it never reads):
/// the close drains that input first, so the peer gets the whole reply and
/// an orderly end, not a reset that destroys the reply.
#[test]
fn lose_connection_with_unread_input_still_delivers_the_reply() {
    // More than the kernel buffers hold: the last of it is still queued
    // in the server's kernel when the server closes.
    let reply: Vec<u8> = (0..8 << 20).map(pattern).collect();
    let expected = reply.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| {
        let reply = reply.clone();
        let mut answered = false;
        Recorder::new(&Default::default()).on_data(move |t, _data| {
            if !std::mem::replace(&mut answered, true) {
                // Read no further: the rest of the peer's upload stays unread.
                t.pause_producing();
                t.write(&reply);
                t.lose_connection();
            }
        })
    })
    .unwrap();
    let addr = port.address();
    let peer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The start of an upload, then the rest, which the server will not
        // read, sent before reading anything.
        s.write_all(b"start").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(&vec![b'u'; 32 * 1024]).unwrap();
        // Read slowly: the server has closed long before.
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        let end = s.read_to_end(&mut got);
        (got, end.map(|_| ()).map_err(|e| e.kind()))
    });
    let lost = Rc::new(Cell::new(false));
    let l = lost.clone();
    reactor::call_later(Duration::from_millis(400), move || {
        l.set(true);
        stop();
    });
    run_bounded(Duration::from_secs(10));
    assert!(lost.get());
    let (got, end) = peer.join().unwrap();
    assert_eq!(
        end,
        Ok(()),
        "the peer saw a reset after {} bytes",
        got.len()
    );
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
}
