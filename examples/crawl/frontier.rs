//! The shared frontier: URLs from a Redis stream read through a consumer
//! group, so any number of crawl processes (and threads) share one queue.
//!
//! Each entry is delivered to one consumer and stays pending until that
//! consumer acknowledges it, which happens only after the entry's result
//! line has been written and flushed (at least once, never lost). While an
//! entry is in flight its consumer refreshes its idle time (`XCLAIM ...
//! JUSTID`) every third of `--claim-idle`, so only a dead consumer's entries
//! grow idle; those are taken over with `XAUTOCLAIM` once idle longer than
//! `--claim-idle`. Duplicates are therefore only entries a dead (or stalled
//! longer than `--claim-idle`) consumer had in flight.
//!
//! With `--dedupe SET`, a URL already in the set is acknowledged without a
//! fetch or a line, and each fetched URL is added when acknowledged. With
//! `--results STREAM`, each line is also appended to that stream (field
//! `line`) just before its entry is acknowledged.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use twined::defer::{gather_results, succeed, Deferred, Failure, Trigger};
use twined::reactor;
use twined::redis::{Client, ClientOptions, StreamEntry, Value};

use crate::input::Entry;
use crate::workers::Shared;

/// Most entries read per `XREADGROUP`/`XAUTOCLAIM`.
const BATCH: usize = 256;
/// How long one `XREADGROUP` waits for new entries.
const BLOCK: Duration = Duration::from_millis(500);

/// Written lines that trigger a flush and their acknowledgement before the
/// next tick: the most a crashed process can leave written but
/// unacknowledged (fetched again by another consumer), besides one tick's
/// worth at slow rates.
const ACK_BATCH: usize = 256;
/// How long Redis may stay unreachable before the crawl gives up.
const GIVE_UP: Duration = Duration::from_secs(30);

/// The frontier's settings (the same for every thread).
#[derive(Clone)]
pub struct Config {
    pub url: String,
    pub queue: String,
    pub group: String,
    pub consumer: String,
    pub claim_idle: Duration,
    pub idle_exit: Duration,
    pub follow: bool,
    pub results: Option<String>,
    pub dedupe: Option<String>,
}

/// This process's default consumer name: `host-pid`.
pub fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}-{}", std::process::id())
}

/// An entry taken from the stream: its ID and its line.
type Taken = (String, Entry);

/// A line written whose entry awaits its acknowledgement.
struct Written {
    id: String,
    line: Vec<u8>,
    url: String,
}

/// One thread's view of the frontier.
pub struct Frontier {
    config: Config,
    shared: Arc<Shared>,
    /// For `XREADGROUP ... BLOCK` only (it holds its connection).
    reader: Client,
    /// Everything else: acks, claims, results, dedupe.
    writer: Client,
    ready: RefCell<VecDeque<Taken>>,
    /// Entries kept ready ahead of the workers (their number), so a worker
    /// never waits for a round trip to Redis.
    ahead: usize,
    waiting: RefCell<VecDeque<Trigger<Option<Taken>>>>,
    reading: Cell<bool>,
    ended: Cell<bool>,
    /// Entries taken and not yet written.
    in_flight: RefCell<HashSet<String>>,
    written: RefCell<Vec<Written>>,
    /// Since when the queue has been empty with nothing pending.
    idle_since: Cell<Option<Instant>>,
    last_claim: Cell<Instant>,
    /// Where the scan of the pending entries is (`XAUTOCLAIM`'s cursor).
    claim_from: RefCell<String>,
    last_refresh: Cell<Instant>,
    /// Since when Redis has been failing.
    failing_since: Cell<Option<Instant>>,
}

impl Frontier {
    /// Connects (both clients) and makes sure the group exists.
    pub fn start(config: Config, shared: Arc<Shared>, ahead: usize) -> Deferred<Rc<Frontier>> {
        let options = ClientOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let (reader, writer) = match (
            Client::with_options(&config.url, options.clone()),
            Client::with_options(&config.url, options),
        ) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => return twined::defer::fail(Failure::new(e)),
        };
        let now = Instant::now();
        let group = writer.xgroup_create(&config.queue, &config.group, "0");
        group.add_callback(move |_| {
            Rc::new(Frontier {
                config,
                shared,
                reader,
                writer,
                ready: RefCell::default(),
                ahead: ahead.min(BATCH),
                waiting: RefCell::default(),
                reading: Cell::new(false),
                ended: Cell::new(false),
                in_flight: RefCell::default(),
                written: RefCell::default(),
                idle_since: Cell::new(None),
                // Look for a dead consumer's entries at once.
                last_claim: Cell::new(now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)),
                claim_from: RefCell::new("0-0".to_string()),
                last_refresh: Cell::new(now),
                failing_since: Cell::new(None),
            })
        })
    }

    /// The next entry (its ID and URL), or `None` once the queue is done.
    pub fn next(self: &Rc<Self>) -> Deferred<Option<(String, Entry)>> {
        let next = self.ready.borrow_mut().pop_front();
        if let Some((id, entry)) = next {
            self.in_flight.borrow_mut().insert(id.clone());
            if self.ready.borrow().len() < self.ahead / 2 {
                self.fill();
            }
            return succeed(Some((id, entry)));
        }
        if self.ended.get() {
            return succeed(None);
        }
        let (d, trigger) = Deferred::new();
        self.waiting.borrow_mut().push_back(trigger);
        self.fill();
        let frontier = self.clone();
        d.add_callback(move |next| {
            if let Some((id, _)) = &next {
                frontier.in_flight.borrow_mut().insert(id.clone());
            }
            next
        })
    }

    /// The line of entry `id` is in the output: acknowledge it after the
    /// next flush.
    pub fn written(&self, id: String, line: Vec<u8>, url: String) {
        self.in_flight.borrow_mut().remove(&id);
        let waiting = {
            let mut written = self.written.borrow_mut();
            written.push(Written { id, line, url });
            written.len()
        };
        // Acknowledge by count too, not only on the timer: a fast crawl
        // must not hold thousands of written, unacknowledged entries that
        // a crash would have fetched again.
        if waiting >= ACK_BATCH {
            self.tick();
        }
    }

    /// Flushes the output, then sends the results, the dedupe members and
    /// the acknowledgements of every line written so far; keeps the
    /// entries in flight fresh. Fires when Redis has answered.
    pub fn tick(&self) -> Deferred<()> {
        self.refresh();
        let written = std::mem::take(&mut *self.written.borrow_mut());
        if written.is_empty() {
            return succeed(());
        }
        if self.shared.flush().is_err() {
            // The lines were lost: their entries stay pending for another
            // consumer.
            return succeed(());
        }
        let c = &self.config;
        let mut sent: Vec<Deferred<()>> = Vec::new();
        if let Some(results) = &c.results {
            for w in &written {
                sent.push(
                    self.writer
                        .xadd(results, [("line", &w.line)])
                        .add_callback(|_| ()),
                );
            }
        }
        if let Some(set) = &c.dedupe {
            let urls = written.iter().map(|w| w.url.as_bytes());
            sent.push(self.writer.sadd(set, urls).add_callback(|_| ()));
        }
        let ids = written.iter().map(|w| w.id.as_bytes());
        sent.push(
            self.writer
                .xack(&c.queue, &c.group, ids)
                .add_callback(|_| ()),
        );
        gather_results(sent).then(|result| {
            if let Err(failure) = result {
                eprintln!(
                    "crawl: redis: {failure}; the entries stay pending and will be fetched again"
                );
            }
            Ok::<(), Failure>(())
        })
    }

    /// Resets the idle time of the entries in flight (and written but not
    /// yet acknowledged), so no other consumer claims them while this one
    /// lives.
    fn refresh(&self) {
        if self.last_refresh.get().elapsed() < self.config.claim_idle / 3 {
            return;
        }
        self.last_refresh.set(Instant::now());
        let mut ids: Vec<String> = self.in_flight.borrow().iter().cloned().collect();
        ids.extend(self.ready.borrow().iter().map(|(id, _)| id.clone()));
        ids.extend(self.written.borrow().iter().map(|w| w.id.clone()));
        if ids.is_empty() {
            return;
        }
        let c = &self.config;
        let mut args = vec!["XCLAIM", &c.queue, &c.group, &c.consumer, "0"];
        args.extend(ids.iter().map(String::as_str));
        args.push("JUSTID");
        self.writer.command(args).add_errback(|_| Value::Nil);
    }

    /// Reads more entries: a dead consumer's first, when it is time to look,
    /// else new ones.
    fn fill(self: &Rc<Self>) {
        if self.reading.get() || self.ended.get() {
            return;
        }
        self.reading.set(true);
        let frontier = self.clone();
        let c = &self.config;
        let claim_every = (c.claim_idle / 2).max(Duration::from_millis(100));
        // What the idle workers can start now, and one round ahead: an
        // entry taken is this consumer's (kept fresh) until acknowledged.
        let ready = self.ready.borrow().len();
        let count =
            (self.waiting.borrow().len() + self.ahead.saturating_sub(ready)).clamp(1, BATCH);
        let read = if self.last_claim.get().elapsed() >= claim_every {
            let from = self.claim_from.borrow().clone();
            let me = self.clone();
            self.writer
                .xautoclaim(&c.queue, &c.group, &c.consumer, c.claim_idle, &from, count)
                .add_callback(move |claim| {
                    // A whole pass over the pending entries: the next one
                    // after `claim_every`; else go on scanning next time.
                    if claim.next == "0-0" {
                        me.last_claim.set(Instant::now());
                    }
                    *me.claim_from.borrow_mut() = claim.next;
                    claim.entries
                })
        } else {
            let block = BLOCK.min(c.idle_exit);
            self.reader
                .xreadgroup(&c.group, &c.consumer, &c.queue, count, Some(block))
        };
        read.add_both(move |result| frontier.arrived(result));
    }

    fn arrived(self: &Rc<Self>, result: Result<Vec<StreamEntry>, Failure>) {
        let entries = match result {
            Ok(entries) => {
                self.failing_since.set(None);
                entries
            }
            Err(failure) => {
                let since = self.failing_since.get().unwrap_or_else(Instant::now);
                self.failing_since.set(Some(since));
                if since.elapsed() >= GIVE_UP {
                    self.shared
                        .stop(format!("redis: {failure}; gave up after {GIVE_UP:?}"));
                    return self.end();
                }
                let frontier = self.clone();
                reactor::call_later(Duration::from_millis(500), move || {
                    frontier.reading.set(false);
                    frontier.fill();
                });
                return;
            }
        };
        if entries.is_empty() {
            return self.empty();
        }
        self.idle_since.set(None);
        let mut skip = Vec::new();
        let mut urls = Vec::new();
        for entry in entries {
            match entry.field("url") {
                Some(url) => {
                    let e = match std::str::from_utf8(url) {
                        Ok(u) => Entry::Url(u.trim().to_string()),
                        Err(_) => Entry::Invalid {
                            shown: String::from_utf8_lossy(url).into_owned(),
                            reason: "the URL is not valid UTF-8",
                        },
                    };
                    urls.push((entry.id, e));
                }
                // Deleted from the stream, or not a crawl entry.
                None => skip.push(entry.id),
            }
        }
        self.ack_now(skip);
        match &self.config.dedupe {
            None => self.deliver(urls),
            Some(set) => {
                let checks: Vec<Deferred<bool>> = urls
                    .iter()
                    .map(|(_, e)| match e {
                        Entry::Url(u) => self.writer.sismember(set, u),
                        Entry::Invalid { .. } => succeed(false),
                    })
                    .collect();
                let frontier = self.clone();
                gather_results(checks).add_both(move |seen| {
                    let seen = seen.unwrap_or_default();
                    let mut fresh = Vec::new();
                    let mut done = Vec::new();
                    for (i, (id, e)) in urls.into_iter().enumerate() {
                        if seen.get(i).copied().unwrap_or(false) {
                            done.push(id);
                        } else {
                            fresh.push((id, e));
                        }
                    }
                    frontier.ack_now(done);
                    frontier.deliver(fresh);
                });
            }
        }
    }

    /// Acknowledges entries that need no line.
    fn ack_now(&self, ids: Vec<String>) {
        if !ids.is_empty() {
            let c = &self.config;
            self.writer
                .xack(&c.queue, &c.group, ids.iter().map(String::as_bytes))
                .add_errback(|_| 0);
        }
    }

    /// Hands entries to the waiting workers, keeps the rest.
    fn deliver(self: &Rc<Self>, entries: Vec<(String, Entry)>) {
        self.ready.borrow_mut().extend(entries);
        self.reading.set(false);
        loop {
            let entry = self.ready.borrow_mut().pop_front();
            let Some(entry) = entry else { break };
            let waiter = self.waiting.borrow_mut().pop_front();
            match waiter {
                Some(w) => w.callback(Some(entry)),
                None => {
                    self.ready.borrow_mut().push_front(entry);
                    break;
                }
            }
        }
        if !self.waiting.borrow().is_empty() {
            self.fill();
        }
    }

    /// Nothing new: the queue is done once nothing is pending for the group
    /// for `--idle-exit` (unless `--follow`).
    fn empty(self: &Rc<Self>) {
        let frontier = self.clone();
        let c = &self.config;
        self.writer
            .command(["XPENDING", &c.queue, &c.group])
            .add_both(move |reply| {
                let pending = match reply {
                    Ok(Value::Array(parts)) => parts.first().and_then(Value::as_int).unwrap_or(1),
                    _ => 1,
                };
                let written = !frontier.written.borrow().is_empty();
                if pending > 0 || written || frontier.config.follow {
                    frontier.idle_since.set(None);
                } else {
                    let since = frontier.idle_since.get().unwrap_or_else(Instant::now);
                    frontier.idle_since.set(Some(since));
                    if since.elapsed() >= frontier.config.idle_exit {
                        return frontier.end();
                    }
                }
                // Poll again: the blocking read itself waits, the
                // pending check after it does not.
                let wait = if pending > 0 {
                    Duration::from_millis(100)
                } else {
                    Duration::ZERO
                };
                reactor::call_later(wait, move || {
                    frontier.reading.set(false);
                    frontier.fill();
                });
            });
    }

    /// No more entries for this thread: the waiting workers finish.
    fn end(&self) {
        self.ended.set(true);
        self.reading.set(false);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for w in waiting {
            w.callback(None);
        }
    }
}
