//! Body framing: how long a body is (content-length, chunked,
//! close-delimited, none), and the decoder that finds its end in a byte
//! stream, however the bytes are split.

use super::head::{collect, MAX_FIELDS};
use super::{CodecError, Headers, RequestHead, Version};

/// Largest trailer section accepted.
const TRAILER_LIMIT: usize = 16 * 1024;

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or a request without one).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

fn content_length(headers: &Headers) -> Result<Option<u64>, CodecError> {
    let mut found: Option<u64> = None;
    for value in headers.get_all_bytes("content-length") {
        let bad = || CodecError::BadContentLength(String::from_utf8_lossy(value).into_owned());
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            // Only ASCII digits: the conversion cannot fail; the parse can
            // overflow.
            let n: u64 = std::str::from_utf8(part)
                .map_err(|_| bad())?
                .parse()
                .map_err(|_| bad())?;
            match found {
                Some(m) if m != n => {
                    return Err(CodecError::BadContentLength(format!(
                        "conflicting values {m} and {n}"
                    )))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// The transfer codings listed in `Transfer-Encoding`, lowercased, in order.
fn transfer_codings(headers: &Headers) -> Vec<String> {
    headers
        .get_all_bytes("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `Transfer-Encoding` is present and ends in chunked; an error for
/// codings the codec does not decode. Responses only: a request's
/// `Transfer-Encoding` is checked more strictly by [`request_framing`].
fn chunked(headers: &Headers) -> Result<bool, CodecError> {
    let codings = transfer_codings(headers);
    match codings.last().map(String::as_str) {
        None => Ok(false),
        Some("chunked") if codings.iter().filter(|c| *c == "chunked").count() == 1 => Ok(true),
        _ => Err(CodecError::UnsupportedTransferEncoding(codings.join(", "))),
    }
}

/// The framing of a response to a `method` request with `status`
/// (RFC 9112 section 6.3).
pub fn response_framing(
    method: &str,
    status: u16,
    headers: &Headers,
) -> Result<Framing, CodecError> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::Empty);
    }
    if chunked(headers)? {
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// The framing of a request body: chunked, a length, or none. Strict, as a
/// server must be against request smuggling (RFC 9112 sections 6.1 and 6.3):
///
/// - `Transfer-Encoding` together with `Content-Length`, `Transfer-Encoding`
///   in an HTTP/1.0 request, or codings that do not end in exactly one
///   `chunked`: [`CodecError::BadFraming`] (answer 400 and close);
/// - a coding other than `chunked` before the final `chunked`
///   (`gzip, chunked`): [`CodecError::UnsupportedTransferEncoding`] (501);
/// - a `Content-Length` that is not a number, or several that disagree:
///   [`CodecError::BadContentLength`] (400).
pub fn request_framing(head: &RequestHead) -> Result<Framing, CodecError> {
    let headers = &head.headers;
    if headers.contains("transfer-encoding") {
        let codings = transfer_codings(headers);
        if head.version == Version::Http10 {
            return Err(CodecError::BadFraming(
                "Transfer-Encoding in an HTTP/1.0 request".into(),
            ));
        }
        if headers.contains("content-length") {
            return Err(CodecError::BadFraming(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        if codings.last().map(String::as_str) != Some("chunked")
            || codings.iter().filter(|c| *c == "chunked").count() != 1
        {
            return Err(CodecError::BadFraming(format!(
                "Transfer-Encoding {:?} does not end in one chunked",
                codings.join(", ")
            )));
        }
        if codings.len() > 1 {
            return Err(CodecError::UnsupportedTransferEncoding(codings.join(", ")));
        }
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(headers)? {
        Some(0) | None => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `digits` so far.
    Size { size: u64, digits: u32 },
    /// After the size: optional whitespace, then `;` or the line end.
    SizeRest { size: u64 },
    /// In a chunk extension (`;name=value`), until the line end.
    Extension { size: u64 },
    /// After the CR ending a size line: expecting LF.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { left: u64 },
    /// After chunk data: expecting CR (or a bare LF).
    DataCr,
    /// After chunk data and CR: expecting LF.
    DataLf,
    /// In the trailer section, at the start of a line.
    TrailerLineStart,
    /// Inside a trailer line.
    TrailerLine,
}

impl Chunk {
    /// The state after a chunk-size line announcing `size` bytes.
    fn after_size_line(size: u64) -> Chunk {
        if size == 0 {
            Chunk::TrailerLineStart
        } else {
            Chunk::Data { left: size }
        }
    }
}

/// Finds the end of a body in a byte stream and hands its bytes out.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    framing: Framing,
    /// Body bytes handed out so far.
    received: u64,
    chunk: Chunk,
    /// The trailer section's raw lines, until it is complete.
    trailer: Vec<u8>,
    /// The trailer fields, parsed with `httparse` once the section ends.
    trailers: Headers,
    done: bool,
}

/// What one [`BodyDecoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used; the rest belongs to the next message.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

impl BodyDecoder {
    /// A decoder for `framing`.
    pub fn new(framing: Framing) -> BodyDecoder {
        BodyDecoder {
            framing,
            received: 0,
            chunk: Chunk::Size { size: 0, digits: 0 },
            trailer: Vec::new(),
            trailers: Headers::new(),
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// The framing decoded.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes handed out so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The trailer fields of a chunked body, once done (values as sent).
    pub fn trailers(&self) -> Headers {
        self.trailers.clone()
    }

    /// Parses the complete trailer section with `httparse`, as heads are.
    fn parse_trailers(&mut self) -> Result<(), CodecError> {
        if self.trailer.is_empty() {
            return Ok(());
        }
        self.trailer.extend_from_slice(b"\r\n");
        let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
        let parsed = httparse::parse_headers(&self.trailer, &mut fields);
        self.trailers = match parsed {
            Ok(httparse::Status::Complete((_, fields))) => collect(fields),
            Ok(httparse::Status::Partial) => {
                return Err(CodecError::BadTrailer("incomplete field".into()))
            }
            Err(e) => return Err(CodecError::BadTrailer(e.to_string())),
        };
        self.trailer = Vec::new();
        Ok(())
    }

    /// Decodes from `input`, passing each run of body bytes to `out`. Stops
    /// at the end of the body; bytes after it are not consumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<Decoded, CodecError> {
        if self.done {
            return Ok(Decoded {
                consumed: 0,
                done: true,
            });
        }
        let consumed = match self.framing {
            Framing::Empty => 0,
            Framing::Close => {
                if !input.is_empty() {
                    out(input);
                }
                self.received += input.len() as u64;
                input.len()
            }
            Framing::Length(total) => {
                let left = total - self.received;
                let n = (input.len() as u64).min(left) as usize;
                if n > 0 {
                    out(&input[..n]);
                }
                self.received += n as u64;
                if self.received == total {
                    self.done = true;
                }
                n
            }
            Framing::Chunked => self.decode_chunked(input, out)?,
        };
        Ok(Decoded {
            consumed,
            done: self.done,
        })
    }

    fn decode_chunked(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, CodecError> {
        let mut i = 0;
        while i < input.len() && !self.done {
            let b = input[i];
            match self.chunk {
                Chunk::Size { size, digits } => {
                    let digit = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    match digit {
                        Some(d) => {
                            if digits >= 15 {
                                return Err(CodecError::BadChunkSize);
                            }
                            self.chunk = Chunk::Size {
                                size: size * 16 + u64::from(d),
                                digits: digits + 1,
                            };
                        }
                        None if digits == 0 => return Err(CodecError::BadChunkSize),
                        None => {
                            self.chunk = Chunk::SizeRest { size };
                            continue; // look at this byte again
                        }
                    }
                    i += 1;
                }
                Chunk::SizeRest { size } | Chunk::Extension { size } => {
                    let in_extension = matches!(self.chunk, Chunk::Extension { .. });
                    match b {
                        b'\n' => self.chunk = Chunk::after_size_line(size),
                        b'\r' => self.chunk = Chunk::SizeLf { size },
                        b';' => self.chunk = Chunk::Extension { size },
                        b' ' | b'\t' => {}
                        // Extension text (name=value, quoted strings); after
                        // the size itself only whitespace may come, so
                        // `0x10` and `5xyz` are refused.
                        _ if in_extension && (b.is_ascii_graphic() || b >= 0x80) => {}
                        _ => return Err(CodecError::BadChunkSize),
                    }
                    i += 1;
                }
                Chunk::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(CodecError::BadChunkSize);
                    }
                    self.chunk = Chunk::after_size_line(size);
                    i += 1;
                }
                Chunk::Data { left } => {
                    let n = ((input.len() - i) as u64).min(left) as usize;
                    out(&input[i..i + n]);
                    self.received += n as u64;
                    i += n;
                    self.chunk = if left == n as u64 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data {
                            left: left - n as u64,
                        }
                    };
                }
                Chunk::DataCr => {
                    self.chunk = match b {
                        b'\r' => Chunk::DataLf,
                        b'\n' => Chunk::Size { size: 0, digits: 0 },
                        _ => return Err(CodecError::BadChunkEnd),
                    };
                    i += 1;
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(CodecError::BadChunkEnd);
                    }
                    self.chunk = Chunk::Size { size: 0, digits: 0 };
                    i += 1;
                }
                Chunk::TrailerLineStart => {
                    match b {
                        b'\r' => {}
                        b'\n' => {
                            self.parse_trailers()?;
                            self.done = true;
                        }
                        _ => {
                            self.chunk = Chunk::TrailerLine;
                            continue;
                        }
                    }
                    i += 1;
                }
                Chunk::TrailerLine => {
                    if self.trailer.len() >= TRAILER_LIMIT {
                        return Err(CodecError::BadTrailer(format!(
                            "larger than {TRAILER_LIMIT} bytes"
                        )));
                    }
                    self.trailer.push(b);
                    if b == b'\n' {
                        self.chunk = Chunk::TrailerLineStart;
                    }
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    /// The connection closed: fine for a close-delimited body, an error for
    /// an unfinished one.
    pub fn eof(&mut self) -> Result<(), CodecError> {
        if self.done {
            return Ok(());
        }
        match self.framing {
            Framing::Close | Framing::Empty => {
                self.done = true;
                Ok(())
            }
            Framing::Length(total) => Err(CodecError::Truncated {
                received: self.received,
                expected: Some(total),
            }),
            Framing::Chunked => Err(CodecError::Truncated {
                received: self.received,
                expected: None,
            }),
        }
    }
}
