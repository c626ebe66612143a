//! `asyncio.open_connection` and a hand-written `GET / HTTP/1.0` as a
//! `Protocol` on `connect_tcp`: the bytes on the wire, no HTTP client.
//!
//! ```python
//! reader, writer = await asyncio.open_connection(host, port)
//! writer.write(b"GET / HTTP/1.0\r\nHost: ...\r\n\r\n")
//! print(await reader.read())
//! ```
//!
//! Run with `cargo run --example raw_http`.

use std::net::SocketAddr;

use twined::defer::Failure;
use twined::protocol::{Factory, Protocol, Transport};
use twined::reactor;
use twined::web::server::{Request, Response, Site};

/// Sends the request on connect, collects the reply, prints it at the end.
struct RawGet {
    host: String,
    reply: Vec<u8>,
}

impl Protocol for RawGet {
    fn connection_made(&mut self, transport: Transport) {
        let request = format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
        transport.write(request.as_bytes());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.reply.extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: Failure) {
        println!("{}", String::from_utf8_lossy(&self.reply));
        println!("-- connection closed: {reason}");
    }
}

/// `connect_tcp` takes a factory (Twisted's `ClientFactory`).
struct GetFactory {
    host: String,
}

impl Factory for GetFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        Some(Box::new(RawGet {
            host: self.host.clone(),
            reply: Vec::new(),
        }))
    }
    fn client_connection_failed(&mut self, reason: Failure) {
        eprintln!("connection failed: {reason}");
        reactor::stop().expect("stop");
    }
    fn client_connection_lost(&mut self, _reason: Failure) {
        reactor::stop().expect("stop");
    }
}

fn main() {
    let site = Site::new(|_req: Request| {
        Response::new(200)
            .header("Content-Type", "text/plain")
            .body("hello from twined's web::server\n")
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).expect("listen");
    let addr = port.address();
    reactor::connect_tcp(
        &addr.ip().to_string(),
        addr.port(),
        GetFactory {
            host: addr.to_string(),
        },
    );
    reactor::run().expect("run");
}
