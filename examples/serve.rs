//! A small `web::server` for benchmarks and experiments: `/small` (100
//! bytes), `/page` (16 KiB), anything else 404.
//!
//! `cargo run --release --example serve -- [PORT]` (default 8080), then for
//! example `cargo run --release --example crawl -- -q -o /dev/null -c 100
//! --repeat 20000 http://127.0.0.1:8080/small`.

use twined::reactor;
use twined::web::server::{Request, Response, Site};

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let small = vec![b'x'; 100];
    let page = vec![b'y'; 16 * 1024];
    let site = Site::new(move |req: Request| match req.path() {
        "/small" => Response::new(200).body(small.clone()),
        "/page" => Response::new(200).body(page.clone()),
        _ => Response::new(404).body("not found"),
    });
    match reactor::listen_tcp(format!("127.0.0.1:{port}"), site) {
        Ok(p) => eprintln!("serving on http://{}/ (Ctrl-C stops)", p.address()),
        Err(e) => {
            eprintln!("serve: {e}");
            std::process::exit(2);
        }
    }
    if let Err(e) = reactor::run() {
        eprintln!("serve: {e}");
    }
}
