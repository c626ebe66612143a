//! One running child: its pipes, the stdin buffer, the protocol, and the
//! [`ProcessTransport`] handle that controls them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::process::Child;
use std::rc::Rc;

use mio::unix::pipe::{Receiver, Sender};
use mio::Interest;

use super::types::{ExitStatus, ProcessError, ProcessProtocol, Signal};
use crate::defer::report::report_error;
use crate::defer::report::report_warn;
use crate::reactor::sources::{Handler, Ready, SourceKey};
use crate::reactor::{current_reactor, guard};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Pipe {
    In,
    Out,
    Err,
}

/// Who closed a pipe: the reactor (tell the protocol now) or a transport call
/// (tell it on the next iteration: the protocol may be the caller).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Reactor,
    Transport,
}

pub(super) struct Stdin {
    pub(super) sender: Sender,
    pub(super) key: SourceKey,
    /// Bytes the child has not taken yet: `buffer[written..]`.
    pub(super) buffer: Vec<u8>,
    pub(super) written: usize,
    /// Close once the buffer is flushed.
    pub(super) closing: bool,
}

impl Stdin {
    pub(super) fn pending(&self) -> &[u8] {
        &self.buffer[self.written..]
    }

    /// Writes what it can of the buffer; `Err` when the pipe is broken.
    pub(super) fn flush(&mut self) -> io::Result<()> {
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

pub(super) struct Inner {
    pub(super) program: String,
    pub(super) pid: u32,
    pub(super) child: RefCell<Child>,
    pub(super) status: Cell<Option<ExitStatus>>,
    pub(super) stdin: RefCell<Option<Stdin>>,
    pub(super) stdout: RefCell<Option<(Receiver, SourceKey)>>,
    pub(super) stderr: RefCell<Option<(Receiver, SourceKey)>>,
    pub(super) protocol: RefCell<Option<Box<dyn ProcessProtocol>>>,
    /// Notifications queued by transport calls and not delivered yet:
    /// `process_ended` waits for them.
    pub(super) queued: Cell<u32>,
    pub(super) ended: Cell<bool>,
}

/// The handle on a running child (Twisted's process transport). Cheap to
/// clone; all clones control the same process.
#[derive(Clone)]
pub struct ProcessTransport {
    pub(super) inner: Rc<Inner>,
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
    pub(super) fn new(
        program: String,
        child: Child,
        protocol: Option<Box<dyn ProcessProtocol>>,
    ) -> Rc<Inner> {
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

    pub(super) fn output(&self, which: Pipe) -> &RefCell<Option<(Receiver, SourceKey)>> {
        match which {
            Pipe::Err => &self.stderr,
            _ => &self.stdout,
        }
    }

    /// Runs `f` on the protocol now. Only called from the reactor (I/O
    /// events, the reaper, queued calls), never inside a protocol method.
    pub(super) fn deliver(&self, f: impl FnOnce(&mut dyn ProcessProtocol)) {
        match self.protocol.try_borrow_mut() {
            Ok(mut protocol) => {
                if let Some(protocol) = protocol.as_mut() {
                    guard("a process protocol", || f(protocol.as_mut()));
                }
            }
            Err(_) => report_error!(
                "process protocol of `{}` re-entered; an event was dropped",
                self.program
            ),
        }
    }

    pub(super) fn notify(
        self: &Rc<Self>,
        origin: Origin,
        f: impl FnOnce(&mut dyn ProcessProtocol) + 'static,
    ) {
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

    pub(super) fn read_output(self: &Rc<Self>, which: Pipe) {
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

    pub(super) fn close_output(self: &Rc<Self>, which: Pipe, origin: Origin) {
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

    pub(super) fn write(self: &Rc<Self>, data: &[u8]) {
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

    pub(super) fn close_stdin(self: &Rc<Self>) {
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

    pub(super) fn close_stdin_now(self: &Rc<Self>, origin: Origin) {
        let Some(mut stdin) = self.stdin.borrow_mut().take() else {
            return;
        };
        current_reactor().deregister(&mut stdin.sender, stdin.key);
        drop(stdin);
        self.notify(origin, |p| p.in_connection_lost());
    }

    pub(super) fn stdin_ready(self: &Rc<Self>, ready: Ready) {
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
    pub(super) fn exited(self: &Rc<Self>, status: ExitStatus) {
        self.status.set(Some(status));
        self.deliver(|p| p.process_exited(status));
        self.maybe_end();
    }

    /// Delivers `process_ended` once the child is reaped, stdout and stderr
    /// are closed and no notification is still queued.
    pub(super) fn maybe_end(self: &Rc<Self>) {
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
    pub(super) fn try_wait(&self) -> Option<ExitStatus> {
        match self.child.borrow_mut().try_wait() {
            Ok(status) => status.map(ExitStatus::from_std),
            Err(e) => {
                report_warn!(
                    "could not get the exit status of `{}` (pid {}): {e}",
                    self.program,
                    self.pid
                );
                Some(ExitStatus::Unknown)
            }
        }
    }
}

pub(super) struct PipeHandler {
    pub(super) inner: Rc<Inner>,
    pub(super) pipe: Pipe,
}

impl Handler for PipeHandler {
    fn ready(&self, ready: Ready) {
        match self.pipe {
            Pipe::In => self.inner.stdin_ready(ready),
            which => self.inner.read_output(which),
        }
    }
}
