//! [`RedisError`]: every way a Redis command or connection can fail.

use std::error::Error;
use std::fmt;

use super::value::ErrorKind;
use crate::defer::Failure;

/// Why a Redis command failed. It arrives as the [`Failure`] of the command's
/// Deferred; get it back with `failure.downcast_ref::<RedisError>()`.
///
/// A command's own timeout (see
/// [`ClientOptions::command_timeout`](super::ClientOptions::command_timeout))
/// is twined's [`TimeoutError`](crate::defer::TimeoutError), as for any
/// Deferred given [`add_timeout`](crate::defer::Deferred::add_timeout).
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisError {
    /// The server answered with an error reply (`-ERR ...`). The connection
    /// stays usable.
    Server {
        /// The error's first word, classified.
        kind: ErrorKind,
        /// The whole message, as the server sent it.
        message: String,
    },
    /// The connection closed while the command was sent or waiting for its
    /// reply. The command may or may not have run on the server; it is never
    /// sent again by the client.
    ConnectionLost {
        /// Why the connection closed (a
        /// [`ConnectionDone`](crate::protocol::ConnectionDone), a
        /// [`ConnectionLost`](crate::protocol::ConnectionLost), or a
        /// `RedisError::Protocol` / `RedisError::ReplyTooLarge` that made
        /// the client close it).
        reason: Failure,
    },
    /// No connection could be made for the command (refused, timed out, name
    /// lookup failed).
    Connect {
        /// `host:port` as given in the URL.
        server: String,
        /// The cause: a [`ConnectError`](crate::reactor::ConnectError), a
        /// [`ResolveError`](crate::threads::ResolveError) or a
        /// [`TimeoutError`](crate::defer::TimeoutError), or what ended the
        /// connection while `AUTH`/`SELECT` were under way.
        reason: Failure,
    },
    /// The connection was made but `AUTH` or `SELECT` from the URL failed;
    /// the connection was closed and the commands waiting for it failed.
    Handshake {
        /// `"AUTH"` or `"SELECT"`.
        command: &'static str,
        /// The server's error kind.
        kind: ErrorKind,
        /// The server's error message.
        message: String,
    },
    /// The server sent bytes that are not RESP, or a reply nobody asked for.
    /// The client closes the connection.
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// A reply grew past
    /// [`ClientOptions::max_reply_size`](super::ClientOptions::max_reply_size);
    /// the client closes the connection.
    ReplyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// More commands than
    /// [`ClientOptions::max_pending`](super::ClientOptions::max_pending) were
    /// in flight or queued; this one was not sent.
    TooManyPending {
        /// The limit.
        limit: usize,
    },
    /// The reply's shape does not fit the typed helper that sent the command.
    UnexpectedReply {
        /// The command's name.
        command: &'static str,
        /// What came back, described.
        got: String,
    },
    /// The `redis://` URL could not be used.
    BadUrl {
        /// The URL as given, with any password shown as `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client was closed with [`Client::disconnect`](super::Client::disconnect).
    Closed,
}

impl RedisError {
    /// The server's error kind, for [`RedisError::Server`] and
    /// [`RedisError::Handshake`].
    pub fn server_kind(&self) -> Option<&ErrorKind> {
        match self {
            RedisError::Server { kind, .. } | RedisError::Handshake { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub(crate) fn server(message: String) -> RedisError {
        RedisError::Server {
            kind: ErrorKind::of(&message),
            message,
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Server { message, .. } => write!(f, "redis error reply: {message}"),
            RedisError::ConnectionLost { reason } => {
                write!(
                    f,
                    "redis connection lost with the command in flight: {reason}"
                )
            }
            RedisError::Connect { server, reason } => {
                write!(f, "cannot connect to redis at {server}: {reason}")
            }
            RedisError::Handshake {
                command, message, ..
            } => write!(f, "redis {command} on connect failed: {message}"),
            RedisError::Protocol { message } => write!(f, "redis protocol error: {message}"),
            RedisError::ReplyTooLarge { limit } => {
                write!(f, "redis reply larger than the {limit}-byte limit")
            }
            RedisError::TooManyPending { limit } => write!(
                f,
                "too many redis commands pending ({limit}); this one was not sent"
            ),
            RedisError::UnexpectedReply { command, got } => {
                write!(f, "unexpected reply to redis {command}: {got}")
            }
            RedisError::BadUrl { url, reason } => write!(f, "bad redis URL {url:?}: {reason}"),
            RedisError::Closed => f.write_str("the redis client was closed"),
        }
    }
}

impl Error for RedisError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RedisError::ConnectionLost { reason } | RedisError::Connect { reason, .. } => {
                Some(reason.error())
            }
            _ => None,
        }
    }
}
