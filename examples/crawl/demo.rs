//! The offline demo site for `crawl --demo`: twined's own `web::server` on
//! 127.0.0.1, serving pages of varied sizes, redirects, gzip and chunked
//! bodies and a few slow pages, all of which succeed.
//!
//! With `-j N` every worker thread serves the site too, on the same port
//! (`SO_REUSEPORT`: the kernel spreads the connections), so the server
//! grows with the crawler instead of loading thread 0 alone; each thread
//! then keeps serving until every thread's crawl is done ([`AllDone`]).

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use twined::defer::{succeed, Deferred, Failure, Trigger};
use twined::reactor::{self, CannotListen, Handle, ListenOptions, Port};
use twined::task;
use twined::web::server::{Request, Response, Site};

/// Page bodies of a few sizes, built once.
struct Bodies {
    plain: Vec<Vec<u8>>,
    gzipped: Vec<u8>,
}

fn bodies() -> Bodies {
    let plain: Vec<Vec<u8>> = [200usize, 1_500, 8_000, 24_000, 64_000]
        .iter()
        .map(|&n| {
            let mut page = b"<html><body>".to_vec();
            while page.len() < n {
                page.extend_from_slice(b"<p>twined crawls this page.</p>");
            }
            page
        })
        .collect();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(&plain[3]);
    let gzipped = e.finish().unwrap_or_default();
    Bodies { plain, gzipped }
}

fn handle(bodies: &Bodies, req: &Request) -> Deferred<Response> {
    let mut parts = req.path().trim_start_matches('/').splitn(2, '/');
    let kind = parts.next().unwrap_or("");
    let n: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let html = |body: &[u8]| {
        Response::new(200)
            .header("Content-Type", "text/html")
            .body(body.to_vec())
    };
    match kind {
        "page" => succeed(html(&bodies.plain[n % bodies.plain.len()])),
        "redirect" => succeed(Response::new(302).header("Location", format!("/page/{n}"))),
        "gzip" => succeed(
            Response::new(200)
                .header("Content-Type", "text/html")
                .header("Content-Encoding", "gzip")
                .body(bodies.gzipped.clone()),
        ),
        "chunked" => {
            let page = &bodies.plain[n % bodies.plain.len()];
            let chunks = page.chunks(4096).map(<[u8]>::to_vec).collect();
            succeed(
                Response::new(200)
                    .header("Content-Type", "text/html")
                    .chunked(chunks, Default::default()),
            )
        }
        "slow" => {
            let page = bodies.plain[0].clone();
            task::defer_later(Duration::from_millis(20 + (n % 5) as u64 * 20), move || {
                Ok::<_, Failure>(
                    Response::new(200)
                        .header("Content-Type", "text/html")
                        .body(page),
                )
            })
        }
        _ => succeed(Response::new(404).body("not found")),
    }
}

/// Starts the demo site on this thread; returns its port and base URL
/// (`http://127.0.0.1:PORT`). `shared`: other threads will serve the same
/// port ([`serve`]).
pub fn start(shared: bool) -> Result<(Port, String), CannotListen> {
    let port = listen("127.0.0.1:0".parse().expect("an address"), shared)?;
    let base = format!("http://{}", port.address());
    Ok((port, base))
}

/// Serves the demo site on this thread too, on the port [`start`] opened
/// with `shared`.
pub fn serve(addr: SocketAddr) -> Result<Port, CannotListen> {
    listen(addr, true)
}

fn listen(addr: SocketAddr, reuse_port: bool) -> Result<Port, CannotListen> {
    let bodies = Rc::new(bodies());
    let site = Site::new(move |req: Request| handle(&bodies, &req));
    let options = ListenOptions {
        reuse_port,
        ..Default::default()
    };
    reactor::listen_tcp_with(addr, site, options)
}

thread_local! {
    /// This thread's wait in [`AllDone::arrive`].
    static WAITING: RefCell<Option<Trigger<()>>> = const { RefCell::new(None) };
}

/// Counts the threads whose crawl is done; each thread's wait ends when the
/// last one arrives (its server may still be answering another thread's
/// requests until then). A stopped crawl stops every reactor instead.
pub struct AllDone {
    /// Threads still crawling, and the reactors of those that wait.
    state: Mutex<(usize, Vec<Handle>)>,
}

impl AllDone {
    pub fn new(threads: usize) -> Arc<AllDone> {
        Arc::new(AllDone {
            state: Mutex::new((threads, Vec::new())),
        })
    }

    /// This thread's crawl is done; fires once every thread's is.
    pub fn arrive(&self) -> Deferred<()> {
        let (d, trigger) = Deferred::new();
        let waiters = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.0 = state.0.saturating_sub(1);
            if state.0 > 0 {
                WAITING.with(|w| *w.borrow_mut() = Some(trigger));
                state.1.push(reactor::handle());
                return d;
            }
            std::mem::take(&mut state.1)
        };
        for handle in waiters {
            handle.call_from_thread(|| {
                if let Some(trigger) = WAITING.with(|w| w.borrow_mut().take()) {
                    trigger.callback(());
                }
            });
        }
        trigger.callback(());
        d
    }
}

/// The `i`th URL of the demo site at `base`: made when it is needed, so a
/// demo of any size takes no memory for its list.
pub fn url(base: &str, i: usize) -> String {
    match i % 50 {
        0 => format!("{base}/slow/{i}"),
        1..=5 => format!("{base}/redirect/{i}"),
        6..=10 => format!("{base}/gzip/{i}"),
        11..=15 => format!("{base}/chunked/{i}"),
        _ => format!("{base}/page/{i}"),
    }
}
