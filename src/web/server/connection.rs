//! One server connection: reads requests with the codec, hands them to the
//! site's handler, and writes the answers in order.
//!
//! Memory per connection is bounded whatever the peer does: the head by the
//! site's head limit, the body by its body limit, the answers waiting for a
//! slow handler by [`MAX_PIPELINE`], and the output the peer has not taken
//! by the site's unsent-output bound. Past either of the last two the
//! connection stops reading (the transport's `pause_producing`) and reads
//! again as answers go out and the peer takes them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::request::Request;
use super::response::{error_response, serialize};
use super::SiteInner;
use crate::defer::report::report_error;
use crate::defer::{Failure, Panicked};
use crate::protocol::{Protocol, Transport};
use crate::reactor::{self, Current, DelayedCall, ReactorTime};
use crate::web::http1::{
    check_host, parse_request_head, request_framing, request_keeps_alive, BodyDecoder, CodecError,
    Framing, RequestHead, Version,
};

/// Requests parsed ahead of their responses on one connection before the
/// server stops reading (pipelining back-pressure).
pub(super) const MAX_PIPELINE: usize = 32;

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
    /// Reading from the socket is paused (too many answers pending, or too
    /// much output unsent).
    read_paused: bool,
    idle: Option<DelayedCall>,
    /// When the connection last made progress: a response queued or output
    /// taken by the peer (reactor time).
    last_active: Duration,
    /// Unsent output when the idle timer last looked.
    unsent_at_check: usize,
}

type StateRef = Rc<RefCell<State>>;

/// One connection's protocol.
pub(super) struct Channel(StateRef);

impl Channel {
    pub(super) fn new(site: Rc<SiteInner>, peer: SocketAddr) -> Channel {
        Channel(Rc::new(RefCell::new(State {
            site,
            peer,
            transport: None,
            input: Vec::new(),
            reading: None,
            queue: VecDeque::new(),
            next_id: 0,
            closing: false,
            processing: false,
            read_paused: false,
            idle: None,
            last_active: Duration::ZERO,
            unsent_at_check: 0,
        })))
    }
}

/// Why the server refuses a request (and closes the connection after
/// saying so).
#[derive(Debug)]
enum Refusal {
    /// The codec found the request malformed, oversized or unsafe to frame.
    Codec(CodecError),
    /// The body is over the site's limit.
    BodyTooLarge,
}

impl From<CodecError> for Refusal {
    fn from(e: CodecError) -> Refusal {
        Refusal::Codec(e)
    }
}

impl Refusal {
    fn status(&self) -> u16 {
        match self {
            Refusal::Codec(CodecError::HeadTooLarge { .. }) => 431,
            Refusal::Codec(CodecError::UnsupportedTransferEncoding(_)) => 501,
            Refusal::Codec(_) => 400,
            Refusal::BodyTooLarge => 413,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Codec(e) => e.to_string(),
            Refusal::BodyTooLarge => "the request body is too large".into(),
        }
    }
}

impl State {
    /// Unsent output is over the site's bound: read no more requests.
    fn output_full(&self) -> bool {
        self.transport
            .as_ref()
            .is_some_and(|t| t.write_buffer_size() > self.site.max_unsent)
    }

    /// Whether a new request may be read now.
    fn may_read(&self) -> bool {
        !self.closing && self.queue.len() < MAX_PIPELINE && !self.output_full()
    }

    /// Pauses or resumes reading from the socket to match [`may_read`](Self::may_read).
    fn update_reading(&mut self) {
        let pause = self.reading.is_none() && !self.may_read();
        if pause == self.read_paused || self.closing {
            return;
        }
        self.read_paused = pause;
        if let Some(t) = &self.transport {
            if pause {
                t.pause_producing();
            } else {
                t.resume_producing();
            }
        }
    }

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
    fn reject(&mut self, refusal: Refusal) {
        let bytes = serialize(
            error_response(refusal.status(), &refusal.message()),
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
        self.input = Vec::new();
        self.reading = None;
        self.flush();
    }

    /// Starts reading the request whose head is at the front of the input.
    /// `Ok(false)`: no complete head yet.
    fn start_request(&mut self) -> Result<bool, Refusal> {
        let Some((head, len)) = parse_request_head(&self.input, self.site.head_limit)? else {
            return Ok(false);
        };
        self.input.drain(..len);
        check_host(&head)?;
        let framing = request_framing(&head)?;
        if let Framing::Length(n) = framing {
            if n > self.site.max_body {
                return Err(Refusal::BodyTooLarge);
            }
        }
        if head.version == Version::Http11 && head.headers.has_token("expect", "100-continue") {
            if let Some(t) = &self.transport {
                t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        self.reading = Some((head, BodyDecoder::new(framing), Vec::new()));
        Ok(true)
    }

    /// Parses the next complete request out of the input, if there is one.
    fn next_request(&mut self) -> Option<(RequestHead, Vec<u8>)> {
        if self.closing {
            return None;
        }
        if self.reading.is_none() {
            if self.input.is_empty() || !self.may_read() {
                return None;
            }
            match self.start_request() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(refusal) => {
                    self.reject(refusal);
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
                    self.reject(Refusal::BodyTooLarge);
                    return None;
                }
                if !decoded.done {
                    return None;
                }
            }
            Err(e) => {
                self.reject(Refusal::Codec(e));
                return None;
            }
        }
        let (head, _, body) = self.reading.take()?;
        Some((head, body))
    }
}

/// Dispatches every complete request in the input, then pauses or resumes
/// reading. Not re-entrant: a handler that answers at once lands back here
/// with `processing` set.
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
    let mut st = state.borrow_mut();
    st.processing = false;
    st.update_reading();
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
    let request = Request::new(head, body, peer);
    let reply = match catch_unwind(AssertUnwindSafe(|| (site.handler)(request))) {
        Ok(reply) => reply,
        Err(panic) => crate::defer::fail(Failure::new(Panicked::from_payload(panic))),
    };
    let state = state.clone();
    reply.add_both(move |result| {
        let response = result.unwrap_or_else(|failure| {
            report_error!("a request handler failed: {failure}");
            error_response(500, "the handler failed")
        });
        let bytes = serialize(response, &method, version, close);
        {
            let mut st = state.borrow_mut();
            if let Some(slot) = st.queue.iter_mut().find(|s| s.id == id) {
                slot.bytes = Some(bytes);
            }
            st.flush();
            st.last_active = Current.now();
        }
        // Pipelined requests may be waiting in the input.
        process(&state);
    });
}

/// Closes the connection once it has been idle for the site's idle timeout:
/// no request in progress and no output taken by the peer. One timer per
/// connection, moved on lazily: progress only stamps `last_active`, and the
/// timer, when it fires early, sets itself again for the rest of the time.
/// A peer that leaves output unsent for the whole timeout is cut off.
fn arm_idle_timer(state: &StateRef, after: Duration) {
    let weak = Rc::downgrade(state);
    let call = reactor::call_later(after, move || {
        let Some(state) = weak.upgrade() else { return };
        let (transport, busy, last, timeout) = {
            let mut st = state.borrow_mut();
            let unsent = st.transport.as_ref().map_or(0, |t| t.write_buffer_size());
            if unsent > 0 && unsent < st.unsent_at_check {
                // The peer is taking output: that is activity.
                st.last_active = Current.now();
            }
            st.unsent_at_check = unsent;
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
            if t.write_buffer_size() > 0 {
                t.abort_connection();
            } else {
                t.lose_connection();
            }
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
            // The transport tells the protocol to resume once the peer has
            // taken half the bound.
            let bound = st.site.max_unsent;
            transport.set_write_buffer_limits(bound, bound / 2);
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

    /// The peer took enough of the output: read requests again.
    fn resume_producing(&mut self) {
        self.0.borrow_mut().last_active = Current.now();
        process(&self.0);
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let mut st = self.0.borrow_mut();
        if let Some(idle) = st.idle.take() {
            let _ = idle.cancel();
        }
        st.transport = None;
        st.queue.clear();
        st.reading = None;
        st.input = Vec::new();
    }
}
