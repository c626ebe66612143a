//! A gzip bomb: 64 MiB of zeros, about 64 KiB on the wire, against a 1 MiB
//! body limit. The request fails with `too_large` once the decoded body
//! passes 1 MiB, no more than the limit reaches the consumer, and the
//! process's peak memory grows by far less than the bomb. Alone in its test
//! binary so that no other test moves the peak.

mod support;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use support::{raw_server, wait, web_error, Then};
use twined::defer::{Deferred, Failure};
use twined::web::client::{Agent, AgentOptions, BodyConsumer, ConnectionPool};
use twined::web::{ErrorKind, Headers};

const BOMB: usize = 64 << 20;
const LIMIT: u64 = 1 << 20;

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Counts the bytes delivered, keeps none.
struct Count {
    seen: Rc<Cell<u64>>,
    done: Option<twined::defer::Trigger<()>>,
}

impl BodyConsumer for Count {
    fn data(&mut self, chunk: &[u8]) {
        self.seen.set(self.seen.get() + chunk.len() as u64);
    }
    fn finished(&mut self, result: Result<(), Failure>) {
        if let Some(done) = self.done.take() {
            done.fire_with(result);
        }
    }
}

#[test]
fn a_gzip_bomb_stops_at_the_limit_in_bounded_memory() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 16];
    for _ in 0..BOMB / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    wire.extend_from_slice(&bomb);
    let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let (base, port) = raw_server(vec![wire], Duration::ZERO, Then::Stay);

    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            max_body: Some(LIMIT),
            ..Default::default()
        },
    );
    let before = peak_rss_kib();
    let seen = Rc::new(Cell::new(0));
    let counted = seen.clone();
    let body = agent
        .request("GET", &format!("{base}/"), Headers::new(), None)
        .and_then(move |response| {
            let (d, done) = Deferred::new();
            response.deliver_body(Count {
                seen: counted,
                done: Some(done),
            });
            d
        });
    let failure = wait(body).unwrap_err();
    let after = peak_rss_kib();
    assert_eq!(web_error(&failure).kind(), ErrorKind::TooLarge, "{failure}");
    assert!(seen.get() <= LIMIT, "{} bytes delivered", seen.get());
    eprintln!(
        "gzip bomb: {} bytes on the wire, {} bytes delivered; peak RSS {before} KiB before, \
         {after} KiB after (+{} KiB)",
        bomb.len(),
        seen.get(),
        after.saturating_sub(before)
    );
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "peak RSS grew by {} KiB",
        after - before
    );
    port.stop_listening();
}
