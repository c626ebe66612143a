//! `react`: run the reactor for the lifetime of one Deferred (Twisted's
//! `task.react`), and the exit-code mapping for command-line programs.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::fmt;
use std::rc::Rc;

use crate::defer::{maybe_deferred, Failure, Outcome};
use crate::reactor::{self, Event, Phase, ReactorError, TriggerId};

/// Fail `main`'s Deferred with this to choose the process exit code
/// (Twisted's `SystemExit(code)`); see [`exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemExit(pub u8);

impl fmt::Display for SystemExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit with status {}", self.0)
    }
}

impl Error for SystemExit {}

/// The reactor stopped (someone else called [`reactor::stop`], or SIGINT or
/// SIGTERM arrived) before `main`'s Deferred fired; [`react`] cancels that
/// Deferred and returns this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReactorStopped;

impl fmt::Display for ReactorStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor stopped before main's Deferred fired")
    }
}

impl Error for ReactorStopped {}

/// Calls `main`, runs the reactor until the Deferred it returns fires, stops
/// the reactor and returns that Deferred's result (Twisted's `task.react`).
///
/// - `main` runs before the reactor starts, as in Twisted; it may return a
///   Deferred or a `Result` (a panic in it becomes a
///   [`Panicked`](crate::defer::Panicked) failure). A result that is already
///   there when `main` returns still goes through one reactor start and stop,
///   so startup and shutdown triggers run.
/// - The reactor is stopped exactly once: `react` does not call
///   [`reactor::stop`] again if something else already did (the result then
///   arrives during shutdown, and is returned all the same).
/// - If the reactor stops before the Deferred fires, the Deferred is
///   cancelled and the result is `Err` of [`ReactorStopped`].
/// - If this thread's reactor is already running, `main` is not called and the
///   result is `Err` of [`ReactorError::AlreadyRunning`].
///
/// One reactor runs on one thread; to run `main` on every core, one reactor
/// per thread, use [`react_threads`](super::react_threads).
///
/// Twisted's `react` ends the process; this returns, so the reactor may be
/// run again. A command-line program maps the result to an exit status with
/// [`exit_code`], as Twisted does (0 on success, the code of a [`SystemExit`]
/// failure, 1 on any other failure):
///
/// ```
/// use std::process::ExitCode;
/// use std::time::Duration;
/// use twined::task;
///
/// fn main() -> ExitCode {
///     let result = task::react(|| {
///         task::defer_later(Duration::from_millis(5), || Ok("hello"))
///             .add_callback(|greeting| println!("{greeting}"))
///     });
///     if let Err(failure) = &result {
///         eprintln!("main function encountered error: {failure:?}");
///     }
///     ExitCode::from(task::exit_code(&result))
/// }
/// ```
pub fn react<T: 'static, R: Outcome<T>>(main: impl FnOnce() -> R) -> Result<T, Failure> {
    if reactor::running() {
        return Err(Failure::new(ReactorError::AlreadyRunning));
    }
    let slot: Rc<RefCell<Option<Result<T, Failure>>>> = Rc::new(RefCell::new(None));
    let start_trigger: Rc<Cell<Option<TriggerId>>> = Rc::new(Cell::new(None));
    let (s, t) = (slot.clone(), start_trigger.clone());
    let finished = maybe_deferred(main).add_both(move |result| {
        *s.borrow_mut() = Some(result);
        // Twisted's `callWhenRunning(stop, result, True)`: now if running
        // (`stop` refuses while a stop is already under way, which is how the
        // reactor is stopped exactly once), else as soon as it has started.
        if reactor::running() {
            let _ = reactor::stop();
        } else {
            t.set(Some(reactor::add_system_event_trigger(
                Phase::After,
                Event::Startup,
                || {
                    let _ = reactor::stop();
                },
            )));
        }
    });
    let ran = reactor::run();
    if let Some(id) = start_trigger.take() {
        // Only left when `run` failed before starting: do not stop a later run.
        reactor::remove_system_event_trigger(id);
    }
    if let Some(result) = slot.borrow_mut().take() {
        // `run` only fails before the loop starts, and then nothing fired.
        return result;
    }
    // Tell the work to stop; whatever the cancel produces lands in `slot` and
    // is dropped with it (it answers a question nobody asks any more).
    finished.cancel();
    drop(slot.borrow_mut().take());
    match ran {
        Err(e) => Err(Failure::new(e)),
        Ok(()) => Err(Failure::new(ReactorStopped)),
    }
}

/// The process exit status for `react`'s result, as Twisted's `react`
/// computes it: 0 for success, the code of a [`SystemExit`] failure, 0 for
/// [`ReactorStopped`] (the reactor was stopped on purpose, e.g. by SIGINT;
/// Twisted exits 0 there too), and 1 for any other failure.
///
/// ```
/// use twined::defer::Failure;
/// use twined::task::{exit_code, SystemExit};
///
/// assert_eq!(exit_code(&Ok(())), 0);
/// assert_eq!(exit_code::<()>(&Err(Failure::new(SystemExit(23)))), 23);
/// assert_eq!(exit_code::<()>(&Err(Failure::msg("boom"))), 1);
/// ```
pub fn exit_code<T>(result: &Result<T, Failure>) -> u8 {
    match result {
        Ok(_) => 0,
        Err(failure) => {
            if let Some(SystemExit(code)) = failure.downcast_ref::<SystemExit>() {
                *code
            } else if failure.check::<ReactorStopped>() {
                0
            } else {
                1
            }
        }
    }
}

/// [`react`] with an async main: runs the reactor until the future returned
/// by `main` completes (driven by [`ensure_deferred`](crate::defer::ensure_deferred)),
/// stops it, and returns the future's result. Twisted's
/// `react(lambda reactor: ensureDeferred(main(reactor)))`.
///
/// ```
/// use twined::defer::{succeed, Failure};
/// use twined::task;
///
/// let result = task::react_async(|| async {
///     let page = succeed("<html>").await?;
///     Ok::<_, Failure>(page.len())
/// });
/// assert_eq!(result.unwrap(), 6);
/// ```
pub fn react_async<T: 'static, F>(main: impl FnOnce() -> F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>> + 'static,
{
    react(|| crate::defer::ensure_deferred(main()))
}
