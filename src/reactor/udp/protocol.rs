//! The code of a UDP socket (Twisted's `DatagramProtocol`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use super::port::DatagramTransport;
use crate::defer::report::report_warn;

/// The code of one UDP socket (Twisted's `DatagramProtocol`).
///
/// Every method runs on the reactor thread and may call anything on the
/// transport (write, connect, stop listening) or the reactor. A panic in a
/// method is logged; the socket keeps listening (Twisted logs an exception in
/// `datagramReceived` and goes on).
pub trait DatagramProtocol: 'static {
    /// The socket is listening; keep `transport` to send with it (Twisted's
    /// `startProtocol`, after `makeConnection`).
    fn start_protocol(&mut self, transport: DatagramTransport) {
        let _ = transport;
    }

    /// One datagram arrived from `addr`, whole.
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr);

    /// The connected peer's port is closed: an ICMP "port unreachable" came
    /// back for something sent to it (Twisted's `connectionRefused`). Only a
    /// [connected](DatagramTransport::connect) socket hears of it.
    fn connection_refused(&mut self) {}

    /// A datagram from `addr` was longer than `limit`
    /// ([`UdpOptions::max_datagram_size`](super::UdpOptions::max_datagram_size))
    /// and was dropped rather than delivered cut short. The default logs a
    /// warning.
    fn datagram_too_large(&mut self, addr: SocketAddr, limit: usize) {
        report_warn!("dropped a datagram from {addr} longer than {limit} bytes");
    }

    /// The socket closed (Twisted's `stopProtocol`); called once, after which
    /// the protocol is dropped.
    fn stop_protocol(&mut self) {}
}

impl DatagramProtocol for Box<dyn DatagramProtocol> {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        (**self).start_protocol(transport)
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        (**self).datagram_received(data, addr)
    }
    fn connection_refused(&mut self) {
        (**self).connection_refused()
    }
    fn datagram_too_large(&mut self, addr: SocketAddr, limit: usize) {
        (**self).datagram_too_large(addr, limit)
    }
    fn stop_protocol(&mut self) {
        (**self).stop_protocol()
    }
}

/// A protocol shared with other code: keep a clone of the `Rc` to read its
/// state from outside its callbacks.
impl<P: DatagramProtocol> DatagramProtocol for Rc<RefCell<P>> {
    fn start_protocol(&mut self, transport: DatagramTransport) {
        self.borrow_mut().start_protocol(transport)
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        self.borrow_mut().datagram_received(data, addr)
    }
    fn connection_refused(&mut self) {
        self.borrow_mut().connection_refused()
    }
    fn datagram_too_large(&mut self, addr: SocketAddr, limit: usize) {
        self.borrow_mut().datagram_too_large(addr, limit)
    }
    fn stop_protocol(&mut self) {
        self.borrow_mut().stop_protocol()
    }
}
