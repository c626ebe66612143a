//! Twisted's classic batch fetch, ported line by line:
//!
//! ```python
//! def one_done(body, url): print(url, len(body))
//! def all_done(results): reactor.stop()
//! ds = [getPage(url).addCallback(one_done, url) for url in urls]
//! DeferredList(ds).addBoth(all_done)
//! reactor.run()
//! ```
//!
//! It serves its own pages with `web::server` on 127.0.0.1 (no network).
//! Run with `cargo run --example getpage_deferredlist`.

use twined::defer::DeferredList;
use twined::reactor;
use twined::web::client::get_page;
use twined::web::server::{Request, Response, Site};

fn main() {
    // A local site whose page /n is n * 100 bytes long.
    let site = Site::new(|req: Request| {
        let n: usize = req.path().trim_start_matches('/').parse().unwrap_or(0);
        Response::new(200).body(vec![b'.'; n * 100])
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");
    let urls: Vec<String> = (1..=5)
        .map(|n| format!("http://{}/{n}", port.address()))
        .collect();

    let ds = urls.into_iter().map(|url| {
        // getPage(url).addCallback(one_done, url)
        get_page(&url).add_callback(move |body| {
            println!("{url} {} bytes", body.len());
            body.len()
        })
    });
    // DeferredList(ds).addBoth(all_done)
    DeferredList::new(ds).add_both(|results| {
        let ok = results
            .map(|r| r.iter().filter(|x| x.is_ok()).count())
            .unwrap_or(0);
        println!("all done: {ok} pages");
        reactor::stop().expect("stop");
    });
    reactor::run().expect("run");
}
