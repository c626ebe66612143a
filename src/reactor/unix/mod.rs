//! Unix-domain stream sockets for the reactor (Twisted's `listenUNIX`,
//! `connectUNIX` and `twisted.internet.unix`): the same
//! [`Protocol`](crate::protocol::Protocol) and
//! [`Factory`](crate::protocol::Factory) as TCP, over a socket file.
//!
//! | Twisted | twined |
//! |---|---|
//! | `reactor.listenUNIX(path, factory, mode=0o666)` | [`listen_unix(path, factory)`](listen_unix) / [`listen_unix_with(path, factory, UnixListenOptions)`](listen_unix_with) -> [`UnixPort`] |
//! | `reactor.connectUNIX(path, factory)` | [`connect_unix(path, factory)`](connect_unix) -> `Deferred<Transport>` |
//! | `port.stopListening()` (removes the socket file) | [`UnixPort::stop_listening`] |
//! | `transport.getPeerCertificate()`-style peer identity: `SO_PEERCRED` | [`Transport::peer_credentials`](crate::protocol::Transport::peer_credentials) -> [`PeerCredentials`] |
//!
//! A Unix peer has no IP address: a factory's `build_protocol` gets the
//! unspecified address `0.0.0.0:0`, and `Transport::peer`/`host` are `None`.
//! Who is on the other end is [`PeerCredentials`] (Linux gives the peer's
//! pid, uid and gid).
//!
//! A socket file left behind by a process that died is reported as
//! [`UnixError::Stale`] rather than as a bare "address in use", and
//! [`UnixListenOptions::remove_stale`] takes it over (Twisted's
//! `listenUNIX(wantPID=True)` lock file does the same job).

mod conn;
mod error;
mod listen;

pub use conn::{connect_unix, PeerCredentials};
pub use error::UnixError;
pub use listen::{listen_unix, listen_unix_with, UnixListenOptions, UnixPort};
