//! Starting a child: the command, its non-blocking pipes registered with the
//! reactor, and handing it to the reaper ([`spawn_process`]).

use std::ffi::OsStr;
use std::io;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;

use mio::unix::pipe::{Receiver, Sender};
use mio::Interest;

use super::reap::{adopt, unwatch_if_idle, watch_children};
use super::transport::{Inner, Origin, Pipe, PipeHandler, Stdin};
use super::types::{ProcessError, ProcessOptions, ProcessProtocol};
use super::ProcessTransport;
use crate::reactor::current_reactor;
use crate::reactor::sources::Handler;

pub(super) fn into_pipes(child: &mut Child) -> io::Result<(Sender, Receiver, Receiver)> {
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

pub(super) fn register_pipes(
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

/// A child whose pipes failed: kill it and let the reaper collect it, with a
/// protocol that hears nothing.
pub(super) fn abandon(mut child: Child) {
    let _ = child.kill();
    adopt(Inner::new(String::new(), child, None));
}
