//! [`Client`]: commands as Deferreds over one pipelined connection that is
//! made on demand and made again after it is lost.
//!
//! The connection's life is an explicit state machine ([`State`]):
//!
//! ```text
//!   Idle --command--> Connecting --connected + AUTH/SELECT ok--> Ready
//!    ^  \--command, backing off--> Waiting --timer--> Connecting  |
//!    |                                                            |
//!    +---- connect failed (queued commands errback) <- Connecting |
//!    +---- connection lost (in-flight commands errback) <---------+
//! ```

use std::cell::RefCell;
use std::mem;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::codec::encode_command;
use super::connection::{self, Connection, RedisProtocol, Shared};
use super::error::RedisError;
use super::url::ConnectInfo;
use super::value::Value;
use crate::defer::{fail, succeed, Deferred, Failure, Trigger};
use crate::reactor::{self, DelayedCall};

/// The bounds and timings of a [`Client`]. Every field has a default
/// ([`ClientOptions::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed to connect, name lookup included (default 10 s).
    /// `AUTH`/`SELECT` are not counted.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for each command, from the call to its reply (default
    /// `None`: a command waits as long as the connection lives, which suits
    /// blocking commands such as `BRPOP`). A command that times out errbacks
    /// with [`TimeoutError`](crate::defer::TimeoutError); the connection is
    /// kept and its late reply discarded.
    pub command_timeout: Option<Duration>,
    /// Largest reply accepted, in bytes (default 512 MiB, Redis' own
    /// `proto-max-bulk-len`). A larger one closes the connection with
    /// [`RedisError::ReplyTooLarge`]; its command and those behind it
    /// errback.
    pub max_reply_size: usize,
    /// Most commands in flight plus queued while connecting (default
    /// 1,000,000). Past it a command errbacks at once with
    /// [`RedisError::TooManyPending`] and is not sent.
    pub max_pending: usize,
    /// Wait before the first new connection attempt after a failed one or a
    /// lost connection (default 100 ms); it doubles with each consecutive
    /// failure up to [`max_reconnect_delay`](Self::max_reconnect_delay).
    pub reconnect_delay: Duration,
    /// The longest wait between attempts (default 10 s).
    pub max_reconnect_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            command_timeout: None,
            max_reply_size: 512 * 1024 * 1024,
            max_pending: 1_000_000,
            reconnect_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_secs(10),
        }
    }
}

/// A Redis client on the reactor (the role of Twisted's `txredisapi`).
///
/// Every command returns a Deferred of its reply. Commands are pipelined:
/// those issued in one reactor turn are written together, and any number
/// may wait for replies on the one connection; replies are matched to
/// commands in order.
///
/// The connection is made by the first command (or by [`Client::connect`]),
/// with `AUTH` and `SELECT` from the URL sent first on every new
/// connection; commands issued meanwhile wait in a queue. When the
/// connection is lost, the commands in flight errback with
/// [`RedisError::ConnectionLost`] (they are never sent again: they may have
/// run) and the next command connects again, after a backoff when attempts
/// keep failing. A failed attempt errbacks the queued commands with
/// [`RedisError::Connect`]. So every command ends, in bounded time when
/// [`ClientOptions::command_timeout`] is set.
///
/// A blocking command (`BRPOP`, `XREADGROUP ... BLOCK`) holds up the
/// commands behind it on the same connection: give blocking consumers a
/// client of their own, as with any pipelining Redis client.
///
/// `Client` is a cheap handle (`Clone`); the connection is closed when the
/// last handle is dropped or [`disconnect`](Self::disconnect) is called.
///
/// ```no_run
/// use twined::redis::{Client, Value};
/// use twined::reactor;
///
/// let client = Client::new("redis://127.0.0.1:6379/0").unwrap();
/// client.command(["SET", "greeting", "hello"]);
/// client
///     .command(["GET", "greeting"])
///     .add_callback(|v| assert_eq!(v, Value::Data(b"hello".to_vec())))
///     .add_errback(|failure| eprintln!("{failure}"))
///     .add_both(|_| reactor::stop());
/// reactor::run().unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    info: ConnectInfo,
    options: ClientOptions,
    state: State,
    /// Numbers connection attempts, so that news from an old one is ignored.
    attempt: u64,
    /// Failed attempts in a row, for the backoff.
    failures: u32,
    /// No attempt before this instant.
    not_before: Option<Instant>,
}

/// Where the client's connection is.
enum State {
    /// No connection and nothing waiting.
    Idle,
    /// Commands wait for the backoff timer to start an attempt.
    Waiting { queue: Queue, timer: DelayedCall },
    /// An attempt is under way (connecting, then `AUTH`/`SELECT`).
    Connecting { queue: Queue, attempt: u64 },
    /// Connected and logged in: commands go straight onto the connection.
    Ready { conn: Shared, attempt: u64 },
    /// [`Client::disconnect`] was called.
    Closed,
}

/// Commands waiting for a connection, already encoded.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    triggers: Vec<Trigger<Value>>,
}

impl Queue {
    fn fail_all(self, failure: &Failure) {
        for trigger in self.triggers {
            trigger.errback(failure.clone());
        }
    }
}

impl Client {
    /// A client for the server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// see [`ConnectInfo`]); it connects on its first command. Fails only on a
    /// bad URL.
    pub fn new(url: &str) -> Result<Client, RedisError> {
        Client::with_options(url, ClientOptions::default())
    }

    /// [`Client::new`] with [`ClientOptions`].
    pub fn with_options(url: &str, options: ClientOptions) -> Result<Client, RedisError> {
        Ok(Client::from_info(ConnectInfo::parse(url)?, options))
    }

    /// A client for an already parsed [`ConnectInfo`].
    pub fn from_info(info: ConnectInfo, options: ClientOptions) -> Client {
        Client {
            inner: Rc::new(RefCell::new(Inner {
                info,
                options,
                state: State::Idle,
                attempt: 0,
                failures: 0,
                not_before: None,
            })),
        }
    }

    /// Connects now and fires with the client once the server has answered
    /// a `PING` (after `AUTH`/`SELECT`): Twisted's
    /// `txredisapi.Connection(...)`. Errbacks with [`RedisError::BadUrl`],
    /// [`RedisError::Connect`], [`RedisError::Handshake`].
    pub fn connect(url: &str) -> Deferred<Client> {
        Client::connect_with(url, ClientOptions::default())
    }

    /// [`Client::connect`] with [`ClientOptions`].
    pub fn connect_with(url: &str, options: ClientOptions) -> Deferred<Client> {
        match Client::with_options(url, options) {
            Ok(client) => client.ping().add_callback(move |()| client),
            Err(e) => fail(Failure::new(e)),
        }
    }

    /// Where this client connects.
    pub fn info(&self) -> ConnectInfo {
        self.inner.borrow().info.clone()
    }

    /// Sends a command: `args` are its name and arguments, each any bytes
    /// (`&str`, `String`, `Vec<u8>`, `&[u8]`). Fires with the reply; an error
    /// reply errbacks with [`RedisError::Server`].
    ///
    /// ```no_run
    /// # let client = twined::redis::Client::new("redis://127.0.0.1").unwrap();
    /// let id = client.command(["XADD", "frontier", "*", "url", "https://example.org/"]);
    /// let n = 10.to_string();
    /// let entries = client.command(["XRANGE", "frontier", "-", "+", "COUNT", n.as_str()]);
    /// ```
    pub fn command<I, A>(&self, args: I) -> Deferred<Value>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args: Vec<A> = args.into_iter().collect();
        let d = self.submit(&args);
        match self.inner.borrow().options.command_timeout {
            Some(timeout) => d.add_timeout(timeout),
            None => d,
        }
    }

    fn submit<A: AsRef<[u8]>>(&self, args: &[A]) -> Deferred<Value> {
        if args.is_empty() {
            return fail(Failure::new(RedisError::Protocol {
                message: "a command needs at least its name".to_string(),
            }));
        }
        let (d, trigger) = Deferred::new();
        let connect_now = {
            let mut inner = self.inner.borrow_mut();
            let limit = inner.options.max_pending;
            let pending = inner.pending();
            if pending >= limit && !matches!(inner.state, State::Closed) {
                return fail(Failure::new(RedisError::TooManyPending { limit }));
            }
            match &mut inner.state {
                State::Closed => return fail(Failure::new(RedisError::Closed)),
                State::Ready { conn, .. } => {
                    let conn = conn.clone();
                    drop(inner);
                    if let Err((e, trigger)) = connection::send(&conn, args, trigger) {
                        trigger.errback(Failure::new(e));
                    }
                    return d;
                }
                State::Waiting { queue, .. } | State::Connecting { queue, .. } => {
                    if let Err(e) = encode_command(&mut queue.bytes, args) {
                        return fail(Failure::new(e));
                    }
                    queue.triggers.push(trigger);
                    false
                }
                State::Idle => {
                    let mut queue = Queue::default();
                    if let Err(e) = encode_command(&mut queue.bytes, args) {
                        return fail(Failure::new(e));
                    }
                    queue.triggers.push(trigger);
                    // Park the queue; `start` decides between now and later.
                    inner.state = State::Connecting { queue, attempt: 0 };
                    true
                }
            }
        };
        if connect_now {
            self.start();
        }
        d
    }

    /// Begins an attempt for the queue parked in `Connecting { attempt: 0 }`
    /// or `Waiting`, now or after the backoff.
    fn start(&self) {
        let weak = Rc::downgrade(&self.inner);
        let mut inner = self.inner.borrow_mut();
        let queue = match mem::replace(&mut inner.state, State::Idle) {
            State::Connecting { queue, .. } | State::Waiting { queue, .. } => queue,
            other => {
                inner.state = other;
                return;
            }
        };
        let now = Instant::now();
        if let Some(at) = inner.not_before.filter(|at| *at > now) {
            let timer = reactor::call_later(at - now, move || {
                if let Some(inner) = weak.upgrade() {
                    Client { inner }.start();
                }
            });
            inner.state = State::Waiting { queue, timer };
            return;
        }
        inner.attempt += 1;
        let attempt = inner.attempt;
        inner.state = State::Connecting { queue, attempt };
        let conn = Connection::new(inner.options.max_reply_size);
        let lost_weak = weak.clone();
        let protocol = RedisProtocol::new(conn.clone(), move || {
            if let Some(inner) = lost_weak.upgrade() {
                Client { inner }.connection_lost(attempt);
            }
        });
        let (host, port) = (inner.info.host().to_string(), inner.info.port());
        let timeout = inner.options.connect_timeout;
        drop(inner);
        let mut d = reactor::connect_protocol(&host, port, protocol);
        if let Some(timeout) = timeout {
            d = d.add_timeout(timeout);
        }
        d.add_both(move |result| {
            if let Some(inner) = weak.upgrade() {
                let client = Client { inner };
                match result {
                    Ok(_transport) => client.connected(attempt, conn),
                    Err(reason) => client.connect_failed(attempt, reason),
                }
            } else if let Ok(transport) = result {
                transport.lose_connection();
            }
        });
    }

    /// The attempt's connection is up: log in, then release the queue.
    fn connected(&self, attempt: u64, conn: Shared) {
        let (password, username, db) = {
            let inner = self.inner.borrow();
            if !matches!(inner.state, State::Connecting { attempt: a, .. } if a == attempt) {
                drop(inner);
                if let Some(transport) = conn.borrow().transport() {
                    transport.lose_connection();
                }
                return;
            }
            let info = &inner.info;
            (
                info.password().map(str::to_string),
                info.username().map(str::to_string),
                info.db(),
            )
        };
        let mut steps: Vec<Deferred<Value>> = Vec::new();
        if let Some(password) = password {
            let mut args = vec!["AUTH".to_string()];
            args.extend(username);
            args.push(password);
            steps.push(handshake_step(&conn, "AUTH", &args));
        }
        if db != 0 {
            steps.push(handshake_step(
                &conn,
                "SELECT",
                &["SELECT".to_string(), db.to_string()],
            ));
        }
        let mut done: Deferred<Value> = succeed(Value::Nil);
        for step in steps {
            done = done.and_then(move |_| step);
        }
        let client = Rc::downgrade(&self.inner);
        done.add_both(move |result| {
            if let Some(inner) = client.upgrade() {
                Client { inner }.logged_in(attempt, conn, result.map(|_| ()));
            }
        });
    }

    fn logged_in(&self, attempt: u64, conn: Shared, result: Result<(), Failure>) {
        let mut inner = self.inner.borrow_mut();
        if !matches!(inner.state, State::Connecting { attempt: a, .. } if a == attempt) {
            drop(inner);
            if let Some(transport) = conn.borrow().transport() {
                transport.lose_connection();
            }
            return;
        }
        let State::Connecting { queue, .. } = mem::replace(&mut inner.state, State::Idle) else {
            return;
        };
        // Closed before the login finished (with nothing to log in, the
        // login succeeds at once, whatever the connection's fate).
        let lost = conn.borrow().lost();
        let result = match (result, lost) {
            (Ok(()), Some(reason)) => Err(reason),
            (result, _) => result,
        };
        match result {
            Ok(()) => {
                inner.failures = 0;
                inner.not_before = None;
                inner.state = State::Ready {
                    conn: conn.clone(),
                    attempt,
                };
                drop(inner);
                connection::send_encoded(&conn, queue.bytes, queue.triggers);
            }
            Err(failure) => {
                inner.backoff();
                // A refused login keeps its Handshake error; a connection
                // lost while logging in is, for the queued commands (never
                // sent), a failure to connect.
                let failure = match failure.downcast_ref::<RedisError>() {
                    Some(RedisError::Handshake { .. }) => failure,
                    _ => Failure::new(RedisError::Connect {
                        server: inner.info.server(),
                        reason: failure,
                    }),
                };
                drop(inner);
                let transport = conn.borrow().transport();
                if let Some(transport) = transport {
                    transport.abort_connection();
                }
                queue.fail_all(&failure);
            }
        }
    }

    fn connect_failed(&self, attempt: u64, reason: Failure) {
        let mut inner = self.inner.borrow_mut();
        if !matches!(inner.state, State::Connecting { attempt: a, .. } if a == attempt) {
            return;
        }
        let State::Connecting { queue, .. } = mem::replace(&mut inner.state, State::Idle) else {
            return;
        };
        inner.backoff();
        let failure = Failure::new(RedisError::Connect {
            server: inner.info.server(),
            reason,
        });
        drop(inner);
        queue.fail_all(&failure);
    }

    /// The protocol of `attempt` lost its connection (called before its
    /// commands in flight errback).
    fn connection_lost(&self, attempt: u64) {
        let mut inner = self.inner.borrow_mut();
        if matches!(inner.state, State::Ready { attempt: a, .. } if a == attempt) {
            inner.state = State::Idle;
            inner.not_before = Some(Instant::now() + inner.options.reconnect_delay);
        }
        // While logging in, the handshake's own errback does the rest.
    }

    /// Commands in flight or queued.
    pub fn pending(&self) -> usize {
        self.inner.borrow().pending()
    }

    /// Whether a connection is up and logged in.
    pub fn connected_now(&self) -> bool {
        matches!(self.inner.borrow().state, State::Ready { .. })
    }

    /// Closes the client (txredisapi's `disconnect`): queued commands errback
    /// with [`RedisError::Closed`], the connection closes once written data is
    /// sent, and commands in flight errback with
    /// [`RedisError::ConnectionLost`]. Later commands errback with
    /// [`RedisError::Closed`].
    pub fn disconnect(&self) {
        let old = mem::replace(&mut self.inner.borrow_mut().state, State::Closed);
        let closed = Failure::new(RedisError::Closed);
        match old {
            State::Waiting { queue, timer } => {
                let _ = timer.cancel();
                queue.fail_all(&closed);
            }
            State::Connecting { queue, .. } => queue.fail_all(&closed),
            State::Ready { conn, .. } => {
                let transport = conn.borrow().transport();
                if let Some(transport) = transport {
                    transport.lose_connection();
                }
            }
            State::Idle | State::Closed => {}
        }
    }
}

/// Sends one `AUTH`/`SELECT` and names it in its failure.
fn handshake_step(conn: &Shared, command: &'static str, args: &[String]) -> Deferred<Value> {
    let (d, trigger) = Deferred::new();
    if let Err((e, trigger)) = connection::send(conn, args, trigger) {
        trigger.errback(Failure::new(e));
    }
    d.or_else(move |failure| {
        let handshake = match failure.downcast_ref::<RedisError>() {
            Some(RedisError::Server { kind, message }) => RedisError::Handshake {
                command,
                kind: kind.clone(),
                message: message.clone(),
            },
            _ => return Err(failure),
        };
        Err(Failure::new(handshake))
    })
}

impl Inner {
    fn pending(&self) -> usize {
        match &self.state {
            State::Waiting { queue, .. } | State::Connecting { queue, .. } => queue.triggers.len(),
            State::Ready { conn, .. } => conn.borrow().in_flight(),
            State::Idle | State::Closed => 0,
        }
    }

    /// One more failure in a row: push the next attempt back.
    fn backoff(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32 << (self.failures - 1).min(16);
        let delay = self
            .options
            .reconnect_delay
            .saturating_mul(factor)
            .min(self.options.max_reconnect_delay);
        self.not_before = Some(Instant::now() + delay);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        match mem::replace(&mut self.state, State::Closed) {
            State::Ready { conn, .. } => {
                let transport = conn.borrow().transport();
                if let Some(transport) = transport {
                    transport.lose_connection();
                }
            }
            State::Waiting { queue, timer } => {
                let _ = timer.cancel();
                queue.fail_all(&Failure::new(RedisError::Closed));
            }
            State::Connecting { queue, .. } => queue.fail_all(&Failure::new(RedisError::Closed)),
            State::Idle | State::Closed => {}
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.borrow();
        let state = match inner.state {
            State::Idle => "idle",
            State::Waiting { .. } => "waiting to reconnect",
            State::Connecting { .. } => "connecting",
            State::Ready { .. } => "connected",
            State::Closed => "closed",
        };
        f.debug_struct("Client")
            .field("server", &inner.info)
            .field("state", &state)
            .field("pending", &inner.pending())
            .finish()
    }
}
