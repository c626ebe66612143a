//! The one error type of the web client: every failure of a request, with a
//! kind to branch on ([`Error::kind`], an [`ErrorKind`] whose
//! [`as_str`](ErrorKind::as_str) is the stable name tools print), a message
//! that names the host and the cause, and the cause itself through
//! [`source()`](std::error::Error::source): the system's `io::Error`, the
//! rustls error, the resolver's error.
//!
//! `Error` is `Clone`: causes that are not `Clone` themselves are shared
//! behind an `Arc`, so a clone keeps its source.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::http1::CodecError;

/// A cause shared by an error and its clones.
pub type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is: the value to branch on.
///
/// [`as_str`](Self::as_str) gives the stable short name used in logs and
/// JSON output (the crawler's `error.kind`).
///
/// ```
/// use twined::web::ErrorKind;
///
/// assert_eq!(ErrorKind::TooLarge.as_str(), "too_large");
/// assert_eq!(ErrorKind::Connect.to_string(), "connect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request cannot be sent as given: the URL is malformed or not
    /// http/https, or a header is refused (`url`).
    Url,
    /// The host name did not resolve (`dns`).
    Dns,
    /// The TCP connection failed: refused, unreachable (`connect`).
    Connect,
    /// The TLS handshake or certificate check failed (`tls`).
    Tls,
    /// A time limit ran out (`timeout`).
    Timeout,
    /// The server answered with a status >= 400 (`http`).
    Http,
    /// A redirect could not be followed (`redirect`).
    Redirect,
    /// The server's response is malformed (`protocol`).
    Protocol,
    /// The connection failed mid-request, or a local I/O error (`io`).
    Io,
    /// The response head or body is larger than the limit (`too_large`).
    TooLarge,
    /// The request was cancelled (`cancelled`).
    Cancelled,
    /// A proxy refused or failed, or a proxy setting is unusable
    /// (`proxy`): [`Error::Proxy`].
    Proxy,
    /// A URL was refused by its site's `robots.txt` (`robots`):
    /// [`Error::Robots`], from
    /// [`RobotsCache::check`](crate::web::client::RobotsCache::check).
    Robots,
}

impl ErrorKind {
    /// Every kind, in the order of the crawl contract.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Url,
        ErrorKind::Dns,
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Http,
        ErrorKind::Redirect,
        ErrorKind::Protocol,
        ErrorKind::Io,
        ErrorKind::TooLarge,
        ErrorKind::Cancelled,
        ErrorKind::Proxy,
        ErrorKind::Robots,
    ];

    /// The stable short name: one of `url`, `dns`, `connect`, `tls`,
    /// `timeout`, `http`, `redirect`, `protocol`, `io`, `too_large`,
    /// `cancelled`, `proxy`, `robots`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Url => "url",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http => "http",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Proxy => "proxy",
            ErrorKind::Robots => "robots",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which time limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    /// Connecting (name lookup, TCP, TLS handshake).
    Connect,
    /// Waiting for the response head after the request was sent.
    Head,
    /// The whole request, body included.
    Whole,
}

impl fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutStage::Connect => "connecting",
            TimeoutStage::Head => "waiting for the response head",
            TimeoutStage::Whole => "the whole request",
        })
    }
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectError {
    /// More redirects than the limit (a loop, most likely).
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// A redirect from https to http, not allowed by the options.
    InsecureDowngrade {
        /// The https URL.
        from: String,
        /// The http URL it pointed to.
        to: String,
    },
    /// A 3xx without a `Location` header.
    MissingLocation {
        /// The status.
        status: u16,
    },
    /// A `Location` that is not a valid URL.
    BadLocation {
        /// The header's value.
        location: String,
    },
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectError::TooMany { limit } => {
                write!(f, "more than {limit} redirects (a redirect loop?)")
            }
            RedirectError::InsecureDowngrade { from, to } => {
                write!(
                    f,
                    "refused to follow a redirect from {from} to insecure {to}"
                )
            }
            RedirectError::MissingLocation { status } => {
                write!(f, "{status} redirect without a Location header")
            }
            RedirectError::BadLocation { location } => {
                write!(f, "redirect to an invalid Location {location:?}")
            }
        }
    }
}

/// Why `robots.txt` refused a URL ([`Error::Robots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RobotsDenial {
    /// A `Disallow` rule of the file is the longest match for the URL's
    /// path in the group of the crawler's user agent.
    Disallowed,
    /// The file could not be had: a 5xx or 429 status, or no answer at all
    /// (refused, timed out, reset). RFC 9309 section 2.3.1.4: the crawler
    /// then assumes every URL of the site is disallowed.
    Unreachable {
        /// What went wrong fetching the file.
        reason: String,
    },
}

impl fmt::Display for RobotsDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RobotsDenial::Disallowed => f.write_str("disallowed"),
            RobotsDenial::Unreachable { reason } => {
                write!(f, "unreachable ({reason}), so every URL is disallowed")
            }
        }
    }
}

/// A failed web request. Inside a `Failure`, reach it with
/// `failure.downcast_ref::<twined::web::Error>()`; branch on
/// [`kind()`](Self::kind); follow [`source()`](StdError::source) to the
/// cause.
///
/// ```
/// use std::error::Error as _;
/// use twined::web::{Error, ErrorKind};
///
/// let e = Error::Io {
///     host: "example.org:80".into(),
///     source: std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
/// };
/// assert_eq!(e.kind(), ErrorKind::Io);
/// let copy = e.clone();
/// let cause = copy.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
/// assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionReset);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The URL is malformed or not http/https, or the method or request
    /// target cannot be written.
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request header that cannot be sent: a field that frames the body
    /// (`Content-Length`, `Transfer-Encoding`: the client sets those from the
    /// body it sends), more than one `Host`, or a name or value that is not
    /// valid on the wire (CR, LF or NUL in it). Its kind is
    /// [`ErrorKind::Url`]: like a bad URL, the request as given cannot be
    /// sent, and nothing was sent.
    Header {
        /// The URL of the request.
        url: String,
        /// The header's name, as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The host name did not resolve.
    Dns {
        /// The host.
        host: String,
        /// The resolver's error.
        source: Arc<io::Error>,
    },
    /// The TCP connection failed (refused, unreachable, ...).
    Connect {
        /// The host and port asked for.
        host: String,
        /// The address tried, when the failure names one.
        addr: Option<SocketAddr>,
        /// The system's error (`ConnectionRefused` for a refusal).
        source: Arc<io::Error>,
    },
    /// The TLS handshake or certificate check failed, or the TLS settings
    /// are unusable.
    Tls {
        /// The host (or the CA file).
        host: String,
        /// What went wrong, for people.
        reason: String,
        /// The cause: a [`rustls::Error`](https://docs.rs/rustls) for a
        /// refused certificate, an `io::Error` for an unreadable CA file.
        source: Option<Cause>,
    },
    /// A time limit ran out.
    Timeout {
        /// Which one.
        stage: TimeoutStage,
        /// The host.
        host: String,
        /// The limit.
        after: Duration,
    },
    /// The server answered with a status >= 400 (Twisted's `web.error.Error`).
    Http {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The URL that answered.
        url: String,
        /// The response body (at most 64 KiB of it).
        body: Vec<u8>,
    },
    /// A redirect could not be followed.
    Redirect {
        /// The URL that redirected.
        url: String,
        /// Why.
        error: RedirectError,
    },
    /// The server's response is malformed.
    Protocol {
        /// The host.
        host: String,
        /// What is wrong.
        error: CodecError,
    },
    /// The connection was reset or closed before any byte of the response
    /// arrived (or before the request could be written). Its kind is
    /// [`ErrorKind::Io`]; it is its own variant because it is the one
    /// connection failure after which resending an idempotent request is
    /// safe and may help (a server that closed an idle connection, a
    /// restarting upstream): see
    /// [`RetryPolicy`](crate::web::client::RetryPolicy). A failure after
    /// part of the response arrived is an [`Error::Io`].
    NoResponse {
        /// The host.
        host: String,
        /// The cause (`UnexpectedEof` for a clean close, the system's error
        /// for a reset).
        source: Arc<io::Error>,
    },
    /// The connection failed mid-request (reset, closed early, disk error
    /// while saving).
    Io {
        /// The host.
        host: String,
        /// The cause.
        source: Arc<io::Error>,
    },
    /// The response head or body is larger than the limit. A body is
    /// measured both as received and as decoded (a gzip body that inflates
    /// past the limit is stopped as soon as it does), and a `Content-Length`
    /// above the limit fails at the head, before any of the body is read.
    TooLarge {
        /// The host.
        host: String,
        /// `"head"` or `"body"`.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The request was cancelled.
    Cancelled {
        /// The URL.
        url: String,
    },
    /// The site's `robots.txt` refuses the URL to the crawler's user agent;
    /// nothing was sent for it.
    Robots {
        /// The URL refused.
        url: String,
        /// The `robots.txt` that refused it.
        robots_url: String,
        /// Why.
        denial: RobotsDenial,
    },
    /// A proxy refused or failed the request, or the proxy setting is
    /// unusable. See [`ProxyError`] for the cases; the proxy is named
    /// without its credentials.
    Proxy {
        /// The proxy, as `host:port` (or the setting, password hidden).
        proxy: String,
        /// What went wrong.
        error: ProxyError,
    },
}

/// Why a proxy failed a request ([`Error::Proxy`]).
///
/// ```
/// use twined::web::{Error, ErrorKind, ProxyError};
///
/// let e = Error::Proxy {
///     proxy: "127.0.0.1:3128".into(),
///     error: ProxyError::Refused {
///         request: "CONNECT example.org:443".into(),
///         status: 407,
///         reason: "Proxy Authentication Required".into(),
///     },
/// };
/// assert_eq!(e.kind(), ErrorKind::Proxy);
/// assert_eq!(
///     e.to_string(),
///     "proxy 127.0.0.1:3128: CONNECT example.org:443 refused: 407 Proxy Authentication Required"
/// );
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy setting is not a usable `http://`, `socks5://` or
    /// `socks5h://` URL (another scheme, no host, a bad port or
    /// percent-encoding, SOCKS5 credentials longer than 255 bytes), or a
    /// host name is too long for SOCKS5.
    BadUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The proxy cannot be reached: its name did not resolve, or the
    /// connection to it was refused or failed. The cause is the error of
    /// that connection (kind `dns` or `connect`).
    Unreachable {
        /// The error connecting to the proxy.
        cause: Arc<Error>,
    },
    /// The proxy answered `CONNECT` with a status other than 2xx, or
    /// answered a forwarded `http://` request with 407 (Proxy
    /// Authentication Required).
    Refused {
        /// What was asked: `CONNECT host:port`, or a forwarded request's
        /// method and origin (`GET example.org:80`).
        request: String,
        /// The proxy's status.
        status: u16,
        /// The proxy's reason phrase.
        reason: String,
    },
    /// The proxy closed the connection before its answer to `CONNECT` (or
    /// a step of the SOCKS5 handshake) was complete, or closed the tunnel
    /// before the TLS handshake with the origin finished.
    Closed {
        /// When: `"before answering CONNECT"`, `"during the TLS handshake
        /// through the tunnel"`, or, through SOCKS5, `"before answering the
        /// SOCKS5 greeting"`, `"before answering the SOCKS5 user name and
        /// password"` or `"before answering SOCKS5 CONNECT"`.
        during: &'static str,
        /// How the connection ended, when it ended with an error.
        cause: Option<Cause>,
    },
    /// The proxy's answer to `CONNECT` is not HTTP, is larger than the head
    /// limit, or is followed by bytes before the TLS handshake.
    BadReply {
        /// What is wrong.
        error: CodecError,
    },
    /// The SOCKS5 proxy accepts none of the authentication methods offered
    /// (RFC 1928's `X'FF'`): it wants credentials the setting does not
    /// have, or credentials are given and it accepts none.
    SocksNoAcceptableMethod {
        /// Whether user name and password authentication was offered.
        offered_password: bool,
    },
    /// The SOCKS5 proxy refused the user name and password (RFC 1929).
    SocksAuthFailed {
        /// The proxy's status byte (non-zero).
        status: u8,
    },
    /// The SOCKS5 proxy answered `CONNECT` with a failure code (RFC 1928,
    /// section 6: 1 to 8, or a code it does not define).
    SocksRefused {
        /// The origin asked for, `host:port`.
        target: String,
        /// The reply code.
        code: u8,
    },
    /// The SOCKS5 proxy's reply is not SOCKS5: a wrong version, a method
    /// not offered, an unknown address type, or bytes after the reply.
    SocksBadReply {
        /// What is wrong.
        reason: String,
    },
}

/// What a SOCKS5 reply code means (RFC 1928, section 6).
pub(crate) fn socks_reply_meaning(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by destination host",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::BadUrl { reason } => write!(f, "unusable proxy setting: {reason}"),
            ProxyError::Unreachable { cause } => write!(f, "unreachable: {cause}"),
            ProxyError::Refused {
                request,
                status,
                reason,
            } => write!(f, "{request} refused: {status} {reason}"),
            ProxyError::Closed { during, cause } => match cause {
                Some(cause) => write!(f, "the connection closed {during}: {cause}"),
                None => write!(f, "the connection closed {during}"),
            },
            ProxyError::BadReply { error } => write!(f, "bad answer to CONNECT: {error}"),
            ProxyError::SocksNoAcceptableMethod { offered_password } => write!(
                f,
                "the SOCKS5 proxy accepts none of the offered authentication methods ({})",
                if *offered_password {
                    "none, user name and password"
                } else {
                    "none; it may want a user name and password"
                }
            ),
            ProxyError::SocksAuthFailed { status } => write!(
                f,
                "the SOCKS5 proxy refused the user name and password (status {status})"
            ),
            ProxyError::SocksRefused { target, code } => write!(
                f,
                "SOCKS5 CONNECT {target} refused: {} (code {code})",
                socks_reply_meaning(*code)
            ),
            ProxyError::SocksBadReply { reason } => write!(f, "bad SOCKS5 reply: {reason}"),
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ProxyError::Unreachable { cause } => Some(&**cause),
            ProxyError::Closed { cause, .. } => {
                cause.as_deref().map(|s| s as &(dyn StdError + 'static))
            }
            ProxyError::BadReply { error } => Some(error),
            ProxyError::BadUrl { .. }
            | ProxyError::Refused { .. }
            | ProxyError::SocksNoAcceptableMethod { .. }
            | ProxyError::SocksAuthFailed { .. }
            | ProxyError::SocksRefused { .. }
            | ProxyError::SocksBadReply { .. } => None,
        }
    }
}

impl Error {
    /// What kind of failure this is. Its [`as_str`](ErrorKind::as_str) is
    /// the stable short name for logs and JSON.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Url { .. } | Error::Header { .. } => ErrorKind::Url,
            Error::Dns { .. } => ErrorKind::Dns,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Http { .. } => ErrorKind::Http,
            Error::Redirect { .. } => ErrorKind::Redirect,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Io { .. } | Error::NoResponse { .. } => ErrorKind::Io,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Robots { .. } => ErrorKind::Robots,
            Error::Proxy { .. } => ErrorKind::Proxy,
        }
    }

    /// The HTTP status of an [`Error::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A codec error met while reading from `host`.
    pub(crate) fn from_codec(host: &str, error: CodecError) -> Error {
        match error {
            CodecError::HeadTooLarge { limit } => Error::TooLarge {
                host: host.to_string(),
                what: "head",
                limit: limit as u64,
            },
            error => Error::Protocol {
                host: host.to_string(),
                error,
            },
        }
    }

    /// An I/O error met talking to `host`.
    pub(crate) fn io(host: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            host: host.into(),
            source: Arc::new(source),
        }
    }
}

/// A copy of an `io::Error` we can only borrow: the same OS error code when
/// there is one, else the same kind and message.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            // Not the URL: it may carry a password, and the name says what to fix.
            Error::Header { name, reason, .. } => {
                write!(f, "refused request header {name:?}: {reason}")
            }
            Error::Dns { host, source } => write!(f, "DNS lookup failed for {host}: {source}"),
            Error::Connect { host, addr, source } => {
                let place = addr.map_or_else(|| host.clone(), |a| a.to_string());
                match source.kind() {
                    io::ErrorKind::ConnectionRefused => write!(f, "connection refused: {place}"),
                    io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                        write!(f, "host unreachable: {place}: {source}")
                    }
                    _ => write!(f, "cannot connect to {place}: {source}"),
                }
            }
            Error::Tls { host, reason, .. } => write!(f, "TLS error with {host}: {reason}"),
            Error::Timeout { stage, host, after } => write!(
                f,
                "timed out after {:.3} s {stage} ({host})",
                after.as_secs_f64()
            ),
            Error::Http {
                status,
                reason,
                url,
                ..
            } => write!(f, "HTTP {status} {reason} from {url}"),
            Error::Redirect { url, error } => write!(f, "redirect from {url}: {error}"),
            Error::Protocol { host, error } => write!(f, "bad response from {host}: {error}"),
            Error::Io { host, source } => write!(f, "connection to {host} failed: {source}"),
            Error::NoResponse { host, source } => {
                write!(
                    f,
                    "connection to {host} failed before any response: {source}"
                )
            }
            Error::TooLarge { host, what, limit } => {
                write!(f, "response {what} from {host} larger than {limit} bytes")
            }
            Error::Cancelled { url } => write!(f, "request for {url} cancelled"),
            Error::Robots {
                url,
                robots_url,
                denial: RobotsDenial::Disallowed,
            } => write!(f, "{url} is disallowed by {robots_url}"),
            Error::Robots {
                url,
                robots_url,
                denial,
            } => write!(f, "{url} not fetched: {robots_url} {denial}"),
            Error::Proxy { proxy, error } => write!(f, "proxy {proxy}: {error}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Dns { source, .. }
            | Error::Connect { source, .. }
            | Error::Io { source, .. }
            | Error::NoResponse { source, .. } => Some(&**source),
            Error::Tls { source, .. } => source.as_deref().map(|s| s as &(dyn StdError + 'static)),
            Error::Protocol { error, .. } => Some(error),
            Error::Proxy { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_the_crawl_contract_names() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.join(" "),
            "url dns connect tls timeout http redirect protocol io too_large cancelled proxy robots"
        );
    }

    #[test]
    fn a_refusal_reads_like_the_system() {
        let e = Error::Connect {
            host: "127.0.0.1:9".into(),
            addr: Some("127.0.0.1:9".parse().unwrap()),
            source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(e.to_string(), "connection refused: 127.0.0.1:9");
    }

    #[test]
    fn a_copied_os_error_keeps_its_code() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(copy_io_error(&e).raw_os_error(), Some(111));
        let e = io::Error::new(io::ErrorKind::InvalidData, "bad");
        let copy = copy_io_error(&e);
        assert_eq!((copy.kind(), copy.to_string()), (e.kind(), e.to_string()));
    }
}
