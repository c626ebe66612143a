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

use twined::reactor;
use twined::web::client::fetch;
use twined::web::server::{Request, Response, Site};

fn main() {
    let site = Site::new(|req: Request| match req.path() {
        "/missing" => Response::new(404).body("no"),
        path => Response::new(200).body(path.to_uppercase()),
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");
    let base = format!("http://{}", port.address());
    let pending = Rc::new(Cell::new(0));

    // IOLoop.add_callback: run once the loop is running.
    let p = pending.clone();
    reactor::call_when_running(move || {
        for path in ["/one", "/two", "/missing"] {
            p.set(p.get() + 1);
            let p = p.clone();
            // Tornado's `fetch(url, callback, raise_error=False)`: the callback
            // gets the whole response (a 404 included) or the failure.
            fetch(format!("{base}{path}")).add_both(move |result| {
                match result {
                    Ok(page) => println!("{path}: {} {}", page.status, page.text()),
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
