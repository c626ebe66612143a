//! Child processes on the reactor: Twisted's `reactor.spawnProcess`,
//! `ProcessProtocol` and the process transport.
//!
//! [`spawn_process`] starts a program with its stdin, stdout and stderr on
//! non-blocking pipes registered with the reactor. Output goes to the
//! [`ProcessProtocol`] as it arrives; [`ProcessTransport::write`] buffers
//! what the child cannot take yet. Nothing blocks: the child is reaped with
//! `waitpid(WNOHANG)` when a `SIGCHLD` arrives (watched through
//! `signal-hook`, only while this thread has children), or, if that watch
//! cannot be set up, on a short timer with backoff.
//!
//! The protocol hears, in this order: `connection_made` (inside
//! `spawn_process`), then data and the pipes closing as they happen,
//! `process_exited` when the child is reaped, and `process_ended` once the
//! child is reaped **and** its stdout and stderr have both reached end of file
//! (as in Twisted: a grandchild that keeps the pipes open delays it). At that
//! point stdin is closed too (pending input is dropped) and the protocol is
//! dropped, so a protocol that keeps its transport does not leak.
//!
//! | Twisted | twined |
//! |---|---|
//! | `reactor.spawnProcess(proto, exe, args, env, path)` | [`spawn_process(program, args, ProcessOptions { env, cwd }, proto)`](spawn_process) |
//! | `ProcessProtocol.outReceived` / `errReceived` | [`ProcessProtocol::out_received`] / [`err_received`](ProcessProtocol::err_received) |
//! | `inConnectionLost` / `outConnectionLost` / `errConnectionLost` | the same names in snake_case |
//! | `processExited(reason)` / `processEnded(reason)` | [`process_exited(status)`](ProcessProtocol::process_exited) / [`process_ended(status)`](ProcessProtocol::process_ended) with a typed [`ExitStatus`] |
//! | `transport.write` / `closeStdin` / `loseConnection` | [`ProcessTransport::write`], [`close_stdin`](ProcessTransport::close_stdin), [`lose_connection`](ProcessTransport::lose_connection) |
//! | `transport.signalProcess('TERM')` / `transport.pid` | [`signal(Signal::TERM)`](ProcessTransport::signal) / [`pid()`](ProcessTransport::pid) |
//!
//! Differences from Twisted:
//!
//! - `args` does not include `argv[0]` (as with `std::process::Command`).
//! - `env: None` inherits this process's environment; `Some(vars)` is exactly
//!   `vars` (Twisted's default `env={}` is an empty environment).
//! - A program that cannot be started is an error from `spawn_process`
//!   itself ([`ProcessError::Spawn`]), not a child that exits with status 1.
//! - No PTYs and no extra child fds (`usePTY`, `childFDs`).

mod reap;
mod spawn;
mod transport;
mod types;

pub use spawn::spawn_process;
pub use transport::ProcessTransport;
pub use types::{ExitStatus, ProcessError, ProcessOptions, ProcessProtocol, Signal};
