//! The sans-IO string splitter behind the length-prefixed receivers
//! (Twisted's `Int32StringReceiver`, `Int16StringReceiver`,
//! `Int8StringReceiver`) and `NetstringReceiver`: bytes in, strings out.
//!
//! A length over the limit or a malformed netstring is reported as soon as
//! the offending byte arrives, before any payload is buffered, and stops the
//! parser: a stream that lost its framing cannot be resynchronised.

use std::ops::ControlFlow;

use super::error::NetstringError;

/// Twisted's `MAX_LENGTH` of the string receivers, in bytes.
pub const DEFAULT_MAX_STRING_LENGTH: usize = 99_999;

/// How strings are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFraming {
    /// A 1-byte length, then the payload.
    Int8,
    /// A 2-byte big-endian length, then the payload.
    Int16,
    /// A 4-byte big-endian length, then the payload.
    Int32,
    /// `<decimal length>:<payload>,` (<https://cr.yp.to/proto/netstrings.txt>).
    Netstring,
}

impl StringFraming {
    /// The largest payload this framing can carry.
    pub fn max_encodable(self) -> usize {
        match self {
            StringFraming::Int8 => u8::MAX as usize,
            StringFraming::Int16 => u16::MAX as usize,
            StringFraming::Int32 => u32::MAX as usize,
            StringFraming::Netstring => usize::MAX,
        }
    }

    /// Writes the framing before `payload` into `out` (the header of
    /// Twisted's `sendString`). Returns the bytes that go after the payload
    /// (`","` for a netstring, nothing otherwise).
    pub(crate) fn header(self, len: usize, out: &mut Vec<u8>) -> &'static [u8] {
        match self {
            StringFraming::Int8 => out.push(len as u8),
            StringFraming::Int16 => out.extend_from_slice(&(len as u16).to_be_bytes()),
            StringFraming::Int32 => out.extend_from_slice(&(len as u32).to_be_bytes()),
            StringFraming::Netstring => {
                out.extend_from_slice(len.to_string().as_bytes());
                out.push(b':');
                return b",";
            }
        }
        b""
    }
}

/// What the parser found in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringEvent<'a> {
    /// A complete string, framing removed.
    String(&'a [u8]),
    /// A length prefix over the limit (Twisted's `lengthLimitExceeded`). For
    /// a netstring, the length read up to the first digit that passed the
    /// limit. The parser stops.
    LengthLimitExceeded {
        /// The length announced.
        length: u64,
    },
    /// Input that is not a netstring. The parser stops.
    Malformed(NetstringError),
}

/// One frame at the start of a window.
enum Parse {
    Frame {
        start: usize,
        end: usize,
        next: usize,
    },
    Incomplete,
    TooLong(u64),
    Bad(NetstringError),
}

/// Twisted's `IntNStringReceiver` / `NetstringReceiver` parsing as a push
/// parser: [`feed`](Self::feed) it bytes, get [`StringEvent`]s.
///
/// ```
/// use std::ops::ControlFlow;
/// use twined::protocol::basic::{StringEvent, StringFraming, StringParser};
///
/// let mut parser = StringParser::new(StringFraming::Netstring, 100);
/// let mut strings = Vec::new();
/// for chunk in [&b"5:hel"[..], b"lo,0:,3:ab"] {
///     parser.feed(chunk, |event| {
///         if let StringEvent::String(s) = event {
///             strings.push(s.to_vec());
///         }
///         ControlFlow::Continue(())
///     });
/// }
/// assert_eq!(strings, [b"hello".to_vec(), b"".to_vec()]);
/// assert_eq!(parser.buffered(), 4);
/// ```
#[derive(Debug)]
pub struct StringParser {
    framing: StringFraming,
    max_length: usize,
    /// Bytes of an unfinished frame.
    buf: Vec<u8>,
    stopped: bool,
}

impl StringParser {
    /// A parser for `framing` refusing strings longer than `max_length`.
    pub fn new(framing: StringFraming, max_length: usize) -> StringParser {
        StringParser {
            framing,
            max_length,
            buf: Vec::new(),
            stopped: false,
        }
    }

    /// Parses `data` after what is buffered, calling `on_event` for each
    /// string in order. `on_event` returns [`ControlFlow::Break`] to stop the
    /// parser (the connection is closing); a limit or netstring error stops
    /// it too.
    pub fn feed<F>(&mut self, data: &[u8], mut on_event: F)
    where
        F: FnMut(StringEvent<'_>) -> ControlFlow<()>,
    {
        if self.stopped {
            return;
        }
        if self.buf.is_empty() {
            let used = self.run(data, &mut on_event);
            if !self.stopped {
                self.buf.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(data);
            let used = self.run(&buf, &mut on_event);
            if !self.stopped {
                buf.drain(..used);
                self.buf = buf;
            }
        }
    }

    fn run<F>(&mut self, win: &[u8], on_event: &mut F) -> usize
    where
        F: FnMut(StringEvent<'_>) -> ControlFlow<()>,
    {
        let mut pos = 0;
        loop {
            let flow = match parse_one(self.framing, self.max_length, &win[pos..]) {
                Parse::Incomplete => return pos,
                Parse::Frame { start, end, next } => {
                    let flow = on_event(StringEvent::String(&win[pos + start..pos + end]));
                    pos += next;
                    flow
                }
                Parse::TooLong(length) => {
                    self.stopped = true;
                    on_event(StringEvent::LengthLimitExceeded { length })
                }
                Parse::Bad(e) => {
                    self.stopped = true;
                    on_event(StringEvent::Malformed(e))
                }
            };
            if flow.is_break() {
                self.stopped = true;
            }
            if self.stopped {
                return win.len();
            }
        }
    }

    /// Stops the parser: all further input is ignored and nothing stays
    /// buffered.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.buf = Vec::new();
    }

    /// Bytes received after the last complete string.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the parser stopped (a limit, an error or a `Break`): it
    /// ignores all further input.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The framing parsed.
    pub fn framing(&self) -> StringFraming {
        self.framing
    }

    /// The longest string accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Changes the longest string accepted, from the next prefix on.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.max_length = max_length;
    }
}

fn parse_one(framing: StringFraming, max: usize, win: &[u8]) -> Parse {
    let (length, header) = match framing {
        StringFraming::Int8 => match win {
            [a, ..] => (u64::from(*a), 1),
            _ => return Parse::Incomplete,
        },
        StringFraming::Int16 => match win {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Parse::Incomplete,
        },
        StringFraming::Int32 => match win {
            [a, b, c, d, ..] => (u64::from(u32::from_be_bytes([*a, *b, *c, *d])), 4),
            _ => return Parse::Incomplete,
        },
        StringFraming::Netstring => match netstring_length(max, win) {
            Ok((length, header)) => (length, header),
            Err(parse) => return parse,
        },
    };
    if length > max as u64 {
        return Parse::TooLong(length);
    }
    // `length <= max`, a usize.
    let end = header + length as usize;
    let trailer = usize::from(framing == StringFraming::Netstring);
    match win.get(end) {
        None if trailer == 1 => Parse::Incomplete,
        _ if win.len() < end => Parse::Incomplete,
        Some(&b',') if trailer == 1 => Parse::Frame {
            start: header,
            end,
            next: end + 1,
        },
        Some(&found) if trailer == 1 => Parse::Bad(NetstringError::MissingComma { found }),
        _ => Parse::Frame {
            start: header,
            end,
            next: end,
        },
    }
}

/// The length of a netstring at the start of `win` and the size of its
/// `<digits>:` header.
fn netstring_length(max: usize, win: &[u8]) -> Result<(u64, usize), Parse> {
    let mut length: u64 = 0;
    for (i, &b) in win.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                if i == 1 && win[0] == b'0' {
                    return Err(Parse::Bad(NetstringError::LeadingZero));
                }
                length = length
                    .saturating_mul(10)
                    .saturating_add(u64::from(b - b'0'));
                if length > max as u64 {
                    return Err(Parse::TooLong(length));
                }
            }
            b':' if i > 0 => return Ok((length, i + 1)),
            found => return Err(Parse::Bad(NetstringError::BadLength { found })),
        }
    }
    Err(Parse::Incomplete)
}
