//! The reactor: one event loop per thread, reached through free functions
//! (Twisted's global `reactor`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `reactor.run()` / `stop()` / `crash()` | [`run`], [`stop`], [`crash`] (and [`run_with`] for options) |
//! | `reactor.running`, `reactor.seconds()` | [`running`], [`seconds`] |
//! | `reactor.callLater(d, f, *args)` | [`call_later(Duration, move \|\| f(args))`](call_later) -> [`DelayedCall`] |
//! | `reactor.getDelayedCalls()` | [`get_delayed_calls`] |
//! | `reactor.callWhenRunning(f)` | [`call_when_running`] |
//! | `reactor.addSystemEventTrigger(phase, event, f)` | [`add_system_event_trigger`] / [`remove_system_event_trigger`] |
//! | `reactor.fireSystemEvent('myevent')` | [`fire_system_event(Event::Custom("myevent"))`](fire_system_event) |
//! | `reactor.callFromThread(f)` | [`handle()`](handle)`.call_from_thread(f)` |
//! | `reactor.addReader(obj)` / `addWriter` / `removeReader` / `removeWriter` | [`add_reader(&fd, callback)`](add_reader), [`add_writer`], [`remove_reader`], [`remove_writer`] (any `AsRawFd`; level-triggered) |
//! | `reactor.removeAll()`, `getReaders()`, `getWriters()` | [`remove_all`], [`get_readers`], [`get_writers`] |
//! | `reactor.listenUDP(port, proto)` | [`listen_udp(addr, proto)`](listen_udp) -> [`DatagramTransport`] (a [`DatagramProtocol`] gets `datagram_received(data, addr)`) |
//! | `reactor.listenUNIX(path, factory)` / `connectUNIX(path, factory)` | [`listen_unix(path, factory)`](listen_unix) -> [`UnixPort`] (removes the file on `stop_listening`) / [`connect_unix(path, factory)`](connect_unix) -> `Deferred<Transport>` |
//! | `reactor.spawnProcess(proto, exe, args, env, path)` | [`spawn_process(program, args, ProcessOptions { env, cwd }, protocol)`](spawn_process) -> [`ProcessTransport`] |
//!
//! Differences from Twisted, all deliberate:
//!
//! - Time is monotonic ([`seconds`] counts from the reactor's creation, not the
//!   epoch), and calls due at the same time run in the order they were
//!   scheduled (Twisted issue 6718).
//! - A stopped reactor can be run again (`ReactorNotRestartable` is gone).
//! - [`stop`] before [`run`] is not an error (Twisted raises
//!   `ReactorNotRunning`): the stop is kept, and the next `run` makes one
//!   full pass (startup triggers, due calls, ready I/O) and then shuts down
//!   normally, as asyncio's `loop.stop()` before `run_forever()` does. So a
//!   program whose every Deferred failed before the loop started, and whose
//!   `all_done` callback called `stop()`, still terminates.
//! - A panic in a timed call, a trigger or an I/O callback is logged and the
//!   loop goes on.
//!
//! ```
//! use std::time::Duration;
//! use twined::reactor;
//!
//! reactor::call_later(Duration::from_millis(10), || {
//!     reactor::stop().unwrap();
//! });
//! reactor::run().unwrap();          // returns once stopped; may be run again
//! ```

mod accept;
mod core;
pub mod dns;
mod fds;
mod process;
mod signals;
pub(crate) mod sources;
pub(crate) mod stream;
pub(crate) mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
pub(crate) mod udp;
pub(crate) mod unix;
mod write_buffer;
pub(crate) use write_buffer::DEFAULT_HIGH_WATER;

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

pub use crate::time::{Current, DelayedCall, DelayedCallError, Handle, ReactorTime};
pub use dns::{DnsCache, DnsCacheOptions};
pub use fds::{
    add_reader, add_writer, get_readers, get_writers, remove_all, remove_reader, remove_writer,
    RemovedFds,
};
pub use process::{
    spawn_process, ExitStatus, ProcessError, ProcessOptions, ProcessProtocol, ProcessTransport,
    Signal,
};
pub use tcp::{
    connect_protocol, connect_protocol_with, connect_tcp, connect_tcp_with, listen_tcp,
    CannotListen, ConnectError, ConnectOptions, Connector, Port, DEFAULT_ATTEMPT_DELAY,
};
pub use tcp::{listen_tcp_with, ListenOptions};
#[cfg(feature = "tls")]
pub use tls::{connect_protocol_ssl, connect_ssl, listen_ssl};
pub use udp::{
    listen_udp, listen_udp_with, DatagramError, DatagramProtocol, DatagramTransport, UdpOptions,
};
pub use unix::{
    connect_unix, listen_unix, listen_unix_with, PeerCredentials, UnixError, UnixListenOptions,
    UnixPort,
};

pub(crate) use self::core::{current as current_reactor, guard, Flush};

use crate::defer::Deferred;

/// Errors of the reactor's own operations.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReactorError {
    /// `run()` was called while this thread's reactor was running
    /// (Twisted's `ReactorAlreadyRunning`).
    AlreadyRunning,
    /// `stop()` was called while the reactor was already stopping, or while a
    /// stop asked for before `run()` is still pending (Twisted's
    /// `ReactorNotRunning`).
    NotRunning,
    /// The poller could not be created.
    Io(io::Error),
}

impl fmt::Display for ReactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReactorError::AlreadyRunning => f.write_str("the reactor is already running"),
            ReactorError::NotRunning => {
                f.write_str("the reactor is already stopping (or a stop is already pending)")
            }
            ReactorError::Io(e) => write!(f, "the reactor could not start its poller: {e}"),
        }
    }
}

impl Error for ReactorError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReactorError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// When a system event trigger runs, relative to its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// First; a trigger may return a Deferred that holds the event until it fires.
    Before,
    /// The event itself.
    During,
    /// Last.
    After,
}

/// A system event (Twisted's `'startup'`, `'shutdown'`, or any name given to
/// `addSystemEventTrigger` and `fireSystemEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `run()` starting.
    Startup,
    /// `stop()` (or SIGINT/SIGTERM) shutting the reactor down.
    Shutdown,
    /// An event of the program's own, fired by [`fire_system_event`]
    /// (Twisted's `fireSystemEvent('myevent')`).
    Custom(&'static str),
}

/// Identifies a system event trigger, for [`remove_system_event_trigger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerId(u64);

/// Options for [`run_with`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop cleanly on SIGINT and SIGTERM while running (default `true`;
    /// Twisted's `installSignalHandlers`).
    pub install_signal_handlers: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            install_signal_handlers: true,
        }
    }
}

/// What a system event trigger may return: nothing, or a Deferred that holds a
/// "before" phase until it fires.
pub trait TriggerResult {
    /// The Deferred to wait for, if any.
    fn into_wait(self) -> Option<Deferred<()>>;
}

impl TriggerResult for () {
    fn into_wait(self) -> Option<Deferred<()>> {
        None
    }
}

impl<T: 'static> TriggerResult for Deferred<T> {
    fn into_wait(self) -> Option<Deferred<()>> {
        Some(self.add_callback(|_| ()))
    }
}

impl<T: 'static> TriggerResult for Option<Deferred<T>> {
    fn into_wait(self) -> Option<Deferred<()>> {
        self.map(|d| d.add_callback(|_| ()))
    }
}

/// Runs this thread's reactor until [`stop`] (then the shutdown triggers run)
/// or [`crash`]. SIGINT and SIGTERM stop it cleanly. A stopped reactor may be
/// run again.
pub fn run() -> Result<(), ReactorError> {
    run_with(RunOptions::default())
}

/// [`run`] with options.
pub fn run_with(options: RunOptions) -> Result<(), ReactorError> {
    current_reactor().run(options)
}

/// Asks the reactor to stop. The shutdown triggers run after `stop` returns,
/// then [`run`] returns.
///
/// Called while the reactor is not running, `stop` returns `Ok(())` and the
/// stop is kept for the next [`run`], which makes one full pass (startup
/// triggers, calls already due, ready I/O) and then shuts down normally
/// (asyncio's `loop.stop()` before `run_forever()`; Twisted raises
/// `ReactorNotRunning` instead, and the program would hang in `run()`).
/// `Err(`[`ReactorError::NotRunning`]`)` when the reactor is already stopping
/// or a stop is already pending.
///
/// A kept stop waits for the next `run` on this thread, however late. Code
/// that stops the reactor from a callback that may run before `run()`, and
/// then skips `run()` because the work is already done, should check
/// [`running`] first, or the stop will end its next run after one pass.
///
/// ```
/// use twined::defer::{self, DeferredList};
/// use twined::reactor;
///
/// // Every Deferred has failed before the loop starts: all_done runs now.
/// let ds = vec![defer::fail::<u32>(defer::CancelledError)];
/// DeferredList::new(ds).add_both(|_| reactor::stop().unwrap());
/// reactor::run().unwrap(); // one pass, then returns
/// ```
pub fn stop() -> Result<(), ReactorError> {
    current_reactor().stop()
}

/// Stops the loop at once, without running the shutdown triggers.
pub fn crash() {
    current_reactor().crash();
}

/// Whether the reactor is running (from the "during startup" phase until the
/// loop exits).
pub fn running() -> bool {
    current_reactor().running()
}

/// Seconds on the reactor's monotonic clock (since the reactor was created).
pub fn seconds() -> f64 {
    current_reactor().timers.now().as_secs_f64()
}

/// Runs `f` once, `delay` from now, on the reactor thread.
pub fn call_later(delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
    current_reactor().timers.call_later(delay, Box::new(f))
}

/// The pending timed calls, earliest first.
pub fn get_delayed_calls() -> Vec<DelayedCall> {
    current_reactor().timers.pending()
}

/// Runs `f` when the reactor is running: now if it is, else once it starts.
pub fn call_when_running(f: impl FnOnce() + 'static) {
    let reactor = current_reactor();
    if reactor.running() {
        f();
    } else {
        reactor.add_trigger(
            Phase::After,
            Event::Startup,
            Box::new(move || {
                f();
                None
            }),
        );
    }
}

/// Adds a trigger for `event` in `phase` (Twisted's `addSystemEventTrigger`).
/// A trigger runs once. A "before" trigger may return a Deferred; the event
/// waits for it.
///
/// ```
/// use twined::reactor::{self, Event, Phase};
///
/// reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, || {
///     println!("cleaning up");
/// });
/// reactor::call_when_running(|| reactor::stop().unwrap());
/// reactor::run().unwrap();
/// ```
pub fn add_system_event_trigger<R: TriggerResult>(
    phase: Phase,
    event: Event,
    f: impl FnOnce() -> R + 'static,
) -> TriggerId {
    current_reactor().add_trigger(phase, event, Box::new(move || f().into_wait()))
}

/// Fires `event`'s triggers now, in three phases (Twisted's
/// `reactor.fireSystemEvent(name)`): the "before" triggers one at a time,
/// then, once every Deferred they returned has fired, the "during" and
/// "after" triggers. Each trigger runs once; a panicking or failing trigger is
/// reported and the others still run. The returned Deferred fires when the
/// "after" phase is done.
///
/// Meant for [`Event::Custom`] events. Firing [`Event::Startup`] or
/// [`Event::Shutdown`] this way only runs their triggers; it does not start
/// or stop the reactor (use [`run`] and [`stop`]).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twined::reactor::{self, Event, Phase};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for (phase, name) in [(Phase::After, "after"), (Phase::Before, "before"), (Phase::During, "during")] {
///     let log = log.clone();
///     reactor::add_system_event_trigger(phase, Event::Custom("reload"), move || {
///         log.borrow_mut().push(name)
///     });
/// }
/// let done = reactor::fire_system_event(Event::Custom("reload"));
/// assert_eq!(*log.borrow(), ["before", "during", "after"]);
/// assert!(done.called());
/// ```
pub fn fire_system_event(event: Event) -> Deferred<()> {
    let (d, trigger) = Deferred::new();
    current_reactor().fire_system_event(event, Box::new(move || trigger.callback(())));
    d
}

/// Removes a trigger that has not run yet; returns whether it was there.
pub fn remove_system_event_trigger(id: TriggerId) -> bool {
    current_reactor().remove_trigger(id)
}

/// A `Send + Clone` handle on this thread's reactor for other threads.
pub fn handle() -> Handle {
    Handle {
        inbox: current_reactor().remote.clone(),
    }
}

/// How many I/O sources are registered with this thread's reactor.
pub fn source_count() -> usize {
    current_reactor().source_count()
}
