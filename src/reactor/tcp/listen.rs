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
use crate::reactor::accept::{accept_all, Accept};
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
    let cannot = |source: io::Error| CannotListen {
        addr: addr.to_string(),
        source,
    };
    let resolved = addr
        .to_socket_addrs()
        .map_err(cannot)?
        .next()
        .ok_or_else(|| cannot(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
    let mut socket = TcpListener::bind(resolved).map_err(cannot)?;
    let address = socket.local_addr().map_err(cannot)?;
    let listener = Rc::new_cyclic(|me| Listener {
        me: me.clone(),
        socket: RefCell::new(None),
        factory: RefCell::new(Box::new(factory)),
        address,
    });
    let key = current_reactor()
        .register(&mut socket, Interest::READABLE, listener.clone())
        .map_err(cannot)?;
    *listener.socket.borrow_mut() = Some((socket, key));
    guard("a factory's start_factory", || {
        listener.factory.borrow_mut().start_factory()
    });
    Ok(Port { listener })
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
            let listener = self.listener.clone();
            let stop = move || {
                guard("a factory's stop_factory", || {
                    listener.factory.borrow_mut().stop_factory()
                })
            };
            if self.listener.factory.try_borrow_mut().is_ok() {
                stop();
            } else {
                // Called from the factory's own build_protocol.
                current_reactor().call_soon(Box::new(stop));
            }
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
