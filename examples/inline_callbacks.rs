//! `@inlineCallbacks` (or `async def` + `ensureDeferred`) as async/await:
//!
//! ```python
//! @inlineCallbacks
//! def crawl(urls):
//!     sizes = []
//!     for url in urls:
//!         body = yield getPage(url)
//!         sizes.append(len(body))
//!     returnValue(sizes)
//!
//! react(lambda reactor: crawl(urls).addCallback(print))
//! ```
//!
//! Run with `cargo run --example inline_callbacks`.

use twined::defer::{ensure_deferred, gather_results, Failure};
use twined::task;
use twined::web::client::get_page;
use twined::web::server::{Request, Response, Site};

fn main() {
    let result = task::react_async(|| async {
        let site = Site::new(|req: Request| Response::new(200).body(req.path().repeat(10)));
        let port = twined::reactor::listen_tcp("127.0.0.1:0", site)?;
        let base = format!("http://{}", port.address());

        // One after the other, as `yield` does.
        let mut sizes = Vec::new();
        for path in ["/a", "/bb", "/ccc"] {
            let body = get_page(format!("{base}{path}")).await?;
            sizes.push(body.len());
        }
        println!("sequential: {sizes:?}");

        // Side by side: gather_results of Deferreds made by async blocks.
        let parallel = gather_results(["/x", "/yy"].map(|path| {
            let url = format!("{base}{path}");
            ensure_deferred(async move { Ok::<_, Failure>(get_page(&url).await?.len()) })
        }))
        .await?;
        println!("parallel: {parallel:?}");

        // A failure is an Err: handle it like an except clause.
        match get_page("http://127.0.0.1:9/").await {
            Ok(_) => println!("unexpected success"),
            Err(failure) => println!("expected failure: {failure}"),
        }
        port.stop_listening();
        Ok::<_, Failure>(sizes.iter().sum::<usize>())
    });
    match result {
        Ok(total) => println!("total {total} bytes"),
        Err(failure) => {
            eprintln!("failed: {failure}");
            std::process::exit(1);
        }
    }
}
