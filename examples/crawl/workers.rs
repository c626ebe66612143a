//! The worker loop: each worker takes the next line from the [`Feed`],
//! fetches it (retrying what may be retried), writes its line, and takes the
//! next, until the list is done or the output breaks.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use twined::defer::{Deferred, Trigger};
use twined::reactor;
use twined::web::client::Agent;
use twined::web::{Error as WebError, Headers};

use crate::fetch::{fetch, save_name, Outcome};
use crate::input::{Entry, Feed};
use crate::output::Output;
use crate::record::{error_kind, Record};
use crate::target::Target;

/// Nested synchronous steps (lines that fail at once, one after another)
/// allowed before the next step goes through the reactor, so the stack
/// stays flat.
const MAX_DEPTH: usize = 16;

/// One URL in flight.
struct Job {
    index: u64,
    /// The URL as shown in the output.
    shown: String,
    /// The URL requested.
    url: String,
    headers: Headers,
    start: Instant,
}

/// What the workers share.
pub struct Crawl {
    pub agent: Agent,
    pub feed: Rc<Feed>,
    pub retries: usize,
    pub save: Option<PathBuf>,
    pub out: RefCell<Output>,
    pub bar: Option<ProgressBar>,
    /// Entries taken from the feed (numbering the --save files).
    started: Cell<u64>,
    /// Results recorded (handed to the output).
    recorded: Cell<u64>,
    /// Failures among them (for the progress bar).
    failures: Cell<u64>,
    /// Body bytes over all results.
    bytes: Cell<u64>,
    /// Why the crawl had to stop (the output broke).
    fatal: RefCell<Option<String>>,
    depth: Cell<usize>,
}

impl Crawl {
    pub fn new(
        agent: Agent,
        feed: Rc<Feed>,
        retries: usize,
        save: Option<PathBuf>,
        out: Output,
        bar: Option<ProgressBar>,
    ) -> Rc<Crawl> {
        Rc::new(Crawl {
            agent,
            feed,
            retries,
            save,
            out: RefCell::new(out),
            bar,
            started: Cell::new(0),
            recorded: Cell::new(0),
            failures: Cell::new(0),
            bytes: Cell::new(0),
            fatal: RefCell::new(None),
            depth: Cell::new(0),
        })
    }

    /// A worker: fires when the list is done for it.
    pub fn worker(self: &Rc<Self>) -> Deferred<()> {
        let (d, done) = Deferred::new();
        self.step(done);
        d
    }

    pub fn recorded(&self) -> u64 {
        self.recorded.get()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    pub fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    /// Stops the crawl for `why`: no new fetch starts, the reactor stops.
    pub fn stop(&self, why: String) {
        self.fatal.borrow_mut().get_or_insert(why);
        let _ = reactor::stop();
    }

    /// Takes the next line and starts it, or fires `done` at the end.
    fn step(self: &Rc<Self>, done: Trigger<()>) {
        if self.fatal.borrow().is_some() {
            return done.callback(());
        }
        if self.depth.get() >= MAX_DEPTH {
            let crawl = self.clone();
            reactor::call_later(Duration::ZERO, move || crawl.step(done));
            return;
        }
        self.depth.set(self.depth.get() + 1);
        let crawl = self.clone();
        self.feed.next().add_callback(move |entry| match entry {
            Some(entry) => crawl.start(entry, done),
            None => done.callback(()),
        });
        self.depth.set(self.depth.get() - 1);
    }

    fn start(self: &Rc<Self>, entry: Entry, done: Trigger<()>) {
        let start = Instant::now();
        let index = self.started.get();
        self.started.set(index + 1);
        let target = match entry {
            Entry::Url(url) => Target::new(&url),
            Entry::Invalid { shown, reason } => Target::invalid(shown, reason),
        };
        match target.request {
            Err(failure) => {
                self.record(&target.shown, &Outcome::failed(failure), 0, start.elapsed());
                self.step(done);
            }
            Ok(url) => {
                let job = Job {
                    index,
                    shown: target.shown,
                    url,
                    headers: target.headers,
                    start,
                };
                self.attempt(job, 1, done);
            }
        }
    }

    /// Attempt number `attempts` of `job`.
    fn attempt(self: &Rc<Self>, job: Job, attempts: usize, done: Trigger<()>) {
        let save = self
            .save
            .as_ref()
            .map(|dir| dir.join(save_name(job.index, &job.url)));
        let crawl = self.clone();
        fetch(&self.agent, &job.url, job.headers.clone(), save).add_callback(move |outcome| {
            if attempts <= crawl.retries && retryable(&outcome) && crawl.fatal().is_none() {
                if let Some(path) = &outcome.saved {
                    let _ = std::fs::remove_file(path);
                }
                return crawl.attempt(job, attempts + 1, done);
            }
            crawl.record(&job.shown, &outcome, attempts, job.start.elapsed());
            crawl.step(done);
        });
    }

    /// Writes the line of one result.
    fn record(&self, shown: &str, outcome: &Outcome, attempts: usize, elapsed: Duration) {
        let record = Record::new(shown, outcome, attempts, elapsed);
        let failed = outcome.error.is_some();
        let pushed = self.out.borrow_mut().push(&record, failed);
        if let Err(why) = pushed {
            return self.stop(why);
        }
        self.recorded.set(self.recorded.get() + 1);
        self.bytes.set(self.bytes.get() + outcome.bytes);
        if failed {
            self.failures.set(self.failures.get() + 1);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if failed {
                bar.set_message(format!("errors: {}", self.failures.get()));
            }
        }
    }
}

/// Whether a failed fetch may be retried: connection errors, a connection
/// lost mid-response, 502/503/504. A `--save` failure is not the server's
/// and is never retried.
fn retryable(outcome: &Outcome) -> bool {
    let Some(error) = &outcome.error else {
        return false;
    };
    if error.downcast_ref::<WebError>().is_none() {
        return false;
    }
    match error_kind(error).0 {
        "connect" | "io" => true,
        "http" => matches!(outcome.head.as_ref().map(|h| h.status), Some(502..=504)),
        _ => false,
    }
}
