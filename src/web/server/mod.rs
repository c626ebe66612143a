//! A small HTTP/1.1 server on the reactor (Twisted's `twisted.web.server.Site`).
//!
//! A [`Site`] is a [`crate::protocol::Factory`] for
//! [`listen_tcp`](crate::reactor::listen_tcp), built from a handler: a closure
//! from a [`Request`] to a [`Response`], or to a `Deferred<Response>` for
//! answers that take time. Connections are kept alive (HTTP/1.1 by default,
//! HTTP/1.0 with `Connection: keep-alive`); pipelined requests are answered in
//! order. Bodies go out with `Content-Length`, or chunked. A head over the
//! limit gets 431, a malformed one 400, a body over the limit 413, a
//! handler that panics or fails 500; the connection is closed after each of
//! these.
//!
//! ```
//! use twined::web::server::{Request, Response, Site};
//! use twined::reactor;
//!
//! let site = Site::new(|request: Request| match request.path() {
//!     "/" => Response::new(200).body("hello"),
//!     _ => Response::new(404).body("not found"),
//! });
//! let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
//! println!("serving on http://{}/", port.address());
//! # port.stop_listening();
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::http1::{
    encode_chunk, encode_last_chunk, parse_request_head, reason_phrase, request_framing,
    request_keeps_alive, write_response_head, BodyDecoder, CodecError, Framing, Headers,
    RequestHead, Version, DEFAULT_HEAD_LIMIT,
};
use crate::defer::{Deferred, Failure, Panicked};
use crate::protocol::{Factory, Protocol, Transport};
use crate::reactor::{self, Current, DelayedCall, ReactorTime};

/// Requests parsed ahead of their responses on one connection before the
/// server stops reading (pipelining back-pressure).
const MAX_PIPELINE: usize = 32;

/// An HTTP request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method (`GET`).
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty when there is none).
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// Sent with `Content-Length`.
    Full(Vec<u8>),
    /// Sent with `Transfer-Encoding: chunked`, one chunk per element, and
    /// trailer fields.
    Chunked(Vec<Vec<u8>>, Headers),
}

/// An HTTP response, built with chained calls.
///
/// ```
/// use twined::web::server::Response;
///
/// let r = Response::new(201).header("Location", "/things/1").body("created");
/// assert_eq!(r.status(), 201);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    reason: Option<String>,
    headers: Headers,
    body: Body,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Headers::new(),
            body: Body::Full(Vec::new()),
        }
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A custom reason phrase (default: the standard one).
    pub fn reason(mut self, reason: impl Into<String>) -> Response {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding` and
    /// `Connection` are set by the server and ignored here.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.append(name, value);
        self
    }

    /// Sets the body, sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::Full(body.into());
        self
    }

    /// Sets the body, sent chunked: one chunk per element, then `trailers`.
    pub fn chunked(mut self, chunks: Vec<Vec<u8>>, trailers: Headers) -> Response {
        self.body = Body::Chunked(chunks, trailers);
        self
    }
}

/// What a handler may return: a [`Response`] or a `Deferred` of one.
pub trait IntoReply {
    /// The response, now or later.
    fn into_reply(self) -> Deferred<Response>;
}

impl IntoReply for Response {
    fn into_reply(self) -> Deferred<Response> {
        crate::defer::succeed(self)
    }
}

impl IntoReply for Deferred<Response> {
    fn into_reply(self) -> Deferred<Response> {
        self
    }
}

type Handler = dyn Fn(Request) -> Deferred<Response>;

struct SiteInner {
    handler: Box<Handler>,
    head_limit: usize,
    max_body: u64,
    idle_timeout: Option<Duration>,
}

/// An HTTP/1.1 site: give it to [`listen_tcp`](crate::reactor::listen_tcp).
#[derive(Clone)]
pub struct Site {
    inner: Rc<SiteInner>,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("head_limit", &self.inner.head_limit)
            .field("max_body", &self.inner.max_body)
            .field("idle_timeout", &self.inner.idle_timeout)
            .finish()
    }
}

impl Site {
    /// A site answering every request with `handler`. Defaults: 64 KiB head
    /// limit, 16 MiB body limit, keep-alive connections closed after 60 s idle.
    pub fn new<R: IntoReply>(handler: impl Fn(Request) -> R + 'static) -> Site {
        Site {
            inner: Rc::new(SiteInner {
                handler: Box::new(move |request| handler(request).into_reply()),
                head_limit: DEFAULT_HEAD_LIMIT,
                max_body: 16 * 1024 * 1024,
                idle_timeout: Some(Duration::from_secs(60)),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut SiteInner)) -> Site {
        let mut inner = match Rc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => {
                // Still shared: options are set before serving, so this is
                // a misuse; keep the old settings.
                log::warn!("Site options must be set before the site is shared");
                return Site { inner: shared };
            }
        };
        f(&mut inner);
        Site {
            inner: Rc::new(inner),
        }
    }

    /// Sets the largest request head accepted (431 beyond).
    pub fn head_limit(self, bytes: usize) -> Site {
        self.with(|s| s.head_limit = bytes)
    }

    /// Sets the largest request body accepted (413 beyond).
    pub fn max_body(self, bytes: u64) -> Site {
        self.with(|s| s.max_body = bytes)
    }

    /// Closes keep-alive connections idle this long (`None`: never).
    pub fn idle_timeout(self, timeout: Option<Duration>) -> Site {
        self.with(|s| s.idle_timeout = timeout)
    }
}

impl Factory for Site {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Channel(Rc::new(RefCell::new(State {
            site: self.inner.clone(),
            peer,
            transport: None,
            input: Vec::new(),
            reading: None,
            queue: VecDeque::new(),
            next_id: 0,
            closing: false,
            processing: false,
            idle: None,
            last_active: Duration::ZERO,
        })))))
    }
}

/// A response slot: requests are answered in order.
struct Slot {
    id: u64,
    bytes: Option<Vec<u8>>,
    close_after: bool,
}

/// One connection's state, shared with the handlers' pending Deferreds.
struct State {
    site: Rc<SiteInner>,
    peer: SocketAddr,
    transport: Option<Transport>,
    input: Vec<u8>,
    /// The request whose body is being read.
    reading: Option<(RequestHead, BodyDecoder, Vec<u8>)>,
    queue: VecDeque<Slot>,
    next_id: u64,
    /// A response that closes the connection was queued: read nothing more.
    closing: bool,
    /// `process` is running (a handler that answers at once must not
    /// re-enter it).
    processing: bool,
    idle: Option<DelayedCall>,
    /// When the last response went out (reactor time).
    last_active: Duration,
}

type StateRef = Rc<RefCell<State>>;

/// One connection's protocol.
struct Channel(StateRef);

fn error_response(status: u16, message: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(format!("{status} {}: {message}\n", reason_phrase(status)))
}

/// Serialises `response` to a request with `method` and `version`.
fn serialize(response: Response, method: &str, version: Version, close: bool) -> Vec<u8> {
    let Response {
        status,
        reason,
        mut headers,
        body,
    } = response;
    for name in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(name);
    }
    let bodiless_status = (100..200).contains(&status) || status == 204 || status == 304;
    let no_body = method.eq_ignore_ascii_case("HEAD") || bodiless_status;
    let mut body_bytes = Vec::new();
    match body {
        Body::Full(bytes) => {
            if !bodiless_status {
                headers.append("Content-Length", bytes.len().to_string());
            }
            if !no_body {
                body_bytes = bytes;
            }
        }
        Body::Chunked(chunks, trailers) => {
            if version == Version::Http10 {
                // HTTP/1.0 has no chunked coding: send it whole.
                let bytes: Vec<u8> = chunks.concat();
                headers.append("Content-Length", bytes.len().to_string());
                if !no_body {
                    body_bytes = bytes;
                }
            } else if !bodiless_status {
                headers.append("Transfer-Encoding", "chunked");
                if !no_body {
                    for chunk in &chunks {
                        encode_chunk(&mut body_bytes, chunk);
                    }
                    if let Err(e) = encode_last_chunk(&mut body_bytes, &trailers) {
                        log::error!("invalid trailer dropped: {e}");
                        body_bytes.extend_from_slice(b"0\r\n\r\n");
                    }
                }
            }
        }
    }
    if close {
        headers.append("Connection", "close");
    } else if version == Version::Http10 {
        headers.append("Connection", "keep-alive");
    }
    let reason = reason.unwrap_or_else(|| reason_phrase(status).to_string());
    let mut out = Vec::with_capacity(128 + headers.len() * 32 + body_bytes.len());
    if let Err(e) = write_response_head(&mut out, version, status, &reason, &headers) {
        log::error!("a handler's response has an invalid header ({e}); sending 500");
        let fallback = error_response(500, "the response had an invalid header");
        return serialize(fallback, method, version, true);
    }
    out.extend_from_slice(&body_bytes);
    out
}

impl State {
    /// Writes every finished response at the front of the queue, in order.
    fn flush(&mut self) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        while self.queue.front().is_some_and(|s| s.bytes.is_some()) {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            if let Some(bytes) = slot.bytes {
                transport.write(&bytes);
            }
            if slot.close_after {
                self.queue.clear();
                transport.lose_connection();
                return;
            }
        }
    }

    /// Queues an error answer and closes after it.
    fn reject(&mut self, status: u16, message: &str) {
        let bytes = serialize(
            error_response(status, message),
            "GET",
            Version::Http11,
            true,
        );
        let id = self.next_id;
        self.next_id += 1;
        self.closing = true;
        self.queue.push_back(Slot {
            id,
            bytes: Some(bytes),
            close_after: true,
        });
        self.input.clear();
        self.reading = None;
        self.flush();
    }

    /// Parses the next complete request out of the input, if there is one.
    fn next_request(&mut self) -> Option<(RequestHead, Vec<u8>)> {
        {
            if self.closing {
                return None;
            }
            if self.reading.is_none() {
                if self.input.is_empty() {
                    return None;
                }
                if self.queue.len() >= MAX_PIPELINE {
                    // Stop reading until responses have gone out.
                    if let Some(t) = &self.transport {
                        t.pause_producing();
                    }
                    return None;
                }
                match parse_request_head(&self.input, self.site.head_limit) {
                    Ok(None) => return None,
                    Ok(Some((head, len))) => {
                        self.input.drain(..len);
                        let framing = match request_framing(&head.headers) {
                            Ok(f) => f,
                            Err(e) => {
                                self.reject(400, &e.to_string());
                                return None;
                            }
                        };
                        if let Framing::Length(n) = framing {
                            if n > self.site.max_body {
                                self.reject(413, "the request body is too large");
                                return None;
                            }
                        }
                        if head.version == Version::Http11
                            && head.headers.has_token("expect", "100-continue")
                        {
                            if let Some(t) = &self.transport {
                                t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                            }
                        }
                        self.reading = Some((head, BodyDecoder::new(framing), Vec::new()));
                    }
                    Err(CodecError::HeadTooLarge { .. }) => {
                        self.reject(431, "the request head is too large");
                        return None;
                    }
                    Err(e) => {
                        self.reject(400, &e.to_string());
                        return None;
                    }
                }
            }
            let (_, decoder, body) = self.reading.as_mut()?;
            match decoder.decode(&self.input, &mut |bytes| body.extend_from_slice(bytes)) {
                Ok(decoded) => {
                    let too_large = body.len() as u64 > self.site.max_body;
                    self.input.drain(..decoded.consumed);
                    if too_large {
                        self.reject(413, "the request body is too large");
                        return None;
                    }
                    if !decoded.done {
                        return None;
                    }
                }
                Err(e) => {
                    self.reject(400, &e.to_string());
                    return None;
                }
            }
            let (head, _, body) = self.reading.take()?;
            Some((head, body))
        }
    }
}

/// Dispatches every complete request in the input. Not re-entrant: a
/// handler that answers at once lands back here with `processing` set.
fn process(state: &StateRef) {
    {
        let mut st = state.borrow_mut();
        if st.processing {
            return;
        }
        st.processing = true;
    }
    loop {
        let next = state.borrow_mut().next_request();
        let Some((head, body)) = next else { break };
        dispatch(state, head, body);
    }
    state.borrow_mut().processing = false;
}

fn dispatch(state: &StateRef, head: RequestHead, body: Vec<u8>) {
    let close = !request_keeps_alive(&head);
    let (method, version) = (head.method.clone(), head.version);
    let (id, site, peer) = {
        let mut st = state.borrow_mut();
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push_back(Slot {
            id,
            bytes: None,
            close_after: close,
        });
        if close {
            st.closing = true;
        }
        (id, st.site.clone(), st.peer)
    };
    let request = Request {
        method: head.method,
        target: head.target,
        version: head.version,
        headers: head.headers,
        body,
        peer: Some(peer),
    };
    let reply = match catch_unwind(AssertUnwindSafe(|| (site.handler)(request))) {
        Ok(reply) => reply,
        Err(panic) => crate::defer::fail(Failure::new(Panicked::from_payload(panic))),
    };
    let state = state.clone();
    reply.add_both(move |result| {
        let response = result.unwrap_or_else(|failure| {
            log::error!("a request handler failed: {failure}");
            error_response(500, "the handler failed")
        });
        let bytes = serialize(response, &method, version, close);
        let (resume, idle, transport) = {
            let mut st = state.borrow_mut();
            if let Some(slot) = st.queue.iter_mut().find(|s| s.id == id) {
                slot.bytes = Some(bytes);
            }
            st.flush();
            (
                st.queue.len() < MAX_PIPELINE && !st.closing,
                st.queue.is_empty() && !st.closing,
                st.transport.clone(),
            )
        };
        if let (true, Some(t)) = (resume, transport.as_ref()) {
            t.resume_producing();
            // Pipelined requests may already be in the input.
            process(&state);
        }
        if idle {
            state.borrow_mut().last_active = Current.now();
        }
    });
}

/// Closes the connection once it has been idle for the site's idle timeout.
/// One timer per connection, moved on lazily: requests only stamp
/// `last_active`, and the timer, when it fires early, sets itself again for
/// the rest of the time.
fn arm_idle_timer(state: &StateRef, after: Duration) {
    let weak = Rc::downgrade(state);
    let call = reactor::call_later(after, move || {
        let Some(state) = weak.upgrade() else { return };
        let (transport, busy, last, timeout) = {
            let st = state.borrow();
            (
                st.transport.clone(),
                !st.queue.is_empty(),
                st.last_active,
                st.site.idle_timeout,
            )
        };
        let (Some(t), Some(timeout)) = (transport, timeout) else {
            return;
        };
        let idle_for = Current.now().saturating_sub(last);
        if busy {
            arm_idle_timer(&state, timeout);
        } else if idle_for >= timeout {
            t.lose_connection();
        } else {
            arm_idle_timer(&state, timeout - idle_for);
        }
    });
    if let Some(old) = state.borrow_mut().idle.replace(call) {
        let _ = old.cancel();
    }
}

impl Protocol for Channel {
    fn connection_made(&mut self, transport: Transport) {
        let timeout = {
            let mut st = self.0.borrow_mut();
            st.transport = Some(transport);
            st.last_active = Current.now();
            st.site.idle_timeout
        };
        if let Some(timeout) = timeout {
            arm_idle_timer(&self.0, timeout);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        {
            let mut st = self.0.borrow_mut();
            if st.closing {
                return;
            }
            st.input.extend_from_slice(data);
        }
        process(&self.0);
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let mut st = self.0.borrow_mut();
        if let Some(idle) = st.idle.take() {
            let _ = idle.cancel();
        }
        st.transport = None;
        st.queue.clear();
        st.input = Vec::new();
    }
}
