//! `fetch_retrying`: what is resent, after which wait, on which clock,
//! against loopback servers that answer "later", close without a response,
//! or reset mid-body.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use support::{raw_server, wait, web_error, Then};
use twined::defer::{Deferred, Failure};
use twined::reactor;
use twined::task::{self, Clock};
use twined::web::client::{fetch_retrying, fetch_retrying_on, PageOptions, RetryPolicy};
use twined::web::server::{Request, Response, Site};
use twined::web::{Error, ErrorKind};

/// Fires once `ready()` holds, polling every 5 ms; fails after 10 s.
fn until(ready: impl Fn() -> bool + 'static) -> Deferred<()> {
    let (d, trigger) = Deferred::new();
    fn poll(ready: Rc<dyn Fn() -> bool>, trigger: twined::defer::Trigger<()>, left: u32) {
        if ready() {
            return trigger.callback(());
        }
        if left == 0 {
            return trigger.errback(Failure::msg("condition not met within 10 s"));
        }
        reactor::call_later(Duration::from_millis(5), move || {
            poll(ready, trigger, left - 1)
        });
    }
    poll(Rc::new(ready), trigger, 2000);
    d
}

/// A site that answers 429 with `Retry-After: 2` to its first request and
/// 200 to the others; counts requests.
fn busy_once() -> (reactor::Port, String, Rc<Cell<u32>>) {
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let site = Site::new(move |_req: Request| {
        seen.set(seen.get() + 1);
        match seen.get() {
            1 => Response::new(429)
                .header("Retry-After", "2")
                .body("slow down"),
            _ => Response::new(200).body("welcome back"),
        }
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let url = format!("http://{}/", port.address());
    (port, url, calls)
}

#[test]
fn retry_after_is_waited_on_the_given_clock_and_not_a_moment_less() {
    let (port, url, calls) = busy_once();
    let clock = Clock::new();
    let policy = RetryPolicy::default();
    let c = clock.clone();
    let retried = task::react_async(move || async move {
        let d = fetch_retrying_on(c.clone(), &url, PageOptions::default(), &policy);
        // The 429 arrived and the wait is scheduled on the clock.
        let (n, k) = (calls.clone(), c.clone());
        until(move || n.get() == 1 && k.pending() == 1).await?;
        c.advance(Duration::from_millis(1900));
        task::sleep(Duration::from_millis(100)).await?;
        assert_eq!(calls.get(), 1, "resent before Retry-After ran out");
        assert_eq!(c.pending(), 1);
        c.advance(Duration::from_millis(101));
        assert_eq!(c.pending(), 0, "the wait is over");
        let retried = d.await?;
        assert_eq!(calls.get(), 2);
        Ok::<_, Failure>(retried)
    })
    .unwrap();
    assert_eq!(retried.attempts, 2);
    let page = retried.result.unwrap();
    assert_eq!(
        (page.status, page.body.as_slice()),
        (200, &b"welcome back"[..])
    );
    drop(clock);
    port.stop_listening();
}

#[test]
fn a_retry_after_past_the_cap_is_the_result() {
    let (port, url, calls) = busy_once();
    let policy = RetryPolicy {
        backoff_cap: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let retried = wait(fetch_retrying(&url, PageOptions::default(), &policy)).unwrap();
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.result.unwrap().status, 429);
    assert_eq!(calls.get(), 1);
    port.stop_listening();
}

#[test]
fn a_post_is_not_resent_after_a_response() {
    let (port, url, calls) = busy_once();
    let options = PageOptions {
        method: "POST".into(),
        body: Some(b"x".to_vec()),
        ..PageOptions::default()
    };
    let retried = wait(fetch_retrying(&url, options, &RetryPolicy::default())).unwrap();
    assert_eq!((retried.attempts, calls.get()), (1, 1));
    assert_eq!(retried.result.unwrap().status, 429);
    port.stop_listening();
}

fn quick(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        backoff_base: Duration::from_millis(1),
        ..RetryPolicy::default()
    }
}

#[test]
fn a_close_before_any_response_byte_is_no_response_and_is_retried() {
    let (url, port) = raw_server(vec![], Duration::ZERO, Then::Close);
    let retried = wait(fetch_retrying(&url, PageOptions::default(), &quick(3))).unwrap();
    assert_eq!(retried.attempts, 4, "the first try and three retries");
    let failure = retried.result.unwrap_err();
    let error = web_error(&failure);
    assert!(matches!(error, Error::NoResponse { .. }), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Io);
    port.stop_listening();
}

#[test]
fn a_reset_after_part_of_the_body_is_never_retried() {
    let (url, port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        Duration::from_millis(20),
        Then::Abort,
    );
    let retried = wait(fetch_retrying(&url, PageOptions::default(), &quick(3))).unwrap();
    assert_eq!(retried.attempts, 1);
    let failure = retried.result.unwrap_err();
    let error = web_error(&failure);
    assert!(
        matches!(error.kind(), ErrorKind::Io | ErrorKind::Protocol),
        "{error:?}"
    );
    assert!(!matches!(error, Error::NoResponse { .. }), "{error:?}");
    port.stop_listening();
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{refused}/");
    let options = PageOptions {
        method: "POST".into(),
        ..PageOptions::default()
    };
    // Nothing was sent: even a POST is retried.
    let retried = wait(fetch_retrying(&url, options, &quick(2))).unwrap();
    assert_eq!(retried.attempts, 3);
    let failure = retried.result.unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Connect);
}

#[test]
fn cancelling_during_the_wait_removes_the_timer() {
    let (port, url, calls) = busy_once();
    let clock = Clock::new();
    let c = clock.clone();
    let result = task::react_async(move || async move {
        let d = fetch_retrying_on(
            c.clone(),
            &url,
            PageOptions::default(),
            &RetryPolicy::default(),
        );
        let (n, k) = (calls.clone(), c.clone());
        until(move || n.get() == 1 && k.pending() == 1).await?;
        d.cancel();
        assert_eq!(c.pending(), 0);
        let cancelled = d.await.unwrap_err();
        assert!(
            cancelled.check::<twined::defer::CancelledError>(),
            "{cancelled}"
        );
        c.advance(Duration::from_secs(5));
        task::sleep(Duration::from_millis(50)).await?;
        assert_eq!(calls.get(), 1);
        Ok::<_, Failure>(())
    });
    result.unwrap();
    port.stop_listening();
}
