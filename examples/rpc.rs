//! A length-prefixed request/response protocol, client and server, on
//! `Int32StringReceiver` (Twisted's `twisted.protocols.basic`): each message
//! is a 4-byte big-endian length and that many bytes. A request is
//! `method argument`; the answer is `ok result` or `error message`, in
//! request order, so a client may send many requests before the first
//! answer (pipelining) and match answers to Deferreds first in, first out.
//!
//! `cargo run --example rpc -- server PORT` serves until Ctrl-C;
//! `cargo run --example rpc -- call PORT 'upper hello' 'add 2 40'` calls it;
//! `cargo run --example rpc -- --demo` does both on a free port and exits.
//!
//! Bounds: messages of at most 99,999 bytes either way (Twisted's
//! `Int32StringReceiver.MAX_LENGTH`; the connection is closed past it), at
//! most `MAX_IN_FLIGHT` unanswered requests per client, and each call times
//! out after `CALL_TIMEOUT`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{gather_results, Deferred, Failure, Trigger};
use twined::protocol::basic::{Int32StringReceiver, StringConnection, StringHandler, StringSender};
use twined::protocol::Transport;
use twined::reactor;
use twined::task;

/// Unanswered requests a client may have.
const MAX_IN_FLIGHT: usize = 64;
/// Time allowed for one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server does with one request.
fn handle(request: &[u8]) -> Result<String, String> {
    let request =
        std::str::from_utf8(request).map_err(|_| "the request is not UTF-8".to_string())?;
    let (method, arg) = request.split_once(' ').unwrap_or((request, ""));
    match method {
        "upper" => Ok(arg.to_uppercase()),
        "reverse" => Ok(arg.chars().rev().collect()),
        "add" => {
            let mut sum: i64 = 0;
            for n in arg.split_whitespace() {
                let n: i64 = n.parse().map_err(|_| format!("not a number: {n}"))?;
                sum = sum.checked_add(n).ok_or("overflow")?;
            }
            Ok(sum.to_string())
        }
        _ => Err(format!("no such method: {method}")),
    }
}

/// The server's side of one connection.
struct Server;

impl StringHandler for Server {
    fn string_received(&mut self, request: &[u8], conn: &mut StringConnection<'_>) {
        let answer = match handle(request) {
            Ok(result) => format!("ok {result}"),
            Err(message) => format!("error {message}"),
        };
        if conn.send_string(answer.as_bytes()).is_err() {
            // Longer than the peer accepts: say so instead.
            let _ = conn.send_string(b"error the answer is too long");
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
enum RpcError {
    /// The server answered `error ...`.
    Remote(String),
    /// The server's answer is neither `ok` nor `error`.
    BadAnswer(String),
    /// `MAX_IN_FLIGHT` requests are unanswered already.
    TooManyInFlight,
    /// The request is longer than a message may be.
    TooLong,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Remote(m) => write!(f, "the server says: {m}"),
            RpcError::BadAnswer(a) => write!(f, "unexpected answer: {a:?}"),
            RpcError::TooManyInFlight => {
                write!(f, "{MAX_IN_FLIGHT} requests are waiting already")
            }
            RpcError::TooLong => f.write_str("the request is too long"),
        }
    }
}

impl Error for RpcError {}

/// A client connection: requests go out in order, answers come back in
/// order and fire the oldest waiting Deferred.
#[derive(Default)]
struct ClientState {
    sender: Option<StringSender>,
    waiting: VecDeque<Trigger<String>>,
}

struct ClientProtocol(Rc<RefCell<ClientState>>);

impl StringHandler for ClientProtocol {
    fn connection_made(&mut self, conn: &mut StringConnection<'_>) {
        self.0.borrow_mut().sender = Some(conn.sender());
    }

    fn string_received(&mut self, answer: &[u8], conn: &mut StringConnection<'_>) {
        let Some(trigger) = self.0.borrow_mut().waiting.pop_front() else {
            // An answer nobody asked for: the peer is confused; hang up.
            conn.lose_connection();
            return;
        };
        let answer = String::from_utf8_lossy(answer);
        match (answer.strip_prefix("ok "), answer.strip_prefix("error ")) {
            (Some(result), _) => trigger.callback(result.to_string()),
            (_, Some(message)) => trigger.errback(RpcError::Remote(message.to_string())),
            _ => trigger.errback(RpcError::BadAnswer(answer.into_owned())),
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        let waiting = std::mem::take(&mut self.0.borrow_mut().waiting);
        for trigger in waiting {
            trigger.errback(reason.clone());
        }
    }
}

/// A connected client.
struct RpcClient {
    state: Rc<RefCell<ClientState>>,
    transport: Transport,
}

impl RpcClient {
    async fn connect(port: u16) -> Result<RpcClient, Failure> {
        let state = Rc::new(RefCell::new(ClientState::default()));
        let protocol = Int32StringReceiver::new(ClientProtocol(state.clone()));
        let transport = reactor::connect_protocol("127.0.0.1", port, protocol).await?;
        Ok(RpcClient { state, transport })
    }

    /// Sends `request`; the Deferred fires with the result.
    fn call(&self, request: &str) -> Deferred<String> {
        let mut state = self.state.borrow_mut();
        if state.waiting.len() >= MAX_IN_FLIGHT {
            return twined::defer::fail(RpcError::TooManyInFlight);
        }
        let Some(sender) = &state.sender else {
            return twined::defer::fail(RpcError::BadAnswer("not connected".into()));
        };
        if sender.send_string(request.as_bytes()).is_err() {
            return twined::defer::fail(RpcError::TooLong);
        }
        let (d, trigger) = Deferred::new();
        state.waiting.push_back(trigger);
        d.add_timeout(CALL_TIMEOUT)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = |s: &String| s.parse::<u16>().ok();
    match args.as_slice() {
        [demo] if demo == "--demo" => finish(task::react_async(demo_main)),
        [cmd, p] if cmd == "server" && port(p).is_some() => serve(port(p).unwrap_or(0)),
        [cmd, p, requests @ ..] if cmd == "call" && port(p).is_some() && !requests.is_empty() => {
            let p = port(p).unwrap_or(0);
            let requests = requests.to_vec();
            finish(task::react_async(move || call_main(p, requests)))
        }
        _ => {
            eprintln!("usage: rpc server PORT | rpc call PORT REQUEST... | rpc --demo");
            ExitCode::from(2)
        }
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("rpc: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn serve(port: u16) -> ExitCode {
    let factory = |_: SocketAddr| Int32StringReceiver::new(Server);
    match reactor::listen_tcp(format!("127.0.0.1:{port}"), factory) {
        Ok(p) => eprintln!("rpc server on {} (Ctrl-C stops)", p.address()),
        Err(e) => {
            eprintln!("rpc: {e}");
            return ExitCode::from(2);
        }
    }
    finish(reactor::run().map_err(Failure::new))
}

async fn call_main(port: u16, requests: Vec<String>) -> Result<(), Failure> {
    let client = RpcClient::connect(port).await?;
    for request in &requests {
        match client.call(request).await {
            Ok(result) => println!("{request} -> {result}"),
            Err(failure) => println!("{request} -> error: {failure}"),
        }
    }
    client.transport.lose_connection();
    Ok(())
}

async fn demo_main() -> Result<(), Failure> {
    let port = reactor::listen_tcp("127.0.0.1:0", |_: SocketAddr| {
        Int32StringReceiver::new(Server)
    })
    .map_err(Failure::new)?;
    let client = RpcClient::connect(port.address().port()).await?;

    // Three requests in flight at once; the answers come back in order.
    let requests = ["upper hello, world", "add 2 40", "reverse stressed"];
    let answers = gather_results(requests.iter().map(|r| client.call(r))).await?;
    for (request, answer) in requests.iter().zip(&answers) {
        println!("{request} -> {answer}");
    }
    // A failing call is a typed error, and the connection goes on.
    match client.call("divide 1 0").await {
        Ok(result) => println!("divide 1 0 -> {result} (unexpected)"),
        Err(failure) => println!("divide 1 0 -> error: {failure}"),
    }
    println!("add 1 1 -> {}", client.call("add 1 1").await?);

    client.transport.lose_connection();
    client.transport.when_closed().await?;
    port.stop_listening();
    Ok(())
}
