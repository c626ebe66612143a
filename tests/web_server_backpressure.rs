//! A client that pipelines requests and never reads must not make the
//! server queue every answer: the connection stops reading requests while
//! its unsent output is over `Site::max_unsent`, so server memory stays
//! bounded, and other clients are served meanwhile. Alone in its test
//! binary, so the process's resident memory is this test's.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::run_bounded;
use twined::reactor;
use twined::web::server::{Request, Response, Site};

const REQUESTS: usize = 60_000;

/// Resident memory of this process, in bytes (`VmRSS` of /proc/self/status).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// One GET on a fresh connection; the whole answer.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

struct Outcome {
    growth: u64,
    sent: usize,
    answered: usize,
    other: String,
}

/// Waits until `count` has not moved for half a second (at most 20 s).
fn settle(count: &AtomicUsize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = count.load(Ordering::SeqCst);
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = count.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Pipelines [`REQUESTS`] requests for 1 KiB answers on a socket that never
/// reads; measures how much the process grew, then serves another client.
fn flood(site: Site, answered: Arc<AtomicUsize>) -> Outcome {
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let number = port.address().port();
    let handle = reactor::handle();
    let worker = thread::spawn(move || {
        let one = b"GET /kib HTTP/1.1\r\nHost: x\r\n\r\n";
        let wire: Vec<u8> = one.repeat(REQUESTS);
        assert!(get(number, "/kib").starts_with("HTTP/1.1 200"));
        let before = rss();
        let mut greedy = TcpStream::connect(("127.0.0.1", number)).unwrap();
        // The server stops reading: the kernel's buffers fill and a write
        // times out instead of blocking for ever.
        greedy
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut sent = 0;
        while sent < wire.len() {
            match greedy.write(&wire[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        // Let the server take whatever it is going to take.
        let answered = settle(&answered);
        let after = rss();
        let other = get(number, "/other");
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
        drop(greedy);
        Outcome {
            growth: after.saturating_sub(before),
            sent: sent / one.len(),
            answered,
            other,
        }
    });
    run_bounded(Duration::from_secs(30));
    port.stop_listening();
    worker.join().unwrap()
}

/// Answers `/kib` with 1 KiB, counting the answers.
fn site(answered: Arc<AtomicUsize>) -> Site {
    Site::new(move |req: Request| match req.path() {
        "/kib" => {
            answered.fetch_add(1, Ordering::SeqCst);
            Response::new(200).body(vec![b'x'; 1024])
        }
        _ => Response::new(200).body("other"),
    })
}

#[test]
fn a_pipelining_client_that_never_reads_costs_bounded_memory() {
    let answered = Arc::new(AtomicUsize::new(0));
    let out = flood(site(answered.clone()), answered);
    eprintln!(
        "{} requests sent, {} answered; resident memory grew by {} KiB",
        out.sent,
        out.answered,
        out.growth / 1024
    );
    assert!(
        out.answered < REQUESTS / 2,
        "the server kept reading: {} answered",
        out.answered
    );
    // Unbounded, the server holds every 1 KiB answer: over 60 MiB for the
    // 60,000 requests. Bounded: 256 KiB of output, one read of input, and
    // what the allocator keeps.
    assert!(
        out.growth < 16 * 1024 * 1024,
        "resident memory grew by {} KiB",
        out.growth / 1024
    );
    assert!(out.other.starts_with("HTTP/1.1 200"), "{}", out.other);
    assert!(out.other.ends_with("other"), "{}", out.other);
}
