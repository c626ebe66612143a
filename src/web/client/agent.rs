//! `Agent`: requests through a connection pool, with redirects, content
//! decoding, timeouts and limits (Twisted's `Agent` + `RedirectAgent` +
//! `ContentDecoderAgent`, and the timeouts Twisted's Agent lacks).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use url::Url;

use super::conn::{ConnHandle, Finished, Sink};
use super::decode::ContentDecoder;
use super::pool::{ConnectionPool, Lease, Opener, PoolKey};
use super::response::{BodyPipe, Redirect, Response};
use crate::defer::{CancelledError, Deferred, Failure, Trigger};
use crate::reactor::{self, ConnectError, ConnectOptions, DelayedCall};
use crate::threads::ResolveError;
use crate::web::http1::{write_request_head, ResponseHead, DEFAULT_HEAD_LIMIT, USER_AGENT};
use crate::web::{Error, Headers, RedirectError, TimeoutStage};

/// Settings of an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Follow 301/302/303/307/308 (Twisted's `RedirectAgent`). Default: yes.
    pub follow_redirects: bool,
    /// Most redirects followed for one request (Twisted's default, 20).
    pub redirect_limit: usize,
    /// Follow a redirect from https to http. Default: no.
    pub allow_insecure_redirect: bool,
    /// Ask for gzip and decode gzip/deflate bodies. Default: yes when the
    /// `gzip` feature is on.
    pub gzip: bool,
    /// Time allowed to connect (lookup, TCP and TLS). Default: 30 s.
    pub connect_timeout: Option<Duration>,
    /// Time allowed from sending the request to the response head. Default: none.
    pub head_timeout: Option<Duration>,
    /// Time allowed for the whole request, redirects and body included.
    /// Default: none.
    pub timeout: Option<Duration>,
    /// Largest response head accepted. Default: 64 KiB.
    pub head_limit: usize,
    /// Largest (decoded) body accepted. Default: none.
    pub max_body: Option<u64>,
    /// The `User-Agent` sent unless a request sets one.
    pub user_agent: String,
    /// Header fields added to every request that does not set them.
    pub headers: Headers,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            follow_redirects: true,
            redirect_limit: 20,
            allow_insecure_redirect: false,
            gzip: cfg!(feature = "gzip"),
            connect_timeout: Some(Duration::from_secs(30)),
            head_timeout: None,
            timeout: None,
            head_limit: DEFAULT_HEAD_LIMIT,
            max_body: None,
            user_agent: USER_AGENT.to_string(),
            headers: Headers::new(),
        }
    }
}

pub(crate) struct AgentInner {
    pub(crate) pool: ConnectionPool,
    pub(crate) options: AgentOptions,
    #[cfg(feature = "tls")]
    pub(crate) tls: super::tls::TlsConfig,
}

/// Makes HTTP requests (Twisted's `Agent`). Cheap to clone; clones share
/// the pool and settings.
///
/// [`request`](Self::request) fires with the [`Response`] as soon as its
/// head arrives, whatever the status; read the body with
/// [`read_body`](super::read_body). [`get_page`](super::get_page) is the
/// shortcut that reads the body and fails on status >= 400.
///
/// ```no_run
/// use std::time::Duration;
/// use twined::web::client::{read_body, Agent, AgentOptions, ConnectionPool, PoolOptions};
///
/// let agent = Agent::with_options(
///     ConnectionPool::new(PoolOptions { max_per_host: Some(8), ..Default::default() }),
///     AgentOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() },
/// );
/// agent
///     .request("GET", "http://127.0.0.1:8080/", Default::default(), None)
///     .add_callback(|response| {
///         println!("{} {}", response.status, response.reason);
///         response
///     })
///     .and_then(read_body);
/// ```
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Rc<AgentInner>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("pool", &self.inner.pool)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Default for Agent {
    fn default() -> Agent {
        Agent::new()
    }
}

thread_local! {
    static SHARED: Agent = Agent::new();
}

impl Agent {
    /// An agent with its own persistent pool and default options.
    pub fn new() -> Agent {
        Agent::with_options(ConnectionPool::default(), AgentOptions::default())
    }

    /// An agent on `pool` with `options`.
    pub fn with_options(pool: ConnectionPool, options: AgentOptions) -> Agent {
        Agent {
            inner: Rc::new(AgentInner {
                pool,
                options,
                #[cfg(feature = "tls")]
                tls: super::tls::TlsConfig::default(),
            }),
        }
    }

    /// This agent with a TLS configuration for https URLs.
    #[cfg(feature = "tls")]
    pub fn with_tls(self, tls: super::tls::TlsConfig) -> Agent {
        Agent {
            inner: Rc::new(AgentInner {
                pool: self.inner.pool.clone(),
                options: self.inner.options.clone(),
                tls,
            }),
        }
    }

    /// This thread's shared agent, used by [`get_page`](super::get_page).
    pub fn shared() -> Agent {
        SHARED
            .try_with(Agent::clone)
            .unwrap_or_else(|_| Agent::new())
    }

    /// The agent's pool.
    pub fn pool(&self) -> &ConnectionPool {
        &self.inner.pool
    }

    /// The agent's options.
    pub fn options(&self) -> &AgentOptions {
        &self.inner.options
    }

    /// Sends a request; fires with the response head, whatever its status.
    /// Cancelling the Deferred before then aborts the request and its
    /// connection.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        body: Option<Vec<u8>>,
    ) -> Deferred<Response> {
        let parsed = match parse_url(url) {
            Ok(u) => u,
            Err(e) => return crate::defer::fail(e),
        };
        let cell: Rc<RefCell<Option<Rc<Req>>>> = Rc::new(RefCell::new(None));
        let c = cell.clone();
        let (d, trigger) = Deferred::with_canceller(move |_canceller| {
            let req = c.borrow().clone();
            if let Some(req) = req {
                let url = req.url.borrow().to_string();
                req.fail(Error::Cancelled { url });
            }
        });
        let req = Rc::new(Req {
            agent: self.clone(),
            method: RefCell::new(method.to_ascii_uppercase()),
            url: RefCell::new(parsed),
            headers: RefCell::new(headers),
            body: RefCell::new(body),
            history: RefCell::new(Vec::new()),
            trigger: RefCell::new(Some(trigger)),
            pipe: RefCell::new(None),
            whole_timer: RefCell::new(None),
            head_timer: RefCell::new(None),
            lease: RefCell::new(None),
            retried: Cell::new(false),
            attempt: Cell::new(0),
            redirect_to: RefCell::new(None),
            decoder: RefCell::new(None),
            delivered: Cell::new(0),
            done: Cell::new(false),
        });
        *cell.borrow_mut() = Some(req.clone());
        if let Some(after) = self.inner.options.timeout {
            let weak = Rc::downgrade(&req);
            let timer = reactor::call_later(after, move || {
                if let Some(req) = weak.upgrade() {
                    let host = req.host_label();
                    req.fail(Error::Timeout {
                        stage: TimeoutStage::Whole,
                        host,
                        after,
                    });
                }
            });
            *req.whole_timer.borrow_mut() = Some(timer);
        }
        req.attempt(false);
        d
    }
}

fn parse_url(url: &str) -> Result<Url, Error> {
    let bad = |reason: String| Error::Url {
        url: url.to_string(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "http" => {}
        #[cfg(feature = "tls")]
        "https" => {}
        #[cfg(not(feature = "tls"))]
        "https" => return Err(bad("https needs twined's `tls` feature".into())),
        other => return Err(bad(format!("unsupported scheme {other:?}"))),
    }
    if parsed.host_str().map_or(true, str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(parsed)
}

fn pool_key(url: &Url) -> PoolKey {
    let host = url.host_str().unwrap_or("").to_string();
    PoolKey {
        scheme: url.scheme().to_string(),
        host,
        port: url.port_or_known_default().unwrap_or(80),
    }
}

/// The `Host` header value.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// Opens a connection for `key` with the agent's settings.
fn open(agent: &Rc<AgentInner>, key: &PoolKey) -> Deferred<ConnHandle> {
    let label = format!("{}:{}", key.host, key.port);
    let timeout = agent.options.connect_timeout;
    let (handle, protocol) = ConnHandle::new(label.clone(), agent.options.head_limit);
    let options = ConnectOptions { timeout };
    let connected: Deferred<()> = if key.scheme == "https" {
        #[cfg(feature = "tls")]
        {
            super::tls::connect(&agent.tls, &key.host, key.port, options, protocol)
        }
        #[cfg(not(feature = "tls"))]
        {
            drop(protocol);
            crate::defer::fail(Failure::new(Error::Url {
                url: key.to_string(),
                reason: "https needs twined's `tls` feature".into(),
            }))
        }
    } else {
        reactor::connect_protocol_with(&key.host, key.port, protocol, options).add_callback(|_| ())
    };
    connected
        .add_callback(move |()| handle)
        .or_else(move |failure: Failure| Err(Failure::new(connect_error(&label, failure, timeout))))
}

/// A web error for a failed connection attempt.
fn connect_error(host: &str, failure: Failure, timeout: Option<Duration>) -> Error {
    if let Some(e) = failure.downcast_ref::<ResolveError>() {
        return Error::Dns {
            host: e.host.clone(),
            reason: e.source.to_string(),
        };
    }
    if let Some(e) = failure.downcast_ref::<ConnectError>() {
        if let ConnectError::TimedOut { after, .. } = e {
            return Error::Timeout {
                stage: TimeoutStage::Connect,
                host: host.to_string(),
                after: *after,
            };
        }
        let reason = match e {
            ConnectError::Refused { .. } => "connection refused".to_string(),
            ConnectError::Unreachable { source, .. } => format!("unreachable ({source})"),
            ConnectError::Failed { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        return Error::Connect {
            host: host.to_string(),
            reason,
        };
    }
    if failure.check::<CancelledError>() {
        return Error::Cancelled {
            url: host.to_string(),
        };
    }
    if let Some(e) = failure.downcast_ref::<Error>() {
        return clone_error(e);
    }
    let _ = timeout;
    Error::Connect {
        host: host.to_string(),
        reason: failure.to_string(),
    }
}

/// A copy of a web error (io sources are copied by kind and message).
pub(crate) fn clone_error(e: &Error) -> Error {
    match e {
        Error::Url { url, reason } => Error::Url {
            url: url.clone(),
            reason: reason.clone(),
        },
        Error::Dns { host, reason } => Error::Dns {
            host: host.clone(),
            reason: reason.clone(),
        },
        Error::Connect { host, reason } => Error::Connect {
            host: host.clone(),
            reason: reason.clone(),
        },
        Error::Tls { host, reason } => Error::Tls {
            host: host.clone(),
            reason: reason.clone(),
        },
        Error::Timeout { stage, host, after } => Error::Timeout {
            stage: *stage,
            host: host.clone(),
            after: *after,
        },
        Error::Http {
            status,
            reason,
            url,
            body,
        } => Error::Http {
            status: *status,
            reason: reason.clone(),
            url: url.clone(),
            body: body.clone(),
        },
        Error::Redirect { url, error } => Error::Redirect {
            url: url.clone(),
            error: error.clone(),
        },
        Error::Protocol { host, error } => Error::Protocol {
            host: host.clone(),
            error: error.clone(),
        },
        Error::Io { host, source } => Error::Io {
            host: host.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::TooLarge { host, what, limit } => Error::TooLarge {
            host: host.clone(),
            what,
            limit: *limit,
        },
        Error::Cancelled { url } => Error::Cancelled { url: url.clone() },
    }
}

/// One request, across its attempts and redirects.
struct Req {
    agent: Agent,
    method: RefCell<String>,
    url: RefCell<Url>,
    headers: RefCell<Headers>,
    body: RefCell<Option<Vec<u8>>>,
    history: RefCell<Vec<Redirect>>,
    trigger: RefCell<Option<Trigger<Response>>>,
    pipe: RefCell<Option<BodyPipe>>,
    whole_timer: RefCell<Option<DelayedCall>>,
    head_timer: RefCell<Option<DelayedCall>>,
    lease: RefCell<Option<Lease>>,
    retried: Cell<bool>,
    /// Which attempt the current sink belongs to.
    attempt: Cell<u64>,
    /// A redirect whose body is being drained before it is followed.
    redirect_to: RefCell<Option<(Url, u16)>>,
    decoder: RefCell<Option<ContentDecoder>>,
    delivered: Cell<u64>,
    done: Cell<bool>,
}

struct AttemptSink {
    req: Rc<Req>,
    attempt: u64,
}

impl Req {
    fn host_label(&self) -> String {
        let url = self.url.borrow();
        format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(80)
        )
    }

    fn options(&self) -> &AgentOptions {
        &self.agent.inner.options
    }

    /// Starts an attempt: a connection (fresh after a failed reuse), then
    /// the request on it.
    fn attempt(self: &Rc<Self>, fresh: bool) {
        let attempt = self.attempt.get() + 1;
        self.attempt.set(attempt);
        let key = pool_key(&self.url.borrow());
        let inner = self.agent.inner.clone();
        let opener: Opener = Rc::new(move |key: &PoolKey| open(&inner, key));
        let (ok, failed) = (self.clone(), self.clone());
        self.agent
            .inner
            .pool
            .acquire(key, fresh, opener)
            .add_callback(move |lease| ok.send(lease, attempt))
            .add_errback(move |failure| {
                if failed.attempt.get() == attempt {
                    let error = match failure.downcast_ref::<Error>() {
                        Some(e) => clone_error(e),
                        None => Error::Connect {
                            host: failed.host_label(),
                            reason: failure.to_string(),
                        },
                    };
                    failed.fail(error);
                }
            });
    }

    fn send(self: &Rc<Self>, lease: Lease, attempt: u64) {
        if self.done.get() || self.attempt.get() != attempt {
            lease.release(true);
            return;
        }
        let bytes = match self.serialize() {
            Ok(b) => b,
            Err(e) => {
                lease.release(true);
                return self.fail(e);
            }
        };
        let conn = lease.conn.clone();
        *self.lease.borrow_mut() = Some(lease);
        if let Some(after) = self.options().head_timeout {
            let weak = Rc::downgrade(self);
            let timer = reactor::call_later(after, move || {
                if let Some(req) = weak.upgrade() {
                    let host = req.host_label();
                    req.fail(Error::Timeout {
                        stage: TimeoutStage::Head,
                        host,
                        after,
                    });
                }
            });
            if let Some(old) = self.head_timer.borrow_mut().replace(timer) {
                let _ = old.cancel();
            }
        }
        let method = self.method.borrow().clone();
        conn.send(
            &method,
            &bytes,
            Rc::new(AttemptSink {
                req: self.clone(),
                attempt,
            }),
        );
    }

    fn serialize(&self) -> Result<Vec<u8>, Error> {
        let url = self.url.borrow();
        let options = self.options();
        let mut headers = Headers::new();
        headers.append("Host", host_header(&url));
        let user = self.headers.borrow();
        if !user.contains("user-agent") && !options.headers.contains("user-agent") {
            headers.append("User-Agent", options.user_agent.clone());
        }
        if options.gzip && !user.contains("accept-encoding") {
            headers.append("Accept-Encoding", "gzip");
        }
        for (name, value) in options.headers.iter() {
            if !user.contains(name) {
                headers.append(name, value);
            }
        }
        for (name, value) in user.iter() {
            if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
                headers.append(name, value);
            }
        }
        let method = self.method.borrow();
        let body = self.body.borrow();
        match body.as_ref() {
            Some(b) => headers.append("Content-Length", b.len().to_string()),
            None if matches!(method.as_str(), "POST" | "PUT" | "PATCH") => {
                headers.append("Content-Length", "0")
            }
            None => {}
        }
        if !self.agent.inner.pool.options().persistent {
            headers.insert("Connection", "close");
        }
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut out = Vec::with_capacity(256 + body.as_ref().map_or(0, Vec::len));
        write_request_head(&mut out, &method, &target, &headers).map_err(|e| Error::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(b) = body.as_ref() {
            out.extend_from_slice(b);
        }
        Ok(out)
    }

    /// Ends the request with `error`, wherever it is.
    fn fail(&self, error: Error) {
        if self.done.replace(true) {
            return;
        }
        self.cancel_timers();
        if let Some(lease) = self.lease.borrow_mut().take() {
            lease.conn.abort();
            lease.release(false);
        }
        let trigger = self.trigger.borrow_mut().take();
        if let Some(trigger) = trigger {
            trigger.errback(error);
            return;
        }
        let pipe = self.pipe.borrow_mut().take();
        if let Some(pipe) = pipe {
            pipe.finish(Err(Failure::new(error)));
        }
    }

    fn cancel_timers(&self) {
        if let Some(t) = self.head_timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        if let Some(t) = self.whole_timer.borrow_mut().take() {
            let _ = t.cancel();
        }
    }

    /// A redirect's target, or why it cannot be followed.
    fn redirect_target(&self, head: &ResponseHead) -> Result<Url, Error> {
        let url = self.url.borrow();
        let redirect = |error| Error::Redirect {
            url: url.to_string(),
            error,
        };
        if self.history.borrow().len() >= self.options().redirect_limit {
            return Err(redirect(RedirectError::TooMany {
                limit: self.options().redirect_limit,
            }));
        }
        let location = head.headers.get("location").ok_or_else(|| {
            redirect(RedirectError::MissingLocation {
                status: head.status,
            })
        })?;
        let target = url.join(location).map_err(|_| {
            redirect(RedirectError::BadLocation {
                location: location.to_string(),
            })
        })?;
        if parse_url(target.as_str()).is_err() {
            return Err(redirect(RedirectError::BadLocation {
                location: location.to_string(),
            }));
        }
        if url.scheme() == "https"
            && target.scheme() == "http"
            && !self.options().allow_insecure_redirect
        {
            return Err(redirect(RedirectError::InsecureDowngrade {
                from: url.to_string(),
                to: target.to_string(),
            }));
        }
        Ok(target)
    }

    /// Moves the request to `target` after a `status` redirect.
    fn follow(self: &Rc<Self>, target: Url, status: u16) {
        let from = self.url.replace(target.clone());
        self.history.borrow_mut().push(Redirect {
            url: from.to_string(),
            status,
        });
        {
            let mut method = self.method.borrow_mut();
            if status == 303 || ((status == 301 || status == 302) && *method == "POST") {
                if *method != "HEAD" {
                    *method = "GET".into();
                }
                self.body.borrow_mut().take();
                let mut headers = self.headers.borrow_mut();
                headers.remove("content-type");
            }
        }
        if from.origin() != target.origin() {
            let mut headers = self.headers.borrow_mut();
            headers.remove("authorization");
            headers.remove("cookie");
        }
        self.retried.set(false);
        self.attempt(false);
    }

    fn on_head(self: &Rc<Self>, head: ResponseHead) {
        if let Some(t) = self.head_timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        let options = self.options();
        if options.follow_redirects && matches!(head.status, 301 | 302 | 303 | 307 | 308) {
            match self.redirect_target(&head) {
                Ok(target) => {
                    // Drain this response's body, then follow.
                    *self.redirect_to.borrow_mut() = Some((target, head.status));
                    return;
                }
                Err(e) => return self.fail(e),
            }
        }
        let ResponseHead {
            version,
            status,
            reason,
            mut headers,
        } = head;
        if options.gzip {
            if let Some(coding) = headers.get("content-encoding") {
                if let Some(decoder) = ContentDecoder::for_coding(coding) {
                    *self.decoder.borrow_mut() = Some(decoder);
                    headers.remove("content-encoding");
                    headers.remove("content-length");
                }
            }
        }
        let pipe = BodyPipe::default();
        let weak = Rc::downgrade(self);
        pipe.set_abort(Box::new(move || {
            if let Some(req) = weak.upgrade() {
                let url = req.url.borrow().to_string();
                req.fail(Error::Cancelled { url });
            }
        }));
        *self.pipe.borrow_mut() = Some(pipe.clone());
        let response = Response::new(
            status,
            reason,
            version,
            headers,
            self.url.borrow().to_string(),
            self.history.borrow().clone(),
            pipe,
        );
        let trigger = self.trigger.borrow_mut().take();
        if let Some(trigger) = trigger {
            trigger.callback(response);
        }
    }

    fn on_body(self: &Rc<Self>, data: &[u8]) {
        if self.done.get() || self.redirect_to.borrow().is_some() {
            return;
        }
        let decoded;
        let data = {
            let mut decoder = self.decoder.borrow_mut();
            match decoder.as_mut() {
                Some(d) => match d.feed(data) {
                    Ok(bytes) => {
                        decoded = bytes;
                        &decoded[..]
                    }
                    Err(e) => {
                        drop(decoder);
                        let host = self.host_label();
                        return self.fail(Error::Protocol { host, error: e });
                    }
                },
                None => data,
            }
        };
        self.deliver(data);
    }

    fn deliver(self: &Rc<Self>, data: &[u8]) {
        let delivered = self.delivered.get() + data.len() as u64;
        self.delivered.set(delivered);
        if let Some(limit) = self.options().max_body {
            if delivered > limit {
                let host = self.host_label();
                return self.fail(Error::TooLarge {
                    host,
                    what: "body",
                    limit,
                });
            }
        }
        let pipe = self.pipe.borrow().clone();
        if let Some(pipe) = pipe {
            pipe.push(data);
        }
    }

    fn on_finished(self: &Rc<Self>, finished: Finished) {
        let lease = self.lease.borrow_mut().take();
        let reused = lease.as_ref().is_some_and(|l| l.reused);
        if let Some(lease) = lease {
            lease.release(finished.reusable);
        }
        if self.done.get() {
            return;
        }
        if let Err(error) = finished.result {
            let retry = !finished.got_response
                && reused
                && !self.retried.get()
                && self.body.borrow().is_none()
                && idempotent(&self.method.borrow());
            if retry {
                // The server closed an idle connection as we reused it.
                self.retried.set(true);
                if let Some(t) = self.head_timer.borrow_mut().take() {
                    let _ = t.cancel();
                }
                return self.attempt(true);
            }
            return self.fail(error);
        }
        let redirect = self.redirect_to.borrow_mut().take();
        if let Some((target, status)) = redirect {
            return self.follow(target, status);
        }
        let rest = self.decoder.borrow_mut().take().map(|mut d| d.finish());
        match rest {
            Some(Ok(bytes)) => self.deliver(&bytes),
            Some(Err(e)) => {
                let host = self.host_label();
                return self.fail(Error::Protocol { host, error: e });
            }
            None => {}
        }
        if self.done.replace(true) {
            return;
        }
        self.cancel_timers();
        let pipe = self.pipe.borrow_mut().take();
        if let Some(pipe) = pipe {
            pipe.finish(Ok(()));
        }
    }
}

impl Sink for AttemptSink {
    fn head(&self, head: ResponseHead) {
        if self.req.attempt.get() == self.attempt {
            self.req.on_head(head);
        }
    }

    fn body(&self, data: &[u8]) {
        if self.req.attempt.get() == self.attempt {
            self.req.on_body(data);
        }
    }

    fn finished(&self, finished: Finished) {
        if self.req.attempt.get() == self.attempt {
            self.req.on_finished(finished);
        }
    }
}
