//! A small HTTP/1.1 server on the reactor (Twisted's `twisted.web.server.Site`).
//!
//! A [`Site`] is a [`crate::protocol::Factory`] for
//! [`listen_tcp`](crate::reactor::listen_tcp), built from a handler: a closure
//! from a [`Request`] to a [`Response`], or to a `Deferred<Response>` for
//! answers that take time. Connections are kept alive (HTTP/1.1 by default,
//! HTTP/1.0 with `Connection: keep-alive`); pipelined requests are answered in
//! order. Bodies go out with `Content-Length`, or chunked, and every answer
//! carries a `Date`. A head over the limit gets 431, a malformed one 400
//! (also: an HTTP/1.1 request without one `Host`, ambiguous framing such as
//! `Transfer-Encoding` with `Content-Length` or in HTTP/1.0), a transfer
//! coding other than `chunked` 501, a body over the limit 413, a handler
//! that panics or fails 500; the connection is closed after each of these.
//!
//! Over TLS (HTTPS), a `Site` is a factory like any other: give it to
//! [`listen_ssl`](crate::reactor::tls::listen_ssl) with a
//! [`ServerTlsConfig`](crate::reactor::tls::ServerTlsConfig) (Twisted's
//! `reactor.listenSSL(443, Site(root), contextFactory)`). Its bounds hold
//! there too: the TLS layer passes flow control through.
//!
//! ```no_run
//! # #[cfg(feature = "tls")] {
//! use twined::reactor::{self, tls::{self, ServerTlsConfig}};
//! use twined::web::server::{Response, Site};
//!
//! let config = ServerTlsConfig::from_pem_files("cert.pem", "key.pem").unwrap();
//! let site = Site::new(|_| Response::new(200).body("hello over TLS"));
//! let port = tls::listen_ssl("127.0.0.1:8443", site, config).unwrap();
//! println!("serving on https://{}/", port.address());
//! reactor::run().unwrap();
//! # }
//! ```
//!
//! Every bound has a default and a setter on [`Site`]: head size, body size,
//! unsent output per connection (past it the connection stops reading
//! requests until the peer takes its answers) and idle time.
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

mod connection;
mod request;
mod response;

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::defer::report::report_warn;
use crate::defer::Deferred;
use crate::protocol::{Factory, Protocol};
use crate::web::http1::DEFAULT_HEAD_LIMIT;

pub use request::Request;
pub use response::{IntoReply, Response};

/// Default bound on a connection's unsent output (see [`Site::max_unsent`]).
pub const DEFAULT_MAX_UNSENT: usize = 256 * 1024;

type Handler = dyn Fn(Request) -> Deferred<Response>;

struct SiteInner {
    handler: Box<Handler>,
    head_limit: usize,
    max_body: u64,
    max_unsent: usize,
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
            .field("max_unsent", &self.inner.max_unsent)
            .field("idle_timeout", &self.inner.idle_timeout)
            .finish()
    }
}

impl Site {
    /// A site answering every request with `handler`. Defaults: 64 KiB head
    /// limit, 16 MiB body limit, 256 KiB of unsent output per connection,
    /// keep-alive connections closed after 60 s idle.
    pub fn new<R: IntoReply>(handler: impl Fn(Request) -> R + 'static) -> Site {
        Site {
            inner: Rc::new(SiteInner {
                handler: Box::new(move |request| handler(request).into_reply()),
                head_limit: DEFAULT_HEAD_LIMIT,
                max_body: 16 * 1024 * 1024,
                max_unsent: DEFAULT_MAX_UNSENT,
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
                report_warn!("Site options must be set before the site is shared");
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

    /// Sets the bound on a connection's unsent output (default
    /// [`DEFAULT_MAX_UNSENT`], 256 KiB). While more than this many bytes of
    /// answers wait for the peer to take them, the connection reads no more
    /// requests; it reads again once the peer has taken half. A client that
    /// pipelines requests and never reads thus costs the server this much
    /// memory (plus one answer and one read's worth of input), not one
    /// answer per request.
    ///
    /// ```
    /// use twined::web::server::{Response, Site};
    ///
    /// let site = Site::new(|_| Response::new(204)).max_unsent(64 * 1024);
    /// # let _ = site;
    /// ```
    pub fn max_unsent(self, bytes: usize) -> Site {
        self.with(|s| s.max_unsent = bytes)
    }

    /// Closes keep-alive connections idle this long (`None`: never): no
    /// request in progress and no output taken by the peer for this long.
    pub fn idle_timeout(self, timeout: Option<Duration>) -> Site {
        self.with(|s| s.idle_timeout = timeout)
    }
}

impl Factory for Site {
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(connection::Channel::new(self.inner.clone(), peer)))
    }
}
