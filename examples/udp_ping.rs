//! A UDP echo server and a ping client with a timeout, on one reactor
//! (Twisted's `listenUDP` echo and its `DatagramProtocol` client).
//!
//! The server echoes every datagram back to its sender. The client sends
//! numbered pings, one a time, and waits at most a second for each reply.
//! Then it pings a peer that never answers (the ping times out), and a port
//! nothing listens on through a *connected* socket, which hears the ICMP
//! "port unreachable" as `connection_refused`.
//!
//! Run with `cargo run --example udp_ping [COUNT]` (default 5).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twined::reactor::{self, DatagramProtocol, DatagramTransport, DelayedCall};

const TIMEOUT: Duration = Duration::from_secs(1);

/// Twisted's UDP echo.
#[derive(Default)]
struct Echo(Option<DatagramTransport>);

impl DatagramProtocol for Echo {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        self.0 = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        if let Some(t) = &self.0 {
            if let Err(e) = t.write_to(data, addr) {
                eprintln!("echo to {addr} failed: {e}");
            }
        }
    }
}

/// Sends pings one at a time; each has a timeout.
struct Pinger {
    target: SocketAddr,
    count: u32,
    seq: u32,
    replies: u32,
    sent_at: Instant,
    timer: Option<DelayedCall>,
    transport: Option<DatagramTransport>,
    me: std::rc::Weak<RefCell<Pinger>>,
    done: Box<dyn Fn(u32)>,
}

impl Pinger {
    fn send_next(&mut self) {
        if self.seq == self.count {
            (self.done)(self.replies);
            return;
        }
        self.seq += 1;
        self.sent_at = Instant::now();
        let Some(t) = &self.transport else { return };
        if let Err(e) = t.write_to(&self.seq.to_be_bytes(), self.target) {
            println!("ping {} not sent: {e}", self.seq);
        }
        let me = self.me.clone();
        let seq = self.seq;
        self.timer = Some(reactor::call_later(TIMEOUT, move || {
            if let Some(me) = me.upgrade() {
                println!("ping {seq}: no reply within {TIMEOUT:?}");
                me.borrow_mut().send_next();
            }
        }));
    }
}

/// The pinger as its socket's protocol (its timers reach it through a `Weak`).
struct Client(Rc<RefCell<Pinger>>);

impl DatagramProtocol for Client {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        let mut me = self.0.borrow_mut();
        me.transport = Some(transport);
        me.send_next();
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        let mut me = self.0.borrow_mut();
        let Ok(seq) = <[u8; 4]>::try_from(data).map(u32::from_be_bytes) else {
            return;
        };
        if seq != me.seq {
            return; // a late reply to a ping that already timed out
        }
        if let Some(timer) = me.timer.take() {
            let _ = timer.cancel();
        }
        me.replies += 1;
        let ms = me.sent_at.elapsed().as_secs_f64() * 1000.0;
        println!("reply from {addr}: seq={seq} time={ms:.3} ms");
        me.send_next();
    }
}

/// Pings a closed port through a connected socket: the refusal comes back.
struct Refused;

impl DatagramProtocol for Refused {
    fn datagram_received(&mut self, _data: &[u8], _addr: SocketAddr) {}
    fn connection_refused(&mut self) {
        println!("closed port: connection refused");
        let _ = reactor::stop();
    }
}

fn main() {
    let count: u32 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 5,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: udp_ping [COUNT]");
            std::process::exit(2);
        }
    };
    let server = reactor::listen_udp("127.0.0.1:0", Echo::default()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    println!("echo server on {}", server.address());

    // Pings the echo server, then a peer that never answers (the timeout),
    // then a closed port (the refusal).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    let silent_addr = silent.local_addr().expect("its address");
    let echo_client = start_pinger(
        server.address(),
        count,
        Box::new(move |replies| {
            println!("{replies}/{count} replies");
            start_pinger(
                silent_addr,
                1,
                Box::new(|replies| {
                    println!("silent peer: {replies}/1 replies");
                    ping_closed_port();
                }),
            );
        }),
    );
    // Never hang: give up after a bound.
    reactor::call_later(TIMEOUT * (count + 5), || {
        eprintln!("gave up waiting");
        std::process::exit(1);
    });
    reactor::run().unwrap();
    echo_client.stop_listening();
    server.stop_listening();
    drop(silent);
}

/// Starts pinging `target` `count` times; `done` gets the number of replies.
fn start_pinger(target: SocketAddr, count: u32, done: Box<dyn Fn(u32)>) -> DatagramTransport {
    let pinger = Rc::new_cyclic(|me| {
        RefCell::new(Pinger {
            target,
            count,
            seq: 0,
            replies: 0,
            sent_at: Instant::now(),
            timer: None,
            transport: None,
            me: me.clone(),
            done,
        })
    });
    reactor::listen_udp("127.0.0.1:0", Client(pinger)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    })
}

fn ping_closed_port() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr());
    let Ok(closed) = closed else { return };
    // The std socket is dropped: nothing listens on `closed` now.
    let refused = reactor::listen_udp("127.0.0.1:0", Refused).and_then(|t| {
        t.connect(closed).map_err(|source| reactor::CannotListen {
            addr: closed.to_string(),
            source,
        })?;
        Ok(t)
    });
    match refused {
        Ok(t) => {
            if let Err(e) = t.write(b"anyone?") {
                println!("closed port: {e}");
                let _ = reactor::stop();
            }
        }
        Err(e) => {
            eprintln!("{e}");
            let _ = reactor::stop();
        }
    }
}
