//! The pattern every other example is measured against: a plain blocking
//! loop, Python's
//!
//! ```python
//! for url in urls:
//!     body = requests.get(url).content
//! ```
//!
//! against the same URLs fetched all at once, Twisted style:
//!
//! ```python
//! ds = [getPage(url) for url in urls]
//! DeferredList(ds).addBoth(lambda _: reactor.stop())
//! reactor.run()
//! ```
//!
//! A local `web::server` on its own thread (its own reactor) serves the
//! pages; every fourth page is slow, as real servers are. The blocking loop
//! waits for each slow page in turn; the Deferreds wait for them together.
//! It prints both wall times and their ratio.
//!
//! Run with `cargo run --release --example sync_baseline [N] [SLOW_MS]`
//! (defaults: 20 pages, 40 ms).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use twined::defer::{DeferredList, Failure};
use twined::reactor;
use twined::task;
use twined::web::client::get_page;
use twined::web::server::{Request, Response, Site};

/// Page `/n` is `n * 10` bytes; every fourth page answers after `slow`.
fn serve(slow: Duration) -> Result<(SocketAddr, reactor::Handle, thread::JoinHandle<()>), String> {
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let site = Site::new(move |req: Request| {
            let n: usize = req.path().trim_start_matches('/').parse().unwrap_or(0);
            let page = move || Response::new(200).body(vec![b'.'; n * 10]);
            if n.is_multiple_of(4) {
                task::defer_later(slow, move || Ok::<_, Failure>(page()))
            } else {
                twined::defer::succeed(page())
            }
        });
        match reactor::listen_tcp("127.0.0.1:0", site) {
            Ok(port) => {
                let _ = tx.send(Ok((port.address(), reactor::handle())));
                if let Err(e) = reactor::run() {
                    eprintln!("server reactor: {e}");
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
            }
        }
    });
    match rx.recv() {
        Ok(Ok((addr, handle))) => Ok((addr, handle, server)),
        Ok(Err(e)) => Err(format!("cannot listen: {e}")),
        Err(_) => Err("the server thread died".to_string()),
    }
}

/// `requests.get(url).content`, blocking: one HTTP/1.0 request per
/// connection, the body is everything after the head.
fn blocking_get(addr: SocketAddr, path: &str) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no response head"))?;
    if !response.starts_with(b"HTTP/1.1 200") && !response.starts_with(b"HTTP/1.0 200") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a 200"));
    }
    Ok(response.split_off(head_end + 4))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Ok(pages), Ok(slow_ms)) = (
        args.next().as_deref().unwrap_or("20").parse::<usize>(),
        args.next().as_deref().unwrap_or("40").parse::<u64>(),
    ) else {
        eprintln!("usage: sync_baseline [PAGES] [SLOW_MS]");
        return ExitCode::from(2);
    };
    let (addr, server, server_thread) = match serve(Duration::from_millis(slow_ms)) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("sync_baseline: {e}");
            return ExitCode::FAILURE;
        }
    };
    let paths: Vec<String> = (1..=pages).map(|n| format!("/{n}")).collect();

    // 1. The blocking loop.
    let start = Instant::now();
    let mut blocking_bytes = 0;
    for path in &paths {
        match blocking_get(addr, path) {
            Ok(body) => blocking_bytes += body.len(),
            Err(e) => {
                eprintln!("blocking GET {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let blocking = start.elapsed();

    // 2. All at once: getPage + DeferredList + reactor.run().
    let start = Instant::now();
    let ds = paths
        .iter()
        .map(|path| get_page(format!("http://{addr}{path}")));
    let results = std::rc::Rc::new(std::cell::RefCell::new(None));
    let out = results.clone();
    DeferredList::new(ds).add_both(move |r| {
        *out.borrow_mut() = Some(r);
        let _ = reactor::stop();
    });
    if let Err(e) = reactor::run() {
        eprintln!("reactor: {e}");
        return ExitCode::FAILURE;
    }
    let deferred = start.elapsed();
    server.call_from_thread(|| {
        let _ = reactor::stop();
    });
    let _ = server_thread.join();

    let results = results.borrow_mut().take();
    let Some(Ok(results)) = results else {
        eprintln!("the DeferredList did not fire");
        return ExitCode::FAILURE;
    };
    let mut deferred_bytes = 0;
    for (path, result) in paths.iter().zip(results) {
        match result {
            Ok(body) => deferred_bytes += body.len(),
            Err(failure) => {
                eprintln!("getPage {path}: {failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    if deferred_bytes != blocking_bytes {
        eprintln!("byte counts differ: {blocking_bytes} vs {deferred_bytes}");
        return ExitCode::FAILURE;
    }

    println!("{pages} pages, {blocking_bytes} bytes, every 4th page {slow_ms} ms slow");
    println!("blocking loop:        {:>8.1} ms", ms(blocking));
    println!("getPage+DeferredList: {:>8.1} ms", ms(deferred));
    println!(
        "ratio: {:.1}x faster all at once",
        ms(blocking) / ms(deferred).max(0.001)
    );
    ExitCode::SUCCESS
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
