//! The test doubles of `twined::testing`: StringTransport, MemoryReactor and
//! the in-memory loopback, driven with no socket and no sleep. Ports of
//! Twisted's `twisted.internet.test.test_testing` (`StringTransportTests`,
//! `MemoryReactorTests`) and `twisted.test.test_iosim`.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{Failure, Panicked};
use twined::protocol::policies::Timeout;
use twined::protocol::{
    ConnectionAborted, ConnectionDone, ConnectionLost, Factory, ITransport, Protocol, Transport,
};
use twined::task::Clock;
use twined::testing::{
    loopback, ClientState, MemoryReactor, ProducerState, StringTransport, DEFAULT_HOST,
    DEFAULT_PEER,
};

/// What a protocol saw.
#[derive(Default, Debug)]
struct Seen {
    made: usize,
    data: Vec<u8>,
    lost: Option<Failure>,
    paused: usize,
    resumed: usize,
}

type Shared = Rc<RefCell<Seen>>;
type OnData = Box<dyn FnMut(&Transport, &[u8])>;

/// Records, and runs an optional action on each chunk.
struct Recorder {
    seen: Shared,
    transport: Option<Transport>,
    on_data: Option<OnData>,
}

impl Recorder {
    fn new(seen: &Shared) -> Recorder {
        Recorder {
            seen: seen.clone(),
            transport: None,
            on_data: None,
        }
    }
    fn on_data(mut self, f: impl FnMut(&Transport, &[u8]) + 'static) -> Recorder {
        self.on_data = Some(Box::new(f));
        self
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.seen.borrow_mut().made += 1;
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.seen.borrow_mut().data.extend_from_slice(data);
        if let (Some(f), Some(t)) = (self.on_data.as_mut(), self.transport.as_ref()) {
            f(t, data);
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        assert!(self.seen.borrow().lost.is_none(), "connection_lost twice");
        self.seen.borrow_mut().lost = Some(reason);
    }
    fn pause_producing(&mut self) {
        self.seen.borrow_mut().paused += 1;
    }
    fn resume_producing(&mut self) {
        self.seen.borrow_mut().resumed += 1;
    }
}

fn echo(seen: &Shared) -> Recorder {
    Recorder::new(seen).on_data(|t, data| t.write(data))
}

// Ports StringTransportTests.test_write and test_writeSequence.
#[test]
fn string_transport_records_writes() {
    let st = StringTransport::new();
    let t = st.transport();
    t.write(b"foo");
    t.write_sequence(&[b"bar", b"baz"]);
    assert_eq!(st.value(), b"foobarbaz");
    assert_eq!(t.write_buffer_size(), 9);
    assert_eq!(st.take(), b"foobarbaz");
    assert!(st.value().is_empty());
    t.write(b"x");
    st.clear();
    assert!(st.value().is_empty());
}

// Ports StringTransportTests.test_hostAddress and test_peerAddress.
#[test]
fn string_transport_addresses() {
    let st = StringTransport::new();
    assert_eq!(st.transport().host(), Some(DEFAULT_HOST));
    assert_eq!(st.transport().peer(), Some(DEFAULT_PEER));
    let host: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let peer: SocketAddr = "[::1]:4000".parse().unwrap();
    let st = StringTransport::new().with_addresses(host, peer);
    assert_eq!(st.transport().host(), Some(host));
    assert_eq!(st.transport().peer(), Some(peer));
    assert!(st.transport().set_tcp_nodelay(true).is_err());
}

// Ports StringTransportTests.test_loseConnection (with the disconnecting
// behaviour of StringTransportWithDisconnection).
#[test]
fn lose_connection_calls_connection_lost_once_and_fires_when_closed() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen));
    assert_eq!(seen.borrow().made, 1);
    let closed = st.transport().when_closed();
    assert!(!closed.called());
    st.transport().write(b"bye");
    st.transport().lose_connection();
    assert!(st.disconnecting());
    assert!(!st.transport().connected());
    assert!(seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    assert!(closed.result().unwrap().unwrap().check::<ConnectionDone>());
    // Written before the close: kept. After: ignored.
    st.transport().write(b"late");
    assert_eq!(st.value(), b"bye");
    // A second close does nothing; a late when_closed fires at once.
    st.transport().abort_connection();
    assert!(!st.aborted());
    let late = st.transport().when_closed().result().unwrap().unwrap();
    assert!(late.check::<ConnectionDone>());
    assert_eq!(st.producer_state(), ProducerState::Stopped);
}

// Ports StringTransportTests.test_abortConnection.
#[test]
fn abort_connection_gives_connection_aborted() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen));
    st.transport().abort_connection();
    assert!(st.aborted());
    assert!(seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionAborted>());
}

#[test]
fn the_peer_closing_gives_its_reason() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen));
    let closed = st.transport().when_closed();
    st.close(ConnectionLost {
        peer: None,
        source: io::Error::new(io::ErrorKind::ConnectionReset, "reset"),
    });
    assert!(seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionLost>());
    assert!(closed.result().unwrap().unwrap().check::<ConnectionLost>());
    st.receive(b"after the close");
    assert!(seen.borrow().data.is_empty());
}

// Ports StringTransportTests.test_pauseProducing / test_resumeProducing.
#[test]
fn pausing_the_transport_holds_received_bytes() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen));
    assert_eq!(st.producer_state(), ProducerState::Producing);
    st.transport().pause_producing();
    assert_eq!(st.producer_state(), ProducerState::Paused);
    st.receive(b"held");
    assert!(seen.borrow().data.is_empty());
    st.transport().resume_producing();
    assert_eq!(seen.borrow().data, b"held");
}

#[test]
fn the_write_buffer_pauses_and_resumes_the_protocol() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen));
    st.transport().set_write_buffer_limits(4, 0);
    assert_eq!(st.write_buffer_limits(), (4, 0));
    st.transport().write(b"1234");
    assert_eq!(seen.borrow().paused, 0);
    st.transport().write(b"5");
    assert_eq!(seen.borrow().paused, 1);
    st.transport().write(b"6");
    assert_eq!(seen.borrow().paused, 1, "paused once");
    assert_eq!(st.take(), b"123456");
    assert_eq!(seen.borrow().resumed, 1);
}

#[test]
fn a_protocol_may_close_its_own_transport_while_it_runs() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen).on_data(|t, data| {
        t.write(data);
        t.lose_connection();
        // Still inside data_received: connection_lost comes after it returns.
        t.write(b"ignored");
    }));
    st.receive(b"quit");
    assert_eq!(st.value(), b"quit");
    assert!(seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
}

#[test]
fn a_panicking_protocol_is_disconnected_with_the_panic() {
    let seen = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&seen).on_data(|_, _| panic!("boom")));
    st.receive(b"x");
    let lost = seen.borrow_mut().lost.take().unwrap();
    assert!(lost.check::<Panicked>());
    assert!(st.is_closed());
}

/// A transport with no close notice.
#[derive(Debug)]
struct Mute;

impl ITransport for Mute {
    fn write(&self, _: &[u8]) {}
    fn write_sequence(&self, _: &[&[u8]]) {}
    fn lose_connection(&self) {}
    fn abort_connection(&self) {}
    fn peer(&self) -> Option<SocketAddr> {
        None
    }
    fn host(&self) -> Option<SocketAddr> {
        None
    }
    fn connected(&self) -> bool {
        true
    }
    fn pause_producing(&self) {}
    fn resume_producing(&self) {}
    fn set_write_buffer_limits(&self, _: usize, _: usize) {}
    fn write_buffer_size(&self) -> usize {
        0
    }
}

#[test]
fn when_closed_errbacks_for_a_transport_that_cannot_report_it() {
    let t = Transport::new(Rc::new(Mute));
    let failure = t.when_closed().result().unwrap().unwrap_err();
    let io = failure.downcast_ref::<io::Error>().unwrap();
    assert_eq!(io.kind(), io::ErrorKind::Unsupported);
    assert!(failure.to_string().contains("does not report"));
}

/// A factory that records what happens to it.
#[derive(Clone, Default)]
struct Events(Rc<RefCell<Vec<String>>>);

struct RecordingFactory {
    events: Events,
    seen: Shared,
}

impl Factory for RecordingFactory {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        self.events.0.borrow_mut().push(format!("build {peer}"));
        Some(Box::new(echo(&self.seen)))
    }
    fn start_factory(&mut self) {
        self.events.0.borrow_mut().push("start".into());
    }
    fn stop_factory(&mut self) {
        self.events.0.borrow_mut().push("stop".into());
    }
    fn client_connection_failed(&mut self, reason: Failure) {
        self.events.0.borrow_mut().push(format!("failed: {reason}"));
    }
    fn client_connection_lost(&mut self, reason: Failure) {
        self.events.0.borrow_mut().push(format!("lost: {reason}"));
    }
}

// Ports MemoryReactorTests.test_listenTCP-style recording: the factory is
// started, connections are accepted in memory, stopping stops it once.
#[test]
fn memory_reactor_records_listen_tcp() {
    let reactor = MemoryReactor::new();
    let events = Events::default();
    let seen = Shared::default();
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    reactor.listen_tcp(
        addr,
        RecordingFactory {
            events: events.clone(),
            seen: seen.clone(),
        },
    );
    let servers = reactor.tcp_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].address(), addr);
    let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
    let st = servers[0].accept(peer).unwrap();
    assert_eq!(st.transport().peer(), Some(peer));
    assert_eq!(st.transport().host(), Some(addr));
    st.receive(b"ping");
    assert_eq!(st.take(), b"ping");
    servers[0].stop_listening();
    servers[0].stop_listening();
    assert!(!servers[0].is_listening());
    assert!(servers[0].accept(peer).is_none());
    assert_eq!(
        *events.0.borrow(),
        ["start", "build 10.1.2.3:5555", "stop"].map(String::from)
    );
}

// Ports MemoryReactorTests.test_connectTCP-style recording, both outcomes.
#[test]
fn memory_reactor_records_connect_tcp_and_settles_it() {
    let reactor = MemoryReactor::new();
    let events = Events::default();
    let seen = Shared::default();
    let make = || RecordingFactory {
        events: events.clone(),
        seen: seen.clone(),
    };
    reactor.connect_tcp("127.0.0.1", 6379, make());
    reactor.connect_tcp("example.org", 80, make());
    let clients = reactor.tcp_clients();
    assert_eq!(clients[0].destination(), ("127.0.0.1", 6379));
    assert_eq!(clients[1].state(), ClientState::Connecting);

    let st = clients[0].connect().unwrap();
    assert_eq!(clients[0].state(), ClientState::Connected);
    assert!(clients[0].connect().is_none(), "settled once");
    assert_eq!(
        st.transport().peer(),
        Some("127.0.0.1:6379".parse().unwrap())
    );
    st.transport().lose_connection();

    clients[1].fail(ConnectionDone);
    clients[1].fail(ConnectionDone);
    assert_eq!(clients[1].state(), ClientState::Failed);
    assert_eq!(
        *events.0.borrow(),
        [
            "build 127.0.0.1:6379",
            "lost: the connection was closed cleanly",
            "failed: the connection was closed cleanly",
        ]
        .map(String::from)
    );
}

#[test]
fn memory_reactor_connect_protocol_fires_with_the_transport_or_the_failure() {
    let reactor = MemoryReactor::new();
    let seen = Shared::default();
    let ok = reactor.connect_protocol("10.0.0.9", 1, Recorder::new(&seen));
    let refused = reactor.connect_protocol("10.0.0.9", 2, Recorder::new(&seen));
    assert!(!ok.called());
    let st = reactor.tcp_clients()[0].connect().unwrap();
    let t = ok.result().unwrap().unwrap();
    t.write(b"hi");
    assert_eq!(st.value(), b"hi");
    reactor.tcp_clients()[1].fail(ConnectionAborted);
    assert!(refused
        .result()
        .unwrap()
        .unwrap_err()
        .check::<ConnectionAborted>());
}

// Ports the iosim tests of IOPump: bytes go both ways, a close reaches the
// other side.
#[test]
fn loopback_pumps_bytes_and_closes() {
    let server_seen = Shared::default();
    let client_seen = Shared::default();
    let pump = loopback::connect(
        echo(&server_seen),
        Recorder::new(&client_seen).on_data(|t, _| t.lose_connection()),
    );
    pump.client().transport().write(b"hello");
    let done = pump.when_done();
    pump.flush().unwrap();
    assert_eq!(server_seen.borrow().data, b"hello");
    assert_eq!(client_seen.borrow().data, b"hello");
    assert!(client_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    assert!(server_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    assert!(done.result().unwrap().is_ok());
}

#[test]
fn loopback_delivers_what_was_written_before_the_close() {
    let server_seen = Shared::default();
    let client_seen = Shared::default();
    let pump = loopback::connect(Recorder::new(&server_seen), Recorder::new(&client_seen));
    pump.client().transport().write(b"last words");
    pump.client().transport().lose_connection();
    pump.flush().unwrap();
    assert_eq!(server_seen.borrow().data, b"last words");
    assert!(server_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
}

#[test]
fn loopback_turns_an_abort_into_a_lost_connection_on_the_other_side() {
    let server_seen = Shared::default();
    let client_seen = Shared::default();
    let pump = loopback::connect(Recorder::new(&server_seen), Recorder::new(&client_seen));
    pump.server().transport().abort_connection();
    pump.flush().unwrap();
    assert!(client_seen
        .borrow()
        .lost
        .as_ref()
        .unwrap()
        .check::<ConnectionLost>());
}

#[test]
fn loopback_flush_gives_up_on_protocols_that_never_stop_talking() {
    let a = Shared::default();
    let b = Shared::default();
    let pump = loopback::connect(echo(&a), echo(&b));
    pump.client().transport().write(b"ping");
    let err = pump.flush().unwrap_err();
    assert_eq!(err.rounds, loopback::MAX_FLUSH_ROUNDS);
    assert!(err.to_string().contains("still exchanging"));
}

/// A line protocol that says goodbye after 5 idle seconds: the three doubles
/// together (StringTransport, Clock, and a Timeout on the clock).
struct Idle {
    timeout: Timeout,
    transport: Option<Transport>,
}

impl Protocol for Idle {
    fn connection_made(&mut self, t: Transport) {
        let goodbye = t.clone();
        self.timeout.on_timeout(move || {
            goodbye.write(b"idle, bye\n");
            goodbye.lose_connection();
        });
        self.timeout.set_timeout(Some(Duration::from_secs(5)));
        self.transport = Some(t);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.timeout.reset_timeout();
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, _reason: Failure) {
        self.timeout.set_timeout(None);
    }
}

#[test]
fn a_protocol_with_a_timeout_is_tested_with_no_socket_and_no_sleep() {
    let clock = Clock::new();
    let st = StringTransport::new();
    st.make_connection(Idle {
        timeout: Timeout::on(clock.clone()),
        transport: None,
    });
    clock.advance(Duration::from_secs(4));
    st.receive(b"a\n");
    clock.advance(Duration::from_secs(4));
    assert!(st.transport().connected());
    clock.advance(Duration::from_secs(1));
    assert_eq!(st.value(), b"a\nidle, bye\n");
    assert!(st.disconnecting());
    assert_eq!(clock.pending(), 0, "no timer left behind");
}

#[test]
fn a_second_protocol_is_refused() {
    let first = Shared::default();
    let second = Shared::default();
    let st = StringTransport::new();
    st.make_connection(Recorder::new(&first));
    st.make_connection(Recorder::new(&second));
    st.receive(b"x");
    assert_eq!(first.borrow().data, b"x");
    assert_eq!(second.borrow().made, 0);
}
