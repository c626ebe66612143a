//! A Redis client on the reactor (the role of Twisted's `txredisapi`):
//! commands return Deferreds, many commands share one pipelined connection,
//! and the connection is made again when it is lost.
//!
//! Behind the `redis` cargo feature (on by default; it adds the
//! `redis-protocol` codec, which parses and writes RESP2, to the build).
//!
//! | txredisapi | twined |
//! |---|---|
//! | `txredisapi.lazyConnection(host, port, dbid, password)` | [`Client::new("redis://:password@host:port/db")`](Client::new) (connects on the first command) |
//! | `yield txredisapi.Connection(...)` | [`Client::connect(url)`](Client::connect) -> `Deferred<Client>` (fires after `AUTH`, `SELECT` and a `PING`) |
//! | `conn.execute_command("XADD", ...)` | [`client.command(["XADD", ...])`](Client::command) -> `Deferred<Value>` |
//! | `conn.ping()`, `sadd`, `sismember`, `lpush`, `brpop` | [`ping`](Client::ping), [`sadd`](Client::sadd), [`sismember`](Client::sismember), [`lpush`](Client::lpush), [`brpop`](Client::brpop) |
//! | streams (`execute_command("XREADGROUP", ...)`) | [`xadd`](Client::xadd), [`xgroup_create`](Client::xgroup_create), [`xreadgroup`](Client::xreadgroup) -> `Vec<StreamEntry>`, [`xack`](Client::xack), [`xautoclaim`](Client::xautoclaim) |
//! | `txredisapi.ResponseError` | [`RedisError::Server { kind, message }`](RedisError::Server) |
//! | `ConnectionError("Not connected")` | [`RedisError::ConnectionLost`], [`RedisError::Connect`] |
//! | `conn.disconnect()` | [`client.disconnect()`](Client::disconnect) |
//!
//! Where it differs from txredisapi on purpose:
//!
//! - A command in flight when the connection drops errbacks; it is never
//!   sent again on the next connection (it may have run: `XADD` twice is two
//!   entries).
//! - Every bound has a default ([`ClientOptions`]): reply size (512 MiB),
//!   commands pending (1,000,000), connect timeout (10 s), reconnect backoff
//!   (100 ms doubling to 10 s); a per-command timeout is opt-in.
//! - A reply that is not RESP2, nests arrays deeper than 32 levels, or
//!   arrives for no command closes the connection with
//!   [`RedisError::Protocol`].
//! - No connection pool and no pub/sub: one client is one connection; give
//!   blocking commands (`BRPOP`, `XREADGROUP ... BLOCK`) a client of their
//!   own. RESP2 only, no TLS, no cluster redirections.
//!
//! ```no_run
//! use std::time::Duration;
//! use twined::redis::Client;
//! use twined::task;
//!
//! let result = task::react_async(|| async {
//!     let client = Client::connect("redis://127.0.0.1:6379/0").await?;
//!     client.xgroup_create("frontier", "crawlers", "0").await?;
//!     client.xadd("frontier", [("url", "https://example.org/")]).await?;
//!     let entries = client
//!         .xreadgroup("crawlers", "worker-1", "frontier", 10, Some(Duration::from_millis(100)))
//!         .await?;
//!     for entry in &entries {
//!         if client.sadd("seen", [entry.field("url").unwrap_or_default()]).await? == 1 {
//!             println!("new: {}", entry.id);
//!         }
//!         client.xack("frontier", "crawlers", [&entry.id]).await?;
//!     }
//!     Ok::<_, twined::defer::Failure>(())
//! });
//! ```

mod client;
mod codec;
mod commands;
mod connection;
mod error;
mod url;
mod value;

pub use client::{Client, ClientOptions};
pub use commands::{AutoClaim, StreamEntry};
pub use error::RedisError;
pub use url::ConnectInfo;
pub use value::{ErrorKind, Value};
