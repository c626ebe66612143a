//! `LineReceiver` parsing throughput: 64-byte lines (`\r\n`-terminated)
//! fed in 64 KiB chunks, as a transport delivers them, through
//! [`LineParser::feed`], the code path [`LineReceiver`] drives on every
//! `data_received`. Peers in the same run: `BufRead::lines` over the same
//! bytes (a `String` per line, the obvious std code), `BufRead::read_until`
//! into one reused `Vec` (the fastest plain std loop), and Twisted's
//! `LineReceiver` on CPython (`benches/peers/twisted_line_receiver.py`,
//! skipped with a note when Python or Twisted is missing).
//!
//! Run with `cargo bench --bench line_receiver`. After criterion's figures
//! a summary prints lines/s of each and the ratios (goal: >= 0.8x
//! `BufRead::lines`, >= 20x Twisted).
//!
//! [`LineReceiver`]: twined::protocol::basic::LineReceiver

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twined::protocol::basic::{LineEvent, LineParser};

const LINES: usize = 100_000;
const LINE: usize = 64;
/// A transport's read size.
const CHUNK: usize = 64 * 1024;

/// `LINES` lines of `LINE` bytes each, delimiter included, varied content.
fn input() -> Vec<u8> {
    let mut out = Vec::with_capacity(LINES * LINE);
    for i in 0..LINES {
        let start = out.len();
        write!(out, "{i:08} PRIVMSG #chan :").unwrap();
        while out.len() < start + LINE - 2 {
            out.push(b'a' + (out.len() % 26) as u8);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn twined_lines(data: &[u8]) -> usize {
    let mut parser = LineParser::new(b"\r\n", 16384);
    let mut count = 0;
    for chunk in data.chunks(CHUNK) {
        parser.feed(chunk, |event, _| {
            if let LineEvent::Line(line) = event {
                black_box(line);
                count += 1;
            }
        });
    }
    count
}

fn std_lines(data: &[u8]) -> usize {
    let mut count = 0;
    for line in BufReader::with_capacity(CHUNK, data).lines() {
        black_box(line.unwrap());
        count += 1;
    }
    count
}

fn std_read_until(data: &[u8]) -> usize {
    let mut reader = BufReader::with_capacity(CHUNK, data);
    let mut line = Vec::with_capacity(128);
    let mut count = 0;
    while reader.read_until(b'\n', &mut line).unwrap() > 0 {
        black_box(&line);
        line.clear();
        count += 1;
    }
    count
}

fn parse(c: &mut Criterion) {
    let data = input();
    assert_eq!(twined_lines(&data), LINES);
    assert_eq!(std_lines(&data), LINES);
    assert_eq!(std_read_until(&data), LINES);
    let mut group = c.benchmark_group("line_receiver");
    group
        .throughput(Throughput::Elements(LINES as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("LineParser::feed, 64-byte lines", |b| {
        b.iter(|| twined_lines(&data))
    });
    group.bench_function("peer: BufRead::lines", |b| b.iter(|| std_lines(&data)));
    group.bench_function("peer: BufRead::read_until, one Vec", |b| {
        b.iter(|| std_read_until(&data))
    });
    group.finish();
    summary(&data);
}

/// Best-of-10 lines per second of `f` over `data`.
fn lines_per_sec(data: &[u8], f: fn(&[u8]) -> usize) -> f64 {
    let best = (0..10)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(f(data), LINES);
            t.elapsed()
        })
        .min()
        .unwrap();
    LINES as f64 / best.as_secs_f64()
}

/// Runs the Twisted peer on `data`; its lines/s, or why not.
fn twisted(data: &[u8]) -> Result<f64, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peers/twisted_line_receiver.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(data)
            .map_err(|e| format!("writing to the peer: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the peer: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    println!("  {}", stdout.trim());
    stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix("lines_per_sec="))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected peer output: {stdout}"))
}

fn summary(data: &[u8]) {
    println!("\nline_receiver summary ({LINES} lines of {LINE} bytes, {CHUNK}-byte chunks):");
    let ours = lines_per_sec(data, twined_lines);
    let lines = lines_per_sec(data, std_lines);
    let until = lines_per_sec(data, std_read_until);
    println!("  LineParser::feed          {:>12.0} lines/s", ours);
    println!(
        "  BufRead::lines            {:>12.0} lines/s  (LineParser: {:.2}x, goal >= 0.8x)",
        lines,
        ours / lines
    );
    println!(
        "  BufRead::read_until       {:>12.0} lines/s  (LineParser: {:.2}x)",
        until,
        ours / until
    );
    match twisted(data) {
        Ok(py) => println!(
            "  Twisted LineReceiver      {:>12.0} lines/s  (LineParser: {:.1}x, goal >= 20x)",
            py,
            ours / py
        ),
        Err(why) => println!("  Twisted LineReceiver      skipped: {why}"),
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
