//! The vocabulary of child processes: signals, exit statuses, the errors of
//! spawning and signalling, spawn options, and the [`ProcessProtocol`] a
//! child's output goes to.

use std::error::Error;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use super::ProcessTransport;

/// A signal number, for [`ProcessTransport::signal`] and
/// [`ExitStatus::Killed`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub(super) i32);

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

    pub(super) fn from_std(status: std::process::ExitStatus) -> ExitStatus {
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

/// Errors of [`spawn_process`](super::spawn_process) and [`ProcessTransport`].
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
pub(super) fn os_message(e: &io::Error) -> String {
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

/// Options for [`spawn_process`](super::spawn_process).
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
    /// inside [`spawn_process`](super::spawn_process).
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
