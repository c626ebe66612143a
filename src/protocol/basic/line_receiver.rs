//! [`LineReceiver`] and [`LineOnlyReceiver`]: a [`LineParser`] driving a
//! user's [`LineHandler`] / [`LineOnlyHandler`] as a [`Protocol`].

use std::rc::Rc;

use super::error::FramingError;
use super::lines::{
    LineControl, LineEvent, LineParser, Mode, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH,
};
use crate::defer::report::report_error;
use crate::defer::Failure;
use crate::protocol::{ConnectionDone, Protocol, Transport};

/// The code of a line-based connection (what a subclass of Twisted's
/// `LineReceiver` writes). Wrap it in a [`LineReceiver`] to get a
/// [`Protocol`].
pub trait LineHandler: 'static {
    /// Twisted's `delimiter`.
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// Twisted's `MAX_LENGTH`: the longest line, delimiter excluded.
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// The connection is up.
    fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
        let _ = conn;
    }

    /// A complete line arrived, delimiter removed.
    fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>);

    /// Bytes arrived in raw mode ([`LineConnection::set_raw_mode`]). Call
    /// [`LineConnection::set_line_mode`] with the unused tail to go back to
    /// lines. The default closes the connection with
    /// [`FramingError::RawDataUnhandled`]: a handler that switches to raw mode
    /// must implement this.
    fn raw_data_received(&mut self, data: &[u8], conn: &mut LineConnection<'_>) {
        report_error!("raw mode set but raw_data_received is not implemented");
        conn.lose_connection_with(FramingError::RawDataUnhandled { length: data.len() });
    }

    /// A line grew past [`MAX_LENGTH`](Self::MAX_LENGTH); `data` is
    /// everything buffered from its first byte on (it is dropped). The
    /// default closes the connection with [`FramingError::LineTooLong`].
    fn line_length_exceeded(&mut self, data: &[u8], conn: &mut LineConnection<'_>) {
        let _ = data;
        let limit = conn.max_length();
        conn.lose_connection_with(FramingError::LineTooLong { limit });
    }

    /// The connection is closed: a [`FramingError`] when the framing closed
    /// it (or the peer closed in the middle of a line), otherwise the
    /// transport's reason.
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }

    /// The transport's write buffer is full: stop writing (see
    /// [`Protocol::pause_producing`]).
    fn pause_producing(&mut self) {}

    /// The write buffer drained.
    fn resume_producing(&mut self) {}
}

/// A line-only handler (Twisted's `LineOnlyReceiver`): lines and nothing
/// else, no raw mode. Wrap it in a [`LineOnlyReceiver`].
pub trait LineOnlyHandler: 'static {
    /// Twisted's `delimiter`.
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;
    /// Twisted's `MAX_LENGTH`: the longest line, delimiter excluded.
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// The connection is up.
    fn connection_made(&mut self, conn: &mut LineOnlyConnection<'_>) {
        let _ = conn;
    }

    /// A complete line arrived, delimiter removed.
    fn line_received(&mut self, line: &[u8], conn: &mut LineOnlyConnection<'_>);

    /// A line grew past [`MAX_LENGTH`](Self::MAX_LENGTH). The default closes
    /// the connection with [`FramingError::LineTooLong`].
    fn line_length_exceeded(&mut self, data: &[u8], conn: &mut LineOnlyConnection<'_>) {
        let _ = data;
        let limit = conn.max_length();
        conn.lose_connection_with(FramingError::LineTooLong { limit });
    }

    /// The connection is closed (see [`LineHandler::connection_lost`]).
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }

    /// The transport's write buffer is full.
    fn pause_producing(&mut self) {}

    /// The write buffer drained.
    fn resume_producing(&mut self) {}
}

/// What a [`LineHandler`] callback can do: send lines, switch modes, close.
/// Mode changes apply from the very next byte received, even within the
/// chunk being parsed.
#[derive(Debug)]
pub struct LineConnection<'a> {
    transport: &'a Transport,
    control: LineControl<'a>,
    closed_by: &'a mut Option<Failure>,
}

impl<'a> LineConnection<'a> {
    fn reborrow(&mut self) -> LineConnection<'_> {
        LineConnection {
            transport: self.transport,
            control: self.control.reborrow(),
            closed_by: &mut *self.closed_by,
        }
    }

    /// Sends `line` followed by the delimiter, in one write (Twisted's
    /// `sendLine`). The line is not checked for delimiters.
    pub fn send_line(&self, line: &[u8]) {
        self.transport
            .write_sequence(&[line, self.control.delimiter()]);
    }

    /// Sends bytes as they are.
    pub fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }

    /// A handle to send lines from outside this callback (to another
    /// connection's peer, from a timer...).
    pub fn sender(&self) -> LineSender {
        LineSender {
            transport: self.transport.clone(),
            delimiter: Rc::from(self.control.delimiter()),
        }
    }

    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// Closes the connection once written data is sent (Twisted's
    /// `loseConnection`); no line after this one is delivered. The handler's
    /// `connection_lost` gets [`ConnectionDone`].
    pub fn lose_connection(&mut self) {
        self.control.stop();
        self.transport.lose_connection();
    }

    /// Closes the connection like [`lose_connection`](Self::lose_connection);
    /// the handler's `connection_lost` gets `reason` instead of
    /// [`ConnectionDone`].
    pub fn lose_connection_with(&mut self, reason: impl Into<Failure>) {
        if self.closed_by.is_none() {
            *self.closed_by = Some(reason.into());
        }
        self.lose_connection();
    }

    /// Closes the connection now, discarding unsent data (Twisted's
    /// `abortConnection`).
    pub fn abort_connection(&mut self) {
        self.control.stop();
        self.transport.abort_connection();
    }

    /// Delivers the following bytes to
    /// [`raw_data_received`](LineHandler::raw_data_received) (Twisted's
    /// `setRawMode`).
    pub fn set_raw_mode(&mut self) {
        self.control.set_raw_mode();
    }

    /// Splits the following bytes into lines again, `extra` first (Twisted's
    /// `setLineMode(extra)`); see [`LineControl::set_line_mode`].
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.control.set_line_mode(extra);
    }

    /// Whether lines or raw data are delivered.
    pub fn mode(&self) -> Mode {
        self.control.mode()
    }

    /// Drops and returns every byte received after the current line
    /// (Twisted's `clearLineBuffer`).
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        self.control.clear_line_buffer()
    }

    /// The delimiter lines are split at and sent with.
    pub fn delimiter(&self) -> &[u8] {
        self.control.delimiter()
    }

    /// Changes the delimiter, from the next byte on.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn set_delimiter(&mut self, delimiter: &[u8]) {
        self.control.set_delimiter(delimiter);
    }

    /// The longest line accepted.
    pub fn max_length(&self) -> usize {
        self.control.max_length()
    }

    /// Changes the longest line accepted, from the next line on.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.control.set_max_length(max_length);
    }
}

/// What a [`LineOnlyHandler`] callback can do: send lines, close.
#[derive(Debug)]
pub struct LineOnlyConnection<'a> {
    inner: LineConnection<'a>,
}

impl LineOnlyConnection<'_> {
    /// Sends `line` followed by the delimiter (Twisted's `sendLine`).
    pub fn send_line(&self, line: &[u8]) {
        self.inner.send_line(line);
    }

    /// Sends bytes as they are.
    pub fn write(&self, data: &[u8]) {
        self.inner.write(data);
    }

    /// A handle to send lines from outside this callback.
    pub fn sender(&self) -> LineSender {
        self.inner.sender()
    }

    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        self.inner.transport()
    }

    /// See [`LineConnection::lose_connection`].
    pub fn lose_connection(&mut self) {
        self.inner.lose_connection();
    }

    /// See [`LineConnection::lose_connection_with`].
    pub fn lose_connection_with(&mut self, reason: impl Into<Failure>) {
        self.inner.lose_connection_with(reason);
    }

    /// See [`LineConnection::abort_connection`].
    pub fn abort_connection(&mut self) {
        self.inner.abort_connection();
    }

    /// The delimiter lines are split at and sent with.
    pub fn delimiter(&self) -> &[u8] {
        self.inner.delimiter()
    }

    /// The longest line accepted.
    pub fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Changes the longest line accepted, from the next line on.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.inner.set_max_length(max_length);
    }
}

/// Sends lines on a connection from anywhere on the reactor thread: a
/// [`Transport`] and the delimiter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LineSender {
    transport: Transport,
    delimiter: Rc<[u8]>,
}

impl LineSender {
    /// A sender writing to `transport` with `delimiter`.
    pub fn new(transport: Transport, delimiter: &[u8]) -> LineSender {
        LineSender {
            transport,
            delimiter: Rc::from(delimiter),
        }
    }

    /// Sends `line` followed by the delimiter, in one write.
    pub fn send_line(&self, line: &[u8]) {
        self.transport.write_sequence(&[line, &self.delimiter]);
    }

    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

/// The state every framed connection keeps besides its parser.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) transport: Option<Transport>,
    /// The reason given to `lose_connection_with`.
    pub(crate) closed_by: Option<Failure>,
}

impl Link {
    /// The reason for the handler's `connection_lost`: the framing's own, a
    /// [`FramingError::Truncated`] for a clean close in mid-frame, or the
    /// transport's.
    pub(crate) fn lost_reason(&mut self, reason: Failure, buffered: usize) -> Failure {
        self.transport = None;
        if let Some(own) = self.closed_by.take() {
            own
        } else if buffered > 0 && reason.check::<ConnectionDone>() {
            Failure::new(FramingError::Truncated { buffered })
        } else {
            reason
        }
    }
}

/// Twisted's `LineReceiver`: a [`Protocol`] splitting the input into lines
/// for a [`LineHandler`], with a raw mode for binary payloads in between.
///
/// ```
/// use twined::protocol::basic::{LineConnection, LineHandler, LineReceiver};
/// use twined::reactor;
///
/// struct Echo;
/// impl LineHandler for Echo {
///     fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>) {
///         conn.send_line(line);
///     }
/// }
///
/// let port = reactor::listen_tcp("127.0.0.1:0", |_| LineReceiver::new(Echo)).unwrap();
/// port.stop_listening();
/// ```
#[derive(Debug)]
pub struct LineReceiver<H: LineHandler> {
    handler: H,
    parser: LineParser,
    link: Link,
}

impl<H: LineHandler> LineReceiver<H> {
    /// A protocol delivering lines to `handler`.
    pub fn new(handler: H) -> LineReceiver<H> {
        LineReceiver {
            handler,
            parser: LineParser::new(H::DELIMITER, H::MAX_LENGTH),
            link: Link::default(),
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

/// Calls `f` with a [`LineConnection`] over `parser` outside any input event.
fn outside<R>(
    parser: &mut LineParser,
    link: &mut Link,
    f: impl FnOnce(&mut LineConnection<'_>) -> R,
) -> Option<R> {
    let Link {
        transport,
        closed_by,
    } = link;
    let transport = transport.as_ref()?;
    let mut conn = LineConnection {
        transport,
        control: parser.control(),
        closed_by,
    };
    Some(f(&mut conn))
}

/// Feeds `data` to `parser`, handing each event to `on_event` with a
/// [`LineConnection`].
fn drive(
    parser: &mut LineParser,
    link: &mut Link,
    data: &[u8],
    mut on_event: impl FnMut(LineEvent<'_>, &mut LineConnection<'_>),
) {
    let Link {
        transport,
        closed_by,
    } = link;
    let Some(transport) = transport.as_ref() else {
        return;
    };
    parser.feed(data, |event, control| {
        let control = control.reborrow();
        let mut conn = LineConnection {
            transport,
            control,
            closed_by,
        };
        on_event(event, &mut conn);
    });
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: Transport) {
        self.link.transport = Some(transport);
        let Self {
            handler,
            parser,
            link,
        } = self;
        outside(parser, link, |conn| handler.connection_made(conn));
        // `set_line_mode(extra)` from connection_made: parse it now.
        drive(parser, link, b"", |event, conn| {
            dispatch(handler, event, conn)
        });
    }

    fn data_received(&mut self, data: &[u8]) {
        let Self {
            handler,
            parser,
            link,
        } = self;
        drive(parser, link, data, |event, conn| {
            dispatch(handler, event, conn)
        });
    }

    fn connection_lost(&mut self, reason: Failure) {
        let reason = self.link.lost_reason(reason, self.parser.buffered().len());
        self.handler.connection_lost(reason);
    }

    fn pause_producing(&mut self) {
        self.handler.pause_producing();
    }

    fn resume_producing(&mut self) {
        self.handler.resume_producing();
    }
}

fn dispatch<H: LineHandler>(handler: &mut H, event: LineEvent<'_>, conn: &mut LineConnection<'_>) {
    match event {
        LineEvent::Line(line) => handler.line_received(line, conn),
        LineEvent::Raw(data) => handler.raw_data_received(data, conn),
        LineEvent::TooLong(data) => handler.line_length_exceeded(data, conn),
    }
}

/// Twisted's `LineOnlyReceiver`: a [`Protocol`] splitting the input into
/// lines for a [`LineOnlyHandler`]. The same parser as [`LineReceiver`],
/// without raw mode.
#[derive(Debug)]
pub struct LineOnlyReceiver<H: LineOnlyHandler> {
    handler: H,
    parser: LineParser,
    link: Link,
}

impl<H: LineOnlyHandler> LineOnlyReceiver<H> {
    /// A protocol delivering lines to `handler`.
    pub fn new(handler: H) -> LineOnlyReceiver<H> {
        LineOnlyReceiver {
            handler,
            parser: LineParser::new(H::DELIMITER, H::MAX_LENGTH),
            link: Link::default(),
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

impl<H: LineOnlyHandler> Protocol for LineOnlyReceiver<H> {
    fn connection_made(&mut self, transport: Transport) {
        self.link.transport = Some(transport);
        let Self {
            handler,
            parser,
            link,
        } = self;
        outside(parser, link, |conn| {
            handler.connection_made(&mut LineOnlyConnection {
                inner: conn.reborrow(),
            })
        });
    }

    fn data_received(&mut self, data: &[u8]) {
        let Self {
            handler,
            parser,
            link,
        } = self;
        drive(parser, link, data, |event, conn| {
            let conn = &mut LineOnlyConnection {
                inner: conn.reborrow(),
            };
            match event {
                LineEvent::Line(line) => handler.line_received(line, conn),
                LineEvent::TooLong(data) => handler.line_length_exceeded(data, conn),
                // Nothing here can set raw mode.
                LineEvent::Raw(_) => {}
            }
        });
    }

    fn connection_lost(&mut self, reason: Failure) {
        let reason = self.link.lost_reason(reason, self.parser.buffered().len());
        self.handler.connection_lost(reason);
    }

    fn pause_producing(&mut self) {
        self.handler.pause_producing();
    }

    fn resume_producing(&mut self) {
        self.handler.resume_producing();
    }
}
