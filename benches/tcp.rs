//! Loopback TCP through `Protocol`: bulk throughput and echo round-trip
//! latency, each beside the same job done with blocking `std::net` sockets on
//! two threads, measured in the same run.
//!
//! `cargo bench --bench tcp` prints the figures. Under `cargo test` (no
//! `--bench` argument) it runs a tiny version as a smoke test.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twined::defer::Failure;
use twined::protocol::{Protocol, Transport};
use twined::reactor;

const CHUNK: usize = 64 * 1024;

/// Counts bytes and stops the reactor at `total`.
struct Sink {
    got: usize,
    total: usize,
}

impl Protocol for Sink {
    fn data_received(&mut self, data: &[u8]) {
        self.got += data.len();
        if self.got >= self.total {
            let _ = reactor::stop();
        }
    }
}

/// Writes `total` bytes, pausing when the transport says so.
struct Source {
    transport: Option<Transport>,
    left: usize,
    paused: bool,
    chunk: Vec<u8>,
}

impl Source {
    fn pump(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        while !self.paused && self.left > 0 {
            let n = self.left.min(CHUNK);
            t.write(&self.chunk[..n]);
            self.left -= n;
            if t.write_buffer_size() > 256 * 1024 {
                break;
            }
        }
    }
}

impl Protocol for Source {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.pump();
    }
    fn data_received(&mut self, _data: &[u8]) {}
    fn pause_producing(&mut self) {
        self.paused = true;
    }
    fn resume_producing(&mut self) {
        self.paused = false;
        self.pump();
    }
    fn connection_lost(&mut self, _reason: Failure) {}
}

fn twined_throughput(total: usize) -> Duration {
    let port = reactor::listen_tcp("127.0.0.1:0", move |_p: SocketAddr| Sink { got: 0, total })
        .expect("listen");
    let source = Source {
        transport: None,
        left: total,
        paused: false,
        chunk: vec![7; CHUNK],
    };
    let start = Instant::now();
    reactor::connect_protocol("127.0.0.1", port.address().port(), source)
        .add_errback(|f| panic!("connect: {f}"));
    reactor::run().expect("run");
    let elapsed = start.elapsed();
    port.stop_listening();
    elapsed
}

fn std_throughput(total: usize) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let start = Instant::now();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0; CHUNK];
        let mut got = 0;
        while got < total {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    });
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let chunk = vec![7; CHUNK];
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK);
        s.write_all(&chunk[..n]).expect("write");
        left -= n;
    }
    reader.join().expect("reader");
    start.elapsed()
}

/// Echoes every byte back.
struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, t: Transport) {
        let _ = t.set_tcp_nodelay(true);
        self.0 = Some(t);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            t.write(data);
        }
    }
}

/// Sends one byte at a time and waits for it, `left` times.
struct Ping {
    transport: Option<Transport>,
    left: Rc<Cell<usize>>,
}

impl Protocol for Ping {
    fn connection_made(&mut self, t: Transport) {
        let _ = t.set_tcp_nodelay(true);
        t.write(b"x");
        self.transport = Some(t);
    }
    fn data_received(&mut self, _data: &[u8]) {
        let left = self.left.get() - 1;
        self.left.set(left);
        match &self.transport {
            Some(t) if left > 0 => t.write(b"x"),
            _ => {
                let _ = reactor::stop();
            }
        }
    }
}

fn twined_round_trips(n: usize) -> Duration {
    let port = reactor::listen_tcp("127.0.0.1:0", |_p: SocketAddr| Echo(None)).expect("listen");
    let left = Rc::new(Cell::new(n));
    let start = Instant::now();
    reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Ping {
            transport: None,
            left,
        },
    );
    reactor::run().expect("run");
    let elapsed = start.elapsed();
    port.stop_listening();
    elapsed
}

fn std_round_trips(n: usize) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let _ = s.set_nodelay(true);
        let mut b = [0u8; 1];
        while let Ok(1) = s.read(&mut b) {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let _ = s.set_nodelay(true);
    let start = Instant::now();
    let mut b = [0u8; 1];
    for _ in 0..n {
        s.write_all(b"x").expect("write");
        s.read_exact(&mut b).expect("read");
    }
    let elapsed = start.elapsed();
    drop(s);
    echo.join().expect("echo");
    elapsed
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (total, trips, runs) = if bench {
        (1 << 30, 20_000, 3)
    } else {
        (1 << 20, 100, 1)
    };
    let gib = total as f64 / (1u64 << 30) as f64;

    let t = best_of(runs, || twined_throughput(total));
    let s = best_of(runs, || std_throughput(total));
    println!(
        "tcp throughput, {} MiB through Protocol: twined {:.2} GiB/s, std blocking threads {:.2} GiB/s (twined/std = {:.2})",
        total >> 20,
        gib / t.as_secs_f64(),
        gib / s.as_secs_f64(),
        s.as_secs_f64() / t.as_secs_f64()
    );

    let t = best_of(runs, || twined_round_trips(trips));
    let s = best_of(runs, || std_round_trips(trips));
    let per = |d: Duration| d.as_secs_f64() * 1e6 / trips as f64;
    println!(
        "echo round trip, 1 byte x {trips}: twined {:.1} us, std blocking threads {:.1} us (std/twined = {:.2})",
        per(t),
        per(s),
        per(s) / per(t)
    );
}
