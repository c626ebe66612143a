//! Endpoints from strings (Twisted's `twisted.internet.endpoints`): one
//! description in a config file or on a command line says where to listen
//! or connect, over TCP, a Unix socket, TLS or UDP, and the code that uses
//! it does not change.
//!
//! | Twisted | twined |
//! |---|---|
//! | `serverFromString(reactor, "tcp:8080:interface=127.0.0.1")` | [`server_from_string("tcp:8080:interface=127.0.0.1")`](server_from_string) -> [`ServerEndpoint`] |
//! | `clientFromString(reactor, "tcp:host=example.com:port=80")` | [`client_from_string("tcp:host=example.com:port=80")`](client_from_string) -> [`ClientEndpoint`] |
//! | `endpoint.listen(factory)` -> `Deferred(IListeningPort)` | [`ServerEndpoint::listen(factory)`](ServerEndpoint::listen) -> `Deferred<`[`ListeningPort`]`>` |
//! | `endpoint.connect(factory)` -> `Deferred(protocol)` | [`ClientEndpoint::connect(factory)`](ClientEndpoint::connect) -> `Deferred<Transport>` (the protocol is owned by its connection; the transport is the handle on it) |
//! | `connectProtocol(endpoint, proto)` | [`ClientEndpoint::connect_protocol(proto)`](ClientEndpoint::connect_protocol) |
//! | `ValueError` from a bad description | [`EndpointError`], naming the field |
//!
//! The syntax is Twisted's: fields separated by `:`, positional fields
//! first, then `key=value` ones, `\` escaping the next character
//! (`unix:/tmp/a\:b` is the path `/tmp/a:b`). Server types: `tcp`, `ssl`,
//! `unix`, and twined's own `udp` (bound with
//! [`ServerEndpoint::listen_udp`]). Client types: `tcp`, `ssl`, `tls`,
//! `unix`. The typed result of parsing is a [`ServerSpec`] or
//! [`ClientSpec`], which can also be built directly.
//!
//! Stricter than Twisted, on purpose: a key given twice, a key the type does
//! not take, or a field twined cannot honour (`bindAddress`, `checkPID=1`)
//! is an error instead of being ignored.
//!
//! ```
//! use std::net::SocketAddr;
//! use twined::endpoints::{client_from_string, server_from_string};
//! use twined::protocol::{Protocol, Transport};
//! use twined::reactor;
//!
//! #[derive(Default)]
//! struct Echo(Option<Transport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: Transport) { self.0 = Some(t); }
//!     fn data_received(&mut self, data: &[u8]) {
//!         if let Some(t) = &self.0 { t.write(data); }
//!     }
//! }
//!
//! struct Hello;
//! impl Protocol for Hello {
//!     fn data_received(&mut self, data: &[u8]) {
//!         assert_eq!(data, b"hello");
//!         reactor::stop().unwrap();
//!     }
//! }
//!
//! let server = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
//! server.listen(|_: SocketAddr| Echo::default()).add_callback(|port| {
//!     let port_number = port.tcp_address().unwrap().port();
//!     let client = client_from_string(&format!("tcp:127.0.0.1:{port_number}")).unwrap();
//!     client
//!         .connect_protocol(Hello)
//!         .add_callback(|transport| transport.write(b"hello"));
//! });
//! reactor::run().unwrap();
//! ```

mod endpoint;
mod error;
mod parse;
mod port;
mod spec;
mod tls;

pub use endpoint::{client_from_string, server_from_string, ClientEndpoint, ServerEndpoint};
pub use error::EndpointError;
pub use port::ListeningPort;
pub use spec::{ClientSpec, ServerSpec};
