//! The response a handler returns, and how it goes on the wire.

use std::time::SystemTime;

use crate::defer::report::report_error;
use crate::defer::Deferred;
use crate::web::http1::{
    encode_chunk, encode_last_chunk, reason_phrase, write_response_head, Version,
};
use crate::web::Headers;

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// Sent with `Content-Length`.
    Full(Vec<u8>),
    /// Sent with `Transfer-Encoding: chunked`, one chunk per element, and
    /// trailer fields.
    Chunked(Vec<Vec<u8>>, Headers),
}

/// An HTTP response, built with chained calls.
///
/// ```
/// use twined::web::server::Response;
///
/// let r = Response::new(201).header("Location", "/things/1").body("created");
/// assert_eq!(r.status(), 201);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    reason: Option<String>,
    headers: Headers,
    body: Body,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Headers::new(),
            body: Body::Full(Vec::new()),
        }
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A custom reason phrase (default: the standard one).
    pub fn reason(mut self, reason: impl Into<String>) -> Response {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding` and
    /// `Connection` are set by the server and ignored here; `Date` is set by
    /// the server unless given.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.append(name, value);
        self
    }

    /// Adds a header field whose value is any bytes (CR, LF and NUL are
    /// still refused: such a response is replaced by a 500).
    pub fn header_bytes(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Response {
        self.headers.append_bytes(name, value);
        self
    }

    /// The header fields given so far.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Sets the body, sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::Full(body.into());
        self
    }

    /// Sets the body, sent chunked: one chunk per element, then `trailers`.
    pub fn chunked(mut self, chunks: Vec<Vec<u8>>, trailers: Headers) -> Response {
        self.body = Body::Chunked(chunks, trailers);
        self
    }
}

/// What a handler may return: a [`Response`] or a `Deferred` of one.
pub trait IntoReply {
    /// The response, now or later.
    fn into_reply(self) -> Deferred<Response>;
}

impl IntoReply for Response {
    fn into_reply(self) -> Deferred<Response> {
        crate::defer::succeed(self)
    }
}

impl IntoReply for Deferred<Response> {
    fn into_reply(self) -> Deferred<Response> {
        self
    }
}

/// The plain-text answer to a request the server refuses or a handler that
/// failed.
pub(super) fn error_response(status: u16, message: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(format!("{status} {}: {message}\n", reason_phrase(status)))
}

/// Serialises `response` to a request with `method` and `version`; `close`
/// adds `Connection: close`.
pub(super) fn serialize(
    response: Response,
    method: &str,
    version: Version,
    close: bool,
) -> Vec<u8> {
    let Response {
        status,
        reason,
        mut headers,
        body,
    } = response;
    for name in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(name);
    }
    if !headers.contains("date") {
        // RFC 9110 section 6.6.1: an origin server with a clock sends Date.
        headers.append("Date", httpdate::fmt_http_date(SystemTime::now()));
    }
    let bodiless_status = (100..200).contains(&status) || status == 204 || status == 304;
    let no_body = method.eq_ignore_ascii_case("HEAD") || bodiless_status;
    let mut body_bytes = Vec::new();
    match body {
        Body::Full(bytes) => {
            if !bodiless_status {
                headers.append("Content-Length", bytes.len().to_string());
            }
            if !no_body {
                body_bytes = bytes;
            }
        }
        Body::Chunked(chunks, trailers) => {
            if version == Version::Http10 {
                // HTTP/1.0 has no chunked coding: send it whole.
                let bytes: Vec<u8> = chunks.concat();
                headers.append("Content-Length", bytes.len().to_string());
                if !no_body {
                    body_bytes = bytes;
                }
            } else if !bodiless_status {
                headers.append("Transfer-Encoding", "chunked");
                if !no_body {
                    for chunk in &chunks {
                        encode_chunk(&mut body_bytes, chunk);
                    }
                    if let Err(e) = encode_last_chunk(&mut body_bytes, &trailers) {
                        report_error!("invalid trailer dropped: {e}");
                        body_bytes.extend_from_slice(b"0\r\n\r\n");
                    }
                }
            }
        }
    }
    if close {
        headers.append("Connection", "close");
    } else if version == Version::Http10 {
        headers.append("Connection", "keep-alive");
    }
    let reason = reason.unwrap_or_else(|| reason_phrase(status).to_string());
    let mut out = Vec::with_capacity(128 + headers.len() * 32 + body_bytes.len());
    if let Err(e) = write_response_head(&mut out, version, status, &reason, &headers) {
        report_error!("a handler's response has an invalid header ({e}); sending 500");
        let fallback = error_response(500, "the response had an invalid header");
        return serialize(fallback, method, version, true);
    }
    out.extend_from_slice(&body_bytes);
    out
}
