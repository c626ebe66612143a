//! The offline demo site for `crawl --demo`: twined's own `web::server` on
//! 127.0.0.1, serving pages of varied sizes, redirects, gzip and chunked
//! bodies and a few slow pages, all of which succeed.

use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{succeed, Deferred, Failure};
use twined::reactor::{self, CannotListen, Port};
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

/// Starts the demo site; returns its port and base URL (`http://127.0.0.1:PORT`).
pub fn start() -> Result<(Port, String), CannotListen> {
    let bodies = Rc::new(bodies());
    let site = Site::new(move |req: Request| handle(&bodies, &req));
    let port = reactor::listen_tcp("127.0.0.1:0", site)?;
    let base = format!("http://{}", port.address());
    Ok((port, base))
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
