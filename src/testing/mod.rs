//! Test doubles for protocols and factories (Twisted's
//! `twisted.internet.testing` and `twisted.test.iosim`): test a protocol,
//! its timeouts and its retries with no socket and no sleep.
//!
//! | Twisted | twined |
//! |---|---|
//! | `StringTransport()`, `.value()`, `.clear()`, `.disconnecting`, `.producerState` | [`StringTransport`]: [`value`](StringTransport::value), [`take`](StringTransport::take), [`clear`](StringTransport::clear), [`disconnecting`](StringTransport::disconnecting), [`producer_state`](StringTransport::producer_state) |
//! | `proto.makeConnection(tr)`, `proto.dataReceived(b)` | [`StringTransport::make_connection`], [`StringTransport::receive`] |
//! | `StringTransportWithDisconnection` | built in: `lose_connection` calls the protocol's `connection_lost` |
//! | `MemoryReactor`, `MemoryReactorClock`, `.tcpServers`, `.tcpClients` | [`MemoryReactor`], [`tcp_servers`](MemoryReactor::tcp_servers), [`tcp_clients`](MemoryReactor::tcp_clients) |
//! | `iosim.connect(...)` / `IOPump.pump()` / `.flush()`, `loopback.loopbackAsync` | [`loopback::connect`], [`IOPump::pump`], [`IOPump::flush`], [`IOPump::when_done`] |
//! | `task.Clock` | [`task::Clock`](crate::task::Clock) (also inside [`MemoryReactor`]) |
//!
//! A protocol that takes a [`ReactorTime`](crate::time::ReactorTime) for its
//! timers (as [`protocol::policies::Timeout`](crate::protocol::policies::Timeout)
//! does) runs on a [`StringTransport`] with a `Clock`: advance the clock and
//! check what it wrote and whether it closed.

pub mod loopback;
mod memory;
mod string_transport;

pub use loopback::{IOPump, StillTalking};
pub use memory::{ClientState, MemoryReactor, TcpClient, TcpServer};
pub use string_transport::{ProducerState, StringTransport, DEFAULT_HOST, DEFAULT_PEER};
