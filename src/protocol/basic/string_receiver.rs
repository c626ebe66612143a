//! The string receivers: a [`StringParser`] driving a user's
//! [`StringHandler`] as a [`Protocol`], one type per framing as in Twisted
//! ([`Int32StringReceiver`], [`Int16StringReceiver`],
//! [`Int8StringReceiver`], [`NetstringReceiver`]).

use std::marker::PhantomData;
use std::ops::ControlFlow;

use super::error::{FramingError, StringTooLong};
use super::line_receiver::Link;
use super::strings::{StringEvent, StringFraming, StringParser, DEFAULT_MAX_STRING_LENGTH};
use crate::defer::Failure;
use crate::protocol::{Protocol, Transport};

/// The code of a connection exchanging framed strings (what a subclass of
/// Twisted's `Int32StringReceiver` or `NetstringReceiver` writes). Wrap it
/// in one of the receivers to get a [`Protocol`].
pub trait StringHandler: 'static {
    /// Twisted's `MAX_LENGTH`: the longest string accepted.
    const MAX_LENGTH: usize = DEFAULT_MAX_STRING_LENGTH;

    /// The connection is up.
    fn connection_made(&mut self, conn: &mut StringConnection<'_>) {
        let _ = conn;
    }

    /// A complete string arrived, framing removed.
    fn string_received(&mut self, string: &[u8], conn: &mut StringConnection<'_>);

    /// A length prefix announced more than [`MAX_LENGTH`](Self::MAX_LENGTH)
    /// (Twisted's `lengthLimitExceeded`). Nothing more is parsed on this
    /// connection. The default closes it with
    /// [`FramingError::LengthLimitExceeded`].
    fn length_limit_exceeded(&mut self, length: u64, conn: &mut StringConnection<'_>) {
        let limit = conn.max_length();
        conn.lose_connection_with(FramingError::LengthLimitExceeded { length, limit });
    }

    /// The connection is closed: a [`FramingError`] when the framing closed
    /// it (a malformed netstring, a length over the limit, the peer closing
    /// in the middle of a string), otherwise the transport's reason.
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }

    /// The transport's write buffer is full: stop writing (see
    /// [`Protocol::pause_producing`]).
    fn pause_producing(&mut self) {}

    /// The write buffer drained.
    fn resume_producing(&mut self) {}
}

/// What a [`StringHandler`] callback can do: send strings, close.
#[derive(Debug)]
pub struct StringConnection<'a> {
    transport: &'a Transport,
    framing: StringFraming,
    max_length: usize,
    closing: bool,
    closed_by: &'a mut Option<Failure>,
}

impl StringConnection<'_> {
    /// Sends `string` with its framing, in one write (Twisted's
    /// `sendString`). A string longer than the length prefix can announce
    /// (255 bytes for `Int8`, 65,535 for `Int16`) is refused and nothing
    /// is sent.
    pub fn send_string(&self, string: &[u8]) -> Result<(), StringTooLong> {
        send_string(self.transport, self.framing, string)
    }

    /// Sends bytes as they are.
    pub fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }

    /// A handle to send strings from outside this callback.
    pub fn sender(&self) -> StringSender {
        StringSender {
            transport: self.transport.clone(),
            framing: self.framing,
        }
    }

    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// The framing on this connection.
    pub fn framing(&self) -> StringFraming {
        self.framing
    }

    /// The longest string accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Closes the connection once written data is sent (Twisted's
    /// `loseConnection`); no string after this one is delivered.
    pub fn lose_connection(&mut self) {
        self.closing = true;
        self.transport.lose_connection();
    }

    /// Closes the connection like [`lose_connection`](Self::lose_connection);
    /// the handler's `connection_lost` gets `reason`.
    pub fn lose_connection_with(&mut self, reason: impl Into<Failure>) {
        if self.closed_by.is_none() {
            *self.closed_by = Some(reason.into());
        }
        self.lose_connection();
    }

    /// Closes the connection now, discarding unsent data (Twisted's
    /// `abortConnection`).
    pub fn abort_connection(&mut self) {
        self.closing = true;
        self.transport.abort_connection();
    }
}

/// Sends framed strings on a connection from anywhere on the reactor
/// thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StringSender {
    transport: Transport,
    framing: StringFraming,
}

impl StringSender {
    /// A sender writing to `transport` with `framing`.
    pub fn new(transport: Transport, framing: StringFraming) -> StringSender {
        StringSender { transport, framing }
    }

    /// Sends `string` with its framing (see [`StringConnection::send_string`]).
    pub fn send_string(&self, string: &[u8]) -> Result<(), StringTooLong> {
        send_string(&self.transport, self.framing, string)
    }

    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

fn send_string(
    transport: &Transport,
    framing: StringFraming,
    string: &[u8],
) -> Result<(), StringTooLong> {
    let max = framing.max_encodable();
    if string.len() > max {
        return Err(StringTooLong {
            length: string.len(),
            max,
        });
    }
    let mut header = Vec::with_capacity(12);
    let trailer = framing.header(string.len(), &mut header);
    transport.write_sequence(&[&header, string, trailer]);
    Ok(())
}

/// Chooses the framing of a [`StringReceiver`]: [`Int32`], [`Int16`],
/// [`Int8`] or [`Netstring`].
pub trait Framing: 'static {
    /// The framing parsed and sent.
    const FRAMING: StringFraming;
}

/// 4-byte big-endian length prefixes.
#[derive(Debug)]
pub enum Int32 {}
/// 2-byte big-endian length prefixes.
#[derive(Debug)]
pub enum Int16 {}
/// 1-byte length prefixes.
#[derive(Debug)]
pub enum Int8 {}
/// Netstrings.
#[derive(Debug)]
pub enum Netstring {}

impl Framing for Int32 {
    const FRAMING: StringFraming = StringFraming::Int32;
}
impl Framing for Int16 {
    const FRAMING: StringFraming = StringFraming::Int16;
}
impl Framing for Int8 {
    const FRAMING: StringFraming = StringFraming::Int8;
}
impl Framing for Netstring {
    const FRAMING: StringFraming = StringFraming::Netstring;
}

/// A [`Protocol`] splitting the input into strings framed as `F` for a
/// [`StringHandler`]. Use it by its Twisted names: [`Int32StringReceiver`],
/// [`Int16StringReceiver`], [`Int8StringReceiver`], [`NetstringReceiver`].
///
/// A malformed netstring closes the connection with
/// [`FramingError::Netstring`]; a length over the limit calls
/// [`StringHandler::length_limit_exceeded`].
#[derive(Debug)]
pub struct StringReceiver<H: StringHandler, F: Framing> {
    handler: H,
    parser: StringParser,
    link: Link,
    framing: PhantomData<F>,
}

/// Twisted's `Int32StringReceiver`.
///
/// ```
/// use twined::protocol::basic::{Int32StringReceiver, StringConnection, StringHandler};
/// use twined::reactor;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, string: &[u8], conn: &mut StringConnection<'_>) {
///         conn.send_string(string).expect("a received string fits its prefix");
///     }
/// }
///
/// let port = reactor::listen_tcp("127.0.0.1:0", |_| Int32StringReceiver::new(Echo)).unwrap();
/// port.stop_listening();
/// ```
pub type Int32StringReceiver<H> = StringReceiver<H, Int32>;
/// Twisted's `Int16StringReceiver`.
pub type Int16StringReceiver<H> = StringReceiver<H, Int16>;
/// Twisted's `Int8StringReceiver`.
pub type Int8StringReceiver<H> = StringReceiver<H, Int8>;
/// Twisted's `NetstringReceiver`.
pub type NetstringReceiver<H> = StringReceiver<H, Netstring>;

impl<H: StringHandler, F: Framing> StringReceiver<H, F> {
    /// A protocol delivering strings to `handler`.
    pub fn new(handler: H) -> StringReceiver<H, F> {
        StringReceiver {
            handler,
            parser: StringParser::new(F::FRAMING, H::MAX_LENGTH),
            link: Link::default(),
            framing: PhantomData,
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The handler, taking it back.
    pub fn into_handler(self) -> H {
        self.handler
    }
}

impl<H: StringHandler, F: Framing> Protocol for StringReceiver<H, F> {
    fn connection_made(&mut self, transport: Transport) {
        self.link.transport = Some(transport);
        let Self {
            handler,
            parser,
            link,
            ..
        } = self;
        let Link {
            transport,
            closed_by,
        } = link;
        if let Some(transport) = transport.as_ref() {
            let mut conn = StringConnection {
                transport,
                framing: F::FRAMING,
                max_length: parser.max_length(),
                closing: false,
                closed_by,
            };
            handler.connection_made(&mut conn);
            if conn.closing {
                parser.stop();
            }
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        let Self {
            handler,
            parser,
            link,
            ..
        } = self;
        let Link {
            transport,
            closed_by,
        } = link;
        let Some(transport) = transport.as_ref() else {
            return;
        };
        let max_length = parser.max_length();
        parser.feed(data, |event| {
            let mut conn = StringConnection {
                transport,
                framing: F::FRAMING,
                max_length,
                closing: false,
                closed_by: &mut *closed_by,
            };
            match event {
                StringEvent::String(s) => handler.string_received(s, &mut conn),
                StringEvent::LengthLimitExceeded { length } => {
                    handler.length_limit_exceeded(length, &mut conn)
                }
                StringEvent::Malformed(e) => {
                    log::info!("closing a connection that sent a malformed netstring: {e}");
                    conn.lose_connection_with(FramingError::Netstring(e));
                }
            }
            if conn.closing {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
    }

    fn connection_lost(&mut self, reason: Failure) {
        let reason = self.link.lost_reason(reason, self.parser.buffered());
        self.handler.connection_lost(reason);
    }

    fn pause_producing(&mut self) {
        self.handler.pause_producing();
    }

    fn resume_producing(&mut self) {
        self.handler.resume_producing();
    }
}
