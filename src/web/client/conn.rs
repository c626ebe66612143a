//! One client connection: the HTTP/1.1 protocol that sends a request and
//! reads its response with the codec, one exchange at a time, over any
//! transport (TCP, or the reactor's TLS layer for HTTPS).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::defer::Failure;
use crate::protocol::{ConnectionDone, Protocol, Transport};
use crate::web::error::copy_io_error;
use crate::web::http1::{
    parse_response_head, response_framing, response_keeps_alive, BodyDecoder, CodecError,
    ResponseHead,
};
use crate::web::Error;

/// How long a server that announced it closes gets to do so.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// How an exchange ended.
pub(crate) struct Finished {
    pub(crate) result: Result<(), Error>,
    /// The connection may carry another request.
    pub(crate) reusable: bool,
    /// Some of the response arrived (a retry would not be safe to hide).
    pub(crate) got_response: bool,
}

/// Receives one exchange's response.
pub(crate) trait Sink {
    /// The final (non-1xx) response head.
    fn head(&self, head: ResponseHead);
    /// Body bytes, as framed on the wire (before content decoding).
    fn body(&self, data: &[u8]);
    /// The exchange is over.
    fn finished(&self, finished: Finished);
}

struct Exchange {
    id: u64,
    method: String,
    sink: Rc<dyn Sink>,
}

/// The state a connection shares with the pool and the exchange.
pub(crate) struct ConnShared {
    pub(crate) host: String,
    head_limit: usize,
    wire: RefCell<Option<Transport>>,
    exchange: RefCell<Option<Exchange>>,
    alive: Cell<bool>,
    /// The server said it closes after this response (`Connection: close`,
    /// HTTP/1.0, close-delimited body).
    peer_closes: Cell<bool>,
    /// Closes a connection whose server was expected to close it but did not.
    linger: RefCell<Option<crate::reactor::DelayedCall>>,
    next_id: Cell<u64>,
}

/// The pool's handle on one connection.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    shared: Rc<ConnShared>,
}

impl ConnHandle {
    /// A connection not yet connected, and the protocol to connect it with.
    pub(crate) fn new(host: String, head_limit: usize) -> (ConnHandle, HttpProtocol) {
        let shared = Rc::new(ConnShared {
            host,
            head_limit,
            wire: RefCell::new(None),
            exchange: RefCell::new(None),
            alive: Cell::new(true),
            peer_closes: Cell::new(false),
            linger: RefCell::new(None),
            next_id: Cell::new(0),
        });
        let protocol = HttpProtocol {
            shared: shared.clone(),
            input: Vec::new(),
            current: None,
            body: None,
        };
        (ConnHandle { shared }, protocol)
    }

    /// Whether both handles are the same connection.
    pub(crate) fn same(&self, other: &ConnHandle) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether the connection is open and idle.
    pub(crate) fn is_usable(&self) -> bool {
        self.shared.alive.get()
            && self.shared.wire.borrow().is_some()
            && self.shared.exchange.borrow().is_none()
    }

    /// Sends a request (already serialised); its response goes to `sink`.
    pub(crate) fn send(&self, method: &str, request: &[u8], sink: Rc<dyn Sink>) {
        let id = self.shared.next_id.get();
        self.shared.next_id.set(id + 1);
        *self.shared.exchange.borrow_mut() = Some(Exchange {
            id,
            method: method.to_string(),
            sink,
        });
        let wire = self.shared.wire.borrow().clone();
        match wire {
            Some(wire) if self.shared.alive.get() => wire.write(request),
            _ => self.shared.fail_exchange(
                Error::io(
                    self.shared.host.clone(),
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the connection closed before the request was sent",
                    ),
                ),
                false,
            ),
        }
    }

    /// Closes the connection now; a running exchange ends with nothing more.
    pub(crate) fn abort(&self) {
        self.shared.alive.set(false);
        self.shared.exchange.borrow_mut().take();
        if let Some(wire) = self.shared.wire.borrow_mut().take() {
            wire.abort_connection();
        }
    }

    /// Closes an idle connection politely. When the server announced it
    /// closes, let it close first (so the TIME_WAIT state, and its cost for
    /// the next connect, stays on the server's side), for at most a second.
    pub(crate) fn close(&self) {
        self.shared.alive.set(false);
        if self.shared.peer_closes.get() {
            let wire = self.shared.wire.borrow().clone();
            if let Some(wire) = wire {
                let timer = crate::reactor::call_later(LINGER, move || wire.abort_connection());
                if let Some(old) = self.shared.linger.borrow_mut().replace(timer) {
                    let _ = old.cancel();
                }
                return;
            }
        }
        if let Some(wire) = self.shared.wire.borrow_mut().take() {
            wire.lose_connection();
        }
    }
}

impl ConnShared {
    /// Ends the running exchange with `error`.
    fn fail_exchange(&self, error: Error, got_response: bool) {
        let exchange = self.exchange.borrow_mut().take();
        if let Some(exchange) = exchange {
            exchange.sink.finished(Finished {
                result: Err(error),
                reusable: false,
                got_response,
            });
        }
    }
}

/// The body being read, and whether the connection stays open after it.
struct Body {
    decoder: BodyDecoder,
    keep_alive: bool,
}

/// The protocol on the wire.
pub(crate) struct HttpProtocol {
    shared: Rc<ConnShared>,
    input: Vec<u8>,
    /// The exchange id being parsed.
    current: Option<u64>,
    body: Option<Body>,
}

impl HttpProtocol {
    fn protocol_error(&mut self, error: CodecError, got_response: bool) {
        let host = self.shared.host.clone();
        self.shared.alive.set(false);
        if let Some(wire) = self.shared.wire.borrow().clone() {
            wire.abort_connection();
        }
        self.shared
            .fail_exchange(Error::from_codec(&host, error), got_response);
    }

    /// Feeds bytes to the current exchange.
    fn receive(&mut self, data: &[u8]) {
        let (id, method, sink) = {
            let exchange = self.shared.exchange.borrow();
            match exchange.as_ref() {
                Some(e) => (e.id, e.method.clone(), e.sink.clone()),
                None => {
                    // Bytes on an idle connection: the server is confused
                    // (or closing); never reuse it.
                    drop(exchange);
                    self.shared.alive.set(false);
                    if let Some(wire) = self.shared.wire.borrow().clone() {
                        wire.abort_connection();
                    }
                    return;
                }
            }
        };
        if self.current != Some(id) {
            self.current = Some(id);
            self.input.clear();
            self.body = None;
        }
        if self.body.is_none() {
            self.input.extend_from_slice(data);
            loop {
                match parse_response_head(&self.input, self.shared.head_limit) {
                    Ok(None) => return,
                    Err(e) => return self.protocol_error(e, true),
                    Ok(Some((head, len))) => {
                        self.input.drain(..len);
                        if head.status == 101 {
                            return self.protocol_error(CodecError::UpgradeUnsupported, true);
                        }
                        if (100..200).contains(&head.status) {
                            continue; // interim response
                        }
                        let framing = match response_framing(&method, head.status, &head.headers) {
                            Ok(f) => f,
                            Err(e) => return self.protocol_error(e, true),
                        };
                        self.body = Some(Body {
                            decoder: BodyDecoder::new(framing),
                            keep_alive: response_keeps_alive(&head, framing),
                        });
                        sink.head(head);
                        break;
                    }
                }
            }
            if !self.still_current(id) {
                return;
            }
            let leftover = std::mem::take(&mut self.input);
            self.decode(&leftover, &sink, id);
            return;
        }
        self.decode(data, &sink, id);
    }

    fn still_current(&self, id: u64) -> bool {
        self.shared.exchange.borrow().as_ref().map(|e| e.id) == Some(id)
    }

    fn decode(&mut self, data: &[u8], sink: &Rc<dyn Sink>, id: u64) {
        let Some(body) = self.body.as_mut() else {
            return;
        };
        let result = body.decoder.decode(data, &mut |bytes| sink.body(bytes));
        match result {
            Err(e) => self.protocol_error(e, true),
            Ok(decoded) if decoded.done => {
                let extra = decoded.consumed < data.len();
                let keep_alive = body.keep_alive && !extra;
                self.body = None;
                self.current = None;
                if !self.still_current(id) {
                    return; // aborted from inside the sink
                }
                if !keep_alive {
                    self.shared.alive.set(false);
                    self.shared.peer_closes.set(!extra);
                }
                let exchange = self.shared.exchange.borrow_mut().take();
                if let Some(exchange) = exchange {
                    exchange.sink.finished(Finished {
                        result: Ok(()),
                        reusable: keep_alive && self.shared.alive.get(),
                        got_response: true,
                    });
                }
            }
            Ok(_) => {}
        }
    }

    /// The wire closed.
    fn lost(&mut self, reason: Failure) {
        self.shared.alive.set(false);
        if let Some(timer) = self.shared.linger.borrow_mut().take() {
            let _ = timer.cancel();
        }
        self.shared.wire.borrow_mut().take();
        let pending = self.shared.exchange.borrow().as_ref().map(|e| e.id);
        let Some(id) = pending else { return };
        if self.current == Some(id) {
            if let Some(body) = self.body.as_mut() {
                match body.decoder.eof() {
                    Ok(()) => {
                        let exchange = self.shared.exchange.borrow_mut().take();
                        if let Some(exchange) = exchange {
                            exchange.sink.finished(Finished {
                                result: Ok(()),
                                reusable: false,
                                got_response: true,
                            });
                        }
                    }
                    Err(e) => {
                        let host = self.shared.host.clone();
                        let error = if reason.check::<ConnectionDone>() {
                            Error::from_codec(&host, e)
                        } else {
                            io_error(&host, &reason)
                        };
                        self.shared.fail_exchange(error, true);
                    }
                }
                return;
            }
        }
        let got_response = self.current == Some(id) && !self.input.is_empty();
        let host = self.shared.host.clone();
        let error = if reason.check::<ConnectionDone>() {
            Error::io(
                host.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    if got_response {
                        "the server closed the connection in the middle of the response head"
                    } else {
                        "the server closed the connection without a response"
                    },
                ),
            )
        } else {
            io_error(&host, &reason)
        };
        self.shared.fail_exchange(error, got_response);
    }
}

/// An I/O error from a connection-lost reason.
fn io_error(host: &str, reason: &Failure) -> Error {
    let source = match reason.downcast_ref::<crate::protocol::ConnectionLost>() {
        Some(lost) => copy_io_error(&lost.source),
        None => std::io::Error::other(reason.to_string()),
    };
    Error::io(host, source)
}

impl Protocol for HttpProtocol {
    fn connection_made(&mut self, transport: Transport) {
        // No TCP_NODELAY: a request goes out in one write and the next only
        // after the whole response, so Nagle never holds one back. (Over
        // TLS this is the layer's transport; the pool uses the connection
        // only once the handshake is done.)
        *self.shared.wire.borrow_mut() = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.receive(data);
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.lost(reason);
    }
}
