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

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use mio::unix::pipe::{Receiver, Sender};
use mio::Interest;
use signal_hook::consts::SIGCHLD;
use signal_hook_mio::v1_0::Signals;

use super::sources::{Handler, Ready, SourceKey};
use super::{current_reactor, guard};

/// A signal number, for [`ProcessTransport::signal`] and
/// [`ExitStatus::Killed`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// `SIGHUP`.
    pub const HUP: Signal = Signal(signal_hook::consts::SIGHUP);
    /// `SIGINT`.
    pub const INT: Signal = Signal(signal_hook::consts::SIGINT);
    /// `SIGQUIT`.
    pub const QUIT: Signal = Signal(signal_hook::consts::SIGQUIT);
    /// `SIGKILL`.
    pub const KILL: Signal = Signal(signal_hook::consts::SIGKILL);
    /// `SIGTERM`.
    pub const TERM: Signal = Signal(signal_hook::consts::SIGTERM);
    /// `SIGUSR1`.
    pub const USR1: Signal = Signal(signal_hook::consts::SIGUSR1);
    /// `SIGUSR2`.
    pub const USR2: Signal = Signal(signal_hook::consts::SIGUSR2);

    /// The signal with this number (not checked: sending an unknown one fails).
    pub const fn from_raw(number: i32) -> Signal {
        Signal(number)
    }

    /// The signal's number.
    pub const fn number(self) -> i32 {
        self.0
    }

    /// Its name, like `"SIGKILL"`, if it has a well-known one.
    pub fn name(self) -> Option<&'static str> {
        signal_hook::low_level::signal_name(self.0)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// How a child process ended (Twisted's `ProcessDone` / `ProcessTerminated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code (0 is success).
    Exited(i32),
    /// A signal killed it.
    Killed(Signal),
    /// Its status was lost: something else in the program reaped it first
    /// (a `waitpid(-1)` elsewhere).
    Unknown,
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            _ => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Killed(signal) => Some(signal),
            _ => None,
        }
    }

    fn from_std(status: std::process::ExitStatus) -> ExitStatus {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, Some(signal)) => ExitStatus::Killed(Signal(signal)),
            // waitpid without WUNTRACED reports only exits and kills.
            (None, None) => ExitStatus::Unknown,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Killed(signal) => write!(f, "killed by signal {signal}"),
            ExitStatus::Unknown => f.write_str("unknown exit status (reaped elsewhere)"),
        }
    }
}

/// Errors of [`spawn_process`] and [`ProcessTransport`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program could not be started (not found, not executable, bad
    /// working directory...).
    Spawn {
        /// The program, as given.
        program: String,
        /// The working directory asked for, if any.
        cwd: Option<PathBuf>,
        /// Why.
        source: io::Error,
    },
    /// The child started but its pipes could not be set up; it was killed.
    Pipes {
        /// The program, as given.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// A signal was sent to a process that has already been reaped (Twisted's
    /// `ProcessExitedAlready`).
    AlreadyExited {
        /// Its pid when it ran.
        pid: u32,
    },
    /// `kill(2)` failed.
    Signal {
        /// The process.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// Why.
        source: io::Error,
    },
}

/// `io::Error`'s message without its " (os error N)" suffix.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Spawn {
                program,
                cwd: None,
                source,
            } => write!(f, "could not start `{program}`: {}", os_message(source)),
            ProcessError::Spawn {
                program,
                cwd: Some(cwd),
                source,
            } => write!(
                f,
                "could not start `{program}` in `{}`: {}",
                cwd.display(),
                os_message(source)
            ),
            ProcessError::Pipes { program, source } => write!(
                f,
                "could not set up the pipes of `{program}`: {}",
                os_message(source)
            ),
            ProcessError::AlreadyExited { pid } => {
                write!(f, "process {pid} has already exited")
            }
            ProcessError::Signal {
                pid,
                signal,
                source,
            } => write!(
                f,
                "could not send signal {signal} to process {pid}: {}",
                os_message(source)
            ),
        }
    }
}

impl Error for ProcessError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ProcessError::Spawn { source, .. }
            | ProcessError::Pipes { source, .. }
            | ProcessError::Signal { source, .. } => Some(source),
            ProcessError::AlreadyExited { .. } => None,
        }
    }
}

/// Options for [`spawn_process`].
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// The child's whole environment; `None` (the default) inherits this
    /// process's.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// The child's working directory; `None` (the default) is this process's.
    pub cwd: Option<PathBuf>,
}

/// What hears about a child process (Twisted's `ProcessProtocol`). Every
/// method has an empty default; all run on the reactor thread.
///
/// Methods are never called from inside a [`ProcessTransport`] method: what
/// a transport call causes (closing stdin, say) is reported on a later
/// iteration.
pub trait ProcessProtocol: 'static {
    /// The process started; `transport` writes to it and signals it. Called
    /// inside [`spawn_process`].
    fn connection_made(&mut self, transport: ProcessTransport) {
        let _ = transport;
    }

    /// Bytes from the child's stdout.
    fn out_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// Bytes from the child's stderr.
    fn err_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// Our end of the child's stdin is closed.
    fn in_connection_lost(&mut self) {}

    /// The child's stdout reached end of file (or was closed).
    fn out_connection_lost(&mut self) {}

    /// The child's stderr reached end of file (or was closed).
    fn err_connection_lost(&mut self) {}

    /// The child was reaped; its pipes may still be open.
    fn process_exited(&mut self, status: ExitStatus) {
        let _ = status;
    }

    /// The child was reaped and all its pipes are closed: the last call.
    fn process_ended(&mut self, status: ExitStatus) {
        let _ = status;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pipe {
    In,
    Out,
    Err,
}

/// Who closed a pipe: the reactor (tell the protocol now) or a transport call
/// (tell it on the next iteration: the protocol may be the caller).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Reactor,
    Transport,
}

struct Stdin {
    sender: Sender,
    key: SourceKey,
    /// Bytes the child has not taken yet: `buffer[written..]`.
    buffer: Vec<u8>,
    written: usize,
    /// Close once the buffer is flushed.
    closing: bool,
}

impl Stdin {
    fn pending(&self) -> &[u8] {
        &self.buffer[self.written..]
    }

    /// Writes what it can of the buffer; `Err` when the pipe is broken.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.buffer.len() {
            match (&self.sender).write(&self.buffer[self.written..]) {
                Ok(0) => break,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.buffer.len() {
            self.buffer.clear();
            self.written = 0;
        } else if self.written > self.buffer.len() / 2 {
            self.buffer.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }
}

struct Inner {
    program: String,
    pid: u32,
    child: RefCell<Child>,
    status: Cell<Option<ExitStatus>>,
    stdin: RefCell<Option<Stdin>>,
    stdout: RefCell<Option<(Receiver, SourceKey)>>,
    stderr: RefCell<Option<(Receiver, SourceKey)>>,
    protocol: RefCell<Option<Box<dyn ProcessProtocol>>>,
    /// Notifications queued by transport calls and not delivered yet:
    /// `process_ended` waits for them.
    queued: Cell<u32>,
    ended: Cell<bool>,
}

/// The handle on a running child (Twisted's process transport). Cheap to
/// clone; all clones control the same process.
#[derive(Clone)]
pub struct ProcessTransport {
    inner: Rc<Inner>,
}

impl fmt::Debug for ProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessTransport")
            .field("program", &self.inner.program)
            .field("pid", &self.inner.pid)
            .field("status", &self.inner.status.get())
            .finish()
    }
}

impl ProcessTransport {
    /// The child's pid while it runs; `None` once it has been reaped (as
    /// Twisted sets `transport.pid` to `None`).
    pub fn pid(&self) -> Option<u32> {
        match self.inner.status.get() {
            None => Some(self.inner.pid),
            Some(_) => None,
        }
    }

    /// How the child ended, once it has been reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.inner.status.get()
    }

    /// Writes `data` to the child's stdin, buffering what the pipe cannot
    /// take now; it is written as the child reads. Data written after
    /// [`close_stdin`](Self::close_stdin), or once the child closed its stdin,
    /// is dropped (as Twisted drops writes to a closed transport).
    pub fn write(&self, data: &[u8]) {
        self.inner.write(data);
    }

    /// How many bytes written to stdin the child has not taken yet.
    pub fn stdin_buffered(&self) -> usize {
        self.inner
            .stdin
            .borrow()
            .as_ref()
            .map_or(0, |stdin| stdin.pending().len())
    }

    /// Closes the child's stdin once what was written is flushed (Twisted's
    /// `closeStdin`): the child reads end of file.
    pub fn close_stdin(&self) {
        self.inner.close_stdin();
    }

    /// Closes stdin (after flushing) and stops reading stdout and stderr
    /// (Twisted's `loseConnection`). A child that writes more then gets
    /// `SIGPIPE`.
    pub fn lose_connection(&self) {
        self.inner.close_stdin();
        self.inner.close_output(Pipe::Out, Origin::Transport);
        self.inner.close_output(Pipe::Err, Origin::Transport);
    }

    /// Sends `signal` to the child (Twisted's `signalProcess`). An error once
    /// it has been reaped.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        let pid = self.inner.pid;
        if self.inner.status.get().is_some() {
            return Err(ProcessError::AlreadyExited { pid });
        }
        let fail = |source: io::Error| ProcessError::Signal {
            pid,
            signal,
            source,
        };
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| fail(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let number = rustix::process::Signal::from_named_raw(signal.0).ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a signal this platform knows",
            ))
        })?;
        rustix::process::kill_process(target, number).map_err(|e| fail(e.into()))
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal(Signal::KILL)
    }
}

impl Inner {
    fn new(program: String, child: Child, protocol: Option<Box<dyn ProcessProtocol>>) -> Rc<Inner> {
        Rc::new(Inner {
            program,
            pid: child.id(),
            child: RefCell::new(child),
            status: Cell::new(None),
            stdin: RefCell::new(None),
            stdout: RefCell::new(None),
            stderr: RefCell::new(None),
            protocol: RefCell::new(protocol),
            queued: Cell::new(0),
            ended: Cell::new(false),
        })
    }

    fn output(&self, which: Pipe) -> &RefCell<Option<(Receiver, SourceKey)>> {
        match which {
            Pipe::Err => &self.stderr,
            _ => &self.stdout,
        }
    }

    /// Runs `f` on the protocol now. Only called from the reactor (I/O
    /// events, the reaper, queued calls), never inside a protocol method.
    fn deliver(&self, f: impl FnOnce(&mut dyn ProcessProtocol)) {
        match self.protocol.try_borrow_mut() {
            Ok(mut protocol) => {
                if let Some(protocol) = protocol.as_mut() {
                    guard("a process protocol", || f(protocol.as_mut()));
                }
            }
            Err(_) => log::error!(
                "process protocol of `{}` re-entered; an event was dropped",
                self.program
            ),
        }
    }

    fn notify(self: &Rc<Self>, origin: Origin, f: impl FnOnce(&mut dyn ProcessProtocol) + 'static) {
        match origin {
            Origin::Reactor => self.deliver(f),
            Origin::Transport => {
                self.queued.set(self.queued.get() + 1);
                let me = self.clone();
                current_reactor().call_soon(Box::new(move || {
                    me.deliver(f);
                    me.queued.set(me.queued.get() - 1);
                    me.maybe_end();
                }));
            }
        }
    }

    fn read_output(self: &Rc<Self>, which: Pipe) {
        let mut buf = [0u8; 16 * 1024];
        // Bounded, so one chatty child cannot starve the loop; the pipe is
        // re-armed below if it may hold more.
        for _ in 0..32 {
            let result = {
                let pipe = self.output(which).borrow();
                let Some((receiver, _)) = pipe.as_ref() else {
                    return;
                };
                let mut receiver: &Receiver = receiver;
                receiver.read(&mut buf)
            };
            match result {
                Ok(0) => {
                    self.close_output(which, Origin::Reactor);
                    self.maybe_end();
                    return;
                }
                Ok(n) => {
                    let data = &buf[..n];
                    self.deliver(|p| match which {
                        Pipe::Err => p.err_received(data),
                        _ => p.out_received(data),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("reading from `{}` failed: {e}", self.program);
                    self.close_output(which, Origin::Reactor);
                    self.maybe_end();
                    return;
                }
            }
        }
        let mut pipe = self.output(which).borrow_mut();
        if let Some((receiver, key)) = pipe.as_mut() {
            if let Err(e) = current_reactor().reregister(receiver, *key, Interest::READABLE) {
                log::debug!("could not re-arm a pipe of `{}`: {e}", self.program);
            }
        }
    }

    fn close_output(self: &Rc<Self>, which: Pipe, origin: Origin) {
        let Some((mut receiver, key)) = self.output(which).borrow_mut().take() else {
            return;
        };
        current_reactor().deregister(&mut receiver, key);
        drop(receiver);
        self.notify(origin, move |p| match which {
            Pipe::Err => p.err_connection_lost(),
            _ => p.out_connection_lost(),
        });
    }

    fn write(self: &Rc<Self>, data: &[u8]) {
        let broken = {
            let mut stdin = self.stdin.borrow_mut();
            let Some(stdin) = stdin.as_mut().filter(|s| !s.closing) else {
                log::debug!(
                    "dropped {} bytes written to the closed stdin of `{}`",
                    data.len(),
                    self.program
                );
                return;
            };
            let was_empty = stdin.pending().is_empty();
            stdin.buffer.extend_from_slice(data);
            // With bytes already waiting, the writable event flushes them in order.
            was_empty && stdin.flush().is_err()
        };
        if broken {
            self.close_stdin_now(Origin::Transport);
        }
    }

    fn close_stdin(self: &Rc<Self>) {
        let now = match self.stdin.borrow_mut().as_mut() {
            None => false,
            Some(stdin) if stdin.pending().is_empty() => true,
            Some(stdin) => {
                stdin.closing = true;
                false
            }
        };
        if now {
            self.close_stdin_now(Origin::Transport);
        }
    }

    fn close_stdin_now(self: &Rc<Self>, origin: Origin) {
        let Some(mut stdin) = self.stdin.borrow_mut().take() else {
            return;
        };
        current_reactor().deregister(&mut stdin.sender, stdin.key);
        drop(stdin);
        self.notify(origin, |p| p.in_connection_lost());
    }

    fn stdin_ready(self: &Rc<Self>, ready: Ready) {
        let close = if ready.error || ready.write_closed {
            true
        } else {
            match self.stdin.borrow_mut().as_mut() {
                None => false,
                Some(stdin) => {
                    stdin.flush().is_err() || (stdin.closing && stdin.pending().is_empty())
                }
            }
        };
        if close {
            self.close_stdin_now(Origin::Reactor);
        }
    }

    /// The reaper found the child gone.
    fn exited(self: &Rc<Self>, status: ExitStatus) {
        self.status.set(Some(status));
        self.deliver(|p| p.process_exited(status));
        self.maybe_end();
    }

    /// Delivers `process_ended` once the child is reaped, stdout and stderr
    /// are closed and no notification is still queued.
    fn maybe_end(self: &Rc<Self>) {
        let Some(status) = self.status.get() else {
            return;
        };
        if self.ended.get()
            || self.queued.get() > 0
            || self.stdout.borrow().is_some()
            || self.stderr.borrow().is_some()
        {
            return;
        }
        self.ended.set(true);
        self.close_stdin_now(Origin::Reactor);
        self.deliver(|p| p.process_ended(status));
        // The last call: drop the protocol (outside the borrow), which breaks
        // the cycle of a protocol that keeps its transport.
        let protocol = self.protocol.borrow_mut().take();
        drop(protocol);
    }

    /// `waitpid(WNOHANG)`: the status if the child has exited.
    fn try_wait(&self) -> Option<ExitStatus> {
        match self.child.borrow_mut().try_wait() {
            Ok(status) => status.map(ExitStatus::from_std),
            Err(e) => {
                log::warn!(
                    "could not get the exit status of `{}` (pid {}): {e}",
                    self.program,
                    self.pid
                );
                Some(ExitStatus::Unknown)
            }
        }
    }
}

struct PipeHandler {
    inner: Rc<Inner>,
    pipe: Pipe,
}

impl Handler for PipeHandler {
    fn ready(&self, ready: Ready) {
        match self.pipe {
            Pipe::In => self.inner.stdin_ready(ready),
            which => self.inner.read_output(which),
        }
    }
}

/// This thread's children, and the `SIGCHLD` watch that says when to look.
#[derive(Default)]
struct Reaper {
    children: Vec<Rc<Inner>>,
    watch: Option<(Signals, SourceKey)>,
    /// The fallback: poll on a timer (when the watch could not be set up).
    polling: bool,
    poll_interval: Duration,
}

impl Reaper {
    /// Drops the `SIGCHLD` watch when no child is left to watch (so the
    /// reactor's source count goes back to where it was).
    fn unwatch_if_idle(&mut self) {
        if self.children.is_empty() {
            if let Some((mut signals, key)) = self.watch.take() {
                current_reactor().deregister(&mut signals, key);
            }
        }
    }
}

fn unwatch_if_idle() {
    let _ = REAPER.try_with(|reaper| reaper.borrow_mut().unwatch_if_idle());
}

thread_local! {
    static REAPER: RefCell<Reaper> = RefCell::new(Reaper::default());
}

const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(200);

struct SigchldHandler;

impl Handler for SigchldHandler {
    fn ready(&self, _ready: Ready) {
        reap();
    }
}

/// Makes sure something will notice this thread's children exiting: the
/// `SIGCHLD` watch, or else the polling timer. Called before each spawn, so a
/// child that exits at once is not missed.
fn watch_children() {
    let start_polling = REAPER
        .try_with(|reaper| {
            let mut reaper = reaper.borrow_mut();
            if reaper.watch.is_some() {
                return false;
            }
            #[cfg(test)]
            if tests::FORCE_POLLING.with(Cell::get) {
                reaper.poll_interval = FIRST_POLL;
                return !std::mem::replace(&mut reaper.polling, true);
            }
            let watched = Signals::new([SIGCHLD]).and_then(|mut signals| {
                let key = current_reactor().register(
                    &mut signals,
                    Interest::READABLE,
                    Rc::new(SigchldHandler),
                )?;
                Ok((signals, key))
            });
            match watched {
                Ok(watch) => {
                    reaper.watch = Some(watch);
                    false
                }
                Err(e) => {
                    log::warn!("cannot watch SIGCHLD ({e}); polling for exited children");
                    reaper.poll_interval = FIRST_POLL;
                    !std::mem::replace(&mut reaper.polling, true)
                }
            }
        })
        .unwrap_or(false);
    if start_polling {
        schedule_poll(FIRST_POLL);
    }
}

fn schedule_poll(delay: Duration) {
    super::call_later(delay, || {
        reap();
        let next = REAPER
            .try_with(|reaper| {
                let mut reaper = reaper.borrow_mut();
                if reaper.children.is_empty() {
                    reaper.polling = false;
                    return None;
                }
                reaper.poll_interval = (reaper.poll_interval * 2).min(MAX_POLL);
                Some(reaper.poll_interval)
            })
            .ok()
            .flatten();
        if let Some(delay) = next {
            schedule_poll(delay);
        }
    });
}

/// Reaps every exited child of this thread and tells their protocols.
fn reap() {
    let exited = REAPER
        .try_with(|reaper| {
            let mut reaper = reaper.borrow_mut();
            if let Some((signals, _)) = reaper.watch.as_mut() {
                // Drain the self-pipe (edge-triggered). Signals coalesce, so
                // every child is checked whatever the count.
                for _ in signals.pending() {}
            }
            let mut exited = Vec::new();
            reaper.children.retain(|child| match child.try_wait() {
                Some(status) => {
                    exited.push((child.clone(), status));
                    false
                }
                None => true,
            });
            reaper.unwatch_if_idle();
            exited
        })
        .unwrap_or_default();
    for (child, status) in exited {
        child.exited(status);
    }
}

fn into_pipes(child: &mut Child) -> io::Result<(Sender, Receiver, Receiver)> {
    let missing = || io::Error::other("a standard stream was not piped");
    let stdin = Sender::from(child.stdin.take().ok_or_else(missing)?);
    let stdout = Receiver::from(child.stdout.take().ok_or_else(missing)?);
    let stderr = Receiver::from(child.stderr.take().ok_or_else(missing)?);
    stdin.set_nonblocking(true)?;
    stdout.set_nonblocking(true)?;
    stderr.set_nonblocking(true)?;
    Ok((stdin, stdout, stderr))
}

/// Starts `program` with `args` (not including `argv[0]`; the program is
/// looked up on `PATH`) on non-blocking pipes watched by this thread's reactor
/// (Twisted's `reactor.spawnProcess`). `protocol.connection_made` is called
/// before this returns; the rest arrives while the reactor runs.
///
/// An error if the program cannot be started: "could not start `nosuchprog`:
/// No such file or directory".
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use twined::reactor::{self, ExitStatus, ProcessOptions, ProcessProtocol};
///
/// struct Collect(Rc<RefCell<(Vec<u8>, Option<ExitStatus>)>>);
///
/// impl ProcessProtocol for Collect {
///     fn out_received(&mut self, data: &[u8]) {
///         self.0.borrow_mut().0.extend_from_slice(data);
///     }
///     fn process_ended(&mut self, status: ExitStatus) {
///         self.0.borrow_mut().1 = Some(status);
///         reactor::stop().unwrap();
///     }
/// }
///
/// let seen = Rc::new(RefCell::new((Vec::new(), None)));
/// reactor::spawn_process("echo", ["hi"], ProcessOptions::default(), Collect(seen.clone()))
///     .unwrap();
/// reactor::run().unwrap();
/// assert_eq!(seen.borrow().0, b"hi\n");
/// assert_eq!(seen.borrow().1, Some(ExitStatus::Exited(0)));
/// ```
pub fn spawn_process<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: ProcessOptions,
    protocol: impl ProcessProtocol,
) -> Result<ProcessTransport, ProcessError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let name = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(env) = options.env {
        command.env_clear().envs(env);
    }
    if let Some(cwd) = &options.cwd {
        command.current_dir(cwd);
    }
    watch_children();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(source) => {
            unwatch_if_idle();
            return Err(ProcessError::Spawn {
                program: name,
                cwd: options.cwd,
                source,
            });
        }
    };
    let (stdin, stdout, stderr) = match into_pipes(&mut child) {
        Ok(pipes) => pipes,
        Err(source) => {
            abandon(child);
            return Err(ProcessError::Pipes {
                program: name,
                source,
            });
        }
    };
    let inner = Inner::new(name, child, Some(Box::new(protocol)));
    if let Err(source) = register_pipes(&inner, stdin, stdout, stderr) {
        // The protocol never hears of this child: drop it first, so closing
        // the pipes tells it nothing.
        let protocol = inner.protocol.borrow_mut().take();
        drop(protocol);
        inner.close_output(Pipe::Out, Origin::Reactor);
        inner.close_output(Pipe::Err, Origin::Reactor);
        if let Some(mut stdin) = inner.stdin.borrow_mut().take() {
            current_reactor().deregister(&mut stdin.sender, stdin.key);
        }
        let _ = inner.child.borrow_mut().kill();
        let program = inner.program.clone();
        adopt(inner);
        return Err(ProcessError::Pipes { program, source });
    }
    adopt(inner.clone());
    let transport = ProcessTransport { inner };
    let handed = transport.clone();
    transport.inner.deliver(move |p| p.connection_made(handed));
    Ok(transport)
}

fn register_pipes(
    inner: &Rc<Inner>,
    mut stdin: Sender,
    mut stdout: Receiver,
    mut stderr: Receiver,
) -> io::Result<()> {
    let reactor = current_reactor();
    let handler = |pipe| -> Rc<dyn Handler> {
        Rc::new(PipeHandler {
            inner: inner.clone(),
            pipe,
        })
    };
    let key = reactor.register(&mut stdout, Interest::READABLE, handler(Pipe::Out))?;
    *inner.stdout.borrow_mut() = Some((stdout, key));
    let key = reactor.register(&mut stderr, Interest::READABLE, handler(Pipe::Err))?;
    *inner.stderr.borrow_mut() = Some((stderr, key));
    // Registered for writability from the start: the error event when the
    // child closes its stdin arrives whatever we have to write.
    let key = reactor.register(&mut stdin, Interest::WRITABLE, handler(Pipe::In))?;
    *inner.stdin.borrow_mut() = Some(Stdin {
        sender: stdin,
        key,
        buffer: Vec::new(),
        written: 0,
        closing: false,
    });
    Ok(())
}

/// Hands a child to the reaper.
fn adopt(inner: Rc<Inner>) {
    let _ = REAPER.try_with(|reaper| reaper.borrow_mut().children.push(inner));
}

/// A child whose pipes failed: kill it and let the reaper collect it, with a
/// protocol that hears nothing.
fn abandon(mut child: Child) {
    let _ = child.kill();
    adopt(Inner::new(String::new(), child, None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor;

    thread_local! {
        /// Use the polling fallback instead of the SIGCHLD watch.
        pub(super) static FORCE_POLLING: Cell<bool> = const { Cell::new(false) };
    }

    struct Ends(Rc<Cell<Option<ExitStatus>>>, Rc<RefCell<Vec<u8>>>);

    impl ProcessProtocol for Ends {
        fn connection_made(&mut self, transport: ProcessTransport) {
            transport.write(b"through stdin");
            transport.close_stdin();
        }
        fn out_received(&mut self, data: &[u8]) {
            self.1.borrow_mut().extend_from_slice(data);
        }
        fn process_ended(&mut self, status: ExitStatus) {
            self.0.set(Some(status));
            if REAPER.with(|r| r.borrow().children.is_empty()) {
                let _ = reactor::stop();
            }
        }
    }

    #[test]
    fn the_polling_fallback_reaps_children_too() {
        FORCE_POLLING.with(|f| f.set(true));
        let start = reactor::source_count();
        let results: Vec<_> = (0..3)
            .map(|i| {
                let status = Rc::new(Cell::new(None));
                let out = Rc::new(RefCell::new(Vec::new()));
                let script = format!("cat; exit {i}");
                spawn_process(
                    "sh",
                    ["-c", script.as_str()],
                    ProcessOptions::default(),
                    Ends(status.clone(), out.clone()),
                )
                .unwrap();
                (status, out)
            })
            .collect();
        let watchdog = reactor::call_later(Duration::from_secs(20), || {
            let _ = reactor::stop();
        });
        reactor::run().unwrap();
        let _ = watchdog.cancel();
        for (i, (status, out)) in results.iter().enumerate() {
            assert_eq!(status.get(), Some(ExitStatus::Exited(i as i32)));
            assert_eq!(*out.borrow(), b"through stdin");
        }
        assert!(REAPER.with(|r| r.borrow().watch.is_none() && !r.borrow().polling));
        assert_eq!(reactor::source_count(), start);
        FORCE_POLLING.with(|f| f.set(false));
    }
}
