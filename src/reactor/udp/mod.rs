//! UDP for the reactor: a bound socket whose datagrams go to a
//! [`DatagramProtocol`] (Twisted's `reactor.listenUDP` and
//! `twisted.internet.udp.Port`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `reactor.listenUDP(port, proto, interface=, maxPacketSize=)` | [`listen_udp(addr, proto)`](listen_udp) / [`listen_udp_with(addr, proto, UdpOptions)`](listen_udp_with) -> [`DatagramTransport`] |
//! | `DatagramProtocol.startProtocol/datagramReceived/connectionRefused/stopProtocol` | [`DatagramProtocol`] `{ start_protocol, datagram_received, connection_refused, stop_protocol }` |
//! | `transport.write(data, addr)` / `write(data)` once connected | [`DatagramTransport::write_to`] / [`DatagramTransport::write`] |
//! | `transport.connect(host, port)` | [`DatagramTransport::connect`] |
//! | `joinGroup` / `leaveGroup` / `setLoopbackMode` / `setTTL` / `setBroadcastAllowed` | [`join_group`](DatagramTransport::join_group) / [`leave_group`](DatagramTransport::leave_group) / [`set_loopback_mode`](DatagramTransport::set_loopback_mode) / [`set_ttl`](DatagramTransport::set_ttl) / [`set_broadcast_allowed`](DatagramTransport::set_broadcast_allowed) |
//! | `port.stopListening()` | [`DatagramTransport::stop_listening`] |
//! | `MessageLengthError`, `ConnectionRefusedError` | [`DatagramError::TooLarge`], [`DatagramError::Refused`] |
//!
//! Differences from Twisted, all deliberate: a datagram the kernel will not
//! take now (a full send buffer) is queued, up to
//! [`UdpOptions::send_queue_bytes`], and sent when the socket is writable;
//! past that bound `write_to` fails with [`DatagramError::BufferFull`]
//! instead of raising `EAGAIN`. A received datagram longer than
//! [`UdpOptions::max_datagram_size`] is not delivered cut short (Twisted
//! truncates it silently): the protocol's
//! [`datagram_too_large`](DatagramProtocol::datagram_too_large) hears of it.

mod error;
mod port;
mod protocol;

pub use error::DatagramError;
pub use port::{listen_udp, listen_udp_with, DatagramTransport, UdpOptions};
pub use protocol::DatagramProtocol;
