//! Tornado's callback style: `http_client.fetch(request, callback)` with a
//! pending counter that stops the loop at zero, and `IOLoop.add_callback`:
//!
//! ```python
//! def handle(response):
//!     global pending
//!     pending -= 1
//!     print(response.code, len(response.body))
//!     if pending == 0: IOLoop.current().stop()
//! for url in urls:
//!     pending += 1
//!     http_client.fetch(url, handle)
//! IOLoop.current().start()
//! ```
//!
//! Run with `cargo run --example tornado_style`.

use std::cell::Cell;
use std::rc::Rc;

use twined::defer::Failure;
use twined::reactor;
use twined::web::client::{read_body, Agent};
use twined::web::server::{Request, Response, Site};
use twined::web::Headers;

/// Tornado's `fetch(url, callback)`: the callback gets (status, body) or the failure.
fn fetch(
    agent: &Agent,
    url: &str,
    callback: impl FnOnce(Result<(u16, Vec<u8>), Failure>) + 'static,
) {
    agent
        .request("GET", url, Headers::new(), None)
        .and_then(|response| {
            let status = response.status;
            read_body(response).add_callback(move |body| (status, body))
        })
        .add_both(callback);
}

fn main() {
    let site = Site::new(|req: Request| match req.path() {
        "/missing" => Response::new(404).body("no"),
        path => Response::new(200).body(path.to_uppercase()),
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");
    let base = format!("http://{}", port.address());
    let agent = Agent::new();
    let pending = Rc::new(Cell::new(0));

    // IOLoop.add_callback: run once the loop is running.
    let p = pending.clone();
    reactor::call_when_running(move || {
        for path in ["/one", "/two", "/missing"] {
            p.set(p.get() + 1);
            let p = p.clone();
            fetch(&agent, &format!("{base}{path}"), move |result| {
                match result {
                    Ok((status, body)) => {
                        println!("{path}: {status} {}", String::from_utf8_lossy(&body))
                    }
                    Err(failure) => println!("{path}: failed: {failure}"),
                }
                p.set(p.get() - 1);
                if p.get() == 0 {
                    reactor::stop().expect("stop");
                }
            });
        }
    });
    reactor::run().expect("run");
    println!("pending at exit: {}", pending.get());
}
