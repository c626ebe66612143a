//! grequests' `map(requests, size=N, exception_handler=h)`: a pool of N
//! concurrent requests, results in input order, failures passed to a
//! handler. The list meets a timeout, a bad host and a 500 on purpose.
//!
//! ```python
//! reqs = (grequests.get(u, timeout=0.2) for u in urls)
//! for r in grequests.map(reqs, size=2, exception_handler=handler): ...
//! ```
//!
//! Run with `cargo run --example grequests_map`.

use std::time::Duration;

use twined::defer::{Deferred, DeferredSemaphore, Failure};
use twined::task;
use twined::web::client::{get_page_with, PageOptions};
use twined::web::server::{Request, Response, Site};

/// `grequests.map`: at most `size` requests at once, results in order, each
/// failure replaced by what `handler` returns.
fn map(
    urls: Vec<String>,
    size: usize,
    timeout: Duration,
    handler: impl Fn(&str, &Failure) -> Option<Vec<u8>> + 'static,
) -> Deferred<Vec<Option<Vec<u8>>>> {
    let pool = DeferredSemaphore::new(size.max(1)).expect("a pool of at least one");
    let handler = std::rc::Rc::new(handler);
    let ds = urls.into_iter().map(|url| {
        let handler = handler.clone();
        let options = PageOptions {
            timeout: Some(timeout),
            ..Default::default()
        };
        pool.run(move || {
            get_page_with(&url, options).then(move |r| match r {
                Ok(body) => Ok::<_, Failure>(Some(body)),
                Err(failure) => Ok(handler(&url, &failure)),
            })
        })
    });
    twined::defer::gather_results(ds)
}

fn main() {
    let result = task::react_async(|| async {
        let site = Site::new(|req: Request| match req.path() {
            "/slow" => task::defer_later(Duration::from_secs(2), || {
                Ok::<_, Failure>(Response::new(200).body("too late"))
            }),
            "/error" => twined::defer::succeed(Response::new(500).body("oops")),
            _ => twined::defer::succeed(Response::new(200).body("fine")),
        });
        let port = twined::reactor::listen_tcp("127.0.0.1:0", site)?;
        let base = format!("http://{}", port.address());
        let urls = vec![
            format!("{base}/ok"),
            format!("{base}/slow"),
            "http://no-such-host.invalid/".to_string(),
            format!("{base}/error"),
            format!("{base}/fine"),
        ];
        let results = map(
            urls.clone(),
            2,
            Duration::from_millis(200),
            |url, failure| {
                let kind = failure
                    .downcast_ref::<twined::web::Error>()
                    .map_or("other", |e| e.kind().as_str());
                println!("exception_handler: {url}: {kind}: {failure}");
                None
            },
        )
        .await?;
        for (url, r) in urls.iter().zip(&results) {
            println!(
                "{url}: {}",
                r.as_ref()
                    .map_or("None".into(), |b| format!("{} bytes", b.len()))
            );
        }
        port.stop_listening();
        Ok::<_, Failure>(results.iter().filter(|r| r.is_some()).count())
    });
    match result {
        Ok(ok) => println!("{ok} of 5 succeeded"),
        Err(f) => {
            eprintln!("failed: {f}");
            std::process::exit(1);
        }
    }
}
