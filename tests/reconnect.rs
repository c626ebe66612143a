//! Staying connected: ReconnectingClientFactory and ClientService against a
//! server that goes away and comes back (in memory, on a Clock, so no test
//! sleeps), a server that never comes back, and one run over loopback TCP.
//! Ports of Twisted's `twisted.test.test_factories.ReconnectingFactoryTests`
//! and `twisted.application.test.test_internet.ClientServiceTests`.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use support::run_bounded;
use twined::application::{BackoffPolicy, ClientService, RetryPolicy};
use twined::defer::{CancelledError, Failure};
use twined::protocol::reconnect::{ReconnectError, Reconnecting, ReconnectingClientFactory};
use twined::protocol::{ConnectionDone, Factory, Protocol, Transport};
use twined::reactor::{self, ConnectError};
use twined::testing::MemoryReactor;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Records what the wrapped factory is told.
#[derive(Clone, Default, Debug)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

#[derive(Debug)]
struct Client {
    log: Log,
}

impl Protocol for Client {
    fn connection_made(&mut self, _t: Transport) {
        self.log.0.borrow_mut().push("made".into());
    }
    fn data_received(&mut self, _: &[u8]) {}
}

struct ClientFactory {
    log: Log,
}

impl Factory for ClientFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Client {
            log: self.log.clone(),
        }))
    }
    fn client_connection_failed(&mut self, _reason: Failure) {
        self.log.0.borrow_mut().push("failed".into());
    }
    fn client_connection_lost(&mut self, _reason: Failure) {
        self.log.0.borrow_mut().push("lost".into());
    }
}

/// A reconnecting client on a MemoryReactor with exact waits: 1 s, then
/// doubling up to 10 s.
fn reconnecting(reactor: &MemoryReactor, log: &Log, max_retries: Option<u32>) -> Reconnecting {
    let r = reactor.clone();
    ReconnectingClientFactory::new(ClientFactory { log: log.clone() })
        .initial_delay(secs(1))
        .factor(2.0)
        .max_delay(secs(10))
        .jitter(0.0)
        .max_retries(max_retries)
        .clock(reactor.clone())
        .connect_with(move |factory| {
            r.connect_tcp_boxed("127.0.0.1", 7000, factory);
        })
}

fn refused() -> ConnectError {
    ConnectError::Refused {
        addr: "127.0.0.1:7000".parse().unwrap(),
    }
}

#[test]
fn waits_grow_by_the_factor_up_to_the_max_then_reset_on_success() {
    let reactor = MemoryReactor::new();
    let log = Log::default();
    let client = reconnecting(&reactor, &log, None);
    assert_eq!(reactor.tcp_clients().len(), 1, "connects at once");
    // The server is down: waits of 2, 4, 8, 10, 10 s.
    for (i, wait) in [2, 4, 8, 10, 10].into_iter().enumerate() {
        reactor.tcp_clients()[i].fail(refused());
        assert!(client.is_waiting());
        assert_eq!(client.delay(), secs(wait));
        reactor
            .clock()
            .advance(secs(wait) - Duration::from_millis(1));
        assert_eq!(reactor.tcp_clients().len(), i + 1, "not before the wait");
        reactor.clock().advance(Duration::from_millis(1));
        assert_eq!(reactor.tcp_clients().len(), i + 2);
    }
    assert_eq!(client.retries(), 5);
    // The server is back.
    let st = reactor.tcp_clients()[5].connect().unwrap();
    assert!(client.is_connected());
    assert_eq!(client.retries(), 0);
    assert_eq!(client.delay(), secs(1));
    // It goes away again: the first wait is short again.
    st.close(ConnectionDone);
    assert_eq!(client.delay(), secs(2));
    reactor.clock().advance(secs(2));
    reactor.tcp_clients()[6].connect().unwrap();
    assert_eq!(
        log.take(),
        ["failed", "failed", "failed", "failed", "failed", "made", "lost", "made"]
            .map(String::from)
    );
}

// The server never comes back: after max_retries it gives up with a Failure.
#[test]
fn gives_up_after_max_retries_with_a_failure() {
    let reactor = MemoryReactor::new();
    let log = Log::default();
    let client = reconnecting(&reactor, &log, Some(3));
    let stopped = client.when_stopped();
    for i in 0..4 {
        reactor.tcp_clients()[i].fail(refused());
        reactor.clock().advance(secs(60));
    }
    assert_eq!(
        reactor.tcp_clients().len(),
        4,
        "the first try and 3 retries"
    );
    assert!(!client.continue_trying());
    let failure = stopped.result().unwrap().unwrap_err();
    let ReconnectError::RetriesExhausted { retries, last } =
        failure.downcast_ref::<ReconnectError>().unwrap()
    else {
        panic!("another ReconnectError: {failure}");
    };
    assert_eq!(*retries, 3);
    assert!(last.check::<ConnectError>());
    assert!(failure
        .to_string()
        .contains("gave up reconnecting after 3 retries"));
    assert!(std::error::Error::source(failure.error()).is_some());
    // A late when_stopped gets the same failure.
    assert!(client
        .when_stopped()
        .result()
        .unwrap()
        .unwrap_err()
        .check::<ReconnectError>());
    assert_eq!(reactor.clock().pending(), 0);
}

#[test]
fn max_retries_of_zero_gives_up_after_the_first_attempt() {
    let reactor = MemoryReactor::new();
    let client = reconnecting(&reactor, &Log::default(), Some(0));
    reactor.tcp_clients()[0].fail(refused());
    assert!(!client.continue_trying());
    assert_eq!(reactor.clock().pending(), 0);
}

// Ports ReconnectingFactoryTests.test_stopTryingDoesNotReconnect.
#[test]
fn stop_trying_cancels_the_pending_retry() {
    let reactor = MemoryReactor::new();
    let client = reconnecting(&reactor, &Log::default(), None);
    let stopped = client.when_stopped();
    reactor.tcp_clients()[0].fail(refused());
    assert_eq!(reactor.clock().pending(), 1);
    client.stop_trying();
    assert_eq!(reactor.clock().pending(), 0);
    assert!(stopped.result().unwrap().is_ok());
    reactor.clock().advance(secs(3600));
    assert_eq!(reactor.tcp_clients().len(), 1);
}

// Ports ReconnectingFactoryTests.test_stopTryingWhenConnected: the open
// connection stays, but is not replaced once lost.
#[test]
fn stop_trying_while_connected_does_not_reconnect_after_the_loss() {
    let reactor = MemoryReactor::new();
    let log = Log::default();
    let client = reconnecting(&reactor, &log, None);
    let st = reactor.tcp_clients()[0].connect().unwrap();
    client.stop_trying();
    assert!(st.transport().connected());
    st.close(ConnectionDone);
    reactor.clock().advance(secs(3600));
    assert_eq!(reactor.tcp_clients().len(), 1);
    assert_eq!(log.take(), ["made", "lost"].map(String::from));
}

#[test]
fn an_attempt_in_flight_when_stopped_gets_no_protocol() {
    let reactor = MemoryReactor::new();
    let log = Log::default();
    let client = reconnecting(&reactor, &log, None);
    client.stop_trying();
    assert!(reactor.tcp_clients()[0].connect().is_none());
    assert!(log.take().is_empty());
}

#[test]
fn reset_delay_by_hand() {
    let reactor = MemoryReactor::new();
    let client = reconnecting(&reactor, &Log::default(), None);
    reactor.tcp_clients()[0].fail(refused());
    reactor.clock().advance(secs(2));
    reactor.tcp_clients()[1].fail(refused());
    assert_eq!(client.delay(), secs(4));
    client.reset_delay();
    assert_eq!((client.delay(), client.retries()), (secs(1), 0));
}

#[test]
fn jitter_spreads_the_waits_around_the_delay() {
    let reactor = MemoryReactor::new();
    let r = reactor.clone();
    let client = ReconnectingClientFactory::new(ClientFactory {
        log: Log::default(),
    })
    .initial_delay(secs(100))
    .factor(1.0)
    .jitter(0.1)
    .clock(reactor.clone())
    .connect_with(move |f| {
        r.connect_tcp_boxed("h", 1, f);
    });
    let mut waits = Vec::new();
    for i in 0..20 {
        client.reset_delay();
        reactor.tcp_clients()[i].fail(refused());
        waits.push(client.delay().as_secs_f64());
        reactor.clock().advance(secs(1000));
    }
    assert!(waits.iter().all(|w| *w >= 0.0 && (50.0..150.0).contains(w)));
    assert!(
        waits.iter().any(|w| (*w - 100.0).abs() > 1e-9),
        "some spread"
    );
}

// ClientService, in memory.

type Live = Rc<RefCell<Client>>;

fn service(reactor: &MemoryReactor, log: &Log) -> ClientService<Live> {
    let r = reactor.clone();
    let log = log.clone();
    ClientService::new(move || {
        let p = Rc::new(RefCell::new(Client { log: log.clone() }));
        r.connect_protocol("127.0.0.1", 7000, p.clone())
            .add_callback(move |t| (p, t))
    })
    .retry_policy(|n: u32| secs(u64::from(n)))
    .clock(reactor.clone())
}

// Ports ClientServiceTests.test_startService and test_whenConnectedLater.
#[test]
fn client_service_connects_and_reconnects_after_a_loss() {
    let reactor = MemoryReactor::new();
    let log = Log::default();
    let svc = service(&reactor, &log);
    assert!(reactor.tcp_clients().is_empty(), "nothing before start");
    svc.start_service();
    svc.start_service();
    assert_eq!(reactor.tcp_clients().len(), 1, "started once");
    let first = svc.when_connected();
    assert!(!first.called());
    let st = reactor.tcp_clients()[0].connect().unwrap();
    let p1 = first.result().unwrap().unwrap();
    // Connected: at once.
    let again = svc.when_connected().result().unwrap().unwrap();
    assert!(Rc::ptr_eq(&p1, &again));
    // The server goes away; the service waits policy(1) = 1 s.
    st.close(ConnectionDone);
    let next = svc.when_connected();
    reactor.clock().advance(Duration::from_millis(999));
    assert_eq!(reactor.tcp_clients().len(), 1);
    reactor.clock().advance(Duration::from_millis(1));
    assert_eq!(reactor.tcp_clients().len(), 2);
    // Down for two attempts (the waits grow: 2 s, then 3 s), then back.
    reactor.tcp_clients()[1].fail(refused());
    reactor.clock().advance(secs(2));
    reactor.tcp_clients()[2].fail(refused());
    reactor.clock().advance(secs(2));
    assert_eq!(reactor.tcp_clients().len(), 3, "the third wait is 3 s");
    reactor.clock().advance(secs(1));
    reactor.tcp_clients()[3].connect().unwrap();
    let p2 = next.result().unwrap().unwrap();
    assert!(!Rc::ptr_eq(&p1, &p2));
    assert_eq!(log.take(), ["made", "made"].map(String::from));
}

// Ports ClientServiceTests.test_whenConnectedFails (failAfterFailures).
#[test]
fn when_connected_failing_after_n_failures() {
    let reactor = MemoryReactor::new();
    let svc = service(&reactor, &Log::default());
    svc.start_service();
    let patient = svc.when_connected();
    let impatient = svc.when_connected_failing_after(2);
    reactor.tcp_clients()[0].fail(refused());
    assert!(!impatient.called());
    reactor.clock().advance(secs(1));
    reactor.tcp_clients()[1].fail(refused());
    assert!(impatient
        .result()
        .unwrap()
        .unwrap_err()
        .check::<ConnectError>());
    assert!(!patient.called(), "waits on");
    reactor.clock().advance(secs(2));
    reactor.tcp_clients()[2].connect().unwrap();
    assert!(patient.result().unwrap().is_ok());
}

#[test]
fn failing_after_counts_the_attempts_made_after_the_call() {
    let reactor = MemoryReactor::new();
    let svc = service(&reactor, &Log::default());
    svc.start_service();
    let st = reactor.tcp_clients()[0].connect().unwrap();
    // Lost: the service waits policy(1) before its next attempt.
    st.close(ConnectionDone);
    let d = svc.when_connected_failing_after(2);
    reactor.clock().advance(secs(1));
    reactor.tcp_clients()[1].fail(refused());
    assert!(!d.called(), "one failure is not two");
    reactor.clock().advance(secs(2));
    reactor.tcp_clients()[2].fail(refused());
    assert!(d.result().unwrap().unwrap_err().check::<ConnectError>());
}

// Ports ClientServiceTests.test_retryCancelled (stopService while waiting).
#[test]
fn stop_service_while_waiting_cancels_the_retry() {
    let reactor = MemoryReactor::new();
    let svc = service(&reactor, &Log::default());
    svc.start_service();
    let waiting = svc.when_connected();
    reactor.tcp_clients()[0].fail(refused());
    let stopped = svc.stop_service();
    assert_eq!(reactor.clock().pending(), 0);
    assert!(stopped.result().unwrap().is_ok());
    assert!(waiting
        .result()
        .unwrap()
        .unwrap_err()
        .check::<CancelledError>());
    assert!(!svc.running());
    assert!(svc
        .when_connected()
        .result()
        .unwrap()
        .unwrap_err()
        .check::<CancelledError>());
}

// Ports ClientServiceTests.test_stopServiceWhileConnecting.
#[test]
fn stop_service_while_connecting_cancels_the_attempt() {
    let reactor = MemoryReactor::new();
    let svc = service(&reactor, &Log::default());
    svc.start_service();
    let stopped = svc.stop_service();
    assert!(stopped.result().unwrap().is_ok());
    // The attempt connecting late is dropped; nothing reconnects.
    let _ = reactor.tcp_clients()[0].connect();
    reactor.clock().advance(secs(100));
    assert_eq!(reactor.tcp_clients().len(), 1);
}

// Ports ClientServiceTests.test_stopServiceWhileConnected (the Deferred fires
// once the connection is closed) and test_stopServiceOnStoppedService.
#[test]
fn stop_service_while_connected_closes_the_connection() {
    let reactor = MemoryReactor::new();
    let svc = service(&reactor, &Log::default());
    svc.start_service();
    let st = reactor.tcp_clients()[0].connect().unwrap();
    let stopped = svc.stop_service();
    assert!(st.disconnecting());
    assert!(stopped.result().unwrap().is_ok());
    reactor.clock().advance(secs(100));
    assert_eq!(reactor.tcp_clients().len(), 1, "no reconnect after stop");
    assert!(svc.stop_service().result().unwrap().is_ok());
    // Started again, it connects again.
    svc.start_service();
    assert_eq!(reactor.tcp_clients().len(), 2);
}

#[test]
fn backoff_policy_is_twisteds() {
    let policy = BackoffPolicy {
        jitter: Duration::ZERO,
        ..BackoffPolicy::default()
    };
    assert_eq!(policy.delay(0), secs(1));
    assert_eq!(policy.delay(1), Duration::from_millis(1500));
    assert_eq!(policy.delay(2), Duration::from_millis(2250));
    assert_eq!(policy.delay(50), secs(60));
    assert_eq!(policy.delay(u32::MAX), secs(60));
    let jittered = BackoffPolicy::default().delay(1);
    assert!(jittered >= Duration::from_millis(1500) && jittered < Duration::from_millis(2500));
}

/// A server that greets each connection and keeps its transport.
struct Greeter(Rc<RefCell<Vec<Transport>>>);
impl Protocol for Greeter {
    fn connection_made(&mut self, t: Transport) {
        t.write(b"hello\n");
        self.0.borrow_mut().push(t);
    }
    fn data_received(&mut self, _: &[u8]) {}
}

#[derive(Default, Debug)]
struct Reader {
    transport: Option<Transport>,
    got: Vec<u8>,
}
impl Protocol for Reader {
    fn connection_made(&mut self, t: Transport) {
        self.transport = Some(t);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
    }
}

/// Over loopback TCP: the server goes away (stops listening, drops its
/// connection, so attempts are refused), then listens again on the same
/// port; ClientService follows.
#[test]
fn client_service_over_tcp_follows_a_server_restart() {
    let conns = Rc::new(RefCell::new(Vec::new()));
    let c = conns.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| Greeter(c.clone())).unwrap();
    let addr = port.address();
    let svc = ClientService::tcp("127.0.0.1", addr.port(), Reader::default)
        .retry_policy(|_| Duration::from_millis(20));
    svc.start_service();
    let refusals = Rc::new(RefCell::new(0u32));
    let r = refusals.clone();
    let svc2 = svc.clone();
    svc.when_connected()
        .add_callback(move |first: Rc<RefCell<Reader>>| {
            let closed = first.borrow().transport.as_ref().unwrap().when_closed();
            // The server goes away.
            port.stop_listening();
            for t in conns.borrow_mut().drain(..) {
                t.abort_connection();
            }
            closed.add_callback(move |_reason: Failure| {
                let svc3 = svc2.clone();
                svc2.when_connected_failing_after(1)
                    .add_errback(move |failure| {
                        assert!(failure.check::<ConnectError>(), "{failure}");
                        *r.borrow_mut() += 1;
                        // The server comes back on the same port.
                        let conns = Rc::new(RefCell::new(Vec::new()));
                        let c = conns.clone();
                        let port =
                            reactor::listen_tcp(addr, move |_: SocketAddr| Greeter(c.clone()))
                                .unwrap();
                        svc3.when_connected()
                            .add_callback(move |second: Rc<RefCell<Reader>>| {
                                assert!(!Rc::ptr_eq(&first, &second));
                                svc3.stop_service().add_callback(move |()| {
                                    drop(conns);
                                    port.stop_listening();
                                    let _ = reactor::stop();
                                });
                            });
                        Rc::new(RefCell::new(Reader::default()))
                    });
            });
        });
    run_bounded(Duration::from_secs(20));
    assert_eq!(*refusals.borrow(), 1);
}

/// Over loopback TCP: ReconnectingClientFactory reconnects after the server
/// drops the connection, and stop_trying ends it.
#[test]
fn reconnecting_factory_over_tcp_reconnects_after_a_drop() {
    let conns = Rc::new(RefCell::new(Vec::new()));
    let c = conns.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| Greeter(c.clone())).unwrap();
    let log = Log::default();
    let client = ReconnectingClientFactory::new(ClientFactory { log: log.clone() })
        .initial_delay(Duration::from_millis(5))
        .factor(2.0)
        .jitter(0.0)
        .connect_tcp("127.0.0.1", port.address().port());
    // Drop the first connection once it is up; stop after the second.
    fn poll(conns: Rc<RefCell<Vec<Transport>>>, client: Reconnecting, seen: usize) {
        let now = conns.borrow().len();
        if now > seen {
            if now == 1 {
                conns.borrow()[0].abort_connection();
            } else {
                client.stop_trying();
                conns.borrow()[1].lose_connection();
                reactor::call_later(Duration::from_millis(20), || {
                    let _ = reactor::stop();
                });
                return;
            }
        }
        reactor::call_later(Duration::from_millis(2), move || poll(conns, client, now));
    }
    let (c, cl) = (conns.clone(), client.clone());
    reactor::call_when_running(move || poll(c, cl, 0));
    run_bounded(Duration::from_secs(10));
    port.stop_listening();
    assert_eq!(conns.borrow().len(), 2);
    assert!(!client.continue_trying());
    assert_eq!(
        log.take(),
        ["made", "lost", "made", "lost"].map(String::from)
    );
}
