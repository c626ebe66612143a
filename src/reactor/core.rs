//! The reactor loop: one per thread, its state machine, the system event
//! triggers, and the iteration that runs thread calls, timers and I/O.
//!
//! States: idle (never run, crashed, or stopped) -> running -> shutting down
//! (the shutdown triggers run; "before" triggers may hold it with Deferreds)
//! -> idle. Unlike Twisted, an idle reactor may always be run again.
//!
//! No `RefCell` borrow of the reactor is held while user code runs.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Waker};

use super::signals::SignalWatch;
use super::sources::{self, Handler, Ready, SourceKey, Sources, SIGNAL_TOKEN, WAKER_TOKEN};
use super::{Event, Phase, ReactorError, RunOptions, TriggerId};
use crate::defer::report::report_error;
use crate::defer::report::report_warn;
use crate::defer::{Deferred, DeferredList, Panicked};
use crate::time::{self, Inbox, TimerQueue};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Idle,
    Starting,
    Running,
}

type TriggerFn = Box<dyn FnOnce() -> Option<Deferred<()>>>;

#[derive(Default)]
struct Triggers {
    next_id: u64,
    /// (event, phase, id, function), in the order they were added.
    list: Vec<(Event, Phase, u64, TriggerFn)>,
}

impl Triggers {
    /// Removes and returns the first trigger for `event` in `phase`.
    fn take_next(&mut self, event: Event, phase: Phase) -> Option<TriggerFn> {
        let at = self
            .list
            .iter()
            .position(|(e, p, _, _)| *e == event && *p == phase)?;
        Some(self.list.remove(at).3)
    }
}

/// The I/O half, created on first use (it needs file descriptors).
pub(crate) struct Io {
    poll: RefCell<Poll>,
    pub(crate) registry: Registry,
}

/// One thread's reactor.
pub(crate) struct Reactor {
    state: Cell<State>,
    /// `stop()` was called and the shutdown has not started yet.
    stop_requested: Cell<bool>,
    /// `stop()` was called while the reactor was idle: the next `run` makes
    /// one full pass, then shuts down (asyncio's `stop()` before
    /// `run_forever()`).
    stop_pending: Cell<bool>,
    /// The shutdown is in progress.
    shutting_down: Cell<bool>,
    /// Leave the loop at the end of this iteration.
    exit: Cell<bool>,
    pub(crate) timers: TimerQueue,
    io: RefCell<Option<Rc<Io>>>,
    pub(crate) sources: RefCell<Sources>,
    pub(crate) remote: Arc<Inbox>,
    triggers: RefCell<Triggers>,
    /// Calls to run at the next iteration, on this thread.
    soon: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    /// Connections with writes for the end-of-iteration flush.
    flushes: RefCell<Vec<Rc<dyn Flush>>>,
}

/// A connection that coalesces its writes: they wait in its buffer until
/// the reactor's end-of-iteration flush (see `write_buffer.rs`).
pub(crate) trait Flush {
    /// Sends what waits for the end-of-iteration flush, if anything still does.
    fn flush_queued(&self);
}

thread_local! {
    static REACTOR: Rc<Reactor> = Rc::new(Reactor::new());
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // The thread is exiting: its queued thread calls will never run.
        self.remote.set_life(|life| life.gone = true);
    }
}

/// The current thread's reactor.
///
/// While the thread exits, its reactor's thread-local is being destroyed, and
/// dropping pending calls may run user code (a dropped `Trigger` errbacks its
/// Deferred) that reaches for the reactor. Such code gets a throwaway reactor
/// that never runs instead of a panic inside a thread-local destructor.
pub(crate) fn current() -> Rc<Reactor> {
    REACTOR
        .try_with(Rc::clone)
        .unwrap_or_else(|_| Rc::new(Reactor::new()))
}

/// Runs `f`, logging a panic instead of unwinding into the reactor.
pub(crate) fn guard(what: &str, f: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        report_error!(
            "{what} panicked: {}",
            Panicked::from_payload(panic).message()
        );
    }
}

impl Reactor {
    fn new() -> Reactor {
        Reactor {
            state: Cell::new(State::Idle),
            stop_requested: Cell::new(false),
            stop_pending: Cell::new(false),
            shutting_down: Cell::new(false),
            exit: Cell::new(false),
            timers: time::thread_timers(),
            io: RefCell::new(None),
            sources: RefCell::new(Sources::default()),
            remote: time::thread_inbox(),
            triggers: RefCell::new(Triggers::default()),
            soon: RefCell::new(VecDeque::new()),
            flushes: RefCell::new(Vec::new()),
        }
    }

    /// The poll and registry, created on first use.
    pub(crate) fn io(&self) -> io::Result<Rc<Io>> {
        if let Some(io) = self.io.borrow().as_ref() {
            return Ok(io.clone());
        }
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(&registry, WAKER_TOKEN)?;
        let waker = Arc::new(waker);
        self.remote.set_wake_hook(Arc::new(move || {
            if let Err(e) = waker.wake() {
                report_error!("could not wake the reactor: {e}");
            }
        }));
        let io = Rc::new(Io {
            poll: RefCell::new(poll),
            registry,
        });
        *self.io.borrow_mut() = Some(io.clone());
        Ok(io)
    }

    /// Registers `source` for `interest`; events go to `handler`.
    pub(crate) fn register(
        &self,
        source: &mut (impl mio::event::Source + ?Sized),
        interest: Interest,
        handler: Rc<dyn Handler>,
    ) -> io::Result<SourceKey> {
        let io = self.io()?;
        let mut sources = self.sources.borrow_mut();
        sources::register(&io.registry, &mut sources, source, interest, handler)
    }

    /// Hands the events of the registered source `key` to `handler` from
    /// now on (no system call); returns whether `key` was live.
    pub(crate) fn set_handler(&self, key: SourceKey, handler: Rc<dyn Handler>) -> bool {
        let old = self.sources.borrow_mut().replace(key, handler);
        // Dropped outside the borrow: dropping it may run user code.
        old.is_some()
    }

    /// Changes the interest of a registered source. With edge-triggered
    /// polling this also re-arms it: a source that is still ready reports again.
    pub(crate) fn reregister(
        &self,
        source: &mut (impl mio::event::Source + ?Sized),
        key: SourceKey,
        interest: Interest,
    ) -> io::Result<()> {
        let io = self.io()?;
        io.registry.reregister(source, key.token(), interest)
    }

    /// Deregisters `source` and frees its slot. Call it before closing the
    /// source.
    pub(crate) fn deregister(
        &self,
        source: &mut (impl mio::event::Source + ?Sized),
        key: SourceKey,
    ) {
        let removed = self.sources.borrow_mut().remove(key);
        if let Some(io) = self.io.borrow().as_ref() {
            if let Err(e) = io.registry.deregister(source) {
                log::debug!("deregister failed: {e}");
            }
        }
        // Drop the handler outside the borrow: dropping it may run user code.
        drop(removed);
    }

    /// Queues `f` to run at the start of the next iteration.
    pub(crate) fn call_soon(&self, f: Box<dyn FnOnce()>) {
        self.soon.borrow_mut().push_back(f);
    }

    /// Queues `conn` for the end-of-iteration flush (once per wait: its
    /// write buffer says when).
    pub(crate) fn queue_flush(&self, conn: Rc<dyn Flush>) {
        self.flushes.borrow_mut().push(conn);
    }

    /// Sends every queued connection's waiting writes. Writes queued while
    /// this runs (a resumed producer's) wait for the next pass.
    fn flush_writes(&self) {
        let mut queued = std::mem::take(&mut *self.flushes.borrow_mut());
        for conn in queued.drain(..) {
            guard("a write", || conn.flush_queued());
        }
        // Keep the list's memory for the next iteration.
        let mut flushes = self.flushes.borrow_mut();
        if flushes.is_empty() {
            *flushes = queued;
        }
    }

    pub(crate) fn running(&self) -> bool {
        self.state.get() == State::Running
    }

    pub(crate) fn add_trigger(&self, phase: Phase, event: Event, f: TriggerFn) -> TriggerId {
        let mut triggers = self.triggers.borrow_mut();
        let id = triggers.next_id;
        triggers.next_id += 1;
        triggers.list.push((event, phase, id, f));
        TriggerId(id)
    }

    pub(crate) fn remove_trigger(&self, id: TriggerId) -> bool {
        let removed = {
            let mut triggers = self.triggers.borrow_mut();
            let at = triggers.list.iter().position(|(_, _, i, _)| *i == id.0);
            at.map(|at| triggers.list.remove(at))
        };
        removed.is_some()
    }

    pub(crate) fn stop(&self) -> Result<(), ReactorError> {
        if self.state.get() == State::Idle {
            // Not running: the next `run` does one pass and then stops.
            if self.stop_pending.replace(true) {
                return Err(ReactorError::NotRunning);
            }
            return Ok(());
        }
        if self.stop_requested.get() || self.shutting_down.get() {
            return Err(ReactorError::NotRunning);
        }
        self.stop_requested.set(true);
        Ok(())
    }

    pub(crate) fn crash(&self) {
        self.exit.set(true);
    }

    pub(crate) fn run(self: &Rc<Self>, options: RunOptions) -> Result<(), ReactorError> {
        if self.state.get() != State::Idle {
            return Err(ReactorError::AlreadyRunning);
        }
        let io = self.io().map_err(ReactorError::Io)?;
        let mut signals = if options.install_signal_handlers {
            match SignalWatch::install(&io.registry) {
                Ok(watch) => Some(watch),
                Err(e) => {
                    report_warn!("could not install SIGINT/SIGTERM handlers: {e}");
                    None
                }
            }
        } else {
            None
        };
        self.state.set(State::Starting);
        self.remote.set_life(|life| life.running = true);
        // A stop asked for before this run: one full pass, then shut down.
        let mut stop_after_pass = self.stop_pending.replace(false);
        self.stop_requested.set(false);
        self.shutting_down.set(false);
        self.exit.set(false);

        let me = self.clone();
        self.fire_event(
            Event::Startup,
            Box::new(move || {
                // Twisted's `_reallyStartRunning`: running is true from "during".
                if me.state.get() == State::Starting {
                    me.state.set(State::Running);
                }
            }),
            Box::new(|| {}),
        );
        if self.state.get() == State::Starting && !self.exit.get() {
            // A "before startup" trigger holds startup: the loop runs meanwhile.
            log::debug!("startup waits for before-startup triggers");
        }

        let mut events = Events::with_capacity(1024);
        let result = loop {
            self.iterate(&io, &mut events, signals.as_mut(), stop_after_pass);
            if self.exit.get() {
                // What was written before the stop still goes out.
                self.flush_writes();
                break Ok(());
            }
            if std::mem::take(&mut stop_after_pass) {
                // Refused only if a stop is already under way: nothing to do.
                let _ = self.stop();
            }
        };
        if let Some(watch) = signals.take() {
            watch.uninstall(&io.registry);
        }
        self.state.set(State::Idle);
        self.stop_requested.set(false);
        self.shutting_down.set(false);
        self.exit.set(false);
        self.remote.set_life(|life| {
            life.running = false;
            life.runs_ended += 1;
        });
        result
    }

    /// Fires the three phases of `event`: "before" triggers first; once every
    /// Deferred they returned has fired, `first_during`, the "during" and the
    /// "after" triggers, then `finally`.
    fn fire_event(
        self: &Rc<Self>,
        event: Event,
        first_during: Box<dyn FnOnce()>,
        finally: Box<dyn FnOnce()>,
    ) {
        // Taken one at a time (Twisted's `_ThreePhaseEvent.fireEvent`): a
        // "before" trigger that removes a pending one stops it from running,
        // and one that adds another gets it run in this same event.
        let mut waits = Vec::new();
        loop {
            // A statement of its own: no borrow is held while the trigger runs.
            let next = self.triggers.borrow_mut().take_next(event, Phase::Before);
            let Some(trigger) = next else { break };
            guard("a system event trigger", || {
                if let Some(d) = trigger() {
                    waits.push(d);
                }
            });
        }
        let me = self.clone();
        let rest = move || {
            guard("a system event trigger", first_during);
            for phase in [Phase::During, Phase::After] {
                // Taken one at a time, so a trigger removed by an earlier one
                // does not run.
                loop {
                    let next = me.triggers.borrow_mut().take_next(event, phase);
                    let Some(trigger) = next else { break };
                    guard("a system event trigger", || {
                        if let Some(d) = trigger() {
                            // Only "before" triggers can hold an event; make
                            // sure a failure here is not lost.

                            d.add_errback(|f| report_error!("system event trigger failed: {f}"));
                        }
                    });
                }
            }
            finally();
        };
        if waits.is_empty() {
            rest();
        } else {
            DeferredList::new(waits).add_callback(move |results| {
                for failure in results.into_iter().filter_map(Result::err) {
                    report_error!("a before-{event:?} trigger failed: {failure}");
                }
                rest();
            });
        }
    }

    /// Fires `event`'s triggers (`reactor::fire_system_event`); `done` runs
    /// after the "after" phase.
    pub(crate) fn fire_system_event(self: &Rc<Self>, event: Event, done: Box<dyn FnOnce()>) {
        self.fire_event(event, Box::new(|| {}), done);
    }

    fn begin_shutdown(self: &Rc<Self>) {
        self.stop_requested.set(false);
        self.shutting_down.set(true);
        let me = self.clone();
        self.fire_event(
            Event::Shutdown,
            Box::new(|| {}),
            Box::new(move || me.exit.set(true)),
        );
    }

    /// One turn of the loop: thread calls, queued calls, due timers, the
    /// writes all of these and the last turn's I/O made, poll, I/O.
    /// `last_pass`: a stop is pending, so the poll must not wait.
    fn iterate(
        self: &Rc<Self>,
        io: &Io,
        events: &mut Events,
        signals: Option<&mut SignalWatch>,
        last_pass: bool,
    ) {
        if self.stop_requested.get() {
            self.begin_shutdown();
        }
        for call in self.remote.drain() {
            guard("a call from a thread", call);
        }
        let soon = std::mem::take(&mut *self.soon.borrow_mut());
        for call in soon {
            guard("a queued call", call);
        }
        let mark = self.timers.seq_mark();
        let now = self.timers.now();
        while let Some(call) = self.timers.pop_due(now, mark) {
            guard("a timed call", call);
            if self.exit.get() {
                return;
            }
        }
        if self.exit.get() {
            return;
        }
        self.flush_writes();

        let busy = last_pass
            || self.stop_requested.get()
            || !self.soon.borrow().is_empty()
            || !self.flushes.borrow().is_empty()
            || !self.remote.is_empty();
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            self.timers
                .next_deadline()
                .map(|deadline| deadline.saturating_sub(self.timers.now()))
        };
        let polled = io.poll.borrow_mut().poll(events, timeout);
        if let Err(e) = polled {
            if e.kind() != io::ErrorKind::Interrupted {
                report_error!("poll failed: {e}");
            }
            return;
        }
        let mut signalled = false;
        for event in events.iter() {
            let token = event.token();
            if token == WAKER_TOKEN {
                continue;
            }
            if token == SIGNAL_TOKEN {
                signalled = true;
                continue;
            }
            let handler = self.sources.borrow().get(token);
            if let Some(handler) = handler {
                let ready = Ready::from_event(event);
                guard("an I/O handler", || handler.ready(ready));
            }
        }
        if signalled {
            if let Some(watch) = signals {
                if let Some(signal) = watch.pending() {
                    log::info!("received {signal}, stopping the reactor");
                    let _ = self.stop();
                }
            }
        }
    }

    /// The number of registered I/O sources (for tests and leak checks).
    pub(crate) fn source_count(&self) -> usize {
        self.sources.borrow().len()
    }
}
