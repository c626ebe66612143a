//! Listening Unix sockets: accept connections and give each a protocol from
//! the port's factory (Twisted's `listenUNIX` and its `unix.Port`); the
//! socket file is created on listen and removed on `stop_listening`.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use mio::net::{UnixListener, UnixStream};
use mio::Interest;

use super::conn::{UnixConn, NO_ADDRESS};
use super::error::UnixError;
use crate::defer::report::report_error;
use crate::reactor::accept::{accept_all, stop_factory, Accept};
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::stream::Factory;
use crate::reactor::{current_reactor, guard};

/// Options of a listening Unix socket, for [`listen_unix_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListenOptions {
    /// The socket file's permission bits (Twisted's `mode`, default `0o666`:
    /// anyone who can reach the directory may connect).
    pub mode: u32,
    /// Remove a stale socket file (one nothing listens on) in the way and
    /// listen anyway; `false` (the default) reports it as
    /// [`UnixError::Stale`]. A socket something listens on is never removed.
    pub remove_stale: bool,
}

impl Default for UnixListenOptions {
    fn default() -> UnixListenOptions {
        UnixListenOptions {
            mode: 0o666,
            remove_stale: false,
        }
    }
}

struct Listener {
    me: Weak<Listener>,
    socket: RefCell<Option<(UnixListener, SourceKey)>>,
    factory: RefCell<Box<dyn Factory>>,
    path: PathBuf,
    /// The socket file's device and inode, to remove only our own file.
    file_id: Option<(u64, u64)>,
}

/// A listening Unix socket (Twisted's `unix.Port`), returned by
/// [`listen_unix`]. Dropping the handle does not close it;
/// [`stop_listening`](Self::stop_listening) does, and removes the file.
#[derive(Clone)]
pub struct UnixPort {
    listener: Rc<Listener>,
}

/// Listens on a Unix socket file at `path` and builds a protocol from
/// `factory` for every connection (Twisted's `reactor.listenUNIX`).
///
/// ```
/// use std::net::SocketAddr;
/// use twined::reactor;
///
/// struct Discard;
/// impl twined::protocol::Protocol for Discard {
///     fn data_received(&mut self, _data: &[u8]) {}
/// }
///
/// let path = std::env::temp_dir().join(format!("twined-doc-{}.sock", std::process::id()));
/// let port = reactor::listen_unix(&path, |_peer: SocketAddr| Discard).unwrap();
/// assert!(path.exists());
/// port.stop_listening();
/// assert!(!path.exists());
/// ```
pub fn listen_unix(path: impl AsRef<Path>, factory: impl Factory) -> Result<UnixPort, UnixError> {
    listen_unix_with(path, factory, UnixListenOptions::default())
}

/// [`listen_unix`] with [`UnixListenOptions`].
pub fn listen_unix_with(
    path: impl AsRef<Path>,
    factory: impl Factory,
    options: UnixListenOptions,
) -> Result<UnixPort, UnixError> {
    let path = path.as_ref().to_path_buf();
    let io_error = |source: io::Error| UnixError::Io {
        op: "listen on",
        path: path.clone(),
        source,
    };
    let mut socket = match UnixListener::bind(&path) {
        Ok(socket) => socket,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if !is_stale(&path) {
                return Err(UnixError::InUse { path });
            }
            if !options.remove_stale {
                return Err(UnixError::Stale { path });
            }
            std::fs::remove_file(&path).map_err(io_error)?;
            UnixListener::bind(&path).map_err(io_error)?
        }
        Err(e) => return Err(io_error(e)),
    };
    let set_mode = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.mode));
    let file_id = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
    if let Err(source) = set_mode {
        let _ = std::fs::remove_file(&path);
        return Err(UnixError::Io {
            op: "set the mode of",
            path,
            source,
        });
    }
    let listener = Rc::new_cyclic(|me| Listener {
        me: me.clone(),
        socket: RefCell::new(None),
        factory: RefCell::new(Box::new(factory)),
        path: path.clone(),
        file_id,
    });
    let key = match current_reactor().register(&mut socket, Interest::READABLE, listener.clone()) {
        Ok(key) => key,
        Err(e) => {
            listener.remove_file();
            return Err(io_error(e));
        }
    };
    *listener.socket.borrow_mut() = Some((socket, key));
    guard("a factory's start_factory", || {
        listener.factory.borrow_mut().start_factory()
    });
    Ok(UnixPort { listener })
}

/// Whether the socket file at `path` is one nothing accepts on: a connect
/// to it is refused. Anything else (it accepts, it is not a socket, it is
/// gone) is not stale.
fn is_stale(path: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::ConnectionRefused,
    }
}

impl UnixPort {
    /// The socket file's path (Twisted's `getHost().name`).
    pub fn path(&self) -> &Path {
        &self.listener.path
    }

    /// Whether the port still listens.
    pub fn listening(&self) -> bool {
        self.listener.socket.borrow().is_some()
    }

    /// Closes the socket and removes its file (Twisted's `stopListening`);
    /// connections already accepted stay open, and the factory's
    /// `stop_factory` runs. A file that was replaced by another since
    /// `listen_unix` is left alone. Closing a closed port does nothing.
    pub fn stop_listening(&self) {
        let taken = self.listener.socket.borrow_mut().take();
        let Some((mut socket, key)) = taken else {
            return;
        };
        current_reactor().deregister(&mut socket, key);
        drop(socket);
        self.listener.remove_file();
        stop_factory(self.listener.clone(), |l| &l.factory);
    }
}

impl fmt::Debug for UnixPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixPort")
            .field("path", &self.listener.path)
            .field("listening", &self.listening())
            .finish()
    }
}

impl Listener {
    /// Removes the socket file if it is still the one we created.
    fn remove_file(&self) {
        let current = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current.is_some() && current == self.file_id {
            if let Err(e) = std::fs::remove_file(&self.path) {
                report_error!(
                    "could not remove the socket file {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    fn serve(&self, stream: UnixStream) {
        let mut built = None;
        guard("a factory's build_protocol", || {
            built = self.factory.borrow_mut().build_protocol(NO_ADDRESS)
        });
        let Some(protocol) = built else { return };
        if let Err(e) = UnixConn::start(stream, self.path.clone(), protocol, None) {
            report_error!(
                "could not register a connection on {}: {e}",
                self.path.display()
            );
        }
    }
}

impl Accept for Listener {
    fn accept_one(&self) -> Option<io::Result<()>> {
        let accepted = {
            let socket = self.socket.borrow();
            socket.as_ref()?.0.accept()
        };
        Some(accepted.map(|(stream, _)| self.serve(stream)))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

impl Handler for Listener {
    fn ready(&self, _ready: Ready) {
        if let Some(me) = self.me.upgrade() {
            accept_all(&me);
        }
    }
}
