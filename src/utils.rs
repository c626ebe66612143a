//! Run a program and get its output as a Deferred (Twisted's
//! `twisted.internet.utils`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `getProcessOutput(exe, args, env, path)` | [`get_process_output(program, args)`](get_process_output) / [`get_process_output_with`] -> `Deferred<Vec<u8>>` |
//! | `getProcessOutputAndValue(exe, args, env, path)` | [`get_process_output_and_value`] / [`get_process_output_and_value_with`] -> `Deferred<ProcessOutput>` |
//! | `getProcessValue(exe, args, env, path)` | [`get_process_value`] -> `Deferred<ExitStatus>` |
//!
//! All run the program through [`reactor::spawn_process`]
//! with an empty stdin (closed at once), so the reactor must run for them to
//! fire. A program that cannot be started errbacks with
//! [`ProcessError::Spawn`](crate::reactor::ProcessError::Spawn).
//!
//! ```
//! use twined::{reactor, utils};
//!
//! let d = utils::get_process_output("echo", ["hello"]).add_callback(|out| {
//!     reactor::stop().unwrap();
//!     out
//! });
//! reactor::run().unwrap();
//! assert_eq!(d.result().unwrap().unwrap(), b"hello\n");
//! ```

use std::error::Error;
use std::ffi::OsStr;
use std::fmt;

use crate::defer::{self, Deferred, Failure, Trigger};
use crate::reactor::{self, ExitStatus, ProcessOptions, ProcessProtocol, ProcessTransport};

/// Everything a finished process produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// All it wrote to stdout.
    pub stdout: Vec<u8>,
    /// All it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why [`get_process_output`] errbacked although the program ran. Both
/// variants carry the whole output.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutputError {
    /// The program wrote to stderr (whatever its exit status).
    Stderr {
        /// The program, as given.
        program: String,
        /// What it produced.
        output: ProcessOutput,
    },
    /// The program wrote nothing to stderr but did not exit with code 0.
    Failed {
        /// The program, as given.
        program: String,
        /// What it produced.
        output: ProcessOutput,
    },
}

impl OutputError {
    /// What the program produced.
    pub fn output(&self) -> &ProcessOutput {
        match self {
            OutputError::Stderr { output, .. } | OutputError::Failed { output, .. } => output,
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Stderr { program, output } => {
                const SHOWN: usize = 200;
                let text =
                    String::from_utf8_lossy(&output.stderr[..output.stderr.len().min(SHOWN)]);
                let more = if output.stderr.len() > SHOWN {
                    "..."
                } else {
                    ""
                };
                write!(
                    f,
                    "`{program}` wrote to stderr ({}): {}{more}",
                    output.status,
                    text.trim_end()
                )
            }
            OutputError::Failed { program, output } => {
                write!(f, "`{program}` failed: {}", output.status)
            }
        }
    }
}

impl Error for OutputError {}

/// Collects a child's output and fires a Deferred when it ends.
struct Collect {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    trigger: Option<Trigger<ProcessOutput>>,
}

impl ProcessProtocol for Collect {
    fn connection_made(&mut self, transport: ProcessTransport) {
        transport.close_stdin();
    }

    fn out_received(&mut self, data: &[u8]) {
        self.stdout.extend_from_slice(data);
    }

    fn err_received(&mut self, data: &[u8]) {
        self.stderr.extend_from_slice(data);
    }

    fn process_ended(&mut self, status: ExitStatus) {
        if let Some(trigger) = self.trigger.take() {
            trigger.callback(ProcessOutput {
                status,
                stdout: std::mem::take(&mut self.stdout),
                stderr: std::mem::take(&mut self.stderr),
            });
        }
    }
}

/// Runs `program` and fires with everything it produced and how it ended
/// (Twisted's `getProcessOutputAndValue`). It fires whatever the exit status,
/// also when a signal killed the program (Twisted errbacks then); it errbacks
/// only when the program cannot be started.
pub fn get_process_output_and_value<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
) -> Deferred<ProcessOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    get_process_output_and_value_with(program, args, ProcessOptions::default())
}

/// [`get_process_output_and_value`] with an environment and a working
/// directory.
pub fn get_process_output_and_value_with<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: ProcessOptions,
) -> Deferred<ProcessOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (d, trigger) = Deferred::new();
    let collect = Collect {
        stdout: Vec::new(),
        stderr: Vec::new(),
        trigger: Some(trigger),
    };
    match reactor::spawn_process(program, args, options, collect) {
        Ok(_) => d,
        // The protocol (and its trigger) was dropped unfired: hand back the
        // spawn error instead of `TriggerDropped`.
        Err(e) => {
            drop(d.add_errback(|_| ProcessOutput {
                status: ExitStatus::Unknown,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }));
            defer::fail(Failure::new(e))
        }
    }
}

/// Runs `program` and fires with its stdout (Twisted's `getProcessOutput`).
///
/// The rule: it errbacks with [`OutputError::Stderr`] if the program wrote
/// anything to stderr, else with [`OutputError::Failed`] if it did not exit
/// with code 0 (an exit code or a signal), else it fires with stdout. Both
/// errors carry the whole [`ProcessOutput`]. Twisted's version also errbacks
/// on stderr output (and closes the pipes at the first byte of it), but
/// ignores the exit status; use [`get_process_output_and_value`] for that.
pub fn get_process_output<I, S>(program: impl AsRef<OsStr>, args: I) -> Deferred<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    get_process_output_with(program, args, ProcessOptions::default())
}

/// [`get_process_output`] with an environment and a working directory.
pub fn get_process_output_with<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: ProcessOptions,
) -> Deferred<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let name = program.as_ref().to_string_lossy().into_owned();
    get_process_output_and_value_with(program, args, options).and_then(move |output| {
        if !output.stderr.is_empty() {
            Err(Failure::new(OutputError::Stderr {
                program: name,
                output,
            }))
        } else if !output.status.success() {
            Err(Failure::new(OutputError::Failed {
                program: name,
                output,
            }))
        } else {
            Ok(output.stdout)
        }
    })
}

/// Runs `program` and fires with how it ended (Twisted's `getProcessValue`),
/// ignoring its output.
pub fn get_process_value<I, S>(program: impl AsRef<OsStr>, args: I) -> Deferred<ExitStatus>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    get_process_output_and_value(program, args).add_callback(|output| output.status)
}
