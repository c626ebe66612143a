//! Reports of errors that have no caller to return to: an unhandled failure at
//! the end of a chain, a panicking callback on the reactor, a failing system
//! event trigger.
//!
//! They go to the `log` crate when a logger would record them; when none would
//! (no logger is installed, or the installed one drops error records from
//! twined), they are written to standard error instead, so that a program
//! without `env_logger::init()` does not lose a failure and exit 0 in
//! silence. Every such place in twined reports through [`report_error!`].

use std::fmt;
use std::io::Write;

use log::{Level, Metadata};

/// Reports an error: through `log::error!` with the caller's module as the
/// target when a logger would record it, else on standard error.
macro_rules! report_error {
    ($($arg:tt)+) => {
        $crate::defer::report::error(module_path!(), format_args!($($arg)+))
    };
}
pub(crate) use report_error;

/// [`report_error!`] at warning level.
macro_rules! report_warn {
    ($($arg:tt)+) => {
        $crate::defer::report::warn(module_path!(), format_args!($($arg)+))
    };
}
pub(crate) use report_warn;

/// Whether the installed logger would record a `level` record for `target`.
/// No logger installed: `log::logger()` is a no-op logger that enables
/// nothing, and the maximum level is `Off`.
fn logged(level: Level, target: &str) -> bool {
    level <= log::max_level()
        && log::logger().enabled(&Metadata::builder().level(level).target(target).build())
}

fn emit(level: Level, target: &str, args: fmt::Arguments<'_>) {
    if logged(level, target) {
        log::log!(target: target, level, "{args}");
    } else {
        let label = if level == Level::Error {
            "error"
        } else {
            "warning"
        };
        // One write of the whole report, so that reports from two threads do
        // not interleave; a closed standard error is not worth a panic.
        let report = format!("[twined {label}] {args}\n");
        let _ = std::io::stderr().lock().write_all(report.as_bytes());
    }
}

/// See [`report_error!`].
pub(crate) fn error(target: &str, args: fmt::Arguments<'_>) {
    emit(Level::Error, target, args);
}

/// See [`report_warn!`].
pub(crate) fn warn(target: &str, args: fmt::Arguments<'_>) {
    emit(Level::Warn, target, args);
}
