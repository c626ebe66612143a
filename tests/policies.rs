//! `protocol::policies`: the idle Timeout (Twisted's `TimeoutMixin`) and the
//! connection-limiting factories, on a Clock and in memory, plus one run over
//! loopback TCP. Ports of Twisted's `twisted.test.test_policies`
//! (`TimeoutMixinTests`, `LimitTotalConnectionsFactoryTests`).

mod support;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use support::run_bounded;
use twined::defer::Failure;
use twined::protocol::policies::{
    LimitConnectionsByPeer, LimitTotalConnectionsFactory, Timeout, DEFAULT_MAX_PER_PEER,
};
use twined::protocol::{Protocol, Transport};
use twined::reactor;
use twined::task::Clock;
use twined::testing::{MemoryReactor, StringTransport};

/// Twisted's `TimeoutTester`: a 3 s timeout, reset on data, that records
/// the timeout instead of closing.
struct TimeoutTester {
    timeout: Timeout,
    timed_out: Rc<Cell<bool>>,
}

impl TimeoutTester {
    fn new(clock: &Clock) -> (TimeoutTester, Rc<Cell<bool>>) {
        let timed_out = Rc::new(Cell::new(false));
        (
            TimeoutTester {
                timeout: Timeout::on(clock.clone()),
                timed_out: timed_out.clone(),
            },
            timed_out,
        )
    }
}

impl Protocol for TimeoutTester {
    fn connection_made(&mut self, _t: Transport) {
        let flag = self.timed_out.clone();
        self.timeout.on_timeout(move || flag.set(true));
        self.timeout.set_timeout(Some(Duration::from_secs(3)));
    }
    fn data_received(&mut self, _data: &[u8]) {
        self.timeout.reset_timeout();
    }
    fn connection_lost(&mut self, _reason: Failure) {
        self.timeout.set_timeout(None);
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// Ports TimeoutMixinTests.test_timeout.
#[test]
fn timeout_fires_after_the_period() {
    let clock = Clock::new();
    let (proto, timed_out) = TimeoutTester::new(&clock);
    let st = StringTransport::new();
    st.make_connection(proto);
    clock.pump([secs(1.0), secs(1.0), secs(0.5)]);
    assert!(!timed_out.get());
    clock.advance(secs(0.5));
    assert!(timed_out.get());
}

// Ports TimeoutMixinTests.test_noTimeout.
#[test]
fn data_resets_the_timeout() {
    let clock = Clock::new();
    let (proto, timed_out) = TimeoutTester::new(&clock);
    let st = StringTransport::new();
    st.make_connection(proto);
    clock.pump([secs(1.0), secs(1.0), secs(0.5)]);
    st.receive(b"hello, world");
    clock.pump([secs(1.0), secs(1.0), secs(0.5)]);
    assert!(!timed_out.get());
    clock.advance(secs(0.5));
    assert!(timed_out.get());
}

// Ports TimeoutMixinTests.test_resetTimeout and test_cancelTimeout.
#[test]
fn set_timeout_changes_and_disarms() {
    let clock = Clock::new();
    let timeout = Timeout::on(clock.clone());
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    timeout.on_timeout(move || f.set(f.get() + 1));
    assert_eq!(timeout.set_timeout(Some(secs(1.0))), None);
    assert!(timeout.active());
    clock.advance(secs(0.9));
    // Shorter and later: re-armed from now.
    assert_eq!(timeout.set_timeout(Some(secs(2.0))), Some(secs(1.0)));
    clock.advance(secs(1.9));
    assert_eq!(fired.get(), 0);
    clock.advance(secs(0.1));
    assert_eq!(fired.get(), 1);
    assert_eq!(timeout.fired(), 1);
    assert!(!timeout.active());
    assert_eq!(timeout.period(), None, "fires once, then disarmed");
    // Cancel: nothing fires.
    timeout.set_timeout(Some(secs(1.0)));
    timeout.set_timeout(None);
    clock.advance(secs(10.0));
    assert_eq!(fired.get(), 1);
    assert_eq!(clock.pending(), 0);
    // Resetting a disarmed timeout does nothing.
    timeout.reset_timeout();
    assert_eq!(clock.pending(), 0);
}

// Ports TimeoutMixinTests.test_setTimeoutCancelAlreadyCancelled: disarming
// after it fired, or twice, is harmless.
#[test]
fn disarming_twice_or_after_firing_is_harmless() {
    let clock = Clock::new();
    let timeout = Timeout::on(clock.clone());
    timeout.set_timeout(Some(secs(1.0)));
    clock.advance(secs(1.0));
    assert_eq!(timeout.set_timeout(None), None);
    assert_eq!(timeout.set_timeout(None), None);
}

#[test]
fn the_default_timeout_action_loses_the_connection() {
    let clock = Clock::new();
    let timeout = Rc::new(Timeout::on(clock.clone()));
    let st = StringTransport::new();
    timeout.on_transport(st.transport());
    timeout.set_timeout(Some(secs(30.0)));
    clock.advance(secs(30.0));
    assert!(st.disconnecting());
}

#[test]
fn the_abort_action_closes_even_when_the_peer_does_not_read() {
    let clock = Clock::new();
    let timeout = Timeout::on(clock.clone());
    let st = StringTransport::new();
    timeout.on_transport_abort(st.transport());
    timeout.set_timeout(Some(secs(5.0)));
    clock.advance(secs(5.0));
    assert!(st.aborted());
    assert!(st.is_closed());
}

/// Over TCP: a peer that never reads and never writes is cut off by the
/// timeout even with unsent data buffered.
#[test]
fn an_idle_tcp_peer_that_ignores_us_is_aborted() {
    struct Stubborn(Timeout);
    impl Protocol for Stubborn {
        fn connection_made(&mut self, t: Transport) {
            // More than the peer's kernel buffers take: never drains.
            t.write(&vec![b'x'; 8 * 1024 * 1024]);
            self.0.on_transport_abort(t);
            self.0.set_timeout(Some(Duration::from_millis(50)));
        }
        fn data_received(&mut self, _: &[u8]) {
            self.0.reset_timeout();
        }
    }
    let port =
        reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| Stubborn(Timeout::new())).unwrap();
    // A raw client that connects and never reads.
    let client = std::net::TcpStream::connect(port.address()).unwrap();
    let lost = Rc::new(Cell::new(false));
    let got = Rc::new(Cell::new(0usize));
    let (l, g) = (lost.clone(), got.clone());
    fn poll(client: std::net::TcpStream, lost: Rc<Cell<bool>>, got: Rc<Cell<usize>>) {
        let mut buf = vec![0u8; 64 * 1024];
        client.set_nonblocking(true).unwrap();
        // Once aborted, the peer sees a reset (or the end, after draining
        // what arrived); until then, reads would block.
        loop {
            match std::io::Read::read(&mut &client, &mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Ok(n) => got.set(got.get() + n),
                Err(_) => {
                    reactor::call_later(Duration::from_millis(100), move || {
                        poll(client, lost, got)
                    });
                    return;
                }
            }
        }
        lost.set(true);
        let _ = reactor::stop();
    }
    reactor::call_later(Duration::from_millis(200), move || poll(client, l, g));
    run_bounded(Duration::from_secs(20));
    port.stop_listening();
    assert!(lost.get());
    assert!(got.get() < 8 * 1024 * 1024, "unsent data was discarded");
}

#[test]
fn a_timeout_may_rearm_itself_from_its_action() {
    let clock = Clock::new();
    let timeout = Rc::new(Timeout::on(clock.clone()));
    let weak = Rc::downgrade(&timeout);
    timeout.on_timeout(move || {
        if let Some(t) = weak.upgrade() {
            t.set_timeout(Some(secs(1.0)));
        }
    });
    timeout.set_timeout(Some(secs(1.0)));
    clock.advance(secs(1.0));
    clock.advance(secs(1.0));
    assert_eq!(timeout.fired(), 2);
    assert!(timeout.active());
}

#[test]
fn dropping_the_timeout_cancels_it() {
    let clock = Clock::new();
    let timeout = Timeout::on(clock.clone());
    timeout.set_timeout(Some(secs(1.0)));
    drop(timeout);
    assert_eq!(clock.pending(), 0);
}

struct Quiet;
impl Protocol for Quiet {
    fn data_received(&mut self, _: &[u8]) {}
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// Ports LimitTotalConnectionsFactoryTests.testConnectionCounting and
// testConnectionLimiting, in memory.
#[test]
fn total_limit_refuses_past_the_limit_and_counts_closes() {
    let reactor = MemoryReactor::new();
    let factory = LimitTotalConnectionsFactory::new(|_: SocketAddr| Quiet, 2);
    let counts = factory.counts();
    let port = reactor.listen_tcp(peer("127.0.0.1:1"), factory);
    let a = port.accept(peer("10.0.0.1:1")).unwrap();
    let b = port.accept(peer("10.0.0.2:1")).unwrap();
    assert_eq!(counts.total(), 2);
    assert!(port.accept(peer("10.0.0.3:1")).is_none());
    assert_eq!(counts.refused(), 1);
    a.transport().abort_connection();
    b.transport().lose_connection();
    assert_eq!(counts.total(), 0);
    // The connection lives as long as its transport is held.
    let c = port.accept(peer("10.0.0.3:1")).unwrap();
    assert_eq!(counts.total(), 1);
    drop(c);
    assert_eq!(counts.total(), 0);
}

#[test]
fn a_limit_of_zero_refuses_every_connection() {
    let reactor = MemoryReactor::new();
    let port = reactor.listen_tcp(
        peer("127.0.0.1:1"),
        LimitTotalConnectionsFactory::new(|_: SocketAddr| Quiet, 0),
    );
    assert!(port.accept(peer("10.0.0.1:1")).is_none());
}

#[test]
fn per_peer_limit_counts_each_address_apart() {
    let reactor = MemoryReactor::new();
    let factory = LimitConnectionsByPeer::new(|_: SocketAddr| Quiet, DEFAULT_MAX_PER_PEER);
    let counts = factory.counts();
    let port = reactor.listen_tcp(peer("127.0.0.1:1"), factory);
    let mut open: Vec<StringTransport> = (0..5)
        .map(|i| {
            port.accept(peer(&format!("10.0.0.1:{}", 1000 + i)))
                .unwrap()
        })
        .collect();
    assert!(
        port.accept(peer("10.0.0.1:2000")).is_none(),
        "sixth from one peer"
    );
    let _other = port.accept(peer("10.0.0.2:2000")).expect("another peer");
    assert_eq!(counts.from_peer("10.0.0.1".parse().unwrap()), 5);
    assert_eq!(counts.total(), 6);
    open.pop().unwrap().transport().lose_connection();
    assert!(port.accept(peer("10.0.0.1:2001")).is_some());
}

#[test]
fn a_refusing_inner_factory_is_not_counted() {
    let reactor = MemoryReactor::new();
    struct Refuse;
    impl twined::protocol::Factory for Refuse {
        fn build_protocol(&mut self, _: SocketAddr) -> Option<Box<dyn Protocol>> {
            None
        }
    }
    let factory = LimitTotalConnectionsFactory::new(Refuse, 1);
    let counts = factory.counts();
    let port = reactor.listen_tcp(peer("127.0.0.1:1"), factory);
    assert!(port.accept(peer("10.0.0.1:1")).is_none());
    assert_eq!(counts.total(), 0);
    assert_eq!(counts.refused(), 0);
}

/// Over TCP: the second of two simultaneous connections is closed at once;
/// after the first closes, a third is served.
#[test]
fn total_limit_over_tcp() {
    let factory = LimitTotalConnectionsFactory::new(
        |_: SocketAddr| {
            struct Greeter;
            impl Protocol for Greeter {
                fn connection_made(&mut self, t: Transport) {
                    t.write(b"welcome");
                }
                fn data_received(&mut self, _: &[u8]) {}
            }
            Greeter
        },
        1,
    );
    let counts = factory.counts();
    let port = reactor::listen_tcp("127.0.0.1:0", factory).unwrap();
    let addr = port.address();

    #[derive(Default)]
    struct Got(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Got {
        fn data_received(&mut self, data: &[u8]) {
            self.0.borrow_mut().extend_from_slice(data);
        }
    }
    let first = Rc::new(RefCell::new(Vec::new()));
    let second = Rc::new(RefCell::new(Vec::new()));
    let (f, s) = (first.clone(), second.clone());
    let port2 = port.clone();
    let c = counts.clone();
    reactor::connect_protocol("127.0.0.1", addr.port(), Got(f)).add_callback(move |t1| {
        let closed2 = reactor::connect_protocol("127.0.0.1", addr.port(), Got(s))
            .add_callback(|t2: Transport| t2.when_closed());
        closed2.add_callback(move |_reason: Failure| {
            assert_eq!(c.total(), 1);
            t1.lose_connection();
            t1.when_closed().add_callback(move |_| {
                port2.stop_listening();
                let _ = reactor::stop();
            });
        });
    });
    run_bounded(Duration::from_secs(10));
    assert_eq!(*first.borrow(), b"welcome");
    assert!(second.borrow().is_empty(), "refused: closed without a word");
    assert_eq!(counts.refused(), 1);
}
