//! Parsing message heads with `httparse`: the status line or request line
//! and the header fields, with a size limit that holds however the bytes
//! arrive.

use super::{CodecError, Headers};

/// Default limit on the size of a message head (Twisted has none).
pub const DEFAULT_HEAD_LIMIT: usize = 64 * 1024;

/// Header fields parsed on the stack; more go to a second, larger pass.
const FIELDS: usize = 48;

/// Most header fields in one head (and in one trailer section).
pub(super) const MAX_FIELDS: usize = 512;

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    fn from_minor(minor: Option<u8>) -> Version {
        match minor {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        }
    }

    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The protocol version.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, as sent (`GET`).
    pub method: String,
    /// The request target (`/path?query`).
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
}

/// The parsed fields as [`Headers`], values kept as bytes.
pub(super) fn collect(fields: &[httparse::Header<'_>]) -> Headers {
    Headers::received(fields.iter().map(|h| (h.name, h.value)))
}

/// What one parse with a given number of field slots found.
enum Pass<T> {
    Done(Result<Option<T>, CodecError>),
    /// More fields than slots: parse again with more.
    TooManyFields,
}

/// Runs `parse` with room for [`FIELDS`] fields on the stack, and again with
/// room for [`MAX_FIELDS`] when that was too few. The second pass depends
/// only on the fields, never on how many bytes are buffered, so the answer
/// is the same however the input was split.
fn with_fields<'b, T>(
    limit: usize,
    parse: impl Fn(&mut [httparse::Header<'b>]) -> Pass<T>,
) -> Result<Option<T>, CodecError> {
    let mut fields = [httparse::EMPTY_HEADER; FIELDS];
    match parse(&mut fields) {
        Pass::Done(result) => result,
        Pass::TooManyFields => {
            let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
            match parse(&mut fields) {
                Pass::Done(result) => result,
                Pass::TooManyFields => Err(CodecError::HeadTooLarge { limit }),
            }
        }
    }
}

/// Turns what `httparse` said into the codec's answer; `build` makes the
/// head of a complete parse of `len` bytes.
fn outcome<T>(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    limit: usize,
    what: &str,
    build: impl FnOnce() -> T,
) -> Pass<(T, usize)> {
    Pass::Done(match parsed {
        Ok(httparse::Status::Complete(len)) if len > limit => {
            Err(CodecError::HeadTooLarge { limit })
        }
        Ok(httparse::Status::Complete(len)) => Ok(Some((build(), len))),
        Ok(httparse::Status::Partial) if buf.len() > limit => {
            Err(CodecError::HeadTooLarge { limit })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Pass::TooManyFields,
        Err(e) => Err(CodecError::BadHead(format!("{e} in {what}"))),
    })
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is
/// incomplete (and within `limit` bytes), `Ok(Some((head, length)))` once
/// complete. Interim 1xx responses are returned too; the caller skips them.
pub fn parse_response_head(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(ResponseHead, usize)>, CodecError> {
    with_fields(limit, |fields| {
        let mut response = httparse::Response::new(fields);
        let parsed = response.parse(buf);
        outcome(parsed, buf, limit, "status line or headers", || {
            ResponseHead {
                version: Version::from_minor(response.version),
                status: response.code.unwrap_or(0),
                reason: response.reason.unwrap_or("").to_string(),
                headers: collect(response.headers),
            }
        })
    })
}

/// Parses a request head from the start of `buf`, as
/// [`parse_response_head`] does for responses.
pub fn parse_request_head(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(RequestHead, usize)>, CodecError> {
    with_fields(limit, |fields| {
        let mut request = httparse::Request::new(fields);
        let parsed = request.parse(buf);
        outcome(parsed, buf, limit, "request line or headers", || {
            RequestHead {
                method: request.method.unwrap_or("").to_string(),
                target: request.path.unwrap_or("").to_string(),
                version: Version::from_minor(request.version),
                headers: collect(request.headers),
            }
        })
    })
}

/// Checks a request's `Host` (RFC 9112 section 3.2): an HTTP/1.1 request has
/// exactly one, an HTTP/1.0 request at most one, and its value is a host
/// with an optional port (an empty value is allowed).
pub fn check_host(head: &RequestHead) -> Result<(), CodecError> {
    let mut hosts = head.headers.get_all_bytes("host");
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(CodecError::BadHost("more than one Host field".into()));
    }
    match first {
        None if head.version == Version::Http11 => Err(CodecError::BadHost(
            "an HTTP/1.1 request without a Host field".into(),
        )),
        None => Ok(()),
        Some(value) => {
            let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b);
            if value.iter().all(allowed) {
                Ok(())
            } else {
                Err(CodecError::BadHost(format!(
                    "{:?} is not a host",
                    String::from_utf8_lossy(value)
                )))
            }
        }
    }
}
