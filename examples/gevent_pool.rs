//! gevent's `Pool(size)`: spawn many fetches, at most `size` at once, wait
//! for all. In twined the pool is a `DeferredSemaphore`.
//!
//! ```python
//! pool = gevent.pool.Pool(3)
//! for url in urls: pool.spawn(fetch, url)
//! pool.join()
//! ```
//!
//! Run with `cargo run --example gevent_pool`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{DeferredList, DeferredSemaphore, Failure};
use twined::reactor;
use twined::task;
use twined::web::client::get_page;
use twined::web::server::{Request, Response, Site};

fn main() {
    // The server counts how many requests it is serving at once.
    let busy = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let (b, p) = (busy.clone(), peak.clone());
    let site = Site::new(move |req: Request| {
        b.set(b.get() + 1);
        p.set(p.get().max(b.get()));
        let b = b.clone();
        let path = req.path().to_string();
        task::defer_later(Duration::from_millis(20), move || {
            b.set(b.get() - 1);
            Ok::<_, Failure>(Response::new(200).body(path))
        })
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");

    let pool = DeferredSemaphore::new(3).expect("size");
    let jobs = (0..12).map(|i| {
        let url = format!("http://{}/job{i}", port.address());
        // pool.spawn(fetch, url)
        pool.run(move || get_page(&url))
            .add_callback(|body| println!("done {}", String::from_utf8_lossy(&body)))
    });
    // pool.join()
    DeferredList::new(jobs).add_both(|_| reactor::stop().expect("stop"));
    reactor::run().expect("run");
    println!("at most {} requests ran at once (pool size 3)", peak.get());
    assert!(peak.get() <= 3);
}
