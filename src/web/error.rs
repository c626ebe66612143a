//! The one error type of the web client: every failure of a request, with a
//! stable short name for tools ([`Error::kind`]) and a message that names
//! the host and the cause.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use super::http1::CodecError;

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

/// A failed web request. Inside a `Failure`, reach it with
/// `failure.downcast_ref::<twined::web::Error>()`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is malformed or not http/https.
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name did not resolve.
    Dns {
        /// The host.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// The TCP connection failed (refused, unreachable, ...).
    Connect {
        /// The host and port.
        host: String,
        /// The cause.
        reason: String,
    },
    /// The TLS handshake or certificate check failed.
    Tls {
        /// The host.
        host: String,
        /// The cause.
        reason: String,
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
    /// The connection failed mid-request (reset, closed early, disk error
    /// while saving).
    Io {
        /// The host.
        host: String,
        /// The cause.
        source: io::Error,
    },
    /// The response head or body is larger than the limit.
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
}

impl Error {
    /// A stable short name of the error's kind: one of `url`, `dns`,
    /// `connect`, `tls`, `timeout`, `http`, `redirect`, `protocol`, `io`,
    /// `too_large`, `cancelled`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Url { .. } => "url",
            Error::Dns { .. } => "dns",
            Error::Connect { .. } => "connect",
            Error::Tls { .. } => "tls",
            Error::Timeout { .. } => "timeout",
            Error::Http { .. } => "http",
            Error::Redirect { .. } => "redirect",
            Error::Protocol { .. } => "protocol",
            Error::Io { .. } => "io",
            Error::TooLarge { .. } => "too_large",
            Error::Cancelled { .. } => "cancelled",
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Error::Dns { host, reason } => write!(f, "DNS lookup failed for {host}: {reason}"),
            Error::Connect { host, reason } => write!(f, "cannot connect to {host}: {reason}"),
            Error::Tls { host, reason } => write!(f, "TLS error with {host}: {reason}"),
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
            Error::TooLarge { host, what, limit } => {
                write!(f, "response {what} from {host} larger than {limit} bytes")
            }
            Error::Cancelled { url } => write!(f, "request for {url} cancelled"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Protocol { error, .. } => Some(error),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
