//! A client that stays connected while its server restarts, with Twisted's
//! two tools for it: `ClientService` (the modern one: `when_connected()`
//! gives the live protocol, a retry policy paces the attempts) and
//! `ReconnectingClientFactory` (the classic one, here giving up after
//! `max_retries` against a server that never comes back).
//!
//! `cargo run --example reconnecting_client` runs the whole story on
//! loopback and exits: a server greets each connection with its number, the
//! server goes away, the client retries (refused), the server comes back on
//! the same port, the client reconnects and is greeted again.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use twined::application::{BackoffPolicy, ClientService};
use twined::defer::{Deferred, Failure, Trigger};
use twined::protocol::basic::{LineConnection, LineHandler, LineReceiver};
use twined::protocol::reconnect::ReconnectingClientFactory;
use twined::protocol::{Factory, Protocol, Transport};
use twined::reactor;
use twined::task;

/// The server: greets connection number N with `hello #N`.
struct Greeter {
    number: u32,
    open: Rc<RefCell<Vec<Transport>>>,
}

impl LineHandler for Greeter {
    fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
        conn.send_line(format!("hello #{}", self.number).as_bytes());
        self.open.borrow_mut().push(conn.transport().clone());
    }
    fn line_received(&mut self, _line: &[u8], _conn: &mut LineConnection<'_>) {}
}

/// A running server and its open connections.
struct Server {
    port: reactor::Port,
    open: Rc<RefCell<Vec<Transport>>>,
}

impl Server {
    fn start(addr: &str, count: Rc<Cell<u32>>) -> Result<Server, Failure> {
        let open = Rc::new(RefCell::new(Vec::new()));
        let o = open.clone();
        let port = reactor::listen_tcp(addr, move |_: SocketAddr| {
            count.set(count.get() + 1);
            LineReceiver::new(Greeter {
                number: count.get(),
                open: o.clone(),
            })
        })
        .map_err(Failure::new)?;
        Ok(Server { port, open })
    }

    /// Goes away: stops listening and drops every connection.
    fn crash(self) {
        self.port.stop_listening();
        for t in self.open.borrow_mut().drain(..) {
            t.abort_connection();
        }
    }
}

/// The client: hands its first line to whoever waits for it.
#[derive(Default)]
struct Client {
    greeting: Option<Trigger<String>>,
    greeted: Option<Deferred<String>>,
    transport: Option<Transport>,
}

impl LineHandler for Client {
    fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
        // Made here, not in `new`: an attempt that fails never connects, and
        // leaves no Deferred behind.
        let (d, trigger) = Deferred::new();
        self.greeting = Some(trigger);
        self.greeted = Some(d.add_timeout(Duration::from_secs(5)));
        self.transport = Some(conn.transport().clone());
    }
    fn line_received(&mut self, line: &[u8], _conn: &mut LineConnection<'_>) {
        if let Some(trigger) = self.greeting.take() {
            trigger.callback(String::from_utf8_lossy(line).into_owned());
        }
    }
}

type Live = Rc<RefCell<LineReceiver<Client>>>;

/// The greeting of a live connection, and its transport.
async fn greeting(client: &Live) -> Result<(String, Transport), Failure> {
    let (greeted, transport) = {
        let mut p = client.borrow_mut();
        let h = p.handler_mut();
        (h.greeted.take(), h.transport.clone())
    };
    let greeted = greeted.ok_or_else(|| Failure::msg("greeting already read"))?;
    let transport = transport.ok_or_else(|| Failure::msg("not connected"))?;
    Ok((greeted.await?, transport))
}

async fn story() -> Result<(), Failure> {
    let count = Rc::new(Cell::new(0));
    let server = Server::start("127.0.0.1:0", count.clone())?;
    let addr = server.port.address();

    let attempts = Rc::new(Cell::new(0u32));
    let a = attempts.clone();
    let service = ClientService::tcp("127.0.0.1", addr.port(), move || {
        a.set(a.get() + 1);
        LineReceiver::new(Client::default())
    })
    .retry_policy(BackoffPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        factor: 2.0,
        jitter: Duration::from_millis(10),
    });
    service.start_service();

    let (hello, transport) = greeting(&service.when_connected().await?).await?;
    println!("connected: {hello}");

    println!("server: going away");
    server.crash();
    let reason = transport.when_closed().await?;
    println!("client: connection lost ({reason})");
    task::sleep(Duration::from_millis(150)).await?;
    println!("client: retrying while the server is down");

    let server = Server::start(&addr.to_string(), count)?;
    println!("server: back on {addr}");
    let (hello, _) = greeting(&service.when_connected().await?).await?;
    println!("reconnected: {hello} after {} attempts", attempts.get());
    service.stop_service().await?;
    println!("client service stopped");
    server.crash();

    // The classic factory, against a port nobody listens on any more: it
    // retries three times, then gives up with a Failure.
    let stopped = ReconnectingClientFactory::new(Quiet)
        .initial_delay(Duration::from_millis(10))
        .factor(2.0)
        .max_retries(Some(3))
        .connect_tcp("127.0.0.1", addr.port())
        .when_stopped();
    match stopped.await {
        Ok(()) => println!("reconnecting factory: stopped (unexpected)"),
        Err(failure) => println!("reconnecting factory: {failure}"),
    }
    Ok(())
}

/// A client factory whose connections say nothing.
struct Quiet;

impl Factory for Quiet {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Box<dyn Protocol>> {
        struct Silent;
        impl Protocol for Silent {
            fn data_received(&mut self, _: &[u8]) {}
        }
        Some(Box::new(Silent))
    }
    fn client_connection_failed(&mut self, reason: Failure) {
        println!("reconnecting factory: attempt failed: {reason}");
    }
}

fn main() -> ExitCode {
    match task::react_async(story) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("reconnecting_client: {failure}");
            ExitCode::FAILURE
        }
    }
}
