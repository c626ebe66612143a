//! Loopback UDP through `DatagramProtocol`: datagrams per second echoed with
//! a bounded window in flight (so the kernel never drops one), beside the
//! same job done with a blocking `std::net::UdpSocket` pair on two threads,
//! measured in the same run.
//!
//! `cargo bench --bench udp` prints the figures. Under `cargo test` (no
//! `--bench` argument) it runs a tiny version as a smoke test.

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twined::reactor::{self, DatagramProtocol, DatagramTransport};

const SIZE: usize = 64;
const WINDOW: usize = 64;

struct Echo(Option<DatagramTransport>);

impl DatagramProtocol for Echo {
    fn start_protocol(&mut self, t: DatagramTransport) {
        self.0 = Some(t);
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        if let Some(t) = &self.0 {
            t.write_to(data, addr).expect("echo");
        }
    }
}

/// Keeps `WINDOW` datagrams in flight until `total` came back.
struct Client {
    transport: Option<DatagramTransport>,
    to: SocketAddr,
    sent: usize,
    got: Rc<Cell<usize>>,
    total: usize,
}

impl DatagramProtocol for Client {
    fn start_protocol(&mut self, t: DatagramTransport) {
        let payload = [7u8; SIZE];
        for _ in 0..WINDOW.min(self.total) {
            t.write_to(&payload, self.to).expect("send");
            self.sent += 1;
        }
        self.transport = Some(t);
    }
    fn datagram_received(&mut self, data: &[u8], _addr: SocketAddr) {
        self.got.set(self.got.get() + 1);
        if self.sent < self.total {
            if let Some(t) = &self.transport {
                t.write_to(data, self.to).expect("send");
                self.sent += 1;
            }
        }
        if self.got.get() == self.total {
            let _ = reactor::stop();
        }
    }
}

fn twined_echo(total: usize) -> Duration {
    let server = reactor::listen_udp("127.0.0.1:0", Echo(None)).expect("listen");
    let got = Rc::new(Cell::new(0));
    let start = Instant::now();
    let client = Client {
        transport: None,
        to: server.address(),
        sent: 0,
        got: got.clone(),
        total,
    };
    let client = reactor::listen_udp("127.0.0.1:0", client).expect("client");
    let watchdog = reactor::call_later(Duration::from_secs(60), || {
        let _ = reactor::stop();
    });
    reactor::run().expect("run");
    let elapsed = start.elapsed();
    let _ = watchdog.cancel();
    assert_eq!(got.get(), total, "twined lost datagrams");
    client.stop_listening();
    server.stop_listening();
    elapsed
}

fn std_echo(total: usize) -> Duration {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
    server
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let to = server.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            if server.send_to(&buf[..n], from).is_err() {
                break;
            }
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let payload = [7u8; SIZE];
    let start = Instant::now();
    let mut sent = 0;
    for _ in 0..WINDOW.min(total) {
        client.send_to(&payload, to).expect("send");
        sent += 1;
    }
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < total {
        let (n, _) = client.recv_from(&mut buf).expect("std lost datagrams");
        got += 1;
        if sent < total {
            client.send_to(&buf[..n], to).expect("send");
            sent += 1;
        }
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread");
    elapsed
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (total, runs) = if bench { (500_000, 3) } else { (2_000, 1) };
    let t = best_of(runs, || twined_echo(total));
    let s = best_of(runs, || std_echo(total));
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "udp echo, {total} x {SIZE} B, {WINDOW} in flight: twined {:.0} datagrams/s (one thread), \
         std blocking pair {:.0} datagrams/s (two threads) (twined/std = {:.2})",
        rate(t),
        rate(s),
        rate(t) / rate(s)
    );
}
