//! What the codec finds wrong with a message.

use std::error::Error;
use std::fmt;

/// A malformed or oversized HTTP/1.1 message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The head did not parse (garbage status line, bad header, ...).
    BadHead(String),
    /// The head is longer than the limit.
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `Content-Length` is not a number, or several disagree.
    BadContentLength(String),
    /// A `Transfer-Encoding` other than chunked (last) was used.
    UnsupportedTransferEncoding(String),
    /// The body's length cannot be determined safely (request smuggling
    /// defence): `Transfer-Encoding` with `Content-Length`, in HTTP/1.0, or
    /// not ending in one `chunked`.
    BadFraming(String),
    /// An HTTP/1.1 request without a `Host` field, or with several.
    BadHost(String),
    /// A chunk-size line is not hexadecimal.
    BadChunkSize,
    /// A chunk's data is not followed by CRLF.
    BadChunkEnd,
    /// The trailer section is malformed or too large.
    BadTrailer(String),
    /// The connection closed before the body's end.
    Truncated {
        /// Body bytes received.
        received: u64,
        /// Bytes the framing announced, when known.
        expected: Option<u64>,
    },
    /// A header name or value given to a writer contains CR, LF or NUL, or
    /// a name is not a token (a header injection attempt).
    InvalidHeader(String),
    /// `101 Switching Protocols` is not supported.
    UpgradeUnsupported,
    /// A gzip or deflate body does not decode.
    BadContentEncoding(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::BadHead(why) => write!(f, "malformed message head: {why}"),
            CodecError::HeadTooLarge { limit } => {
                write!(f, "message head larger than {limit} bytes")
            }
            CodecError::BadContentLength(v) => write!(f, "invalid Content-Length: {v:?}"),
            CodecError::UnsupportedTransferEncoding(v) => {
                write!(f, "unsupported Transfer-Encoding: {v:?}")
            }
            CodecError::BadFraming(why) => write!(f, "ambiguous message framing: {why}"),
            CodecError::BadHost(why) => write!(f, "invalid Host: {why}"),
            CodecError::BadChunkSize => f.write_str("invalid chunk size line"),
            CodecError::BadChunkEnd => f.write_str("chunk data not followed by CRLF"),
            CodecError::BadTrailer(why) => write!(f, "malformed chunked trailer: {why}"),
            CodecError::Truncated {
                received,
                expected: Some(expected),
            } => write!(
                f,
                "connection closed after {received} of {expected} body bytes"
            ),
            CodecError::Truncated {
                received,
                expected: None,
            } => write!(
                f,
                "connection closed in the middle of a chunked body after {received} bytes"
            ),
            CodecError::InvalidHeader(why) => write!(f, "invalid header: {why}"),
            CodecError::BadContentEncoding(why) => write!(f, "body does not decode: {why}"),
            CodecError::UpgradeUnsupported => {
                f.write_str("101 Switching Protocols is not supported")
            }
        }
    }
}

impl Error for CodecError {}
