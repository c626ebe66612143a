//! The README's "A taste" program must terminate whatever mix of synchronous
//! and asynchronous outcomes its Deferreds have: `reactor::stop()` called from
//! the `DeferredList` callback before `reactor::run()` (every fetch already
//! failed) makes `run()` do one pass and return, as asyncio's `loop.stop()`
//! before `run_forever()` does. (Twisted raises `ReactorNotRunning` there,
//! `test_stopWhenNotStarted`; a program that ignores it hangs.)
//!
//! Each program runs on its own thread (one reactor per thread) and the test
//! waits for it with a deadline, so a regression fails instead of hanging.
#![cfg(feature = "web")]

mod support;

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use twined::defer::{DeferredList, Failure};
use twined::reactor;
use twined::web::client::get_page;

/// The README's taste, over `urls`; returns the body lengths (0 for a failure).
fn taste(urls: Vec<String>) -> Vec<usize> {
    let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = out.clone();
    let pages = urls.iter().map(|url| {
        get_page(url)
            .add_callback(|body| body.len())
            .add_errback(|failure| {
                eprintln!("{failure}");
                0
            })
    });
    DeferredList::new(pages).add_both(move |results| {
        *o.borrow_mut() = results
            .unwrap()
            .into_iter()
            .map(|r: Result<usize, Failure>| r.unwrap())
            .collect();
        reactor::stop().unwrap();
    });
    reactor::run().unwrap();
    let lengths = out.borrow().clone();
    lengths
}

/// Runs `program` on a new thread; fails if it has not returned within 20 s.
fn terminates<T: Send + 'static>(program: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(program());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the program did not terminate (or panicked)")
}

/// A loopback port with nothing listening on it.
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

#[test]
fn taste_with_an_empty_url_list_terminates() {
    assert_eq!(terminates(|| taste(Vec::new())), Vec::<usize>::new());
}

#[test]
fn taste_with_only_malformed_urls_terminates() {
    let urls = vec![
        "not a url".to_owned(),
        "http://".to_owned(),
        "ftp://x/".to_owned(),
    ];
    assert_eq!(terminates(|| taste(urls)), [0, 0, 0]);
}

#[test]
fn taste_with_a_refused_port_terminates() {
    let url = refused_url();
    assert_eq!(terminates(move || taste(vec![url])), [0]);
}

#[test]
fn taste_with_mixed_outcomes_terminates() {
    let refused = refused_url();
    let lengths = terminates(move || {
        let (base, _port) = support::raw_server(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
            Duration::ZERO,
            support::Then::Close,
        );
        taste(vec![
            "not a url".to_owned(),
            format!("{base}/a"),
            refused,
            "http://".to_owned(),
        ])
    });
    assert_eq!(lengths, [0, 5, 0, 0]);
}

#[test]
fn stop_before_run_makes_one_full_pass_then_shuts_down() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use twined::reactor::{Event, Phase};

    let log = terminates(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        reactor::call_when_running(move || l.borrow_mut().push("startup"));
        let l = log.clone();
        reactor::call_later(Duration::ZERO, move || l.borrow_mut().push("due call"));
        let l = log.clone();
        reactor::call_later(Duration::from_secs(3600), move || {
            l.borrow_mut().push("later")
        });
        let l = log.clone();
        reactor::add_system_event_trigger(Phase::During, Event::Shutdown, move || {
            l.borrow_mut().push("shutdown")
        });
        assert!(reactor::stop().is_ok(), "a stop before run is accepted");
        assert!(
            reactor::stop().is_err(),
            "a second stop while one is pending is refused"
        );
        reactor::run().unwrap();
        let first = log.borrow().clone();
        // The pending stop was used up: the next run runs until stopped.
        let l = log.clone();
        reactor::call_later(Duration::from_millis(5), move || {
            l.borrow_mut().push("second run");
            reactor::stop().unwrap();
        });
        reactor::run().unwrap();
        let all = log.borrow().clone();
        (first, all)
    });
    assert_eq!(log.0, ["startup", "due call", "shutdown"]);
    assert_eq!(log.1.last(), Some(&"second run"));
}
