//! Shared helpers for the integration tests: a bounded reactor run, result
//! capture, and (for the web tests) raw-socket servers that misbehave on
//! purpose.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{Deferred, Failure};
use twined::protocol::{Protocol, Transport};
use twined::reactor;

/// Runs the reactor; fails the test if it is still running after `limit`.
pub fn run_bounded(limit: Duration) {
    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    let watchdog = reactor::call_later(limit, move || {
        t.set(true);
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    assert!(!timed_out.get(), "the test did not finish within {limit:?}");
}

/// Runs the reactor until `d` fires (bounded) and returns its result.
pub fn wait<T: 'static>(d: Deferred<T>) -> Result<T, Failure> {
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    d.add_both(move |r| {
        *s.borrow_mut() = Some(r);
        // Fired before `run`: no stop to keep for a later run.
        if reactor::running() {
            let _ = reactor::stop();
        }
    });
    if slot.borrow().is_none() {
        run_bounded(Duration::from_secs(30));
    }
    let r = slot.borrow_mut().take();
    r.expect("the Deferred did not fire")
}

/// The web error inside a failure.
pub fn web_error(failure: &Failure) -> &twined::web::Error {
    failure
        .downcast_ref::<twined::web::Error>()
        .unwrap_or_else(|| panic!("not a web::Error: {failure:?}"))
}

/// `get_page` of `url` on `agent`, the reactor run until it fires.
pub fn page(agent: &twined::web::client::Agent, url: &str) -> Result<Vec<u8>, Failure> {
    wait(twined::web::client::get_page_with(
        url,
        twined::web::client::PageOptions {
            agent: Some(agent.clone()),
            ..Default::default()
        },
    ))
}

/// Runs the reactor (at most 5 s) until `reached` says the request got as
/// far as a proxy, then cancels `request` there: it must fail `Cancelled`,
/// close its connection to the proxy and free its pool slot.
pub fn cancel_once_reached(
    agent: &twined::web::client::Agent,
    request: Deferred<twined::web::client::Response>,
    reached: impl Fn() -> bool,
) {
    for _ in 0..50 {
        reactor::call_later(Duration::from_millis(100), reactor::crash);
        reactor::run().unwrap();
        if reached() {
            break;
        }
    }
    assert!(reached(), "the request never reached the proxy");
    let before = reactor::source_count();
    request.cancel();
    let failure = request.result().unwrap().unwrap_err();
    assert_eq!(
        web_error(&failure).kind(),
        twined::web::ErrorKind::Cancelled,
        "{failure}"
    );
    assert_eq!(
        reactor::source_count(),
        before - 1,
        "the connection to the proxy should be closed"
    );
    assert_eq!(agent.pool().in_flight(), 0);
}

/// What a raw server does after writing its canned response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Close cleanly.
    Close,
    /// Reset the connection.
    Abort,
    /// Keep the connection open.
    Stay,
}

/// A server that answers each request head (up to the blank line) with
/// `parts` written with `gap` between them, then does `then`.
pub struct Raw {
    pub parts: Vec<Vec<u8>>,
    pub gap: Duration,
    pub then: Then,
    pub transport: Option<Transport>,
    pub seen: Vec<u8>,
}

impl Protocol for Raw {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.seen.extend_from_slice(data);
        if !self.seen.windows(4).any(|w| w == b"\r\n\r\n") {
            return;
        }
        self.seen.clear();
        let Some(t) = self.transport.clone() else {
            return;
        };
        let parts = self.parts.clone();
        let (gap, then) = (self.gap, self.then);
        send_parts(t, parts, 0, gap, then);
    }
}

fn send_parts(t: Transport, parts: Vec<Vec<u8>>, i: usize, gap: Duration, then: Then) {
    if i == parts.len() {
        match then {
            Then::Close => t.lose_connection(),
            Then::Abort => t.abort_connection(),
            Then::Stay => {}
        }
        return;
    }
    t.write(&parts[i]);
    if gap.is_zero() {
        send_parts(t, parts, i + 1, gap, then);
    } else {
        reactor::call_later(gap, move || send_parts(t, parts, i + 1, gap, then));
    }
}

/// Starts a raw server; returns its base URL.
pub fn raw_server(parts: Vec<&[u8]>, gap: Duration, then: Then) -> (String, reactor::Port) {
    let parts: Vec<Vec<u8>> = parts.into_iter().map(<[u8]>::to_vec).collect();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| Raw {
        parts: parts.clone(),
        gap,
        then,
        transport: None,
        seen: Vec::new(),
    })
    .unwrap();
    (format!("http://{}", port.address()), port)
}
