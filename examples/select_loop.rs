//! A hand-made `select()` loop of non-blocking HTTP requests, ported to the
//! reactor's raw fd API (Twisted's `addReader`/`addWriter`).
//!
//! The Python original kept a list of `AsyncRequest` objects, each with a
//! socket (`fileno()`), a host and a callback, and looped on
//! `select(readers, writers, [])`: writable meant "connected, send the
//! request", readable meant "response bytes". Here the reactor is the loop:
//! `add_writer` waits for the connect, `add_reader` for the response.
//!
//! It serves its own pages with `web::server` on 127.0.0.1 (on the same
//! reactor), makes three requests and prints their status lines.
//!
//! Run with `cargo run --example select_loop`.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twined::reactor;
use twined::web::server::{Request as WebRequest, Response, Site};

/// What a request reports: the response's status line, or why it failed.
type Callback = Box<dyn FnOnce(io::Result<String>)>;

/// One request in flight: the socket, what is left to send, what came back.
struct AsyncRequest {
    // mio's socket: `connect` does not block (Python's `setblocking(0)` +
    // `connect_ex`). Any `AsRawFd` would do for the reactor.
    sock: mio::net::TcpStream,
    out: Vec<u8>,
    sent: usize,
    response: Vec<u8>,
    callback: Option<Callback>,
}

type Request = Rc<RefCell<AsyncRequest>>;

/// Starts a request: connect, then wait for writability (connect complete).
fn start(host: SocketAddr, path: &str, callback: Callback) -> io::Result<()> {
    let sock = mio::net::TcpStream::connect(host)?;
    let out = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").into_bytes();
    let request = Rc::new(RefCell::new(AsyncRequest {
        sock,
        out,
        sent: 0,
        response: Vec::new(),
        callback: Some(callback),
    }));
    let r = request.clone();
    let watched = reactor::add_writer(&request.borrow().sock, move || on_writable(&r));
    watched
}

/// Writable: the connect finished (or failed); send what is left.
fn on_writable(request: &Request) {
    let mut req = request.borrow_mut();
    if req.sent == 0 {
        // The connect's outcome: an error, or a peer address once connected.
        if let Some(e) = req.sock.take_error().ok().flatten() {
            drop(req);
            return finish(request, Err(e));
        }
        if req.sock.peer_addr().is_err() {
            return; // Not connected yet; wait for the next writable event.
        }
    }
    let AsyncRequest {
        sock, out, sent, ..
    } = &mut *req;
    match sock.write(&out[*sent..]) {
        Ok(n) => *sent += n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
        Err(e) => {
            drop(req);
            return finish(request, Err(e));
        }
    }
    if req.sent == req.out.len() {
        // All sent: stop watching for writability, start reading.
        reactor::remove_writer(&req.sock);
        let r = request.clone();
        if let Err(e) = reactor::add_reader(&req.sock, move || on_readable(&r)) {
            drop(req);
            finish(request, Err(e));
        }
    }
}

/// Readable: take what is there; end of file means the response is complete
/// (HTTP/1.0 closes the connection).
fn on_readable(request: &Request) {
    let mut buf = [0; 4096];
    loop {
        let read = request.borrow_mut().sock.read(&mut buf);
        match read {
            Ok(0) => {
                let response = std::mem::take(&mut request.borrow_mut().response);
                let text = String::from_utf8_lossy(&response);
                let status = text.lines().next().unwrap_or("").to_string();
                return finish(request, Ok(status));
            }
            Ok(n) => request.borrow_mut().response.extend_from_slice(&buf[..n]),
            // Level-triggered: we are called again when more arrives.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => return finish(request, Err(e)),
        }
    }
}

/// Stops watching the socket and calls the request's callback (outside the
/// borrow: the callback may do anything).
fn finish(request: &Request, result: io::Result<String>) {
    let callback = {
        let mut req = request.borrow_mut();
        reactor::remove_reader(&req.sock);
        reactor::remove_writer(&req.sock);
        req.callback.take()
    };
    if let Some(callback) = callback {
        callback(result);
    }
}

/// The site the requests go to: twined's `web::server`, on the same reactor.
fn serve() -> Result<reactor::Port, reactor::CannotListen> {
    let site = Site::new(|req: WebRequest| match req.path() {
        "/" => Response::new(200).body("hello\n"),
        "/teapot" => Response::new(418)
            .reason("I'm a teapot")
            .body("short and stout\n"),
        _ => Response::new(404).body("no such page\n"),
    });
    reactor::listen_tcp("127.0.0.1:0", site)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = serve()?;
    let host = port.address();
    let paths = ["/", "/missing", "/teapot"];

    let pending = Rc::new(Cell::new(paths.len()));
    for path in paths {
        let pending = pending.clone();
        start(
            host,
            path,
            Box::new(move |result| {
                match result {
                    Ok(status) => println!("GET {path} -> {status}"),
                    Err(e) => println!("GET {path} failed: {e}"),
                }
                pending.set(pending.get() - 1);
                if pending.get() == 0 {
                    let _ = reactor::stop();
                }
            }),
        )?;
    }
    // A watchdog, so a broken server cannot hang the example.
    let watchdog = reactor::call_later(Duration::from_secs(10), || {
        eprintln!("timed out");
        let _ = reactor::stop();
    });
    reactor::run()?;
    let _ = watchdog.cancel();
    if pending.get() > 0 {
        return Err("some requests did not finish".into());
    }
    port.stop_listening();
    Ok(())
}
