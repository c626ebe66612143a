//! Decompression bombs: 64 MiB of zeros, a few KiB on the wire, in every
//! coding compiled in (gzip; brotli and zstd with the `br` and `zstd`
//! features), against a 1 MiB body limit. The request fails with
//! `too_large` once the decoded body passes 1 MiB, no more than the limit
//! reaches the consumer, and the process's peak memory grows by far less
//! than the bomb. One test, the codings one after the other, alone in its
//! test binary so that nothing else moves the peak.

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

/// 64 MiB of zeros in `coding`.
fn bomb(coding: &str) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    {
        let mut encoder: Box<dyn Write + '_> = match coding {
            "gzip" => Box::new(flate2::write::GzEncoder::new(
                &mut out,
                flate2::Compression::best(),
            )),
            #[cfg(feature = "br")]
            "br" => Box::new(brotli::CompressorWriter::new(&mut out, 1 << 16, 1, 22)),
            #[cfg(feature = "zstd")]
            "zstd" => Box::new(
                zstd::stream::write::Encoder::new(&mut out, 3)
                    .unwrap()
                    .auto_finish(),
            ),
            other => unreachable!("no encoder for {other}"),
        };
        for _ in 0..BOMB / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.flush().unwrap();
    }
    out
}

#[test]
fn a_bomb_in_every_coding_stops_at_the_limit_in_bounded_memory() {
    let mut codings = vec!["gzip"];
    if cfg!(feature = "br") {
        codings.push("br");
    }
    if cfg!(feature = "zstd") {
        codings.push("zstd");
    }
    let start = peak_rss_kib();
    for coding in codings {
        let bomb = bomb(coding);
        let before = peak_rss_kib();
        let seen = one_bomb(coding, &bomb);
        let after = peak_rss_kib();
        eprintln!(
            "{coding} bomb: {} bytes on the wire, {seen} bytes delivered; peak RSS {before} KiB \
             before, {after} KiB after (+{} KiB)",
            bomb.len(),
            after.saturating_sub(before)
        );
        // The limit, a step's output, the pipe's chunks and the coding's
        // window (brotli's is 4 MiB here; zstd's 2 MiB) are far below this.
        assert!(
            after.saturating_sub(start) < 16 * 1024,
            "{coding}: peak RSS grew by {} KiB",
            after - start
        );
    }
}

/// Requests `bomb` (in `coding`) with a 1 MiB limit; returns the bytes
/// that reached the consumer.
fn one_bomb(coding: &str, bomb: &[u8]) -> u64 {
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    wire.extend_from_slice(bomb);
    let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let (base, port) = raw_server(vec![wire], Duration::ZERO, Then::Stay);

    let agent = Agent::with_options(
        ConnectionPool::default(),
        AgentOptions {
            max_body: Some(LIMIT),
            ..Default::default()
        },
    );
    let seen = Rc::new(Cell::new(0));
    let counted = seen.clone();
    let body = agent
        .request("GET", format!("{base}/"), Headers::new(), None)
        .and_then(move |response| {
            let (d, done) = Deferred::new();
            response.deliver_body(Count {
                seen: counted,
                done: Some(done),
            });
            d
        });
    let failure = wait(body).unwrap_err();
    assert_eq!(
        web_error(&failure).kind(),
        ErrorKind::TooLarge,
        "{coding}: {failure}"
    );
    assert!(
        seen.get() <= LIMIT,
        "{coding}: {} bytes delivered",
        seen.get()
    );
    port.stop_listening();
    seen.get()
}
