//! Reaping: noticing that this thread's children exited, through a
//! `SIGCHLD` watch (only while there are children) or, if that cannot be set
//! up, a polling timer with backoff.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mio::Interest;
use signal_hook::consts::SIGCHLD;
use signal_hook_mio::v1_0::Signals;

use super::transport::Inner;
use crate::defer::report::report_warn;
use crate::reactor::current_reactor;
use crate::reactor::sources::{Handler, Ready, SourceKey};

/// This thread's children, and the `SIGCHLD` watch that says when to look.
#[derive(Default)]
pub(super) struct Reaper {
    pub(super) children: Vec<Rc<Inner>>,
    pub(super) watch: Option<(Signals, SourceKey)>,
    /// The fallback: poll on a timer (when the watch could not be set up).
    pub(super) polling: bool,
    pub(super) poll_interval: Duration,
}

impl Reaper {
    /// Drops the `SIGCHLD` watch when no child is left to watch (so the
    /// reactor's source count goes back to where it was).
    pub(super) fn unwatch_if_idle(&mut self) {
        if self.children.is_empty() {
            if let Some((mut signals, key)) = self.watch.take() {
                current_reactor().deregister(&mut signals, key);
            }
        }
    }
}

pub(super) fn unwatch_if_idle() {
    let _ = REAPER.try_with(|reaper| reaper.borrow_mut().unwatch_if_idle());
}

thread_local! {
    static REAPER: RefCell<Reaper> = RefCell::new(Reaper::default());
}

pub(super) const FIRST_POLL: Duration = Duration::from_millis(5);
pub(super) const MAX_POLL: Duration = Duration::from_millis(200);

pub(super) struct SigchldHandler;

impl Handler for SigchldHandler {
    fn ready(&self, _ready: Ready) {
        reap();
    }
}

/// Makes sure something will notice this thread's children exiting: the
/// `SIGCHLD` watch, or else the polling timer. Called before each spawn, so a
/// child that exits at once is not missed.
pub(super) fn watch_children() {
    let start_polling = REAPER
        .try_with(|reaper| {
            let mut reaper = reaper.borrow_mut();
            if reaper.watch.is_some() {
                return false;
            }
            #[cfg(test)]
            if tests::FORCE_POLLING.with(std::cell::Cell::get) {
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
                    report_warn!("cannot watch SIGCHLD ({e}); polling for exited children");
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

pub(super) fn schedule_poll(delay: Duration) {
    crate::reactor::call_later(delay, || {
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
pub(super) fn reap() {
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

/// Hands a child to the reaper.
pub(super) fn adopt(inner: Rc<Inner>) {
    let _ = REAPER.try_with(|reaper| reaper.borrow_mut().children.push(inner));
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::reactor;
    use crate::reactor::process::{
        spawn_process, ExitStatus, ProcessOptions, ProcessProtocol, ProcessTransport,
    };

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
