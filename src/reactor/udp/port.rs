//! A bound UDP socket on the reactor: it reads datagrams until the kernel has
//! none left (edge-triggered, with a fairness cap), sends straight to the
//! socket, and queues, within a bound, what a full send buffer refuses.
//!
//! The socket is the transport: [`listen_udp`] returns the
//! [`DatagramTransport`] the protocol also gets in `start_protocol`, as
//! Twisted's `listenUDP` returns the port its protocol writes through.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::net::UdpSocket;
use mio::Interest;

use super::error::DatagramError;
use super::protocol::DatagramProtocol;
use crate::defer::report::{report_error, report_warn};
use crate::defer::Panicked;
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::tcp::CannotListen;
use crate::reactor::{current_reactor, guard};

/// Datagrams read per readiness event before yielding to other sources.
const READS_PER_EVENT: usize = 256;

/// Options of a UDP socket, for [`listen_udp_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpOptions {
    /// The longest datagram delivered (Twisted's `maxPacketSize`, default
    /// 65,535 bytes, so every IPv4 and IPv6 datagram fits). A longer one is
    /// dropped and reported to
    /// [`DatagramProtocol::datagram_too_large`], never delivered cut short.
    pub max_datagram_size: usize,
    /// Bytes of datagrams kept while the kernel's send buffer is full
    /// (default 1 MiB); past it `write_to` fails with
    /// [`DatagramError::BufferFull`].
    pub send_queue_bytes: usize,
    /// The kernel's send buffer (`SO_SNDBUF`) in bytes; `None` (the default)
    /// keeps the system's.
    pub send_buffer_size: Option<usize>,
}

impl Default for UdpOptions {
    fn default() -> UdpOptions {
        UdpOptions {
            max_datagram_size: 65_535,
            send_queue_bytes: 1024 * 1024,
            send_buffer_size: None,
        }
    }
}

struct State {
    socket: Option<(UdpSocket, SourceKey)>,
    /// The connected peer, after `connect`.
    peer: Option<SocketAddr>,
    /// Datagrams the kernel refused for now, oldest first, with their
    /// destination (`None`: the connected peer).
    queue: VecDeque<(Vec<u8>, Option<SocketAddr>)>,
    queued: usize,
    /// A read is queued for the next iteration (the fairness cap was hit).
    read_scheduled: bool,
}

struct Inner {
    me: Weak<Inner>,
    address: SocketAddr,
    options: UdpOptions,
    state: RefCell<State>,
    protocol: RefCell<Option<Box<dyn DatagramProtocol>>>,
    /// One byte longer than the largest datagram delivered, to tell a
    /// datagram that fits from one that was cut.
    buf: RefCell<Box<[u8]>>,
}

/// A UDP socket bound by [`listen_udp`], and the handle its
/// [`DatagramProtocol`] sends through (Twisted's `udp.Port`, which is both
/// the listening port and the transport). Cheap to clone. Dropping the
/// handles does not close the socket; [`stop_listening`](Self::stop_listening)
/// does.
#[derive(Clone)]
pub struct DatagramTransport(Rc<Inner>);

/// Binds a UDP socket to `addr` (for example `"127.0.0.1:0"` for an
/// ephemeral port, `"[::1]:0"` for IPv6) and delivers its datagrams to
/// `protocol` (Twisted's `reactor.listenUDP`).
///
/// ```
/// use std::net::SocketAddr;
/// use twined::reactor::{self, DatagramProtocol, DatagramTransport};
///
/// /// Twisted's UDP echo.
/// #[derive(Default)]
/// struct Echo(Option<DatagramTransport>);
///
/// impl DatagramProtocol for Echo {
///     fn start_protocol(&mut self, transport: DatagramTransport) {
///         self.0 = Some(transport);
///     }
///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
///         if let Some(t) = &self.0 {
///             let _ = t.write_to(data, addr);
///         }
///     }
/// }
///
/// let port = reactor::listen_udp("127.0.0.1:0", Echo::default()).unwrap();
/// assert_ne!(port.address().port(), 0);
/// port.stop_listening();
/// ```
pub fn listen_udp(
    addr: impl ToSocketAddrs + fmt::Display,
    protocol: impl DatagramProtocol,
) -> Result<DatagramTransport, CannotListen> {
    listen_udp_with(addr, protocol, UdpOptions::default())
}

/// [`listen_udp`] with [`UdpOptions`].
pub fn listen_udp_with(
    addr: impl ToSocketAddrs + fmt::Display,
    protocol: impl DatagramProtocol,
    options: UdpOptions,
) -> Result<DatagramTransport, CannotListen> {
    let (resolved, cannot) = CannotListen::first_address(&addr)?;
    let mut socket = UdpSocket::bind(resolved).map_err(&cannot)?;
    let address = socket.local_addr().map_err(&cannot)?;
    if let Some(size) = options.send_buffer_size {
        rustix::net::sockopt::set_socket_send_buffer_size(&socket, size)
            .map_err(|e| cannot(e.into()))?;
    }
    let buf_len = options.max_datagram_size.saturating_add(1);
    let inner = Rc::new_cyclic(|me| Inner {
        me: me.clone(),
        address,
        options,
        state: RefCell::new(State {
            socket: None,
            peer: None,
            queue: VecDeque::new(),
            queued: 0,
            read_scheduled: false,
        }),
        protocol: RefCell::new(Some(Box::new(protocol))),
        buf: RefCell::new(vec![0; buf_len].into_boxed_slice()),
    });
    let key = current_reactor()
        .register(
            &mut socket,
            Interest::READABLE | Interest::WRITABLE,
            inner.clone(),
        )
        .map_err(&cannot)?;
    inner.state.borrow_mut().socket = Some((socket, key));
    let transport = DatagramTransport(inner.clone());
    inner.with_protocol("start_protocol", |p| p.start_protocol(transport));
    Ok(DatagramTransport(inner))
}

impl DatagramTransport {
    /// Sends `data` to `addr` (Twisted's `transport.write(data, addr)`).
    ///
    /// `Ok` when the kernel took the datagram or it is queued behind others
    /// the kernel could not take yet (UDP gives no delivery guarantee
    /// either way). Errors: [`DatagramError::TooLarge`],
    /// [`DatagramError::BufferFull`] when the queue is at its bound,
    /// [`DatagramError::Refused`] on a connected socket whose peer refused
    /// an earlier datagram, [`DatagramError::Closed`].
    pub fn write_to(&self, data: &[u8], addr: SocketAddr) -> Result<(), DatagramError> {
        self.0.send(data, Some(addr))
    }

    /// Sends `data` to the connected peer (Twisted's `transport.write(data)`
    /// after `connect`); [`DatagramError::NotConnected`] before
    /// [`connect`](Self::connect).
    pub fn write(&self, data: &[u8]) -> Result<(), DatagramError> {
        if self.0.state.borrow().peer.is_none() {
            return Err(DatagramError::NotConnected);
        }
        self.0.send(data, None)
    }

    /// Connects the socket to `addr` (Twisted's `transport.connect(host,
    /// port)`): only datagrams from `addr` are delivered, [`write`](Self::write)
    /// sends there, and an ICMP "port unreachable" for it reaches the
    /// protocol's [`connection_refused`](DatagramProtocol::connection_refused).
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let mut st = self.0.state.borrow_mut();
        let Some((socket, _)) = st.socket.as_ref() else {
            return Err(closed());
        };
        socket.connect(addr)?;
        st.peer = Some(addr);
        Ok(())
    }

    /// The connected peer, after [`connect`](Self::connect).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.state.borrow().peer
    }

    /// The address the socket is bound to, with the real port when 0 was
    /// asked for (Twisted's `getHost`).
    pub fn address(&self) -> SocketAddr {
        self.0.address
    }

    /// Whether the socket is still open.
    pub fn listening(&self) -> bool {
        self.0.state.borrow().socket.is_some()
    }

    /// Bytes of datagrams waiting for room in the kernel's send buffer.
    pub fn queued_bytes(&self) -> usize {
        self.0.state.borrow().queued
    }

    /// Joins the multicast group `group` on `interface` (the system's choice
    /// when `None`; for IPv6 an interface is an index, so only `None` or the
    /// unspecified address is taken) (Twisted's `joinGroup`).
    pub fn join_group(&self, group: IpAddr, interface: Option<IpAddr>) -> io::Result<()> {
        self.0.membership(group, interface, true)
    }

    /// Leaves a group joined with [`join_group`](Self::join_group) (Twisted's
    /// `leaveGroup`).
    pub fn leave_group(&self, group: IpAddr, interface: Option<IpAddr>) -> io::Result<()> {
        self.0.membership(group, interface, false)
    }

    /// Whether multicast datagrams this socket sends are looped back to the
    /// host (Twisted's `setLoopbackMode`; the system default is on).
    pub fn set_loopback_mode(&self, on: bool) -> io::Result<()> {
        let v6 = self.0.address.is_ipv6();
        self.0.with_socket(|s| {
            if v6 {
                s.set_multicast_loop_v6(on)
            } else {
                s.set_multicast_loop_v4(on)
            }
        })
    }

    /// The time-to-live (IPv6: hop limit) of multicast datagrams sent
    /// (Twisted's `setTTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let v6 = self.0.address.is_ipv6();
        self.0.with_socket(|s| {
            if v6 {
                rustix::net::sockopt::set_ipv6_multicast_hops(s, ttl).map_err(io::Error::from)
            } else {
                s.set_multicast_ttl_v4(ttl)
            }
        })
    }

    /// The interface multicast datagrams leave by, named by one of its
    /// addresses (Twisted's `setOutgoingInterface`); an IPv6 socket takes
    /// only the unspecified address (the system's choice).
    pub fn set_outgoing_interface(&self, interface: IpAddr) -> io::Result<()> {
        self.0.with_socket(|s| match interface {
            IpAddr::V4(i) => rustix::net::sockopt::set_ip_multicast_if(s, &i).map_err(Into::into),
            IpAddr::V6(i) if i.is_unspecified() => {
                rustix::net::sockopt::set_ipv6_multicast_if(s, 0).map_err(Into::into)
            }
            IpAddr::V6(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv6 outgoing interface is an index; only :: (the system's choice) is taken",
            )),
        })
    }

    /// Allows sending to broadcast addresses (Twisted's `setBroadcastAllowed`).
    pub fn set_broadcast_allowed(&self, on: bool) -> io::Result<()> {
        self.0.with_socket(|s| s.set_broadcast(on))
    }

    /// Closes the socket (Twisted's `stopListening`); queued datagrams are
    /// dropped, and the protocol's
    /// [`stop_protocol`](DatagramProtocol::stop_protocol) runs from the
    /// loop. Closing a closed socket does nothing.
    pub fn stop_listening(&self) {
        let taken = {
            let mut st = self.0.state.borrow_mut();
            st.queue.clear();
            st.queued = 0;
            st.socket.take()
        };
        let Some((mut socket, key)) = taken else {
            return;
        };
        let reactor = current_reactor();
        reactor.deregister(&mut socket, key);
        drop(socket);
        let inner = self.0.clone();
        reactor.call_soon(Box::new(move || {
            let protocol = inner.protocol.borrow_mut().take();
            if let Some(mut protocol) = protocol {
                guard("a datagram protocol's stop_protocol", move || {
                    protocol.stop_protocol()
                });
            }
        }));
    }

    /// Same as [`stop_listening`](Self::stop_listening) (Twisted's
    /// `loseConnection` on a UDP port).
    pub fn lose_connection(&self) {
        self.stop_listening();
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the UDP socket is closed")
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.state.borrow();
        f.debug_struct("DatagramTransport")
            .field("address", &self.0.address)
            .field("peer", &st.peer)
            .field("listening", &st.socket.is_some())
            .field("queued_bytes", &st.queued)
            .finish()
    }
}

impl Inner {
    fn with_socket<T>(&self, f: impl FnOnce(&UdpSocket) -> io::Result<T>) -> io::Result<T> {
        let st = self.state.borrow();
        match st.socket.as_ref() {
            Some((socket, _)) => f(socket),
            None => Err(closed()),
        }
    }

    fn membership(&self, group: IpAddr, interface: Option<IpAddr>, join: bool) -> io::Result<()> {
        self.with_socket(|s| match group {
            IpAddr::V4(group) => {
                let interface = match interface {
                    None => Ipv4Addr::UNSPECIFIED,
                    Some(IpAddr::V4(i)) => i,
                    Some(IpAddr::V6(_)) => return Err(family_mismatch()),
                };
                if join {
                    s.join_multicast_v4(&group, &interface)
                } else {
                    s.leave_multicast_v4(&group, &interface)
                }
            }
            IpAddr::V6(group) => {
                match interface {
                    None => {}
                    Some(IpAddr::V6(i)) if i.is_unspecified() => {}
                    Some(_) => return Err(family_mismatch()),
                }
                if join {
                    s.join_multicast_v6(&group, 0)
                } else {
                    s.leave_multicast_v6(&group, 0)
                }
            }
        })
    }

    /// Sends one datagram, or queues it behind others / when the kernel's
    /// buffer is full.
    fn send(&self, data: &[u8], addr: Option<SocketAddr>) -> Result<(), DatagramError> {
        let mut st = self.state.borrow_mut();
        let Some((socket, _)) = st.socket.as_ref() else {
            return Err(DatagramError::Closed);
        };
        if st.queue.is_empty() {
            match send_one(socket, data, addr) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let to = addr.or(st.peer);
                    return Err(DatagramError::from_io(to, data.len(), e));
                }
            }
        }
        if st.queued + data.len() > self.options.send_queue_bytes {
            return Err(DatagramError::BufferFull {
                limit: self.options.send_queue_bytes,
            });
        }
        st.queued += data.len();
        st.queue.push_back((data.to_vec(), addr));
        Ok(())
    }

    /// Sends queued datagrams until the kernel refuses one.
    fn flush(&self) {
        let mut refused = false;
        {
            let mut st = self.state.borrow_mut();
            let State {
                socket,
                queue,
                queued,
                peer,
                ..
            } = &mut *st;
            let Some((socket, _)) = socket.as_ref() else {
                return;
            };
            while let Some((data, addr)) = queue.front() {
                match send_one(socket, data, *addr) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused = true,
                    Err(e) => {
                        let to = addr.or(*peer);
                        let error = DatagramError::from_io(to, data.len(), e);
                        report_warn!("a queued datagram was dropped: {error}");
                    }
                }
                *queued -= data.len();
                queue.pop_front();
            }
        }
        if refused {
            self.with_protocol("connection_refused", |p| p.connection_refused());
        }
    }

    /// Reads datagrams until none is left, the fairness cap, or the socket
    /// closes.
    fn read_all(&self) {
        let Ok(mut buf) = self.buf.try_borrow_mut() else {
            return;
        };
        let limit = self.options.max_datagram_size;
        for _ in 0..READS_PER_EVENT {
            let received = {
                let st = self.state.borrow();
                let Some((socket, _)) = st.socket.as_ref() else {
                    return;
                };
                socket.recv_from(&mut buf)
            };
            match received {
                Ok((n, addr)) if n > limit => {
                    self.with_protocol("datagram_too_large", |p| p.datagram_too_large(addr, limit))
                }
                Ok((n, addr)) => {
                    self.with_protocol("datagram_received", |p| {
                        p.datagram_received(&buf[..n], addr)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.with_protocol("connection_refused", |p| p.connection_refused());
                }
                Err(e) => {
                    // An ICMP error for an earlier datagram (host unreachable,
                    // ...): it concerns that datagram only.
                    log::debug!("recv on UDP {} failed: {e}", self.address);
                }
            }
        }
        // More may be waiting; edge-triggered, no new event will say so.
        let mut st = self.state.borrow_mut();
        if st.read_scheduled {
            return;
        }
        st.read_scheduled = true;
        drop(st);
        let Some(me) = self.me.upgrade() else { return };
        current_reactor().call_soon(Box::new(move || {
            me.state.borrow_mut().read_scheduled = false;
            me.read_all();
        }));
    }

    /// Runs `f` on the protocol unless it is busy (a re-entrant call) or
    /// gone; a panic is logged and the socket goes on.
    fn with_protocol(&self, what: &str, f: impl FnOnce(&mut dyn DatagramProtocol)) {
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            report_warn!("re-entrant call of a datagram protocol's {what} skipped");
            return;
        };
        let Some(protocol) = slot.as_mut() else {
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(protocol.as_mut()))) {
            report_error!(
                "a datagram protocol's {what} panicked: {}",
                Panicked::from_payload(panic).message()
            );
        }
    }
}

fn send_one(socket: &UdpSocket, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
    loop {
        let sent = match addr {
            Some(addr) => socket.send_to(data, addr),
            None => socket.send(data),
        };
        match sent {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

fn family_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the group and the interface are not of the same address family",
    )
}

impl Handler for Inner {
    fn ready(&self, ready: Ready) {
        if ready.writable && self.state.borrow().queued > 0 {
            self.flush();
        }
        if ready.readable || ready.error {
            self.read_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl DatagramProtocol for Quiet {
        fn datagram_received(&mut self, _data: &[u8], _addr: SocketAddr) {}
    }

    /// Loopback never refuses a datagram (the kernel hands it over at once),
    /// so the queue is reached here by making the kernel's refusal look
    /// pending: with a datagram already queued, later ones queue behind it,
    /// up to the bound; then the writable event sends them all, in order.
    #[test]
    fn the_send_queue_keeps_order_holds_its_bound_and_drains() {
        let options = UdpOptions {
            send_queue_bytes: 1000,
            ..UdpOptions::default()
        };
        let port = listen_udp_with("127.0.0.1:0", Quiet, options).unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        {
            let mut st = port.0.state.borrow_mut();
            st.queue.push_back((vec![0; 100], Some(to)));
            st.queued = 100;
        }
        for n in 1..=9u8 {
            port.write_to(&[n; 100], to).unwrap();
        }
        assert_eq!(port.queued_bytes(), 1000);
        assert!(matches!(
            port.write_to(&[10; 1], to),
            Err(DatagramError::BufferFull { limit: 1000 })
        ));
        port.0.ready(Ready {
            writable: true,
            ..Ready::default()
        });
        assert_eq!(port.queued_bytes(), 0);
        let mut buf = [0u8; 200];
        for n in 0..=9u8 {
            let (len, _) = sink.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[n; 100][..]);
        }
        port.stop_listening();
    }
}
