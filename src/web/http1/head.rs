//! Parsing message heads with `httparse`: the status line or request line
//! and the header fields, with a size limit that holds however the bytes
//! arrive.

use super::{CodecError, Headers};

/// Default limit on the size of a message head (Twisted has none).
pub const DEFAULT_HEAD_LIMIT: usize = 64 * 1024;

/// Header fields parsed on the stack; more go to a second, larger pass.
const FIELDS: usize = 48;

/// Most header fields in one head.
const MAX_FIELDS: usize = 512;

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

fn collect(fields: &[httparse::Header<'_>]) -> Headers {
    fields
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Runs `parse` with room for [`FIELDS`] fields on the stack, and again with
/// room for [`MAX_FIELDS`] when that was too few.
fn with_fields<'b, T>(
    buf: &'b [u8],
    limit: usize,
    parse: impl Fn(&mut [httparse::Header<'b>]) -> Result<Option<T>, CodecError>,
) -> Result<Option<T>, CodecError> {
    let mut fields = [httparse::EMPTY_HEADER; FIELDS];
    match parse(&mut fields) {
        Err(CodecError::HeadTooLarge { .. }) if buf.len() <= limit => {
            // Maybe only many fields: parse again with room for them.
            let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
            parse(&mut fields)
        }
        other => other,
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
) -> Result<Option<(T, usize)>, CodecError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) if len > limit => {
            Err(CodecError::HeadTooLarge { limit })
        }
        Ok(httparse::Status::Complete(len)) => Ok(Some((build(), len))),
        Ok(httparse::Status::Partial) if buf.len() > limit => {
            Err(CodecError::HeadTooLarge { limit })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(CodecError::HeadTooLarge { limit }),
        Err(e) => Err(CodecError::BadHead(format!("{e} in {what}"))),
    }
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is
/// incomplete (and within `limit` bytes), `Ok(Some((head, length)))` once
/// complete. Interim 1xx responses are returned too; the caller skips them.
pub fn parse_response_head(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(ResponseHead, usize)>, CodecError> {
    with_fields(buf, limit, |fields| {
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
    with_fields(buf, limit, |fields| {
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
