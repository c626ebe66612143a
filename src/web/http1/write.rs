//! Writing message heads and chunked bodies into a byte buffer.

use std::io::Write;

use super::{CodecError, Headers, Version};

/// The `User-Agent` twined sends unless told otherwise.
pub const USER_AGENT: &str = concat!("twined/", env!("CARGO_PKG_VERSION"));

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a header field: a token name, a value without CR, LF or NUL.
pub fn check_header(name: &str, value: &str) -> Result<(), CodecError> {
    check_header_bytes(name, value.as_bytes())
}

/// Checks a header field whose value is any bytes, as
/// [`check_header`] does.
pub fn check_header_bytes(name: &str, value: &[u8]) -> Result<(), CodecError> {
    if !is_token(name) {
        return Err(CodecError::InvalidHeader(format!(
            "{name:?} is not a valid header name"
        )));
    }
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(CodecError::InvalidHeader(format!(
            "the value of {name} contains CR, LF or NUL"
        )));
    }
    Ok(())
}

fn put_headers(buf: &mut Vec<u8>, headers: &Headers) -> Result<(), CodecError> {
    put_fields(buf, headers.iter_bytes())
}

/// Appends header fields, each checked, and the blank line that ends a head.
fn put_fields<'a>(
    buf: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), CodecError> {
    for (name, value) in fields {
        check_header_bytes(name, value)?;
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends a request head: `METHOD target HTTP/1.1`, then `headers` as
/// given. The caller supplies Host, Content-Length and the rest (the client
/// does). Nothing is appended on error.
pub fn write_request_head(
    buf: &mut Vec<u8>,
    method: &str,
    target: &str,
    headers: &Headers,
) -> Result<(), CodecError> {
    write_request_head_fields(buf, method, target, headers.iter_bytes())
}

/// [`write_request_head`] with the fields as `(name, value)` pairs, in
/// order (the client builds them without a [`Headers`]).
pub(crate) fn write_request_head_fields<'a>(
    buf: &mut Vec<u8>,
    method: &str,
    target: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), CodecError> {
    if !is_token(method) {
        return Err(CodecError::InvalidHeader(format!(
            "{method:?} is not a valid method"
        )));
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(CodecError::InvalidHeader(format!(
            "{target:?} is not a valid request target"
        )));
    }
    let start = buf.len();
    buf.extend_from_slice(method.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    put_fields(buf, fields).inspect_err(|_| buf.truncate(start))
}

/// The standard reason phrase of `status`, or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends a response head: status line, then `headers` as given.
pub fn write_response_head(
    buf: &mut Vec<u8>,
    version: Version,
    status: u16,
    reason: &str,
    headers: &Headers,
) -> Result<(), CodecError> {
    if reason.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(CodecError::InvalidHeader(
            "the reason phrase contains CR, LF or NUL".into(),
        ));
    }
    let start = buf.len();
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{} {status} {reason}\r\n", version.as_str());
    put_headers(buf, headers).inspect_err(|_| buf.truncate(start))
}

/// Appends one chunk of a chunked body (nothing for empty `data`: an empty
/// chunk would end the body).
pub fn encode_chunk(buf: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(buf, "{:x}\r\n", data.len());
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// Appends the last chunk, with optional trailer fields.
/// Nothing is appended on error.
pub fn encode_last_chunk(buf: &mut Vec<u8>, trailers: &Headers) -> Result<(), CodecError> {
    let start = buf.len();
    buf.extend_from_slice(b"0\r\n");
    put_headers(buf, trailers).inspect_err(|_| buf.truncate(start))
}
