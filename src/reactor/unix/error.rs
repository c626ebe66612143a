//! What can go wrong with a Unix socket.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A Unix socket could not be opened, listened on or connected to.
#[derive(Debug)]
#[non_exhaustive]
pub enum UnixError {
    /// A socket file is at the path but nothing listens on it: left behind
    /// by a process that exited without removing it. Remove it, or listen
    /// with [`UnixListenOptions::remove_stale`](super::UnixListenOptions::remove_stale).
    Stale {
        /// The socket file.
        path: PathBuf,
    },
    /// Another socket listens on the path (Twisted's `CannotListenError`).
    InUse {
        /// The socket file.
        path: PathBuf,
    },
    /// Nothing is at the path to connect to (`ENOENT`).
    NotFound {
        /// The path tried.
        path: PathBuf,
    },
    /// The socket file exists but nothing accepts on it, or its backlog is
    /// full (Twisted's `ConnectionRefusedError`).
    Refused {
        /// The path tried.
        path: PathBuf,
    },
    /// Any other system error; `op` says what was being done.
    Io {
        /// What failed: "listen on", "connect to", "set the mode of".
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl UnixError {
    pub(super) fn connect(path: PathBuf, source: io::Error) -> UnixError {
        match source.kind() {
            io::ErrorKind::NotFound => UnixError::NotFound { path },
            io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock => {
                UnixError::Refused { path }
            }
            _ => UnixError::Io {
                op: "connect to",
                path,
                source,
            },
        }
    }
}

impl fmt::Display for UnixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixError::Stale { path } => write!(
                f,
                "cannot listen on {}: a stale socket file is in the way (nothing listens on it); \
                 remove it, or listen with remove_stale",
                path.display()
            ),
            UnixError::InUse { path } => write!(
                f,
                "cannot listen on {}: another process is listening on it",
                path.display()
            ),
            UnixError::NotFound { path } => {
                write!(f, "cannot connect to {}: no such socket", path.display())
            }
            UnixError::Refused { path } => write!(
                f,
                "connection refused: {} (nothing accepts on it)",
                path.display()
            ),
            UnixError::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
        }
    }
}

impl Error for UnixError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            UnixError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
