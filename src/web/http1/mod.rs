//! A sans-IO HTTP/1.1 codec: message heads (parsed with `httparse`), body
//! framing (content-length, chunked with extensions and trailers,
//! close-delimited, none for HEAD/1xx/204/304) and writers. It works on byte
//! slices and never touches a socket, so it is tested on every split of its
//! input and fuzzed; the client and server drive it from their transports.
//!
//! The module is public only with the `fuzzing` feature (for the fuzz
//! targets and the codec tests) and is not a stable API; the types a user
//! meets ([`Headers`], [`Version`], [`CodecError`]) are re-exported from
//! [`twined::web`](crate::web).

// Without `fuzzing` the codec is crate-private, and parts of its API serve
// only the fuzz targets and tests.
#![cfg_attr(not(feature = "fuzzing"), allow(dead_code, unused_imports))]

mod body;
mod error;
mod head;
mod headers;
mod write;

pub use body::{request_framing, response_framing, BodyDecoder, Decoded, Framing};
pub use error::CodecError;
pub use head::{
    check_host, parse_request_head, parse_response_head, RequestHead, ResponseHead, Version,
    DEFAULT_HEAD_LIMIT,
};
pub use headers::Headers;
pub(crate) use write::write_request_head_fields;
pub use write::{
    check_header, check_header_bytes, encode_chunk, encode_last_chunk, reason_phrase,
    write_request_head, write_response_head, USER_AGENT,
};

/// A header field a head is being built from: its name and value, borrowed
/// where they can be (the client's request serializer).
pub(crate) type Field<'a> = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, [u8]>);

/// Whether the connection may carry another message after this response:
/// HTTP/1.1 without `Connection: close` (or HTTP/1.0 with `keep-alive`), and
/// a body whose end is known without closing.
pub fn response_keeps_alive(head: &ResponseHead, framing: Framing) -> bool {
    if framing == Framing::Close {
        return false;
    }
    match head.version {
        Version::Http11 => !head.headers.has_token("connection", "close"),
        Version::Http10 => head.headers.has_token("connection", "keep-alive"),
    }
}

/// Whether a server may keep the connection open after answering this request.
pub fn request_keeps_alive(head: &RequestHead) -> bool {
    match head.version {
        Version::Http11 => !head.headers.has_token("connection", "close"),
        Version::Http10 => head.headers.has_token("connection", "keep-alive"),
    }
}
