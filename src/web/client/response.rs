//! A response as [`Agent::request`](super::Agent::request) delivers it: the
//! head at once, the body later, to a [`BodyConsumer`] or all at once with
//! [`read_body`].

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::defer::{Deferred, Failure};
use crate::time::{Current, ReactorTime};
use crate::web::http1::Version;
use crate::web::{Error, Headers};

/// Receives a body chunk by chunk (Twisted's `IProtocol` given to
/// `response.deliverBody`).
pub trait BodyConsumer: 'static {
    /// Body bytes, content-decoded.
    fn data(&mut self, chunk: &[u8]);
    /// The body ended: `Ok` when complete, or why not.
    fn finished(&mut self, result: Result<(), Failure>);
}

/// One redirect followed on the way to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The URL that redirected.
    pub url: String,
    /// Its status (301, 302, 303, 307, 308).
    pub status: u16,
}

#[derive(Default)]
pub(crate) struct BodyState {
    buffered: Vec<u8>,
    result: Option<Result<(), Failure>>,
    consumer: Option<Box<dyn BodyConsumer>>,
    abort: Option<Box<dyn FnOnce()>>,
}

/// Where the agent pushes a response's body.
#[derive(Clone, Default)]
pub(crate) struct BodyPipe {
    state: Rc<RefCell<BodyState>>,
}

impl BodyPipe {
    pub(crate) fn set_abort(&self, abort: Box<dyn FnOnce()>) {
        self.state.borrow_mut().abort = Some(abort);
    }

    pub(crate) fn push(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let consumer = self.state.borrow_mut().consumer.take();
        match consumer {
            Some(mut consumer) => {
                consumer.data(data);
                let mut st = self.state.borrow_mut();
                if st.consumer.is_none() && st.result.is_none() {
                    st.consumer = Some(consumer);
                } else if let Some(result) = st.result.take() {
                    drop(st);
                    consumer.finished(result);
                }
            }
            None => self.state.borrow_mut().buffered.extend_from_slice(data),
        }
    }

    pub(crate) fn finish(&self, result: Result<(), Failure>) {
        let mut st = self.state.borrow_mut();
        if st.result.is_some() {
            return;
        }
        st.abort = None;
        match st.consumer.take() {
            Some(mut consumer) => {
                drop(st);
                consumer.finished(result);
            }
            None => st.result = Some(result),
        }
    }

    /// Whether the body ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.state.borrow().result.is_some()
    }
}

/// An HTTP response: status, headers, and a body still to be read.
///
/// Read the body with [`read_body`] or [`deliver_body`](Self::deliver_body).
/// Dropping a response without reading its body closes its connection (it
/// cannot be reused with unread bytes on it).
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields (without `Content-Encoding` and `Content-Length`
    /// when the agent decoded a gzip or deflate body).
    pub headers: Headers,
    /// The URL that answered (after redirects).
    pub url: String,
    /// The redirects followed, in order.
    pub history: Vec<Redirect>,
    pipe: Option<BodyPipe>,
}

impl Response {
    pub(crate) fn new(
        status: u16,
        reason: String,
        version: Version,
        headers: Headers,
        url: String,
        history: Vec<Redirect>,
        pipe: BodyPipe,
    ) -> Response {
        Response {
            status,
            reason,
            version,
            headers,
            url,
            history,
            pipe: Some(pipe),
        }
    }

    /// Streams the body into `consumer`: what already arrived at once, the
    /// rest as it comes.
    pub fn deliver_body(mut self, mut consumer: impl BodyConsumer) {
        let Some(pipe) = self.pipe.take() else {
            consumer.finished(Err(Failure::msg("the body was already taken")));
            return;
        };
        let (buffered, result) = {
            let mut st = pipe.state.borrow_mut();
            (std::mem::take(&mut st.buffered), st.result.take())
        };
        if !buffered.is_empty() {
            consumer.data(&buffered);
        }
        match result {
            Some(result) => consumer.finished(result),
            None => pipe.state.borrow_mut().consumer = Some(Box::new(consumer)),
        }
    }

    /// Closes the connection and ends the body with `Cancelled`.
    pub fn abort(mut self) {
        if let Some(pipe) = self.pipe.take() {
            abort_pipe(&pipe, &self.url);
        }
    }
}

fn abort_pipe(pipe: &BodyPipe, url: &str) {
    let abort = pipe.state.borrow_mut().abort.take();
    if let Some(abort) = abort {
        abort();
    }
    pipe.finish(Err(Failure::new(Error::Cancelled {
        url: url.to_string(),
    })));
}

impl Drop for Response {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            if !pipe.is_finished() {
                abort_pipe(&pipe, &self.url);
            }
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("redirects", &self.history.len())
            .finish()
    }
}

struct Collect {
    body: Vec<u8>,
    trigger: Option<crate::defer::Trigger<Vec<u8>>>,
    limit: Option<usize>,
}

impl BodyConsumer for Collect {
    fn data(&mut self, chunk: &[u8]) {
        match self.limit {
            Some(limit) => {
                let room = limit.saturating_sub(self.body.len());
                self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => self.body.extend_from_slice(chunk),
        }
    }

    fn finished(&mut self, result: Result<(), Failure>) {
        if let Some(trigger) = self.trigger.take() {
            trigger.fire_with(result.map(|()| std::mem::take(&mut self.body)));
        }
    }
}

/// The whole body (Twisted's `readBody`). Cancelling the Deferred closes the
/// connection (item 60 of the semantics notes).
///
/// ```no_run
/// use twined::web::client::{read_body, Agent};
///
/// Agent::new()
///     .request("GET", "http://127.0.0.1:8080/", Default::default(), None)
///     .and_then(read_body)
///     .add_callback(|body| println!("{} bytes", body.len()));
/// ```
pub fn read_body(response: Response) -> Deferred<Vec<u8>> {
    read_body_limited(response, None)
}

/// Like [`read_body`], keeping at most `limit` bytes (the rest is read and
/// dropped).
pub(crate) fn read_body_limited(response: Response, limit: Option<usize>) -> Deferred<Vec<u8>> {
    let pipe = response.pipe.clone();
    let url = response.url.clone();
    let (d, trigger) = Deferred::with_canceller(move |_c| {
        if let Some(pipe) = &pipe {
            abort_pipe(pipe, &url);
        }
    });
    let collect = Collect {
        body: Vec::new(),
        trigger: Some(trigger),
        limit,
    };
    response.deliver_body(collect);
    d
}

/// Keeps the first `limit` bytes of a body, then stops reading: fires with
/// them and `true` (and closes the connection) as soon as the body passes
/// the limit, with the whole body and `false` when it ends first.
struct Prefix {
    body: Vec<u8>,
    limit: usize,
    /// Set until the trigger fires; the pipe to abort once it has.
    pipe: Option<BodyPipe>,
    url: String,
    trigger: Option<crate::defer::Trigger<(Vec<u8>, bool)>>,
}

impl BodyConsumer for Prefix {
    fn data(&mut self, chunk: &[u8]) {
        if self.trigger.is_none() {
            return;
        }
        let room = self.limit.saturating_sub(self.body.len());
        self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            if let Some(trigger) = self.trigger.take() {
                trigger.callback((std::mem::take(&mut self.body), true));
            }
            // Not from inside the pipe's own call: abort once it returns.
            if let Some(pipe) = self.pipe.take() {
                let url = std::mem::take(&mut self.url);
                Current.call_later_boxed(
                    std::time::Duration::ZERO,
                    Box::new(move || abort_pipe(&pipe, &url)),
                );
            }
        }
    }

    fn finished(&mut self, result: Result<(), Failure>) {
        self.pipe = None;
        if let Some(trigger) = self.trigger.take() {
            trigger.fire_with(result.map(|()| (std::mem::take(&mut self.body), false)));
        }
    }
}

/// The first `limit` bytes of the body and whether there was more; past
/// the limit the body is not read on (its connection is closed).
pub(crate) fn read_body_prefix(response: Response, limit: usize) -> Deferred<(Vec<u8>, bool)> {
    let (d, trigger) = Deferred::new();
    let prefix = Prefix {
        body: Vec::new(),
        limit,
        pipe: response.pipe.clone(),
        url: response.url.clone(),
        trigger: Some(trigger),
    };
    response.deliver_body(prefix);
    d
}
