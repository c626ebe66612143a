//! What a Redis server replies: [`Value`], and the [`ErrorKind`] of an error
//! reply.

use std::fmt;

use redis_protocol::resp2::types::OwnedFrame;

/// One RESP2 reply.
///
/// An error reply at the top level never becomes a `Value`: the command's
/// Deferred errbacks with [`RedisError::Server`](super::RedisError::Server).
/// Inside an array (the replies of `EXEC`, for example) it is kept as
/// [`Value::Error`] so the other elements are not lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The null bulk string or null array (`$-1`, `*-1`): a missing key, a
    /// `BRPOP` that timed out.
    Nil,
    /// An integer reply (`:42`).
    Int(i64),
    /// A bulk string (`$3 foo`): binary-safe bytes.
    Data(Vec<u8>),
    /// A simple string (`+OK`, `+PONG`).
    Status(String),
    /// An array reply; elements may be of any kind.
    Array(Vec<Value>),
    /// An error reply nested in an array.
    Error {
        /// The error's first word, classified.
        kind: ErrorKind,
        /// The whole message, kind word included (`"WRONGTYPE Operation ..."`).
        message: String,
    },
}

impl Value {
    /// Converts a decoded frame. A top-level error is the caller's business;
    /// nested ones become [`Value::Error`].
    pub(crate) fn from_frame(frame: OwnedFrame) -> Value {
        match frame {
            OwnedFrame::Null => Value::Nil,
            OwnedFrame::Integer(i) => Value::Int(i),
            OwnedFrame::BulkString(b) => Value::Data(b),
            OwnedFrame::SimpleString(s) => Value::Status(String::from_utf8_lossy(&s).into_owned()),
            OwnedFrame::Array(items) => {
                Value::Array(items.into_iter().map(Value::from_frame).collect())
            }
            OwnedFrame::Error(message) => Value::Error {
                kind: ErrorKind::of(&message),
                message,
            },
        }
    }

    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Data(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A bulk or simple string as UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether this is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// A short description for error messages: the kind, and the text of a
    /// short string.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".to_string(),
            Value::Int(i) => format!("integer {i}"),
            Value::Data(b) if b.len() <= 64 => {
                format!("bulk string {:?}", String::from_utf8_lossy(b))
            }
            Value::Data(b) => format!("bulk string of {} bytes", b.len()),
            Value::Status(s) => format!("status {s:?}"),
            Value::Array(items) => format!("array of {} elements", items.len()),
            Value::Error { message, .. } => format!("error {message:?}"),
        }
    }
}

/// The kind of an error reply: its first word (Redis' error prefix), for the
/// kinds a client branches on. Anything else is [`ErrorKind::Other`] with the
/// word as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `ERR`: the generic error (unknown command, wrong number of arguments, syntax).
    Err,
    /// `WRONGTYPE`: the key holds another type.
    WrongType,
    /// `NOAUTH`: the server wants `AUTH` first.
    NoAuth,
    /// `WRONGPASS`: bad user name or password.
    WrongPass,
    /// `NOPERM`: the ACL user may not run this.
    NoPerm,
    /// `BUSYGROUP`: `XGROUP CREATE` of a group that exists.
    BusyGroup,
    /// `NOGROUP`: the consumer group (or its stream) does not exist.
    NoGroup,
    /// `LOADING`: the server is loading its data set.
    Loading,
    /// `READONLY`: a write sent to a read-only replica.
    ReadOnly,
    /// `OOM`: the server is over `maxmemory`.
    Oom,
    /// `EXECABORT`: a transaction was discarded.
    ExecAbort,
    /// `NOSCRIPT`: `EVALSHA` of an unknown script.
    NoScript,
    /// `BUSY`: a script is running.
    Busy,
    /// `MOVED` / `ASK`: a cluster redirection (this client does not follow them).
    Redirect,
    /// Any other prefix, as sent.
    Other(String),
}

impl ErrorKind {
    /// Classifies an error reply by its first word.
    pub fn of(message: &str) -> ErrorKind {
        let word = message.split(' ').next().unwrap_or("");
        match word {
            "ERR" => ErrorKind::Err,
            "WRONGTYPE" => ErrorKind::WrongType,
            "NOAUTH" => ErrorKind::NoAuth,
            "WRONGPASS" => ErrorKind::WrongPass,
            "NOPERM" => ErrorKind::NoPerm,
            "BUSYGROUP" => ErrorKind::BusyGroup,
            "NOGROUP" => ErrorKind::NoGroup,
            "LOADING" => ErrorKind::Loading,
            "READONLY" => ErrorKind::ReadOnly,
            "OOM" => ErrorKind::Oom,
            "EXECABORT" => ErrorKind::ExecAbort,
            "NOSCRIPT" => ErrorKind::NoScript,
            "BUSY" => ErrorKind::Busy,
            "MOVED" | "ASK" => ErrorKind::Redirect,
            other => ErrorKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            ErrorKind::Err => "ERR",
            ErrorKind::WrongType => "WRONGTYPE",
            ErrorKind::NoAuth => "NOAUTH",
            ErrorKind::WrongPass => "WRONGPASS",
            ErrorKind::NoPerm => "NOPERM",
            ErrorKind::BusyGroup => "BUSYGROUP",
            ErrorKind::NoGroup => "NOGROUP",
            ErrorKind::Loading => "LOADING",
            ErrorKind::ReadOnly => "READONLY",
            ErrorKind::Oom => "OOM",
            ErrorKind::ExecAbort => "EXECABORT",
            ErrorKind::NoScript => "NOSCRIPT",
            ErrorKind::Busy => "BUSY",
            ErrorKind::Redirect => "MOVED/ASK",
            ErrorKind::Other(word) => word,
        };
        f.write_str(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_first_word() {
        let table = [
            ("ERR unknown command 'FOO'", ErrorKind::Err),
            ("WRONGTYPE Operation against a key", ErrorKind::WrongType),
            (
                "BUSYGROUP Consumer Group name already exists",
                ErrorKind::BusyGroup,
            ),
            ("NOGROUP No such key", ErrorKind::NoGroup),
            ("MOVED 3999 127.0.0.1:6381", ErrorKind::Redirect),
            ("CUSTOM thing", ErrorKind::Other("CUSTOM".into())),
            ("", ErrorKind::Other(String::new())),
        ];
        for (message, kind) in table {
            assert_eq!(ErrorKind::of(message), kind, "{message}");
        }
    }

    #[test]
    fn frames_convert_with_nested_errors_kept() {
        let frame = OwnedFrame::Array(vec![
            OwnedFrame::SimpleString(b"OK".to_vec()),
            OwnedFrame::Error("WRONGTYPE bad".into()),
            OwnedFrame::Null,
            OwnedFrame::Integer(-3),
            OwnedFrame::BulkString(vec![0, 159]),
        ]);
        assert_eq!(
            Value::from_frame(frame),
            Value::Array(vec![
                Value::Status("OK".into()),
                Value::Error {
                    kind: ErrorKind::WrongType,
                    message: "WRONGTYPE bad".into()
                },
                Value::Nil,
                Value::Int(-3),
                Value::Data(vec![0, 159]),
            ])
        );
    }
}
