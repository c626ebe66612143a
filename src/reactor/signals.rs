//! SIGINT and SIGTERM while `run()` runs: both stop the reactor cleanly (the
//! shutdown triggers run), through `signal-hook-mio`.
//!
//! The handlers are installed when `run()` starts and removed when it returns
//! (dropping the `Signals` unregisters them). Once a signal-hook handler is in
//! place the process's default disposition is gone, so a conditional handler,
//! installed once, performs the default action (terminate) whenever no reactor
//! is watching: outside `run()`, Ctrl-C still kills the program.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use mio::{Interest, Registry};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::sources::SIGNAL_TOKEN;

/// True while no reactor watches the signals: the default action applies.
static UNWATCHED: AtomicBool = AtomicBool::new(true);
/// How many reactors (threads) watch the signals now. `UNWATCHED` changes
/// only under this lock: with two atomics, a reactor stopping on one thread
/// while another starts could leave `UNWATCHED` true under a running reactor,
/// and the next SIGINT would kill the process instead of stopping it.
static WATCHERS: Mutex<usize> = Mutex::new(0);

fn watchers() -> std::sync::MutexGuard<'static, usize> {
    // The count stays consistent even if a holder panicked (it cannot: the
    // critical sections only add, subtract and store).
    WATCHERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
static DEFAULTS: OnceLock<io::Result<()>> = OnceLock::new();

fn install_defaults() -> io::Result<()> {
    let installed = DEFAULTS.get_or_init(|| {
        for signal in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_default(signal, &UNWATCHED)?;
        }
        Ok(())
    });
    match installed {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

pub(crate) struct SignalWatch {
    signals: Signals,
}

impl SignalWatch {
    pub(crate) fn install(registry: &Registry) -> io::Result<SignalWatch> {
        install_defaults()?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        registry.register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let mut count = watchers();
        *count += 1;
        UNWATCHED.store(false, Ordering::SeqCst);
        Ok(SignalWatch { signals })
    }

    /// The name of a signal that arrived since the last call, if any.
    pub(crate) fn pending(&mut self) -> Option<&'static str> {
        let mut name = None;
        for signal in self.signals.pending() {
            name = Some(match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "a signal",
            });
        }
        name
    }

    pub(crate) fn uninstall(mut self, registry: &Registry) {
        if let Err(e) = registry.deregister(&mut self.signals) {
            log::debug!("could not deregister the signal pipe: {e}");
        }
        let mut count = watchers();
        *count = count.saturating_sub(1);
        if *count == 0 {
            UNWATCHED.store(true, Ordering::SeqCst);
        }
    }
}
