//! A raw HTTP server for the web client tests that keeps every request head
//! it gets, byte for byte, and answers each with a function of that head.
#![allow(dead_code)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use twined::protocol::{Protocol, Transport};
use twined::reactor;

/// The request heads a [`recorder`] got, in order, as sent.
pub type Log = Rc<RefCell<Vec<String>>>;

/// How a recorder answers a request head.
type Answer = Rc<dyn Fn(&str) -> Vec<u8>>;

struct Recorder {
    log: Log,
    answer: Answer,
    transport: Option<Transport>,
    input: Vec<u8>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        // Bodyless requests only: each head ends at the blank line.
        while let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = self.input.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head).into_owned();
            let reply = (self.answer)(&head);
            self.log.borrow_mut().push(head);
            if let Some(t) = &self.transport {
                t.write(&reply);
            }
        }
    }
}

/// Starts a recording server; returns its base URL, its log and its port.
pub fn recorder(answer: impl Fn(&str) -> Vec<u8> + 'static) -> (String, Log, reactor::Port) {
    let log: Log = Rc::default();
    let answer: Answer = Rc::new(answer);
    let l = log.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| Recorder {
        log: l.clone(),
        answer: answer.clone(),
        transport: None,
        input: Vec::new(),
    })
    .unwrap();
    (format!("http://{}", port.address()), log, port)
}

/// The request target of a head (`GET /x HTTP/1.1` -> `/x`).
pub fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

/// The values of every field `name` in a head, in order.
pub fn fields<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// A response with a body and `Content-Length`.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A redirect to `location`.
pub fn redirect(status: u16, location: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
        .into_bytes()
}
