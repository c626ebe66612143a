//! One connection to a Redis server: the [`Protocol`] that writes pipelined
//! commands and matches replies to them in order (FIFO).
//!
//! The [`Client`](super::Client) owns the policy (when to connect, what to
//! queue); this file owns the bytes of one connection: the commands encoded
//! but not yet written, the triggers of the commands in flight, the decoder.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem;
use std::rc::Rc;
use std::time::Duration;

use redis_protocol::resp2::types::OwnedFrame;

use super::codec::{encode_command, Decoder};
use super::error::RedisError;
use super::value::Value;
use crate::defer::{Failure, Trigger};
use crate::protocol::{Protocol, Transport};
use crate::reactor;

/// The state of one connection, shared by its protocol and the client.
pub(crate) type Shared = Rc<RefCell<Connection>>;

/// What a connection holds between reactor turns.
pub(crate) struct Connection {
    transport: Option<Transport>,
    decoder: Decoder,
    /// Commands sent (or about to be), oldest first: the next reply is the
    /// front one's.
    in_flight: VecDeque<Trigger<Value>>,
    /// Encoded commands waiting for the end of this reactor turn, written in
    /// one call.
    unsent: Vec<u8>,
    flush_scheduled: bool,
    /// Why the client closed the connection itself (a protocol error), given
    /// to the commands in flight instead of the transport's reason.
    close_reason: Option<Failure>,
    /// The connection is gone, and why: nothing more is accepted.
    lost: Option<Failure>,
}

impl Connection {
    pub(crate) fn new(max_reply_size: usize) -> Shared {
        Rc::new(RefCell::new(Connection {
            transport: None,
            decoder: Decoder::new(max_reply_size),
            in_flight: VecDeque::new(),
            unsent: Vec::new(),
            flush_scheduled: false,
            close_reason: None,
            lost: None,
        }))
    }

    /// Commands sent and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub(crate) fn transport(&self) -> Option<Transport> {
        self.transport.clone()
    }

    /// Why the connection closed, once it has.
    pub(crate) fn lost(&self) -> Option<Failure> {
        self.lost.clone()
    }
}

/// Queues an encoded command on `conn` (its reply goes to `trigger`) and
/// makes sure it is written at the end of this reactor turn. Returns the
/// trigger back when the connection is already gone.
pub(crate) fn send<A: AsRef<[u8]>>(
    conn: &Shared,
    args: &[A],
    trigger: Trigger<Value>,
) -> Result<(), (RedisError, Trigger<Value>)> {
    let schedule = {
        let mut c = conn.borrow_mut();
        if let Some(reason) = c.lost.clone() {
            return Err((RedisError::ConnectionLost { reason }, trigger));
        }
        if let Err(e) = encode_command(&mut c.unsent, args) {
            return Err((e, trigger));
        }
        c.in_flight.push_back(trigger);
        !mem::replace(&mut c.flush_scheduled, true)
    };
    if schedule {
        schedule_flush(conn);
    }
    Ok(())
}

/// Moves already encoded commands (queued while connecting) onto `conn`.
pub(crate) fn send_encoded(conn: &Shared, bytes: Vec<u8>, triggers: Vec<Trigger<Value>>) {
    let schedule = {
        let mut c = conn.borrow_mut();
        if c.unsent.is_empty() {
            c.unsent = bytes;
        } else {
            c.unsent.extend_from_slice(&bytes);
        }
        c.in_flight.extend(triggers);
        !mem::replace(&mut c.flush_scheduled, true)
    };
    if schedule {
        schedule_flush(conn);
    }
}

fn schedule_flush(conn: &Shared) {
    let conn = conn.clone();
    reactor::call_later(Duration::ZERO, move || flush(&conn));
}

/// Writes everything queued in one call (the pipelining: a turn's commands
/// leave together).
fn flush(conn: &Shared) {
    let (transport, bytes) = {
        let mut c = conn.borrow_mut();
        c.flush_scheduled = false;
        (c.transport.clone(), mem::take(&mut c.unsent))
    };
    if let Some(transport) = transport {
        if !bytes.is_empty() {
            transport.write(&bytes);
        }
    }
    // Keep the buffer's capacity for the next turn.
    let mut c = conn.borrow_mut();
    if c.unsent.is_empty() {
        let mut bytes = bytes;
        bytes.clear();
        c.unsent = bytes;
    }
}

/// The [`Protocol`] of a Redis connection.
pub(crate) struct RedisProtocol {
    conn: Shared,
    /// Tells the client the connection is gone, before the commands in
    /// flight errback.
    on_lost: Option<Box<dyn FnOnce()>>,
}

impl RedisProtocol {
    pub(crate) fn new(conn: Shared, on_lost: impl FnOnce() + 'static) -> RedisProtocol {
        RedisProtocol {
            conn,
            on_lost: Some(Box::new(on_lost)),
        }
    }
}

impl Protocol for RedisProtocol {
    fn connection_made(&mut self, transport: Transport) {
        self.conn.borrow_mut().transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let mut replies = Vec::new();
        let mut fatal = None;
        {
            let mut c = self.conn.borrow_mut();
            if c.lost.is_some() {
                return;
            }
            match c.decoder.feed(data) {
                Err(e) => fatal = Some(e),
                Ok(()) => loop {
                    match c.decoder.next_frame() {
                        Ok(Some(frame)) => match c.in_flight.pop_front() {
                            Some(trigger) => replies.push((trigger, frame)),
                            None => {
                                fatal = Some(RedisError::Protocol {
                                    message: "the server sent a reply to no command".to_string(),
                                });
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            fatal = Some(e);
                            break;
                        }
                    }
                },
            }
        }
        // No borrow is held while callbacks run: they may send commands.
        for (trigger, frame) in replies {
            match frame {
                OwnedFrame::Error(message) => {
                    trigger.errback(Failure::new(RedisError::server(message)))
                }
                frame => trigger.callback(Value::from_frame(frame)),
            }
        }
        if let Some(error) = fatal {
            let transport = {
                let mut c = self.conn.borrow_mut();
                c.close_reason.get_or_insert_with(|| Failure::new(error));
                c.transport.clone()
            };
            if let Some(transport) = transport {
                transport.abort_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        let (in_flight, reason) = {
            let mut c = self.conn.borrow_mut();
            c.transport = None;
            c.unsent = Vec::new();
            let reason = c.close_reason.take().unwrap_or(reason);
            c.lost = Some(reason.clone());
            (mem::take(&mut c.in_flight), reason)
        };
        if let Some(on_lost) = self.on_lost.take() {
            on_lost();
        }
        for trigger in in_flight {
            trigger.errback(Failure::new(RedisError::ConnectionLost {
                reason: reason.clone(),
            }));
        }
    }
}
