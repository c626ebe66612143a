//! SIGINT and SIGTERM while `run()` runs: both stop the reactor cleanly (the
//! shutdown triggers run), through `signal-hook-mio`.
//!
//! The handlers are installed when `run()` starts and removed when it returns
//! (dropping the `Signals` unregisters them). Once a signal-hook handler is in
//! place the process's default disposition is gone, so a conditional handler,
//! installed once, performs the default action (terminate) whenever no reactor
//! is watching: outside `run()`, Ctrl-C still kills the program.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use mio::{Interest, Registry};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::sources::SIGNAL_TOKEN;

/// True while no reactor watches the signals: the default action applies.
static UNWATCHED: AtomicBool = AtomicBool::new(true);
/// How many reactors (threads) watch the signals now.
static WATCHERS: AtomicUsize = AtomicUsize::new(0);
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
        WATCHERS.fetch_add(1, Ordering::SeqCst);
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
        if WATCHERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            UNWATCHED.store(true, Ordering::SeqCst);
        }
    }
}
