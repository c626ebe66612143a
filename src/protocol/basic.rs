//! Line, length-prefixed and netstring framing (Twisted's
//! `twisted.protocols.basic`).
//!
//! Most protocols of the Twisted era do not speak raw bytes: a chat server
//! or a control channel speaks lines, an RPC speaks length-prefixed strings.
//! Here a connection's code implements a small handler trait,
//! [`LineHandler`] (`line_received`) or [`StringHandler`]
//! (`string_received`), and a receiver named as in Twisted turns it into a
//! [`Protocol`](crate::protocol::Protocol): [`LineReceiver`],
//! [`LineOnlyReceiver`], [`Int32StringReceiver`], [`Int16StringReceiver`],
//! [`Int8StringReceiver`], [`NetstringReceiver`].
//!
//! Each callback gets a connection handle ([`LineConnection`],
//! [`StringConnection`]) to send frames, switch modes and close. Framing is
//! done by sans-IO push parsers, [`LineParser`] and [`StringParser`] (bytes
//! in, frames out), which the receivers drive and which can be used on
//! their own: input split anywhere gives the same frames.
//!
//! Every bound has a default and a hook, as in Twisted: a line longer than
//! `MAX_LENGTH` (16,384 bytes) calls
//! [`line_length_exceeded`](LineHandler::line_length_exceeded), a length
//! prefix over `MAX_LENGTH` (99,999 bytes) calls
//! [`length_limit_exceeded`](StringHandler::length_limit_exceeded); both
//! close the connection by default. A malformed netstring closes it. The
//! handler's `connection_lost` then gets the typed reason, a
//! [`FramingError`], rather than a plain "connection done"; so does a peer
//! that closes in the middle of a frame ([`FramingError::Truncated`]).
//! Nothing buffered exceeds the limit plus one read.
//!
//! | Twisted | twined |
//! |---|---|
//! | `class Chat(LineReceiver)` | `impl LineHandler for Chat`, served as [`LineReceiver::new(Chat)`](LineReceiver::new) |
//! | `lineReceived(line)` | [`line_received(&mut self, line: &[u8], conn: &mut LineConnection)`](LineHandler::line_received) |
//! | `rawDataReceived(data)` | [`raw_data_received(data, conn)`](LineHandler::raw_data_received) |
//! | `delimiter = b'\n'`, `MAX_LENGTH = 1024` (class attributes) | `const DELIMITER: &'static [u8] = b"\n";`, `const MAX_LENGTH: usize = 1024;` in the impl; per connection [`set_delimiter`](LineConnection::set_delimiter), [`set_max_length`](LineConnection::set_max_length) |
//! | `self.sendLine(line)` | [`conn.send_line(line)`](LineConnection::send_line); from elsewhere a [`LineSender`] ([`conn.sender()`](LineConnection::sender)) |
//! | `self.setRawMode()` / `self.setLineMode(extra)` | [`conn.set_raw_mode()`](LineConnection::set_raw_mode) / [`conn.set_line_mode(extra)`](LineConnection::set_line_mode): from the very next byte |
//! | `self.clearLineBuffer()` | [`conn.clear_line_buffer()`](LineConnection::clear_line_buffer) |
//! | `lineLengthExceeded(line)` | [`line_length_exceeded(data, conn)`](LineHandler::line_length_exceeded); default closes with [`FramingError::LineTooLong`] |
//! | `class P(LineOnlyReceiver)` | `impl LineOnlyHandler for P`, served as [`LineOnlyReceiver::new(P)`](LineOnlyReceiver::new) |
//! | `class P(Int32StringReceiver)` (`Int16…`, `Int8…`, `NetstringReceiver`) | `impl StringHandler for P`, served as [`Int32StringReceiver::new(P)`](StringReceiver::new) (`Int16StringReceiver`, `Int8StringReceiver`, `NetstringReceiver`) |
//! | `stringReceived(s)` / `self.sendString(s)` | [`string_received(s, conn)`](StringHandler::string_received) / [`conn.send_string(s)`](StringConnection::send_string) (`Err(`[`StringTooLong`]`)` for Twisted's `StringTooLongError`) |
//! | `lengthLimitExceeded(length)` | [`length_limit_exceeded(length, conn)`](StringHandler::length_limit_exceeded); default closes with [`FramingError::LengthLimitExceeded`] |
//! | `NetstringParseError` (the connection is dropped) | [`FramingError::Netstring`]`(`[`NetstringError`]`)` given to `connection_lost` |
//! | `self.transport.loseConnection()` in a callback | [`conn.lose_connection()`](LineConnection::lose_connection) (no further line is delivered), or [`lose_connection_with(reason)`](LineConnection::lose_connection_with) |
//!
//! Not ported: `pauseProducing` on the receiver (use the transport's
//! [`pause_producing`](crate::protocol::Transport::pause_producing)), the
//! `recvd` buffer attribute, `StatefulStringProtocol`, `FileSender`.
//!
//! # A line echo server and its client
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use twined::defer::Failure;
//! use twined::protocol::basic::{LineConnection, LineHandler, LineReceiver};
//! use twined::reactor;
//!
//! /// Sends back every line.
//! struct Echo;
//! impl LineHandler for Echo {
//!     fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>) {
//!         conn.send_line(line);
//!     }
//! }
//!
//! /// Sends two lines, collects the answers, hangs up after the second.
//! struct Client(Rc<RefCell<Vec<String>>>);
//! impl LineHandler for Client {
//!     fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
//!         conn.send_line(b"hello");
//!         conn.send_line(b"world");
//!     }
//!     fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>) {
//!         let mut got = self.0.borrow_mut();
//!         got.push(String::from_utf8_lossy(line).into_owned());
//!         if got.len() == 2 {
//!             conn.lose_connection();
//!         }
//!     }
//!     fn connection_lost(&mut self, _reason: Failure) {
//!         reactor::stop().unwrap();
//!     }
//! }
//!
//! let port = reactor::listen_tcp("127.0.0.1:0", |_| LineReceiver::new(Echo)).unwrap();
//! let got = Rc::new(RefCell::new(Vec::new()));
//! let client = LineReceiver::new(Client(got.clone()));
//! let _connecting = reactor::connect_protocol("127.0.0.1", port.address().port(), client);
//! reactor::run().unwrap();
//! assert_eq!(*got.borrow(), ["hello", "world"]);
//! ```

mod error;
mod line_receiver;
mod lines;
mod string_receiver;
mod strings;

pub use error::{FramingError, NetstringError, StringTooLong};
pub use line_receiver::{
    LineConnection, LineHandler, LineOnlyConnection, LineOnlyHandler, LineOnlyReceiver,
    LineReceiver, LineSender,
};
pub use lines::{
    LineControl, LineEvent, LineParser, Mode, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH,
};
pub use string_receiver::{
    Framing, Int16, Int16StringReceiver, Int32, Int32StringReceiver, Int8, Int8StringReceiver,
    Netstring, NetstringReceiver, StringConnection, StringHandler, StringReceiver, StringSender,
};
pub use strings::{StringEvent, StringFraming, StringParser, DEFAULT_MAX_STRING_LENGTH};
