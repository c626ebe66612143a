//! Listening TCP ports: accept connections and give each a protocol from the
//! port's factory (Twisted's `listenTCP` and its `Port`).

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};

use mio::net::TcpListener;
use mio::Interest;

use super::error::CannotListen;
use super::transport::Conn;
use crate::defer::report::report_error;
use crate::reactor::accept::{accept_all, stop_factory, Accept};
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::stream::Factory;
use crate::reactor::{current_reactor, guard};

struct Listener {
    me: Weak<Listener>,
    socket: RefCell<Option<(TcpListener, SourceKey)>>,
    factory: RefCell<Box<dyn Factory>>,
    address: SocketAddr,
}

/// A listening TCP port (Twisted's `IListeningPort`), returned by
/// [`listen_tcp`](crate::reactor::listen_tcp). Dropping the handle does not
/// close the port; [`stop_listening`](Self::stop_listening) does.
#[derive(Clone)]
pub struct Port {
    listener: Rc<Listener>,
}

/// Listens on `addr` (for example `"127.0.0.1:0"` for an ephemeral port) and
/// builds a protocol from `factory` for every connection (Twisted's
/// `reactor.listenTCP`). Connections are accepted while the reactor runs.
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
/// let port = reactor::listen_tcp("127.0.0.1:0", |_peer: SocketAddr| Discard).unwrap();
/// println!("listening on {}", port.address());
/// port.stop_listening();
/// ```
pub fn listen_tcp(
    addr: impl ToSocketAddrs + fmt::Display,
    factory: impl Factory,
) -> Result<Port, CannotListen> {
    listen_tcp_with(addr, factory, ListenOptions::default())
}

/// Settings of a listening TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// The accept queue's length, connections the kernel completes before
    /// the reactor accepts them (Twisted's `listenTCP(backlog=50)`; default
    /// 1024, as mio's, capped by the system's `somaxconn`).
    pub backlog: u32,
    /// Sets `SO_REUSEPORT`, so several sockets (on several reactor threads,
    /// or processes of the same user) listen on one port and the kernel
    /// spreads the connections among them: a server on every core. Every
    /// socket sharing the port must ask for it. Default `false`.
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: 1024,
            reuse_port: false,
        }
    }
}

/// [`listen_tcp`] with [`ListenOptions`]: the backlog, and `SO_REUSEPORT`
/// for one port served by every reactor thread.
///
/// ```
/// use std::net::SocketAddr;
/// use twined::reactor::{self, ListenOptions};
///
/// struct Discard;
/// impl twined::protocol::Protocol for Discard {
///     fn data_received(&mut self, _data: &[u8]) {}
/// }
///
/// let options = ListenOptions { reuse_port: true, ..Default::default() };
/// let first = reactor::listen_tcp_with("127.0.0.1:0", |_: SocketAddr| Discard, options.clone()).unwrap();
/// // A second socket on the same port (usually on another reactor thread).
/// let second = reactor::listen_tcp_with(first.address(), |_: SocketAddr| Discard, options).unwrap();
/// assert_eq!(first.address(), second.address());
/// # first.stop_listening();
/// # second.stop_listening();
/// ```
pub fn listen_tcp_with(
    addr: impl ToSocketAddrs + fmt::Display,
    factory: impl Factory,
    options: ListenOptions,
) -> Result<Port, CannotListen> {
    let (resolved, cannot) = CannotListen::first_address(&addr)?;
    let mut socket = bind(resolved, &options).map_err(&cannot)?;
    let address = socket.local_addr().map_err(&cannot)?;
    let listener = Rc::new_cyclic(|me| Listener {
        me: me.clone(),
        socket: RefCell::new(None),
        factory: RefCell::new(Box::new(factory)),
        address,
    });
    let key = current_reactor()
        .register(&mut socket, Interest::READABLE, listener.clone())
        .map_err(&cannot)?;
    *listener.socket.borrow_mut() = Some((socket, key));
    guard("a factory's start_factory", || {
        listener.factory.borrow_mut().start_factory()
    });
    Ok(Port { listener })
}

/// A non-blocking listening socket on `addr`: `SO_REUSEADDR` (as std and
/// mio set it), `SO_REUSEPORT` when asked, and the options' backlog.
fn bind(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if options.reuse_port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    let backlog = i32::try_from(options.backlog).unwrap_or(i32::MAX);
    rustix::net::listen(&fd, backlog)?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

impl Port {
    /// The address the port is bound to (with the real port number when 0
    /// was asked for).
    pub fn address(&self) -> SocketAddr {
        self.listener.address
    }

    /// Whether the port still listens.
    pub fn listening(&self) -> bool {
        self.listener.socket.borrow().is_some()
    }

    /// Closes the port (Twisted's `stopListening`); connections already
    /// accepted stay open. The factory's `stop_factory` runs. Closing a closed
    /// port does nothing.
    pub fn stop_listening(&self) {
        let taken = self.listener.socket.borrow_mut().take();
        if let Some((mut socket, key)) = taken {
            current_reactor().deregister(&mut socket, key);
            drop(socket);
            stop_factory(self.listener.clone(), |l| &l.factory);
        }
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("address", &self.listener.address)
            .field("listening", &self.listening())
            .finish()
    }
}

impl Listener {
    fn serve(&self, stream: mio::net::TcpStream, peer: SocketAddr) {
        let mut built = None;
        guard("a factory's build_protocol", || {
            built = self.factory.borrow_mut().build_protocol(peer)
        });
        let Some(protocol) = built else {
            // The factory refused: dropping the stream closes it.
            return;
        };
        if let Err(e) = Conn::accepted(stream, peer, protocol) {
            report_error!("could not register a connection from {peer}: {e}");
        }
    }
}

impl Accept for Listener {
    fn accept_one(&self) -> Option<io::Result<()>> {
        let accepted = {
            let socket = self.socket.borrow();
            socket.as_ref()?.0.accept()
        };
        Some(accepted.map(|(stream, peer)| self.serve(stream, peer)))
    }

    fn describe(&self) -> String {
        self.address.to_string()
    }
}

impl Handler for Listener {
    fn ready(&self, _ready: Ready) {
        if let Some(me) = self.me.upgrade() {
            accept_all(&me);
        }
    }
}
