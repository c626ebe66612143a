//! `Agent`: requests through a connection pool, with redirects, content
//! decoding, timeouts and limits (Twisted's `Agent` + `RedirectAgent` +
//! `ContentDecoderAgent`, and the timeouts Twisted's Agent lacks).

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use super::before::BeforeRequest;
use super::conn::{ConnHandle, Finished, Sink};
use super::cookies::CookieJar;
use super::decode::{accept_encoding, Coding, ContentDecoder};
use super::into_url::IntoUrl;
use super::pool::{ConnectionPool, Lease, Opener, PoolKey};
use super::proxy::{Proxies, Proxy, ProxyScheme};
use super::response::{BodyPipe, Redirect, Response};
use super::retry::idempotent;
use crate::defer::{CancelledError, Deferred, Failure, Trigger};
use crate::reactor::{self, ConnectError, ConnectOptions, DelayedCall, DnsCache};
use crate::threads::ResolveError;
use crate::web::error::copy_io_error;
use crate::web::http1::{
    check_header_bytes, response_framing, write_request_head_fields, CodecError, Field, Framing,
    ResponseHead, DEFAULT_HEAD_LIMIT, USER_AGENT,
};
use crate::web::{Error, ErrorKind, Headers, ProxyError, RedirectError, TimeoutStage};

/// The default [`AgentOptions::max_body`]: 1 GiB, as Scrapy's
/// `DOWNLOAD_MAXSIZE`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 30;

/// How much of a redirect's body is read so that its connection can be
/// reused; past this the connection is closed instead.
const REDIRECT_DRAIN_LIMIT: u64 = 64 * 1024;

/// Header fields the agent sets from the body; a user value would corrupt
/// the request's framing on the wire.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Header fields that belong to the origin a request starts at: never sent
/// after a redirect to another origin.
const ORIGIN_BOUND: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "host"];

/// Settings of an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Follow 301/302/303/307/308 (Twisted's `RedirectAgent`). Default: yes.
    pub follow_redirects: bool,
    /// Most redirects followed for one request (Twisted's default, 20).
    pub redirect_limit: usize,
    /// Follow a redirect from https to http. Default: no.
    pub allow_insecure_redirect: bool,
    /// Ask for compressed bodies and decode them: `Accept-Encoding` lists
    /// the codings compiled in (`gzip`, and `br` and `zstd` with the
    /// features of those names), and gzip, deflate, brotli and zstd bodies
    /// are decoded as they arrive. Default: yes when the `gzip` feature is
    /// on. A body in a coding twined lacks is delivered as sent, its
    /// `Content-Encoding` kept; a body in more than one coding
    /// (`Content-Encoding: gzip, br`) fails with [`Error::Protocol`]. A
    /// request that
    /// sets its own `Accept-Encoding` (in its headers or in
    /// [`headers`](Self::headers)) replaces the agent's and gets the body as
    /// the server sent it, `Content-Encoding` included, as curl without
    /// `--compressed` does.
    pub gzip: bool,
    /// Time allowed to connect (lookup, TCP and TLS). Default: 30 s.
    pub connect_timeout: Option<Duration>,
    /// How long a host name's addresses are reused before it is looked up
    /// again: the agent keeps a [`DnsCache`](crate::reactor::DnsCache) of
    /// up to 4096 names (failed lookups kept 5 s), shared by all its
    /// connections, so a host is resolved once per TTL, not once per
    /// connection. The system resolver gives no TTL: this is the agent's
    /// policy. Default: 60 s; `None` looks the name up for every connection
    /// (unless [`dns_cache`](Self::dns_cache) gives a cache).
    pub dns_ttl: Option<Duration>,
    /// A name cache to use instead of making one from
    /// [`dns_ttl`](Self::dns_ttl) (which is then ignored). A
    /// [`DnsCache`](crate::reactor::DnsCache) is `Send + Sync`: build one and
    /// give a clone to the agent of every reactor thread, and a host is
    /// looked up once for all of them, not once per thread. Default: `None`.
    pub dns_cache: Option<DnsCache>,
    /// Time allowed from sending the request to the response head. Default: none.
    pub head_timeout: Option<Duration>,
    /// Time allowed for the whole request, redirects and body included,
    /// and every wait in [`before_request`](Self::before_request) (a
    /// request held there past it fails with [`Error::Timeout`] and is
    /// never sent) unless that hook is
    /// [untimed](BeforeRequest::untimed). Default: none.
    pub timeout: Option<Duration>,
    /// Largest response head accepted. Default: 64 KiB.
    pub head_limit: usize,
    /// Largest body accepted, in bytes (Scrapy's `DOWNLOAD_MAXSIZE`).
    /// Default: 1 GiB ([`DEFAULT_MAX_BODY`]); `None` for no limit.
    ///
    /// The limit holds for the bytes received and for the bytes decoded
    /// from gzip, deflate, brotli or zstd: a request fails with
    /// [`Error::TooLarge`] as soon as either passes it, so a small gzip
    /// body that inflates to gigabytes is stopped after the limit, and
    /// memory stays bounded while it is decoded. A `Content-Length` above
    /// the limit fails at the head, before any of the body is read. A
    /// redirect's own body is never kept; past 64 KiB its connection is
    /// closed instead of read.
    pub max_body: Option<u64>,
    /// The `User-Agent` sent unless a request sets one.
    pub user_agent: String,
    /// Header fields sent with every request.
    ///
    /// A field here replaces the agent's default of the same name (`Host`,
    /// `User-Agent`, `Accept-Encoding`), and a request's own header of that
    /// name replaces it in turn: one `Host`, one `User-Agent`, one
    /// `Accept-Encoding` go out. `Content-Length` and `Transfer-Encoding`
    /// are refused ([`Error::Header`]): the agent sets them from the body.
    ///
    /// `Authorization`, `Proxy-Authorization`, `Cookie` and `Host` belong to
    /// the origin a request starts at: after a redirect to another origin
    /// (another scheme, host or port) they are no longer sent, whether they
    /// come from here or from the request.
    pub headers: Headers,
    /// The cookies kept across requests (Twisted's `CookieAgent`). Default:
    /// `None`, no cookies: no `Cookie` field is added and `Set-Cookie` is
    /// ignored.
    ///
    /// With a jar, every request, each redirect hop included, carries the
    /// jar's cookies for its URL, and every response head, redirects
    /// included, stores its `Set-Cookie` fields before the next hop is
    /// sent. A `Cookie` field you give (here in [`headers`](Self::headers)
    /// or in the request's) is kept, first, and the jar's cookies are
    /// appended to it in the same field, except those whose name you gave:
    /// for a name, yours wins. Yours is origin-bound like the other
    /// credentials; the jar's follow the jar's own rules on every hop.
    pub cookies: Option<CookieJar>,
    /// Certificates trusted for https URLs. Default: the Mozilla roots.
    #[cfg(feature = "tls")]
    pub tls: super::tls::TlsConfig,
    /// The proxies requests go through (Twisted's `ProxyAgent`): HTTP or
    /// SOCKS5 ([`Proxy`]).
    /// Default: `None`, every request direct; the environment is not read
    /// unless you ask ([`Proxies::from_env`]).
    ///
    /// Through a proxy, `http://` requests are sent to it in absolute form
    /// on connections to the proxy shared by every origin; `https://`
    /// requests go through a `CONNECT` tunnel per origin, with TLS end to
    /// end (the origin's certificate is checked as on a direct connection).
    /// The proxy's credentials are sent to it only. A proxy that cannot be
    /// reached, refuses `CONNECT`, closes the tunnel or answers a forwarded
    /// request with 407 fails the request with [`Error::Proxy`]; other
    /// statuses of a forwarded request (a 502 from the proxy included) are
    /// the response, as on a direct connection; so is a proxy closing a
    /// forwarded request's connection (kind `io`, naming the proxy).
    ///
    /// Through a SOCKS5 proxy, both schemes go through a tunnel per origin
    /// (in origin form for `http://`, TLS end to end for `https://`); a
    /// proxy that refuses the authentication, the credentials or the
    /// `CONNECT`, closes mid-handshake or answers garbage fails the request
    /// with [`Error::Proxy`], and the handshake is bounded by
    /// [`connect_timeout`](Self::connect_timeout).
    ///
    /// The pool's caps count forwarded `http://` requests against the
    /// proxy, as one host (its connections serve every origin, as Twisted's
    /// `ProxyAgent` keys them); tunnelled requests count against their
    /// origin.
    pub proxy: Option<Proxies>,
    /// A hook run before every request the agent sends, the first and each
    /// redirect hop, with the URL that hop goes to; the hop waits for the
    /// Deferred it returns, and is not sent if it fails (the request fails
    /// with that failure). Pacing per host and `robots.txt` go here, so
    /// that a redirect is paced and checked like the URL that led to it.
    /// See [`BeforeRequest`]. Default: `None`, every hop sent at once.
    pub before_request: Option<BeforeRequest>,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            follow_redirects: true,
            redirect_limit: 20,
            allow_insecure_redirect: false,
            gzip: cfg!(feature = "gzip"),
            connect_timeout: Some(Duration::from_secs(30)),
            dns_ttl: Some(crate::reactor::dns::DEFAULT_DNS_TTL),
            dns_cache: None,
            head_timeout: None,
            timeout: None,
            head_limit: DEFAULT_HEAD_LIMIT,
            max_body: Some(DEFAULT_MAX_BODY),
            user_agent: USER_AGENT.to_string(),
            headers: Headers::new(),
            cookies: None,
            #[cfg(feature = "tls")]
            tls: super::tls::TlsConfig::default(),
            proxy: None,
            before_request: None,
        }
    }
}

pub(crate) struct AgentInner {
    pub(crate) pool: ConnectionPool,
    pub(crate) options: AgentOptions,
    /// The name cache of `options.dns_cache` or `options.dns_ttl`, shared
    /// by every connect.
    pub(crate) dns: Option<DnsCache>,
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
///     ConnectionPool::with_options(PoolOptions { max_per_host: Some(8), ..Default::default() }),
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
                dns: options
                    .dns_cache
                    .clone()
                    .or_else(|| options.dns_ttl.map(DnsCache::new)),
                options,
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

    /// The agent's name cache ([`AgentOptions::dns_cache`], or the one made
    /// from [`AgentOptions::dns_ttl`]), if any.
    pub fn dns_cache(&self) -> Option<&DnsCache> {
        self.inner.dns.as_ref()
    }

    /// Sends a request; fires with the response head, whatever its status.
    /// Cancelling the Deferred before then aborts the request and its
    /// connection. `url` is text or a parsed [`Url`] ([`IntoUrl`]).
    pub fn request(
        &self,
        method: &str,
        url: impl IntoUrl,
        headers: Headers,
        body: Option<Vec<u8>>,
    ) -> Deferred<Response> {
        let parsed = match url.into_url() {
            Ok(u) => u,
            Err(e) => return crate::defer::fail(e),
        };
        let checked = check_headers(parsed.as_str(), &self.inner.options.headers)
            .and_then(|()| check_headers(parsed.as_str(), &headers));
        if let Err(e) = checked {
            return crate::defer::fail(e);
        }
        let target = Target {
            method: method.to_ascii_uppercase(),
            url: parsed,
            headers,
            body,
            history: Vec::new(),
            crossed_origin: false,
        };
        // The canceller finds the request through a weak link set below.
        let link: Rc<OnceCell<Weak<Req>>> = Rc::default();
        let found = link.clone();
        let (d, trigger) = Deferred::with_canceller(move |_canceller| {
            if let Some(req) = found.get().and_then(Weak::upgrade) {
                let url = req.state.borrow().target.url.to_string();
                req.fail(Error::Cancelled { url });
            }
        });
        let req = Rc::new(Req {
            agent: self.clone(),
            state: RefCell::new(State {
                target,
                retried: false,
                whole_timer: None,
                phase: Phase::Done,
            }),
        });
        let _ = link.set(Rc::downgrade(&req));
        if let Some(after) = self.inner.options.timeout {
            req.arm_whole_timer(after);
        }
        req.gate(trigger);
        d
    }
}

/// Refuses header fields a user may not give: invalid ones, the framing
/// fields, several `Host` fields.
fn check_headers(url: &str, headers: &Headers) -> Result<(), Error> {
    let refuse = |name: &str, reason: String| Error::Header {
        url: url.to_string(),
        name: name.to_string(),
        reason,
    };
    for (name, value) in headers.iter_bytes() {
        if let Err(e) = check_header_bytes(name, value) {
            return Err(refuse(name, e.to_string()));
        }
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            return Err(refuse(
                name,
                format!(
                    "{name} frames the request body; the client sets it from the body it sends"
                ),
            ));
        }
    }
    if headers.get_all_bytes("host").count() > 1 {
        return Err(refuse("Host", "more than one Host field".into()));
    }
    Ok(())
}

/// Puts `upper`'s fields (but those `skip` refuses) into `fields`: each
/// name of `upper` replaces every field of that name already there, in
/// the place of the first one.
fn overlay<'a>(fields: &mut Vec<Field<'a>>, upper: &'a Headers, skip: impl Fn(&str) -> bool) {
    let mut done: Vec<&str> = Vec::new();
    for (name, _) in upper.iter_bytes() {
        if skip(name) || done.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            continue;
        }
        done.push(name);
        let at = fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap_or(fields.len());
        fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        let at = at.min(fields.len());
        let values = upper
            .iter_bytes()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)));
        fields.splice(at..at, values);
    }
}

/// The pool key of a request for `url`, through `proxy` if any: an
/// `http://` request through an HTTP proxy goes on a connection to the
/// proxy, whatever its origin; anything else through a proxy (`https://`,
/// or any URL through SOCKS5) goes on a tunnel to its origin, keyed by
/// origin and proxy.
fn pool_key(url: &Url, proxy: Option<&Proxy>) -> PoolKey {
    match proxy {
        Some(proxy) if forwards(url, proxy) => {
            PoolKey::new("http", proxy.host(), proxy.port(), Some(proxy.clone()))
        }
        _ => PoolKey::new(
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(80),
            proxy.cloned(),
        ),
    }
}

/// Whether `proxy` forwards a request for `url` in absolute form (an
/// `http://` URL through an HTTP proxy) rather than tunnelling it.
fn forwards(url: &Url, proxy: &Proxy) -> bool {
    url.scheme() == "http" && proxy.scheme() == ProxyScheme::Http
}

/// Whether `d` has not yet handed its result on: not fired, or fired and
/// waiting on an inner Deferred (as an opener that resolves a name first,
/// or a hook that asks a pacer after a first step, returns).
fn unanswered<T: 'static>(d: &Deferred<T>) -> bool {
    !d.called() || d.is_waiting()
}

/// The `Host` header value.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Opens a connection for `key` with the agent's settings.
fn open(agent: &Rc<AgentInner>, key: &PoolKey) -> Deferred<ConnHandle> {
    if let Some(proxy) = key.proxy() {
        return open_proxied(agent, key, proxy);
    }
    let label = format!("{}:{}", key.host(), key.port());
    let timeout = agent.options.connect_timeout;
    let (handle, protocol) = ConnHandle::new(label.clone(), agent.options.head_limit);
    let options = ConnectOptions {
        timeout,
        dns: agent.dns.clone(),
        ..ConnectOptions::default()
    };
    let connected: Deferred<()> = if key.scheme() == "https" {
        #[cfg(feature = "tls")]
        {
            super::tls::connect(
                &agent.options.tls,
                key.host(),
                key.port(),
                options,
                protocol,
            )
        }
        #[cfg(not(feature = "tls"))]
        {
            drop(protocol);
            no_tls(key)
        }
    } else {
        reactor::connect_protocol_with(key.host(), key.port(), protocol, options)
            .add_callback(|_| ())
    };
    connected
        .add_callback(move |()| handle)
        .or_else(move |failure: Failure| Err(Failure::new(connect_error(&label, &failure))))
}

/// An `https` connection in a build without TLS.
#[cfg(not(feature = "tls"))]
fn no_tls(key: &PoolKey) -> Deferred<()> {
    crate::defer::fail(Failure::new(Error::Url {
        url: key.to_string(),
        reason: "https needs twined's `tls` feature".into(),
    }))
}

/// Opens a connection for `key` through `proxy`: to an HTTP proxy for
/// `http`, else a tunnel to the origin (`CONNECT` or SOCKS5), with TLS
/// with the origin for `https`. Through `socks5://`, the origin's name is
/// resolved here first, under the connect timeout, and its first address
/// sent (a failure is the origin's [`Error::Dns`]).
fn open_proxied(agent: &Rc<AgentInner>, key: &PoolKey, proxy: &Proxy) -> Deferred<ConnHandle> {
    let options = &agent.options;
    let label = format!("{}:{}", key.host(), key.port());
    let (handle, protocol) = ConnHandle::new(label.clone(), options.head_limit);
    let failed = {
        let proxy = proxy.clone();
        move |failure: Failure| Failure::new(proxy_connect_error(&proxy, &failure))
    };
    if key.scheme() == "http" && proxy.scheme() == ProxyScheme::Http {
        let host = proxy.host().trim_start_matches('[').trim_end_matches(']');
        let options = ConnectOptions {
            timeout: options.connect_timeout,
            dns: agent.dns.clone(),
            ..ConnectOptions::default()
        };
        return reactor::connect_protocol_with(host, proxy.port(), protocol, options)
            .add_callback(move |_| handle)
            .or_else(move |failure| Err(failed(failure)));
    }
    #[cfg(not(feature = "tls"))]
    if key.scheme() == "https" {
        drop(protocol);
        return no_tls(key).add_callback(move |()| handle);
    }
    let bare = key.host().trim_start_matches('[').trim_end_matches(']');
    let address: Deferred<Option<IpAddr>> =
        if proxy.scheme() == ProxyScheme::Socks5 && bare.parse::<IpAddr>().is_err() {
            let resolved = match &agent.dns {
                Some(dns) => dns.resolve(bare, key.port()),
                None => crate::threads::resolve(bare, key.port()),
            };
            let resolved = match options.connect_timeout {
                Some(after) => {
                    let host = label.clone();
                    resolved.add_timeout_with(&crate::time::Current, after, move |_, after| {
                        Err(Failure::new(Error::Timeout {
                            stage: TimeoutStage::Connect,
                            host,
                            after,
                        }))
                    })
                }
                None => resolved,
            };
            resolved.add_callback(|addrs: Vec<SocketAddr>| addrs.first().map(SocketAddr::ip))
        } else {
            crate::defer::succeed(None)
        };
    let agent = agent.clone();
    let key = key.clone();
    let proxy = proxy.clone();
    let started = Instant::now();
    address
        .and_then(move |address| {
            let options = &agent.options;
            // One connect timeout for the lookup and the tunnel together.
            let timeout = options
                .connect_timeout
                .map(|after| after.saturating_sub(started.elapsed()));
            super::tunnel::connect(
                super::tunnel::TunnelTo {
                    proxy: &proxy,
                    host: key.host(),
                    port: key.port(),
                    address,
                    #[cfg(feature = "tls")]
                    tls: (key.scheme() == "https").then_some(&options.tls),
                    head_limit: options.head_limit,
                    user_agent: &options.user_agent,
                    timeout,
                    dns: agent.dns.clone(),
                },
                protocol,
            )
            .or_else(move |failure| Err(failed(failure)))
        })
        .add_callback(move |()| handle)
        .or_else(move |failure: Failure| Err(Failure::new(connect_error(&label, &failure))))
}

/// The web error for a failed connection through `proxy`: the proxy's own
/// failures as they are, a proxy that cannot be reached as
/// [`ProxyError::Unreachable`] with the connect error as its cause.
fn proxy_connect_error(proxy: &Proxy, failure: &Failure) -> Error {
    let label = proxy.label();
    let error = connect_error(&label, failure);
    match error.kind() {
        ErrorKind::Dns | ErrorKind::Connect | ErrorKind::Io => Error::Proxy {
            proxy: label,
            error: ProxyError::Unreachable {
                cause: Arc::new(error),
            },
        },
        _ => error,
    }
}

/// The web error for a failed connection attempt to `host` (`host:port`).
fn connect_error(host: &str, failure: &Failure) -> Error {
    if let Some(e) = failure.downcast_ref::<Error>() {
        return e.clone();
    }
    if let Some(e) = failure.downcast_ref::<ResolveError>() {
        return Error::Dns {
            host: e.host.clone(),
            source: Arc::new(copy_io_error(&e.source)),
        };
    }
    if failure.check::<CancelledError>() {
        return Error::Cancelled {
            url: host.to_string(),
        };
    }
    let connect = |addr, source| Error::Connect {
        host: host.to_string(),
        addr,
        source: Arc::new(source),
    };
    match failure.downcast_ref::<ConnectError>() {
        Some(ConnectError::TimedOut { after, .. }) => Error::Timeout {
            stage: TimeoutStage::Connect,
            host: host.to_string(),
            after: *after,
        },
        // The reactor keeps no `io::Error` for a refusal; it classifies
        // exactly ECONNREFUSED as one, so that is the system's error.
        Some(ConnectError::Refused { addr }) => {
            connect(Some(*addr), io::Error::from(rustix::io::Errno::CONNREFUSED))
        }
        Some(
            ConnectError::Unreachable { addr, source } | ConnectError::Failed { addr, source },
        ) => connect(Some(*addr), copy_io_error(source)),
        Some(ConnectError::NoAddress { host }) => Error::Dns {
            host: host.clone(),
            source: Arc::new(io::Error::new(
                io::ErrorKind::NotFound,
                "the name resolved to no address",
            )),
        },
        None => connect(None, io::Error::other(failure.to_string())),
    }
}

/// What a request asks for; redirects change it.
struct Target {
    method: String,
    url: Url,
    headers: Headers,
    body: Option<Vec<u8>>,
    /// The redirects followed so far.
    history: Vec<Redirect>,
    /// A redirect left the origin the request started at: its
    /// origin-bound header fields are no longer sent.
    crossed_origin: bool,
}

/// Where a request is in its life. Each event (a connection from the pool,
/// a response head, body bytes, the end of an exchange, a timer, a cancel)
/// is one `match` on this; what a phase needs lives in that phase only.
///
/// ```text
///                      +------- retry once (reused connection, no response) ---+
///                      v                                                        |
/// Gated --hook fired--> Connecting --lease--> AwaitingHead --head 2xx..5xx--> Body --end--> Done
///   ^                                           |    |                          |
///   |                                           |    +-- error -----------------+
///   |                                           +--head 3xx--> DrainingRedirect
///   +------- follow the redirect (end of its body, or past 64 KiB) ----+
/// any phase --timeout, cancel, error, hook failed, body past max_body--> Done
/// ```
///
/// Without a [`before_request`](AgentOptions::before_request) hook, Gated
/// is passed through at once.
///
/// A head whose `Content-Length` is past `max_body` ends in Done at once,
/// without a Body phase.
///
/// There is no separate "writing" phase: the request is handed to the
/// transport in one write, which buffers what the socket does not take, so
/// nothing happens between writing and waiting for the head (the head
/// timeout runs from the write).
enum Phase {
    /// Waiting for the [`before_request`](AgentOptions::before_request)
    /// hook of this hop; `wait` is its Deferred, cancelled if the request
    /// ends first, and `None` while the hook runs or once it fired.
    Gated {
        reply: Trigger<Response>,
        wait: Option<Deferred<()>>,
        /// What was left of the whole-request timeout when an
        /// [untimed](BeforeRequest::untimed) hook stopped it: it starts
        /// again with this when the hook fires.
        paused: Option<Duration>,
    },
    /// Waiting for the pool: a slot under its caps, then an idle connection
    /// or a new one (lookup, TCP, TLS). `acquire` cancels that wait; it is
    /// `None` while the pool is being asked.
    Connecting {
        reply: Trigger<Response>,
        acquire: Option<Deferred<()>>,
    },
    /// The request was written on `lease`; waiting for the response head.
    AwaitingHead {
        reply: Trigger<Response>,
        lease: Lease,
        head_timer: Option<DelayedCall>,
    },
    /// A redirect's head arrived: its body is read to the end (so the
    /// connection can be reused), then the request goes to `to`.
    DrainingRedirect {
        reply: Trigger<Response>,
        lease: Lease,
        to: Url,
        status: u16,
        /// Body bytes read and dropped so far.
        drained: u64,
    },
    /// The response was delivered; its body flows into `pipe`.
    Body {
        lease: Lease,
        pipe: BodyPipe,
        decoder: Option<ContentDecoder>,
        /// Body bytes received so far, before decoding (for `max_body`).
        received: u64,
        /// Decoded bytes delivered so far (for `max_body`).
        delivered: u64,
    },
    /// Finished, failed or cancelled: every later event is ignored.
    Done,
}

/// The mutable part of a request.
struct State {
    target: Target,
    /// The one retry on a fresh connection was used.
    retried: bool,
    /// The `timeout` of the whole request, while it runs.
    whole_timer: Option<WholeTimer>,
    phase: Phase,
}

/// The running `timeout` of the whole request.
struct WholeTimer {
    call: DelayedCall,
    /// When it fires.
    due: Instant,
}

/// One request, across its attempts and redirects.
struct Req {
    agent: Agent,
    state: RefCell<State>,
}

/// Receives the response of one exchange for a request.
struct ReqSink(Rc<Req>);

/// Who hears how a request ended, told after the state is released (their
/// code may call back into the request).
enum Ending {
    Reply(Trigger<Response>, Error),
    Pipe(BodyPipe, Result<(), Error>),
}

impl Ending {
    fn tell(self) {
        match self {
            Ending::Reply(reply, error) => reply.errback(error),
            Ending::Pipe(pipe, result) => pipe.finish(result.map_err(Failure::new)),
        }
    }
}

impl Req {
    fn host_label(&self) -> String {
        let st = self.state.borrow();
        let url = &st.target.url;
        format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(80)
        )
    }

    fn options(&self) -> &AgentOptions {
        &self.agent.inner.options
    }

    /// The proxy a request for `url` goes through, if any.
    fn route(&self, url: &Url) -> Option<&Proxy> {
        self.options().proxy.as_ref().and_then(|p| p.route(url))
    }

    /// The proxy that forwards a request for `url` (an `http://` URL
    /// through a proxy, sent in absolute form), if any.
    fn forwarder(&self, url: &Url) -> Option<&Proxy> {
        self.route(url).filter(|proxy| forwards(url, proxy))
    }

    /// Starts the whole-request timer with `left` of the
    /// [`timeout`](AgentOptions::timeout) to go.
    fn arm_whole_timer(self: &Rc<Self>, left: Duration) {
        let Some(after) = self.options().timeout else {
            return;
        };
        let weak = Rc::downgrade(self);
        let call = reactor::call_later(left, move || {
            if let Some(req) = weak.upgrade() {
                let host = req.host_label();
                req.fail(Error::Timeout {
                    stage: TimeoutStage::Whole,
                    host,
                    after,
                });
            }
        });
        let due = Instant::now() + left;
        self.state.borrow_mut().whole_timer = Some(WholeTimer { call, due });
    }

    /// Starts a hop (the first, or a redirect's): runs the agent's
    /// `before_request` hook for its URL, then asks the pool for a
    /// connection; without a hook, asks at once. The request is in no
    /// phase (`Done`) when this is called.
    fn gate(self: &Rc<Self>, reply: Trigger<Response>) {
        let Some(hook) = self.options().before_request.clone() else {
            self.state.borrow_mut().phase = Phase::Connecting {
                reply,
                acquire: None,
            };
            return self.attempt(false);
        };
        let url = {
            let mut st = self.state.borrow_mut();
            // An untimed hook's wait stops the whole-request clock.
            let paused = match st.whole_timer.take() {
                Some(timer) if !hook.timed() => {
                    let _ = timer.call.cancel();
                    Some(timer.due.saturating_duration_since(Instant::now()))
                }
                running => {
                    st.whole_timer = running;
                    None
                }
            };
            st.phase = Phase::Gated {
                reply,
                wait: None,
                paused,
            };
            st.target.url.clone()
        };
        // No borrow is held while the hook (user code) runs.
        let (open, refused) = (self.clone(), self.clone());
        let wait = hook
            .run(&url)
            .add_callback(move |()| open.on_gate_open())
            .add_errback(move |failure| refused.on_gate_failed(failure));
        // The hook may have answered already; keep the wait only if not.
        let mut st = self.state.borrow_mut();
        if let Phase::Gated { wait: slot, .. } = &mut st.phase {
            if unanswered(&wait) {
                *slot = Some(wait);
            }
        }
    }

    /// The hook let the hop go: on to the pool.
    fn on_gate_open(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Gated { reply, paused, .. } => {
                st.phase = Phase::Connecting {
                    reply,
                    acquire: None,
                };
                drop(st);
                if let Some(left) = paused {
                    self.arm_whole_timer(left);
                }
                self.attempt(false);
            }
            // Cancelled or timed out meanwhile: nothing is sent.
            other => st.phase = other,
        }
    }

    /// The hook refused the hop: the request fails with its failure, and
    /// nothing is sent.
    fn on_gate_failed(&self, failure: Failure) {
        let mut st = self.state.borrow_mut();
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Gated { reply, .. } => {
                self.end(&mut st);
                let url = st.target.url.to_string();
                drop(st);
                // The hook's own Deferred was cancelled by someone else.
                let failure = if failure.check::<CancelledError>() {
                    Failure::new(Error::Cancelled { url })
                } else {
                    failure
                };
                reply.errback(failure);
            }
            // The request ended first (and cancelled the wait).
            other => st.phase = other,
        }
    }

    /// Asks the pool for a connection (a fresh one after a failed reuse).
    fn attempt(self: &Rc<Self>, fresh: bool) {
        let key = {
            let st = self.state.borrow();
            pool_key(&st.target.url, self.route(&st.target.url))
        };
        let inner = self.agent.inner.clone();
        let opener: Opener = Rc::new(move |key: &PoolKey| open(&inner, key));
        let (ok, failed) = (self.clone(), self.clone());
        let acquire = self
            .agent
            .inner
            .pool
            .acquire(key, fresh, opener)
            .add_callback(move |lease| ok.on_lease(lease))
            .add_errback(move |failure| failed.on_connect_failed(&failure));
        // The pool may have answered already; keep the wait only if not.
        let mut st = self.state.borrow_mut();
        if let Phase::Connecting { acquire: slot, .. } = &mut st.phase {
            if unanswered(&acquire) {
                *slot = Some(acquire);
            }
        }
    }

    /// The pool gave a connection: send the request on it.
    fn on_lease(self: &Rc<Self>, lease: Lease) {
        let mut st = self.state.borrow_mut();
        let reply = match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Connecting { reply, .. } => reply,
            other => {
                // Cancelled or timed out while the connection was coming.
                st.phase = other;
                drop(st);
                return lease.release(true);
            }
        };
        let bytes = match self.serialize(&st.target) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.end(&mut st);
                drop(st);
                lease.release(true);
                return reply.errback(error);
            }
        };
        let head_timer = self.options().head_timeout.map(|after| {
            let weak = Rc::downgrade(self);
            reactor::call_later(after, move || {
                if let Some(req) = weak.upgrade() {
                    let host = req.host_label();
                    req.fail(Error::Timeout {
                        stage: TimeoutStage::Head,
                        host,
                        after,
                    });
                }
            })
        });
        let conn = lease.conn.clone();
        let method = st.target.method.clone();
        st.phase = Phase::AwaitingHead {
            reply,
            lease,
            head_timer,
        };
        drop(st);
        conn.send(&method, &bytes, Rc::new(ReqSink(self.clone())));
    }

    /// No connection could be had.
    fn on_connect_failed(&self, failure: &Failure) {
        let mut st = self.state.borrow_mut();
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Connecting { reply, .. } => {
                self.end(&mut st);
                drop(st);
                let error = match failure.downcast_ref::<Error>() {
                    Some(e) => e.clone(),
                    None => connect_error(&self.host_label(), failure),
                };
                reply.errback(error);
            }
            other => st.phase = other,
        }
    }

    /// Whether the agent asked for gzip itself (no `Accept-Encoding` of
    /// the user's replaced its own), and so decodes the body.
    fn decodes(&self, target: &Target) -> bool {
        self.options().gzip
            && !self.options().headers.contains("accept-encoding")
            && !target.headers.contains("accept-encoding")
    }

    /// The request's head and body on the wire. The header fields, from
    /// the bottom up: the agent's defaults (`Host`, `User-Agent`,
    /// `Accept-Encoding`), the agent's [`headers`](AgentOptions::headers),
    /// the request's own; a name replaces the same name below it.
    fn serialize(&self, target: &Target) -> Result<Vec<u8>, Error> {
        let url = &target.url;
        let options = self.options();
        let host = host_header(url);
        // Borrowed where they can be: a request's head costs few allocations.
        let mut fields: Vec<Field<'_>> = Vec::with_capacity(8);
        fields.push(("Host".into(), host.as_bytes().into()));
        fields.push(("User-Agent".into(), options.user_agent.as_bytes().into()));
        if options.gzip {
            fields.push((
                "Accept-Encoding".into(),
                accept_encoding().as_bytes().into(),
            ));
        }
        let forwarder = self.forwarder(url);
        if let Some(auth) = forwarder.and_then(Proxy::authorization) {
            fields.push(("Proxy-Authorization".into(), auth.as_bytes().into()));
        }
        // The request's own origin-bound fields were removed when it left
        // its origin; the agent's are skipped from then on.
        let crossed = target.crossed_origin;
        overlay(&mut fields, &options.headers, |name| {
            crossed && ORIGIN_BOUND.iter().any(|b| name.eq_ignore_ascii_case(b))
        });
        overlay(&mut fields, &target.headers, |_| false);
        if let Some(jar) = &options.cookies {
            jar.add_to_fields(&mut fields, url);
        }
        let method = &target.method;
        let body = &target.body;
        match body.as_ref() {
            Some(b) => fields.push((
                "Content-Length".into(),
                b.len().to_string().into_bytes().into(),
            )),
            None if matches!(method.as_str(), "POST" | "PUT" | "PATCH") => {
                fields.push(("Content-Length".into(), b"0".as_slice().into()))
            }
            None => {}
        }
        if !self.agent.inner.pool.options().persistent {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case("connection"));
            fields.push(("Connection".into(), b"close".as_slice().into()));
        }
        let request_target: Cow<'_, str> = match (forwarder, url.query()) {
            // Absolute form for the proxy; never the URL's userinfo.
            (Some(_), query) => {
                let mut absolute = format!("{}://{}{}", url.scheme(), host, url.path());
                if let Some(q) = query {
                    absolute.push('?');
                    absolute.push_str(q);
                }
                Cow::Owned(absolute)
            }
            // The path and query, as the URL holds them.
            (None, _) => Cow::Borrowed(&url[url::Position::BeforePath..url::Position::AfterQuery]),
        };
        let mut out = Vec::with_capacity(256 + body.as_ref().map_or(0, Vec::len));
        let head = fields.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        write_request_head_fields(&mut out, method, &request_target, head).map_err(|e| {
            Error::Url {
                url: url.to_string(),
                reason: e.to_string(),
            }
        })?;
        if let Some(b) = body.as_ref() {
            out.extend_from_slice(b);
        }
        Ok(out)
    }

    /// Stops the whole-request timer: the request is over.
    fn end(&self, st: &mut State) {
        if let Some(timer) = st.whole_timer.take() {
            let _ = timer.call.cancel();
        }
    }

    /// Ends the request with `error`, wherever it is: a timer, a cancel, an
    /// aborted body.
    fn fail(&self, error: Error) {
        let mut st = self.state.borrow_mut();
        let phase = std::mem::replace(&mut st.phase, Phase::Done);
        self.end(&mut st);
        drop(st);
        let (lease, ending) = match phase {
            Phase::Gated { reply, wait, .. } => {
                if let Some(wait) = wait {
                    wait.cancel(); // stops a pacer's timer; nothing is sent
                }
                (None, Ending::Reply(reply, error))
            }
            Phase::Connecting { reply, acquire } => {
                if let Some(acquire) = acquire {
                    acquire.cancel(); // leaves the pool's queue, or stops the connect
                }
                (None, Ending::Reply(reply, error))
            }
            Phase::AwaitingHead {
                reply,
                lease,
                head_timer,
            } => {
                if let Some(timer) = head_timer {
                    let _ = timer.cancel();
                }
                (Some(lease), Ending::Reply(reply, error))
            }
            Phase::DrainingRedirect { reply, lease, .. } => {
                (Some(lease), Ending::Reply(reply, error))
            }
            Phase::Body { lease, pipe, .. } => (Some(lease), Ending::Pipe(pipe, Err(error))),
            Phase::Done => return,
        };
        if let Some(lease) = lease {
            lease.conn.abort();
            lease.release(false);
        }
        ending.tell();
    }

    /// A redirect's target, or why it cannot be followed.
    fn redirect_target(&self, target: &Target, head: &ResponseHead) -> Result<Url, Error> {
        let url = &target.url;
        let options = self.options();
        let redirect = |error| Error::Redirect {
            url: url.to_string(),
            error,
        };
        if target.history.len() >= options.redirect_limit {
            return Err(redirect(RedirectError::TooMany {
                limit: options.redirect_limit,
            }));
        }
        let location = head.headers.get("location").ok_or_else(|| {
            redirect(RedirectError::MissingLocation {
                status: head.status,
            })
        })?;
        let bad_location = || {
            redirect(RedirectError::BadLocation {
                location: location.to_string(),
            })
        };
        let to = url.join(location).map_err(|_| bad_location())?;
        if (&to).into_url().is_err() {
            return Err(bad_location());
        }
        if url.scheme() == "https" && to.scheme() == "http" && !options.allow_insecure_redirect {
            return Err(redirect(RedirectError::InsecureDowngrade {
                from: url.to_string(),
                to: to.to_string(),
            }));
        }
        Ok(to)
    }

    /// The response head arrived.
    fn on_head(self: &Rc<Self>, head: ResponseHead) {
        let mut st = self.state.borrow_mut();
        let (reply, lease) = match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::AwaitingHead {
                reply,
                lease,
                head_timer,
            } => {
                if let Some(timer) = head_timer {
                    let _ = timer.cancel();
                }
                (reply, lease)
            }
            other => {
                st.phase = other;
                return;
            }
        };
        let options = self.options();
        if head.status == 407 {
            if let Some(proxy) = self.forwarder(&st.target.url) {
                let error = Error::Proxy {
                    proxy: proxy.label(),
                    error: ProxyError::Refused {
                        request: format!("{} {}", st.target.method, self.label_of(&st)),
                        status: head.status,
                        reason: head.reason.clone(),
                    },
                };
                self.end(&mut st);
                drop(st);
                lease.conn.abort();
                lease.release(false);
                return reply.errback(error);
            }
        }
        if let Some(jar) = &options.cookies {
            // Before a redirect is followed: its cookies go with the next hop.
            jar.store_response(&st.target.url, &head.headers);
        }
        // The connection checked the framing before it gave the head.
        let announced = match response_framing(&st.target.method, head.status, &head.headers) {
            Ok(Framing::Length(n)) => Some(n),
            _ => None,
        };
        if options.follow_redirects && matches!(head.status, 301 | 302 | 303 | 307 | 308) {
            match self.redirect_target(&st.target, &head) {
                Ok(to) => {
                    st.phase = Phase::DrainingRedirect {
                        reply,
                        lease,
                        to,
                        status: head.status,
                        drained: 0,
                    };
                    drop(st);
                    if announced.is_some_and(|n| n > REDIRECT_DRAIN_LIMIT) {
                        self.skip_redirect_body();
                    }
                }
                Err(error) => {
                    self.end(&mut st);
                    drop(st);
                    lease.conn.abort();
                    lease.release(false);
                    reply.errback(error);
                }
            }
            return;
        }
        if let (Some(limit), Some(n)) = (options.max_body, announced) {
            if n > limit {
                // Refused at the head: none of the body is read.
                let host = self.label_of(&st);
                self.end(&mut st);
                drop(st);
                lease.conn.abort();
                lease.release(false);
                return reply.errback(Error::TooLarge {
                    host,
                    what: "body",
                    limit,
                });
            }
        }
        let ResponseHead {
            version,
            status,
            reason,
            mut headers,
        } = head;
        let mut decoder = None;
        if self.decodes(&st.target) {
            match headers.get("content-encoding").map(Coding::parse) {
                Some(Coding::Decode(d)) => {
                    decoder = Some(d);
                    headers.remove("content-encoding");
                    headers.remove("content-length");
                }
                Some(Coding::Stacked(codings)) => {
                    let error = CodecError::BadContentEncoding(format!(
                        "more than one content coding ({codings}) is not decoded"
                    ));
                    let host = self.label_of(&st);
                    self.end(&mut st);
                    drop(st);
                    lease.conn.abort();
                    lease.release(false);
                    return reply.errback(Error::Protocol { host, error });
                }
                Some(Coding::Identity | Coding::Unknown) | None => {}
            }
        }
        let pipe = BodyPipe::default();
        let weak = Rc::downgrade(self);
        pipe.set_abort(Box::new(move || {
            if let Some(req) = weak.upgrade() {
                let url = req.state.borrow().target.url.to_string();
                req.fail(Error::Cancelled { url });
            }
        }));
        let response = Response::new(
            status,
            reason,
            version,
            headers,
            st.target.url.to_string(),
            st.target.history.clone(),
            pipe.clone(),
        );
        st.phase = Phase::Body {
            lease,
            pipe,
            decoder,
            received: 0,
            delivered: 0,
        };
        drop(st);
        reply.callback(response);
    }

    /// Follows the redirect whose body is being drained at once, closing
    /// its connection: the body is too long to be worth reading through.
    fn skip_redirect_body(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::DrainingRedirect {
                reply,
                lease,
                to,
                status,
                ..
            } => {
                follow(&mut st.target, to, status);
                st.retried = false;
                drop(st);
                lease.conn.abort();
                lease.release(false);
                self.gate(reply);
            }
            other => st.phase = other,
        }
    }

    /// The error for a body past `limit`.
    fn too_large(&self, limit: u64) -> Error {
        Error::TooLarge {
            host: self.host_label(),
            what: "body",
            limit,
        }
    }

    /// Body bytes, as framed on the wire: counted against the limit,
    /// decoded step by step (each step's output counted before it is
    /// delivered), delivered with no borrow held.
    fn on_body(self: &Rc<Self>, data: &[u8]) {
        let limit = self.options().max_body;
        let over = |n: u64| limit.is_some_and(|l| n > l);
        let mut st = self.state.borrow_mut();
        match &mut st.phase {
            Phase::DrainingRedirect { drained, .. } => {
                *drained += data.len() as u64;
                let skip = *drained > REDIRECT_DRAIN_LIMIT;
                drop(st);
                if skip {
                    self.skip_redirect_body();
                }
                return;
            }
            Phase::Body {
                pipe,
                decoder,
                received,
                delivered,
                ..
            } => {
                *received += data.len() as u64;
                if over(*received) {
                    drop(st);
                    return self.fail(self.too_large(limit.unwrap_or(0)));
                }
                if decoder.is_none() {
                    *delivered = *received;
                    let pipe = pipe.clone();
                    drop(st);
                    return pipe.push(data);
                }
            }
            _ => return,
        }
        drop(st);
        // Steps until the data is taken and a step yields nothing more.
        let mut rest = data;
        loop {
            let mut st = self.state.borrow_mut();
            let Phase::Body {
                pipe,
                decoder: Some(decoder),
                delivered,
                ..
            } = &mut st.phase
            else {
                return; // failed or aborted by the consumer meanwhile
            };
            let (taken, out) = match decoder.step(rest) {
                Ok((0, out)) if out.is_empty() && rest.is_empty() => return,
                Ok((0, out)) if out.is_empty() => {
                    drop(st);
                    let error = CodecError::BadContentEncoding(
                        "data after the end of the compressed body".into(),
                    );
                    let host = self.host_label();
                    return self.fail(Error::Protocol { host, error });
                }
                Ok(step) => step,
                Err(error) => {
                    drop(st);
                    let host = self.host_label();
                    return self.fail(Error::Protocol { host, error });
                }
            };
            rest = &rest[taken..];
            *delivered += out.len() as u64;
            if over(*delivered) {
                drop(st);
                return self.fail(self.too_large(limit.unwrap_or(0)));
            }
            let pipe = pipe.clone();
            drop(st);
            pipe.push(&out);
        }
    }

    /// The exchange ended: the response is complete, or it failed.
    fn on_finished(self: &Rc<Self>, finished: Finished) {
        let mut st = self.state.borrow_mut();
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::AwaitingHead {
                reply,
                lease,
                head_timer,
            } => {
                if let Some(timer) = head_timer {
                    let _ = timer.cancel();
                }
                let reused = lease.reused;
                let error = match finished.result {
                    Err(error) => error,
                    // The codec reports the head before a successful end.
                    Ok(()) => Error::io(
                        self.label_of(&st),
                        io::Error::new(io::ErrorKind::UnexpectedEof, "no response head"),
                    ),
                };
                let retry = !finished.got_response
                    && reused
                    && !st.retried
                    && st.target.body.is_none()
                    && idempotent(&st.target.method);
                if retry {
                    // The server closed an idle connection as we reused it.
                    st.retried = true;
                    st.phase = Phase::Connecting {
                        reply,
                        acquire: None,
                    };
                    drop(st);
                    lease.release(false);
                    return self.attempt(true);
                }
                // Nothing of the response arrived: say so (the one I/O
                // failure a retry policy may resend after).
                let error = match error {
                    Error::Io { host, source } if !finished.got_response => {
                        Error::NoResponse { host, source }
                    }
                    error => error,
                };
                self.end(&mut st);
                drop(st);
                lease.release(finished.reusable);
                reply.errback(error);
            }
            Phase::DrainingRedirect {
                reply,
                lease,
                to,
                status,
                ..
            } => {
                if let Err(error) = finished.result {
                    self.end(&mut st);
                    drop(st);
                    lease.release(false);
                    return reply.errback(error);
                }
                follow(&mut st.target, to, status);
                st.retried = false;
                drop(st);
                lease.release(finished.reusable);
                self.gate(reply);
            }
            Phase::Body {
                lease,
                pipe,
                decoder,
                received,
                delivered,
            } => {
                let result = finished.result.and_then(|()| {
                    // An empty body (HEAD, 204, 304) is not a truncated stream.
                    let decoder = decoder.filter(|_| received > 0);
                    let rest = match decoder.map(|mut d| d.finish()) {
                        None => Vec::new(),
                        Some(Ok(rest)) => rest,
                        Some(Err(error)) => {
                            let host = self.label_of(&st);
                            return Err(Error::Protocol { host, error });
                        }
                    };
                    let total = delivered + rest.len() as u64;
                    match self.options().max_body {
                        Some(limit) if total > limit => Err(Error::TooLarge {
                            host: self.label_of(&st),
                            what: "body",
                            limit,
                        }),
                        _ => Ok(rest),
                    }
                });
                self.end(&mut st);
                drop(st);
                lease.release(finished.reusable && result.is_ok());
                match result {
                    Ok(rest) => {
                        pipe.push(&rest);
                        pipe.finish(Ok(()));
                    }
                    Err(error) => pipe.finish(Err(Failure::new(error))),
                }
            }
            other => st.phase = other,
        }
    }

    /// `host:port` of the current URL, with the state already borrowed.
    fn label_of(&self, st: &State) -> String {
        let url = &st.target.url;
        format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(80)
        )
    }
}

/// Moves `target` to `to` after a `status` redirect: 303 (and 301/302 after
/// a POST) become GET without a body; credentials stay with their origin.
fn follow(target: &mut Target, to: Url, status: u16) {
    let from = std::mem::replace(&mut target.url, to);
    if status == 303 || ((status == 301 || status == 302) && target.method == "POST") {
        if target.method != "HEAD" {
            target.method = "GET".into();
        }
        target.body = None;
        target.headers.remove("content-type");
    }
    if from.origin() != target.url.origin() {
        for name in ORIGIN_BOUND {
            target.headers.remove(name);
        }
        target.crossed_origin = true;
    }
    target.history.push(Redirect {
        url: from.to_string(),
        status,
    });
}

impl Sink for ReqSink {
    fn head(&self, head: ResponseHead) {
        self.0.on_head(head);
    }

    fn body(&self, data: &[u8]) {
        self.0.on_body(data);
    }

    fn finished(&self, finished: Finished) {
        self.0.on_finished(finished);
    }
}
