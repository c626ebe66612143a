//! The worker loop: each worker takes the next line from its [`Source`],
//! fetches it (retrying what may be retried), writes its line, and takes the
//! next, until the list is done or the output breaks.
//!
//! A [`Crawl`] belongs to one reactor thread (its agent, its feed); what the
//! threads of a `-j N` crawl share is in [`Shared`]: the one output, the
//! progress bar, the counters, and the handles that stop every reactor.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar};
use twined::defer::{Deferred, Trigger};
use twined::reactor::{self, Handle};
use twined::web::client::{Agent, Attempt, RetryDecision, RetryPolicy, Url};
use twined::web::{Error as WebError, Headers};

use crate::fetch::{fetch, save_name, Outcome};
use crate::frontier::Frontier;
use crate::input::{Entry, Feed};
use crate::output::Output;
use crate::record::Record;
use crate::resume::Done;
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
    /// The stream entry it came from (Redis frontier).
    ticket: Option<String>,
}

/// What every worker thread of one crawl shares.
pub struct Shared {
    pub out: Mutex<Output>,
    pub bar: Option<ProgressBar>,
    /// Entries taken (numbering the --save files).
    started: AtomicU64,
    /// Results recorded (handed to the output).
    recorded: AtomicU64,
    /// Failures among them (for the progress bar).
    failures: AtomicU64,
    /// Body bytes over all results.
    bytes: AtomicU64,
    /// Failed results by error kind (the record's `kind`).
    failed_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Results with a response, by status class: 1xx to 5xx, then any other.
    by_class: [AtomicU64; 6],
    /// Why the crawl had to stop (the output broke).
    fatal: Mutex<Option<String>>,
    /// Every reactor of the crawl, to stop them all.
    handles: Mutex<Vec<Handle>>,
    /// `--resume`: the URLs the output already has a line for.
    resume: Option<Done>,
    /// Entries skipped because of `resume`.
    skipped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(out: Output, bar: Option<ProgressBar>, resume: Option<Done>) -> Arc<Shared> {
        Arc::new(Shared {
            out: Mutex::new(out),
            bar,
            started: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed_by_kind: Mutex::new(BTreeMap::new()),
            by_class: Default::default(),
            fatal: Mutex::new(None),
            handles: Mutex::new(Vec::new()),
            resume,
            skipped: AtomicU64::new(0),
        })
    }

    /// Entries skipped by `--resume`.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The output, locked (a line at a time).
    pub fn out(&self) -> MutexGuard<'_, Output> {
        lock(&self.out)
    }

    /// A reactor to stop with the crawl.
    pub fn add_handle(&self, handle: Handle) {
        lock(&self.handles).push(handle);
    }

    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Failed results by error kind, kinds in order.
    pub fn failed_by_kind(&self) -> Vec<(&'static str, u64)> {
        lock(&self.failed_by_kind)
            .iter()
            .map(|(k, n)| (*k, *n))
            .collect()
    }

    /// Results with a response by status class: `[1xx, 2xx, 3xx, 4xx,
    /// 5xx, other]`.
    pub fn by_class(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed))
    }

    pub fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }

    /// Stops the crawl for `why`: no new fetch starts, every reactor stops.
    pub fn stop(&self, why: String) {
        lock(&self.fatal).get_or_insert(why);
        let _ = reactor::stop();
        for handle in lock(&self.handles).iter() {
            handle.call_from_thread(|| {
                let _ = reactor::stop();
            });
        }
    }

    /// Asks every reactor of the crawl to stop, without a reason (Ctrl-C,
    /// or the end).
    pub fn stop_all_quietly(&self) {
        for handle in lock(&self.handles).iter() {
            handle.call_from_thread(|| {
                let _ = reactor::stop();
            });
        }
    }

    /// Flushes the output; a failure stops the crawl.
    pub fn flush(&self) -> Result<(), String> {
        let flushed = self.out().flush();
        if let Err(why) = &flushed {
            self.stop(why.clone());
        }
        flushed
    }
}

/// Where one thread's workers take their URLs.
pub enum Source {
    /// The URL list (arguments, file, demo).
    Lines(Rc<Feed>),
    /// A Redis stream through a consumer group.
    Redis(Rc<Frontier>),
}

impl Source {
    fn next(&self) -> Deferred<Option<(Entry, Option<String>)>> {
        match self {
            Source::Lines(feed) => feed.next().add_callback(|e| e.map(|e| (e, None))),
            Source::Redis(frontier) => frontier
                .next()
                .add_callback(|e| e.map(|(id, e)| (e, Some(id)))),
        }
    }
}

/// One thread's workers.
pub struct Crawl {
    pub agent: Agent,
    pub source: Source,
    pub retry: RetryPolicy,
    pub save: Option<PathBuf>,
    pub shared: Arc<Shared>,
    depth: Cell<usize>,
}

impl Crawl {
    pub fn new(
        agent: Agent,
        source: Source,
        retry: RetryPolicy,
        save: Option<PathBuf>,
        shared: Arc<Shared>,
    ) -> Rc<Crawl> {
        Rc::new(Crawl {
            agent,
            source,
            retry,
            save,
            shared,
            depth: Cell::new(0),
        })
    }

    /// A worker: fires when the list is done for it.
    pub fn worker(self: &Rc<Self>) -> Deferred<()> {
        let (d, done) = Deferred::new();
        self.step(done);
        d
    }

    fn fatal(&self) -> Option<String> {
        self.shared.fatal()
    }

    /// Takes the next line and starts it, or fires `done` at the end.
    fn step(self: &Rc<Self>, done: Trigger<()>) {
        if self.fatal().is_some() {
            return done.callback(());
        }
        if self.depth.get() >= MAX_DEPTH {
            let crawl = self.clone();
            reactor::call_later(Duration::ZERO, move || crawl.step(done));
            return;
        }
        self.depth.set(self.depth.get() + 1);
        let crawl = self.clone();
        self.source.next().add_callback(move |entry| match entry {
            Some((entry, ticket)) => crawl.start(entry, ticket, done),
            None => done.callback(()),
        });
        self.depth.set(self.depth.get() - 1);
    }

    fn start(self: &Rc<Self>, entry: Entry, ticket: Option<String>, done: Trigger<()>) {
        let start = Instant::now();
        let target = match entry {
            Entry::Url(url) => Target::new(&url),
            Entry::Invalid { shown, reason } => Target::invalid(shown, reason),
        };
        // Matched as the line shows it: the same redaction.
        if let Some(resume) = &self.shared.resume {
            if resume.contains(&target.shown) {
                self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                if let Some(bar) = &self.shared.bar {
                    bar.inc(1);
                }
                return self.step(done);
            }
        }
        let index = self.shared.started.fetch_add(1, Ordering::Relaxed);
        match target.request {
            Err(failure) => {
                let outcome = Outcome::failed(failure);
                self.record(&target.shown, ticket, &outcome, 0, start.elapsed());
                self.step(done);
            }
            Ok(url) => {
                let job = Job {
                    index,
                    shown: target.shown,
                    url,
                    headers: target.headers,
                    start,
                    ticket,
                };
                self.attempt(job, 1, done);
            }
        }
    }

    /// Attempt number `attempts` of `job`. The agent's hook makes each of
    /// its requests polite, redirect hops included (`--delay`, `--rate`,
    /// `--obey-robots`): a hop `robots.txt` refuses ends the fetch with
    /// kind `robots`, never requested.
    fn attempt(self: &Rc<Self>, job: Job, attempts: usize, done: Trigger<()>) {
        // The output broke while this one waited to retry.
        if self.fatal().is_some() {
            return done.callback(());
        }
        let save = self
            .save
            .as_ref()
            .map(|dir| dir.join(save_name(job.index, &job.url)));
        let crawl = self.clone();
        fetch(&self.agent, &job.url, job.headers.clone(), save).add_callback(move |outcome| {
            let decision = match as_attempt(&outcome) {
                Some(attempt) if crawl.fatal().is_none() => {
                    let retries = u32::try_from(attempts - 1).unwrap_or(u32::MAX);
                    crawl.retry.decide("GET", &attempt, retries)
                }
                _ => RetryDecision::Stop(twined::web::client::StopReason::NotRetryable),
            };
            if let RetryDecision::Retry { after } = decision {
                if let Some(path) = &outcome.saved {
                    let _ = std::fs::remove_file(path);
                }
                reactor::call_later(after, move || crawl.attempt(job, attempts + 1, done));
                return;
            }
            // A first hop robots.txt refused sent nothing: not an attempt.
            let sent = attempts - usize::from(refused_at(&outcome, &job.url));
            let elapsed = job.start.elapsed();
            crawl.record(&job.shown, job.ticket, &outcome, sent, elapsed);
            crawl.step(done);
        });
    }

    /// Writes the line of one result (whole, under the output's lock); a
    /// frontier entry is acknowledged once the line is flushed.
    fn record(
        &self,
        shown: &str,
        ticket: Option<String>,
        outcome: &Outcome,
        attempts: usize,
        elapsed: Duration,
    ) {
        let record = Record::new(shown, outcome, attempts, elapsed);
        let failed = outcome.error.is_some();
        let line = match serde_json::to_vec(&record) {
            Ok(line) => line,
            Err(e) => return self.shared.stop(format!("cannot make a JSON line: {e}")),
        };
        let pushed = self.shared.out().push_line(&line, failed);
        if let Err(why) = pushed {
            return self.shared.stop(why);
        }
        if let (Some(id), Source::Redis(frontier)) = (ticket, &self.source) {
            frontier.written(id, line, shown.to_string());
        }
        let shared = &self.shared;
        let recorded = shared.recorded.fetch_add(1, Ordering::Relaxed) + 1;
        shared.bytes.fetch_add(outcome.bytes, Ordering::Relaxed);
        if let Some(error) = &record.error {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            *lock(&shared.failed_by_kind).entry(error.kind).or_insert(0) += 1;
        }
        if let Some(status) = record.status {
            let class = match status {
                100..=599 => usize::from(status / 100 - 1),
                _ => 5,
            };
            shared.by_class[class].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &shared.bar {
            let failures = shared.failures.load(Ordering::Relaxed);
            let ok = recorded.saturating_sub(failures);
            bar.inc(1);
            bar.set_message(format!(
                "ok {} failed {}",
                HumanCount(ok),
                HumanCount(failures)
            ));
        }
    }
}

/// Whether `robots.txt` refused `url` itself, the fetch's first hop (not
/// a redirect hop after it): then nothing was sent for this attempt.
fn refused_at(outcome: &Outcome, url: &str) -> bool {
    let refused = outcome.error.as_ref().and_then(|f| match f.downcast_ref() {
        Some(WebError::Robots { url, .. }) => Some(url.as_str()),
        _ => None,
    });
    match (refused, Url::parse(url)) {
        (Some(refused), Ok(url)) => Url::parse(refused).is_ok_and(|r| r == url),
        _ => false,
    }
}

/// A fetch's outcome as the retry policy sees it: a response (its status
/// and `Retry-After`) when one arrived whole, else the web error. A
/// `--save` failure is not the server's: `None`, never retried.
fn as_attempt(outcome: &Outcome) -> Option<Attempt<'_>> {
    let web = outcome.error.as_ref().map(|f| f.downcast_ref::<WebError>());
    match (web, &outcome.head) {
        (None | Some(Some(WebError::Http { .. })), Some(head)) => Some(Attempt::Response {
            status: head.status,
            retry_after: head.retry_after.as_deref(),
        }),
        (Some(Some(error)), _) => Some(Attempt::Failed(error)),
        _ => None,
    }
}
