//! Debug mode (Twisted's `defer.setDebugging`): when on, Deferreds record where
//! they were created and fired, and Failures record where they were created.
//! It costs a backtrace capture per Deferred and per Failure, so it is off by
//! default.

use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUGGING: AtomicBool = AtomicBool::new(false);

/// Turns debug mode on or off for the whole process (Twisted's
/// `defer.setDebugging`).
///
/// With debugging on, the "Unhandled error in Deferred" report says where the
/// Deferred was created and where it was fired, and a `Failure`'s `Debug` output
/// says where the failure was created.
pub fn set_debugging(on: bool) {
    DEBUGGING.store(on, Ordering::Relaxed);
}

/// Whether debug mode is on (Twisted's `defer.getDebugging`).
pub fn get_debugging() -> bool {
    DEBUGGING.load(Ordering::Relaxed)
}

/// A backtrace of the caller when debugging is on.
pub(crate) fn capture() -> Option<Backtrace> {
    if get_debugging() {
        Some(Backtrace::force_capture())
    } else {
        None
    }
}
