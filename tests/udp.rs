//! UDP through the reactor: listen_udp, datagram_received, write_to,
//! connected sockets and refused ports, IPv6, oversized datagrams, the
//! bounded send queue, multicast. Loopback only; every test bounds its run.
//! Ports the ideas of Twisted's `twisted.test.test_udp` (`UDPTests`,
//! `ReactorShutdownInteractionTests`, `MulticastTests`).

mod support;

use support::run_bounded;

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use twined::reactor::{self, DatagramError, DatagramProtocol, DatagramTransport, UdpOptions};

fn stop() {
    let _ = reactor::stop();
}

/// Sends back what it receives.
#[derive(Default)]
struct Echo(Option<DatagramTransport>);

impl DatagramProtocol for Echo {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        self.0 = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        if let Some(t) = &self.0 {
            t.write_to(data, addr).expect("echo");
        }
    }
}

/// Records what a socket sees.
#[derive(Default)]
struct Seen {
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    refused: usize,
    too_large: Vec<(SocketAddr, usize)>,
    stopped: bool,
}

type OnData = Box<dyn FnMut(&DatagramTransport, &[u8], SocketAddr)>;

struct Recorder {
    seen: Rc<RefCell<Seen>>,
    transport: Option<DatagramTransport>,
    on_data: Option<OnData>,
    stop_on_refused: bool,
}

impl Recorder {
    fn new(seen: &Rc<RefCell<Seen>>) -> Recorder {
        Recorder {
            seen: seen.clone(),
            transport: None,
            on_data: None,
            stop_on_refused: false,
        }
    }
}

impl DatagramProtocol for Recorder {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        self.transport = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        self.seen.borrow_mut().datagrams.push((data.to_vec(), addr));
        if let (Some(f), Some(t)) = (self.on_data.as_mut(), self.transport.as_ref()) {
            f(t, data, addr);
        }
    }
    fn connection_refused(&mut self) {
        self.seen.borrow_mut().refused += 1;
        if self.stop_on_refused {
            stop();
        }
    }
    fn datagram_too_large(&mut self, addr: SocketAddr, limit: usize) {
        self.seen.borrow_mut().too_large.push((addr, limit));
    }
    fn stop_protocol(&mut self) {
        self.seen.borrow_mut().stopped = true;
    }
}

/// Echoes 10,000 datagrams over loopback with at most `WINDOW` in flight, so
/// the kernel's buffers never overflow: every one comes back.
#[test]
fn loopback_echo_of_10000_datagrams_loses_none() {
    const TOTAL: u32 = 10_000;
    const WINDOW: u32 = 32;
    let server = reactor::listen_udp("127.0.0.1:0", Echo::default()).unwrap();
    let to = server.address();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let got = Rc::new(RefCell::new(HashSet::new()));
    let sent = Rc::new(std::cell::Cell::new(0u32));
    let mut client = Recorder::new(&seen);
    let (g, s) = (got.clone(), sent.clone());
    client.on_data = Some(Box::new(move |t, data, _| {
        let n = u32::from_be_bytes(data[..4].try_into().unwrap());
        g.borrow_mut().insert(n);
        if s.get() < TOTAL {
            t.write_to(&s.get().to_be_bytes(), to).unwrap();
            s.set(s.get() + 1);
        }
        if g.borrow().len() == TOTAL as usize {
            stop();
        }
    }));
    let client = reactor::listen_udp("127.0.0.1:0", client).unwrap();
    for n in 0..WINDOW {
        client.write_to(&n.to_be_bytes(), to).unwrap();
    }
    sent.set(WINDOW);
    run_bounded(Duration::from_secs(30));
    assert_eq!(got.borrow().len(), TOTAL as usize);
    assert!(seen.borrow().datagrams.iter().all(|(_, from)| *from == to));
    server.stop_listening();
    client.stop_listening();
}

#[test]
fn a_connected_socket_hears_connection_refused() {
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = closed.local_addr().unwrap();
    drop(closed);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut proto = Recorder::new(&seen);
    proto.stop_on_refused = true;
    let port = reactor::listen_udp("127.0.0.1:0", proto).unwrap();
    assert!(matches!(port.write(b"x"), Err(DatagramError::NotConnected)));
    port.connect(target).unwrap();
    assert_eq!(port.peer(), Some(target));
    port.write(b"anyone?").unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(seen.borrow().refused, 1);
    port.stop_listening();
}

#[test]
fn a_connected_socket_delivers_only_its_peer() {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut proto = Recorder::new(&seen);
    proto.on_data = Some(Box::new(|_, _, _| stop()));
    let port = reactor::listen_udp("127.0.0.1:0", proto).unwrap();
    port.connect(peer.local_addr().unwrap()).unwrap();
    stranger.send_to(b"stranger", port.address()).unwrap();
    peer.send_to(b"peer", port.address()).unwrap();
    run_bounded(Duration::from_secs(10));
    let seen = seen.borrow();
    assert_eq!(seen.datagrams.len(), 1);
    assert_eq!(seen.datagrams[0].0, b"peer");
    port.write(b"back").unwrap();
    let mut buf = [0; 16];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"back"[..], port.address()));
    port.stop_listening();
}

#[test]
fn ipv6_loopback_echo() {
    let server = match reactor::listen_udp("[::1]:0", Echo::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no IPv6 loopback here, skipped: {e}");
            return;
        }
    };
    assert!(server.address().is_ipv6());
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut proto = Recorder::new(&seen);
    proto.on_data = Some(Box::new(|_, _, _| stop()));
    let client = reactor::listen_udp("[::1]:0", proto).unwrap();
    client.write_to(b"hello v6", server.address()).unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(
        seen.borrow().datagrams,
        [(b"hello v6".to_vec(), server.address())]
    );
    server.stop_listening();
    client.stop_listening();
}

#[test]
fn a_datagram_longer_than_the_limit_is_reported_not_cut() {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut proto = Recorder::new(&seen);
    proto.on_data = Some(Box::new(|_, _, _| stop()));
    let options = UdpOptions {
        max_datagram_size: 100,
        ..UdpOptions::default()
    };
    let port = reactor::listen_udp_with("127.0.0.1:0", proto, options).unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(&[7; 101], port.address()).unwrap();
    peer.send_to(&[1; 100], port.address()).unwrap();
    run_bounded(Duration::from_secs(10));
    let seen = seen.borrow();
    assert_eq!(seen.too_large, [(peer.local_addr().unwrap(), 100)]);
    assert_eq!(seen.datagrams.len(), 1);
    assert_eq!(seen.datagrams[0].0, [1; 100]);
    port.stop_listening();
}

#[test]
fn a_datagram_too_large_to_send_is_a_typed_error() {
    let port = reactor::listen_udp("127.0.0.1:0", Echo::default()).unwrap();
    let error = port.write_to(&vec![0; 70_000], port.address()).unwrap_err();
    assert!(
        matches!(error, DatagramError::TooLarge { size: 70_000, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("70000 bytes"), "{error}");
    port.stop_listening();
}

/// A peer that never reads and a tiny kernel send buffer: the transport
/// queues what the kernel refuses up to its bound, then says `BufferFull`;
/// nothing panics and the queue never passes its bound.
#[test]
fn a_full_send_buffer_queues_within_its_bound_then_refuses() {
    let options = UdpOptions {
        send_queue_bytes: 64 * 1024,
        send_buffer_size: Some(4096),
        ..UdpOptions::default()
    };
    let port = reactor::listen_udp_with("127.0.0.1:0", Echo::default(), options).unwrap();
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sink.local_addr().unwrap();
    let mut outcome = None;
    for _ in 0..100_000 {
        if let Err(e) = port.write_to(&[0; 1400], to) {
            outcome = Some(e);
            break;
        }
        assert!(port.queued_bytes() <= 64 * 1024);
    }
    match outcome {
        Some(DatagramError::BufferFull { limit }) => assert_eq!(limit, 64 * 1024),
        Some(other) => panic!("unexpected error: {other}"),
        // Loopback may hand every datagram straight to the receiver (which
        // then drops them): the kernel never refused one. Nothing to check
        // but that the queue stayed within bounds.
        None => eprintln!("the kernel never pushed back; queue bound not reached"),
    }
    // The queue drains (or is dropped) once the reactor runs.
    reactor::call_later(Duration::from_millis(50), stop);
    run_bounded(Duration::from_secs(10));
    port.stop_listening();
    assert_eq!(port.queued_bytes(), 0);
    assert!(matches!(
        port.write_to(b"late", to),
        Err(DatagramError::Closed)
    ));
}

#[test]
fn stop_listening_calls_stop_protocol_once_and_frees_the_source() {
    let before = reactor::source_count();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let port = reactor::listen_udp("127.0.0.1:0", Recorder::new(&seen)).unwrap();
    assert_eq!(reactor::source_count(), before + 1);
    assert!(port.listening());
    port.stop_listening();
    port.stop_listening();
    assert!(!port.listening());
    assert_eq!(reactor::source_count(), before);
    reactor::call_later(Duration::from_millis(1), stop);
    run_bounded(Duration::from_secs(5));
    assert!(seen.borrow().stopped);
}

#[test]
fn a_panicking_protocol_does_not_stop_the_socket() {
    struct Panicky(usize);
    impl DatagramProtocol for Panicky {
        fn datagram_received(&mut self, _data: &[u8], _addr: SocketAddr) {
            self.0 += 1;
            if self.0 == 1 {
                panic!("first datagram");
            }
            stop();
        }
    }
    let port = reactor::listen_udp("127.0.0.1:0", Panicky(0)).unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"1", port.address()).unwrap();
    peer.send_to(b"2", port.address()).unwrap();
    run_bounded(Duration::from_secs(10));
    assert!(port.listening());
    port.stop_listening();
}

/// Twisted's `MulticastTests.test_multicast`: join a group on loopback, a
/// datagram sent to it arrives; after leaving, it no longer does. Sandboxes
/// without a multicast-capable loopback are detected and reported, not failed.
#[test]
fn multicast_join_and_leave_on_loopback() {
    let group = IpAddr::V4(Ipv4Addr::new(239, 255, 42, 99));
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut proto = Recorder::new(&seen);
    proto.on_data = Some(Box::new(|_, _, _| stop()));
    let receiver = reactor::listen_udp("0.0.0.0:0", proto).unwrap();
    let sender = reactor::listen_udp("127.0.0.1:0", Echo::default()).unwrap();
    let target = SocketAddr::new(group, receiver.address().port());
    let setup = receiver
        .join_group(group, Some(lo))
        .and_then(|()| sender.set_outgoing_interface(lo))
        .and_then(|()| sender.set_loopback_mode(true))
        .and_then(|()| sender.set_ttl(1));
    if let Err(e) = setup {
        eprintln!("multicast unavailable here, skipped: {e}");
        return;
    }
    if let Err(e) = sender.write_to(b"to the group", target) {
        eprintln!("multicast send refused here, skipped: {e}");
        return;
    }
    let timed_out = Rc::new(std::cell::Cell::new(false));
    let t = timed_out.clone();
    reactor::call_later(Duration::from_secs(2), move || {
        t.set(true);
        stop();
    });
    reactor::run().unwrap();
    if timed_out.get() {
        eprintln!("multicast on loopback delivered nothing here; skipped");
        return;
    }
    assert_eq!(seen.borrow().datagrams[0].0, b"to the group");
    receiver.leave_group(group, Some(lo)).unwrap();
    sender.write_to(b"after leaving", target).unwrap();
    reactor::call_later(Duration::from_millis(200), stop);
    run_bounded(Duration::from_secs(5));
    assert_eq!(seen.borrow().datagrams.len(), 1);
    receiver.stop_listening();
    sender.stop_listening();
}
