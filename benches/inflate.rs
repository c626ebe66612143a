//! gzip decoding speed: an HTML-like page of 16 KiB and one of 1 MiB,
//! decoded as the web client's content decoder drives flate2 (a
//! `write::GzDecoder`, fed in 16 KiB reads, its output taken after each
//! write). Reports decoded MB per second of this thread's CPU time (from
//! `/proc/thread-self/schedstat`, so a busy machine slows the run but not
//! the figure much); a run on each flate2 backend gives the ratio.
//!
//! `cargo bench --bench inflate` prints the figures; under `cargo test` it
//! runs a tiny version as a smoke test.

#[path = "support/cpu.rs"]
mod cpu;

use cpu::thread_cpu;
use std::io::Write;
use std::time::{Duration, Instant};

/// An HTML-like page of `size` bytes: markup, links and text drawn from a
/// small vocabulary with a fixed-seed generator, so it compresses about as
/// well as a real page (5 to 6 times), not as well as a run of one byte.
fn page(size: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "the",
        "crawler",
        "reactor",
        "deferred",
        "callback",
        "errback",
        "page",
        "agent",
        "connection",
        "pool",
        "twisted",
        "protocol",
        "transport",
        "factory",
        "timeout",
        "body",
        "header",
        "status",
        "redirect",
        "gzip",
        "stream",
        "buffer",
        "limit",
        "request",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = b"<!DOCTYPE html><html><head><title>twined</title></head><body>\n".to_vec();
    while out.len() < size {
        match rng.u8(0..4) {
            0 => {
                let n = rng.u32(0..100_000);
                write!(out, "<li><a href=\"/item/{n}?ref={}\">", rng.u16(..)).ok();
            }
            1 => out.extend_from_slice(b"</a></li>\n<div class=\"row\"><p>"),
            _ => {}
        }
        for _ in 0..rng.usize(4..16) {
            out.extend_from_slice(WORDS[rng.usize(..WORDS.len())].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(b"</p></div>\n");
    }
    out.truncate(size);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// Decodes `gz` once as the client does; returns the decoded length.
fn decode(gz: &[u8]) -> usize {
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut decoded = 0;
    for chunk in gz.chunks(16 << 10) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let taken = decoder.write(rest).expect("valid gzip");
            rest = &rest[taken..];
            decoded += std::mem::take(decoder.get_mut()).len();
        }
    }
    decoder.try_finish().expect("valid gzip");
    decoded + decoder.get_mut().len()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let budget = if bench {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(20)
    };
    // Which flate2 backend this build has is a Cargo.toml matter; the
    // label only names the run (TWINED_BENCH_LABEL=miniz_oxide, say).
    let backend = std::env::var("TWINED_BENCH_LABEL").unwrap_or_else(|_| "as built".into());
    for size in [16 << 10, 1 << 20] {
        let html = page(size);
        let gz = gzip(&html);
        assert_eq!(decode(&gz), html.len());
        let mut best = 0f64;
        for _ in 0..3 {
            let (started, cpu) = (Instant::now(), thread_cpu());
            let mut bytes = 0usize;
            while started.elapsed() < budget {
                bytes += decode(&gz);
            }
            let cpu = (thread_cpu() - cpu).as_secs_f64().max(1e-9);
            best = best.max(bytes as f64 / cpu / 1e6);
        }
        println!(
            "inflate {} KiB page ({} KiB gzip, {:.1}x), backend {backend}: {best:.0} MB/s of CPU decoded",
            size >> 10,
            gz.len() >> 10,
            html.len() as f64 / gz.len() as f64,
        );
    }
}
