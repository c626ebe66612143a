//! Two protocols connected in memory (Twisted's `iosim.connect` /
//! `IOPump` and `loopback.loopbackAsync`): what one writes the other
//! receives when the pump runs, and a close on one side reaches the other.

use std::fmt;
use std::io;

use super::string_transport::StringTransport;
use crate::defer::{gather_results, Deferred, Failure};
use crate::protocol::{ConnectionDone, ConnectionLost, Protocol};

/// Rounds [`IOPump::flush`] runs at most before it reports that the two
/// protocols keep talking.
pub const MAX_FLUSH_ROUNDS: usize = 10_000;

/// Connects `server` and `client` through two [`StringTransport`]s
/// (`connection_made` runs for the server, then the client) and returns the
/// pump that moves bytes between them.
///
/// ```
/// use twined::protocol::{Protocol, Transport};
/// use twined::testing::loopback;
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: Transport) { self.0 = Some(t) }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 { t.write(data) }
///     }
/// }
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: Transport) { t.write(b"ping") }
///     fn data_received(&mut self, data: &[u8]) { assert_eq!(data, b"ping") }
/// }
///
/// let pump = loopback::connect(Echo::default(), Hello);
/// pump.flush().unwrap();
/// pump.client().transport().lose_connection();
/// pump.flush().unwrap();
/// assert!(pump.when_done().called());
/// ```
pub fn connect(server: impl Protocol, client: impl Protocol) -> IOPump {
    let server_side = StringTransport::new();
    // Each side's peer is the other's host.
    let client_side =
        StringTransport::new().with_addresses(super::DEFAULT_PEER, super::DEFAULT_HOST);
    server_side.make_connection(server);
    client_side.make_connection(client);
    IOPump {
        server: server_side,
        client: client_side,
    }
}

/// Moves bytes between two in-memory connections (Twisted's `IOPump`).
#[derive(Clone)]
pub struct IOPump {
    server: StringTransport,
    client: StringTransport,
}

/// Two protocols kept writing to each other for [`MAX_FLUSH_ROUNDS`]
/// rounds: [`IOPump::flush`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StillTalking {
    /// The rounds run.
    pub rounds: usize,
}

impl fmt::Display for StillTalking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the two protocols were still exchanging bytes after {} pump rounds",
            self.rounds
        )
    }
}

impl std::error::Error for StillTalking {}

impl IOPump {
    /// The server's side of the connection.
    pub fn server(&self) -> &StringTransport {
        &self.server
    }

    /// The client's side of the connection.
    pub fn client(&self) -> &StringTransport {
        &self.client
    }

    /// One round: what each side wrote is delivered to the other, then a
    /// side that closed closes the other (a clean close as
    /// [`ConnectionDone`], an abort as [`ConnectionLost`]). Returns whether
    /// anything moved.
    pub fn pump(&self) -> bool {
        let mut moved = false;
        for (from, to) in [(&self.client, &self.server), (&self.server, &self.client)] {
            let data = from.take();
            if !data.is_empty() && !to.is_closed() {
                to.receive(&data);
                moved = true;
            }
        }
        for (from, to) in [(&self.client, &self.server), (&self.server, &self.client)] {
            if from.is_closed() && !to.is_closed() && from.value().is_empty() {
                let reason = if from.aborted() {
                    Failure::new(ConnectionLost {
                        peer: to.transport().peer(),
                        source: io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "the peer aborted the connection",
                        ),
                    })
                } else {
                    Failure::new(ConnectionDone)
                };
                to.close(reason);
                moved = true;
            }
        }
        moved
    }

    /// Pumps until nothing moves; `Err` when the protocols still exchange
    /// bytes after [`MAX_FLUSH_ROUNDS`] rounds.
    pub fn flush(&self) -> Result<usize, StillTalking> {
        for rounds in 0..MAX_FLUSH_ROUNDS {
            if !self.pump() {
                return Ok(rounds);
            }
        }
        Err(StillTalking {
            rounds: MAX_FLUSH_ROUNDS,
        })
    }

    /// A Deferred that fires once both sides are closed (what Twisted's
    /// `loopbackAsync` returns).
    pub fn when_done(&self) -> Deferred<()> {
        gather_results(vec![
            self.server.transport().when_closed(),
            self.client.transport().when_closed(),
        ])
        .add_callback(|_reasons: Vec<Failure>| ())
    }
}

impl fmt::Debug for IOPump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IOPump")
            .field("server", &self.server)
            .field("client", &self.client)
            .finish()
    }
}
