//! Why a framed connection was closed by its framing, and why a frame could
//! not be sent.

use std::error::Error;
use std::fmt;

/// The framing closed the connection: the reason a handler's
/// `connection_lost` gets when input broke a rule of the framing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A line grew past the receiver's `MAX_LENGTH` without a delimiter
    /// (the default [`line_length_exceeded`](super::LineHandler::line_length_exceeded)).
    LineTooLong {
        /// The limit in force, in bytes, delimiter excluded.
        limit: usize,
    },
    /// A length prefix announced more than the receiver's `MAX_LENGTH` (the
    /// default [`length_limit_exceeded`](super::StringHandler::length_limit_exceeded)).
    LengthLimitExceeded {
        /// The length announced; for a netstring, the digits read up to the
        /// first one that passed the limit (more may have followed).
        length: u64,
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The peer sent something that is not a netstring.
    Netstring(NetstringError),
    /// The peer closed the connection in the middle of a frame: these bytes
    /// of an incomplete line or string were received and never delivered.
    Truncated {
        /// Bytes received after the last complete frame.
        buffered: usize,
    },
    /// The handler switched to raw mode but does not implement
    /// [`raw_data_received`](super::LineHandler::raw_data_received).
    RawDataUnhandled {
        /// Bytes of raw data that could not be delivered.
        length: usize,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::LineTooLong { limit } => {
                write!(f, "line too long: no delimiter within {limit} bytes")
            }
            FramingError::LengthLimitExceeded { length, limit } => write!(
                f,
                "length prefix {length} exceeds the limit of {limit} bytes"
            ),
            FramingError::Netstring(e) => write!(f, "malformed netstring: {e}"),
            FramingError::Truncated { buffered } => write!(
                f,
                "connection closed in the middle of a frame ({buffered} bytes undelivered)"
            ),
            FramingError::RawDataUnhandled { length } => write!(
                f,
                "raw mode set but raw_data_received is not implemented ({length} bytes dropped)"
            ),
        }
    }
}

impl Error for FramingError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            FramingError::Netstring(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetstringError> for FramingError {
    fn from(e: NetstringError) -> FramingError {
        FramingError::Netstring(e)
    }
}

/// What is wrong with a netstring (`<digits>:<payload>,`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetstringError {
    /// The length is not decimal digits ended by `:` (this byte came instead).
    BadLength {
        /// The byte found where a digit or `:` belonged.
        found: u8,
    },
    /// The length has a leading zero (`007:`), which netstrings forbid.
    LeadingZero,
    /// The payload is not followed by `,` (this byte came instead).
    MissingComma {
        /// The byte found where the comma belonged.
        found: u8,
    },
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetstringError::BadLength { found } => write!(
                f,
                "expected a decimal length ended by ':', found byte {:?}",
                char::from(*found)
            ),
            NetstringError::LeadingZero => f.write_str("length with a leading zero"),
            NetstringError::MissingComma { found } => write!(
                f,
                "expected ',' after the payload, found byte {:?}",
                char::from(*found)
            ),
        }
    }
}

impl Error for NetstringError {}

/// A string too long for its length prefix was given to `send_string`
/// (Twisted's `StringTooLongError`). Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringTooLong {
    /// Length of the string given.
    pub length: usize,
    /// The longest the prefix can announce.
    pub max: usize,
}

impl fmt::Display for StringTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "string of {} bytes too long for its length prefix (at most {})",
            self.length, self.max
        )
    }
}

impl Error for StringTooLong {}
