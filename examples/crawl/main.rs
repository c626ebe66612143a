//! `crawl`: fetch many URLs with twined, print one JSON line per fetch.
//!
//! The Twisted original: `getPage(url).addCallback(one_done)` for every URL,
//! `DeferredList(ds).addBoth(all_done)` with `reactor.stop()` in `all_done`.
//! Here `concurrency` workers each take the next URL when their fetch is
//! done (so a million URLs never means a million Deferreds at once, and the
//! list is read as it is needed), a `DeferredList` of the workers stops the
//! reactor when all are done, and the agent's pool caps requests per host.
//!
//! The parts: [`args`] (the command line), [`input`] (the URL list, streamed),
//! [`target`] (a line's URL, credentials and redaction), [`fetch`] (one
//! fetch, `--save`), [`record`] (the JSON line), [`output`] (the writer),
//! [`workers`] (the loop), [`polite`] (`--delay`, `--rate`,
//! `--obey-robots`), [`demo`] (the offline site), [`frontier`] (URLs
//! from a Redis stream), [`enqueue`] (loading that stream), [`resume`]
//! (`--resume`: the URLs an earlier run's output already has), [`cookies`]
//! (`--cookie-jar` load and save).
//!
//! `-j N` runs N reactors on N threads (`twined::task::ReactorThreads`):
//! worker 0 on the main thread, the others each on its own thread with its
//! own agent and pool (and, with `--demo`, each serving the demo site too), all sharing the input, the one
//! writer, the progress bar and the totals. `--concurrency` and `--per-host`
//! are split among the threads so that their sums are the caps.
//!
//! Offline demo: `cargo run --release --example crawl -- --demo`.

mod args;
mod cookies;
mod demo;
mod enqueue;
mod fetch;
mod frontier;
mod input;
mod output;
mod polite;
mod record;
mod resume;
mod target;
mod workers;

use std::cell::Cell;
use std::fmt;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{HumanBytes, HumanCount, ProgressBar, ProgressState, ProgressStyle};
use twined::defer::{Deferred, DeferredList, Failure};
use twined::reactor::{self, DnsCache, Event, Phase};
use twined::redis::Client;
use twined::task::{LoopingCall, ReactorThreads};
use twined::web::client::{
    Agent, AgentOptions, ConnectionPool, CookieJar, PoolOptions, Proxies, Proxy, RetryPolicy,
    TlsConfig,
};

use args::Args;
use frontier::Frontier;
use input::{Feed, Input, Lines, SharedLines};
use output::Output;
use polite::Polite;
use workers::{Crawl, Shared, Source};

/// A usage problem: exit status 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("crawl: {message}");
    ExitCode::from(2)
}

/// The progress bar, on a terminal without `-q`: URLs done (of the total
/// when it is known, with an ETA), the rate rounded to whole URLs a
/// second, and the ok and failed counts so far (the message, set by each
/// result).
fn progress(quiet: bool, len: Option<u64>) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:40} {human_pos}/{human_len} {rate} {msg} [{elapsed_precise}, ETA {eta}]",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} {human_pos} {rate} {msg} [{elapsed_precise}]",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let style = style.with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", rate(state.per_sec()));
        });
        bar.set_style(style);
    }
    bar.set_message("ok 0 failed 0");
    Some(bar)
}

/// A rate in URLs a second, rounded, thousands grouped: `4,198/s`.
fn rate(per_sec: f64) -> String {
    let whole = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", HumanCount(whole))
}

/// The closing stats on standard error (Scrapy's "Dumping Scrapy stats"),
/// printed with or without `-q`: URLs done, ok, failed by error kind,
/// responses by status class, body bytes, elapsed time and rate. Counts
/// from every thread of a `-j N` crawl.
fn summary(shared: &Shared, seconds: f64) {
    let written = shared.out().written();
    let done = written.ok + written.failed;
    let kinds: Vec<String> = shared
        .failed_by_kind()
        .iter()
        .map(|(kind, n)| format!("{kind} {}", HumanCount(*n)))
        .collect();
    let classes = shared.by_class();
    let mut statuses: Vec<String> = (0..5)
        .filter(|&i| classes[i] > 0 || (1..=4).contains(&i))
        .map(|i| format!("{}xx {}", i + 1, HumanCount(classes[i])))
        .collect();
    if classes[5] > 0 {
        statuses.push(format!("other {}", HumanCount(classes[5])));
    }
    let bytes = shared.bytes();
    eprintln!("crawl stats:");
    eprintln!("  done         {} URLs", HumanCount(done));
    eprintln!("  ok           {}", HumanCount(written.ok));
    if kinds.is_empty() {
        eprintln!("  failed       {}", HumanCount(written.failed));
    } else {
        eprintln!(
            "  failed       {} ({})",
            HumanCount(written.failed),
            kinds.join(", ")
        );
    }
    eprintln!("  responses    {}", statuses.join(", "));
    eprintln!(
        "  bytes        {} ({})",
        HumanCount(bytes),
        HumanBytes(bytes)
    );
    eprintln!("  elapsed      {seconds:.2} s");
    eprintln!("  rate         {}", rate(done as f64 / seconds.max(1e-9)));
}

/// Share `i` of `total` split among `n`: the shares differ by at most one
/// and add up to `total`.
fn share(total: usize, n: usize, i: usize) -> usize {
    total / n + usize::from(i < total % n)
}

/// What each worker thread needs to build its own agent and source.
#[derive(Clone)]
struct Plan {
    /// The agent's options but TLS (built on each thread: it is not `Send`).
    timeout: Duration,
    connect_timeout: Duration,
    /// `--dns-ttl`: one name cache for every thread's agent; `None` when 0
    /// (a lookup per connection).
    dns: Option<DnsCache>,
    max_redirects: usize,
    /// `--max-bytes`: the decoded body limit.
    max_bytes: u64,
    headers: twined::web::Headers,
    user_agent: Option<String>,
    ca_file: Option<PathBuf>,
    /// `--proxy` and the environment's proxy variables; `None` for direct.
    proxy: Option<Proxies>,
    keepalive: bool,
    threads: usize,
    concurrency: usize,
    per_host: usize,
    retry: RetryPolicy,
    save: Option<PathBuf>,
    /// `--cookies`: one jar for every thread's agent.
    cookies: Option<CookieJar>,
    lines: Arc<SharedLines>,
    frontier: Option<frontier::Config>,
    /// With `--demo` and `-j N > 1`: the site's port, served by every
    /// thread until all are done.
    demo: Option<(SocketAddr, Arc<demo::AllDone>)>,
    /// `--delay`, `--rate`, `--obey-robots`: shared by every thread.
    polite: Polite,
}

impl Plan {
    /// The agent's options (TLS roots loaded on this thread).
    fn agent_options(&self) -> Result<AgentOptions, String> {
        let mut tls = TlsConfig::default();
        if let Some(ca) = &self.ca_file {
            tls = tls.add_root_pem_file(ca).map_err(|e| e.to_string())?;
        }
        let mut options = AgentOptions {
            timeout: Some(self.timeout),
            connect_timeout: Some(self.connect_timeout),
            dns_ttl: None,
            dns_cache: self.dns.clone(),
            redirect_limit: self.max_redirects,
            follow_redirects: self.max_redirects > 0,
            max_body: Some(self.max_bytes),
            headers: self.headers.clone(),
            cookies: self.cookies.clone(),
            tls,
            proxy: self.proxy.clone(),
            ..Default::default()
        };
        if let Some(ua) = &self.user_agent {
            options.user_agent = ua.clone();
        }
        Ok(options)
    }

    /// Thread `i`'s workers: its share of the caps, its own pool and agent;
    /// fires when they are all done (the frontier's last lines acknowledged).
    fn run(&self, i: usize, shared: Arc<Shared>) -> Deferred<()> {
        let concurrency = share(self.concurrency, self.threads, i);
        let per_host = share(self.per_host, self.threads, i);
        let pool = ConnectionPool::with_options(PoolOptions {
            persistent: self.keepalive,
            max_idle_per_host: per_host,
            max_per_host: Some(per_host),
            max_total: Some(concurrency),
            ..Default::default()
        });
        let agent = match self.agent_options() {
            Ok(mut options) => {
                // robots.txt files come through an agent on the same pool
                // without the hook (which asks for them).
                let plain = Agent::with_options(pool.clone(), options.clone());
                options.before_request = self.polite.before_request(&plain);
                Agent::with_options(pool, options)
            }
            Err(why) => {
                shared.stop(why);
                return twined::defer::succeed(());
            }
        };
        let (retry, save) = (self.retry.clone(), self.save.clone());
        let Some(config) = self.frontier.clone() else {
            let source = Source::Lines(Feed::new(self.lines.clone()));
            let crawl = Crawl::new(agent, source, retry, save, shared);
            let done = all_workers(&crawl, concurrency);
            let Some((addr, all_done)) = self.demo.clone() else {
                return done;
            };
            // Thread 0 opened the site; the others serve it too.
            let port = if i == 0 {
                None
            } else {
                match demo::serve(addr) {
                    Ok(port) => Some(port),
                    Err(e) => {
                        eprintln!(
                            "crawl: demo: thread {i} cannot serve the site ({e}); the others do"
                        );
                        None
                    }
                }
            };
            // Arrive however this thread's crawl ended: a thread that failed
            // and never arrived would keep the others serving forever.
            return done.then(move |ended: Result<(), Failure>| {
                all_done.arrive().and_then(move |()| {
                    if let Some(port) = port {
                        port.stop_listening();
                    }
                    ended
                })
            });
        };
        let on_fail = shared.clone();
        Frontier::start(config, shared.clone(), concurrency)
            .then(move |result: Result<Rc<Frontier>, Failure>| {
                if let Err(failure) = &result {
                    on_fail.stop(format!("redis: {failure}"));
                }
                result
            })
            .and_then(move |frontier: Rc<Frontier>| {
                let source = Source::Redis(frontier.clone());
                let crawl = Crawl::new(agent, source, retry, save, shared);
                // Acknowledge what was written, regularly and at shutdown.
                let f = frontier.clone();
                let ticker = LoopingCall::new(move || {
                    f.tick();
                });
                let _ = ticker.start(Duration::from_millis(200), false);
                let f = frontier.clone();
                reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
                    f.tick()
                        .add_timeout(Duration::from_secs(5))
                        .add_errback(|_| ())
                });
                all_workers(&crawl, concurrency).and_then(move |()| {
                    let _ = ticker.stop();
                    frontier.tick()
                })
            })
    }
}

/// The proxies to use: `--proxy` for both schemes, else the environment's
/// (unless `--no-proxy-env`, or `--demo`, whose site is on this machine);
/// the environment's `NO_PROXY` applies to `--proxy` too, as in curl.
fn proxies(args: &Args) -> Result<Option<Proxies>, String> {
    let env = if args.no_proxy_env || args.demo.is_some() {
        Proxies::default()
    } else {
        Proxies::from_env().map_err(|e| {
            format!("environment: {e} (--no-proxy-env ignores the environment's proxies)")
        })?
    };
    let proxies = match &args.proxy {
        Some(url) => Proxies {
            no_proxy: env.no_proxy,
            ..Proxies::all(Proxy::parse(url).map_err(|e| format!("--proxy: {e}"))?)
        },
        None => env,
    };
    Ok((!proxies.is_empty()).then_some(proxies))
}

/// Called once with whether every other thread finished its work.
type OthersDone = Box<dyn FnOnce(bool)>;

thread_local! {
    /// What the main thread does when the other threads have ended (the
    /// joining thread cannot send it: it holds `Rc`s).
    static OTHERS_DONE: std::cell::RefCell<Option<OthersDone>> =
        const { std::cell::RefCell::new(None) };
}

/// `n` workers of `crawl`; fires when all are done.
fn all_workers(crawl: &Rc<Crawl>, n: usize) -> Deferred<()> {
    let workers: Vec<Deferred<()>> = (0..n).map(|_| crawl.worker()).collect();
    DeferredList::new(workers).add_callback(|_| ())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let redis_mode = args.redis.is_some() && !args.enqueue;
    if args.urls.is_empty() && args.input.is_none() && args.demo.is_none() && !redis_mode {
        return usage("no URLs: give some, or --input FILE, or --demo");
    }
    if redis_mode && (!args.urls.is_empty() || args.input.is_some() || args.demo.is_some()) {
        return usage("--redis takes its URLs from the queue; load it with --enqueue");
    }
    if args.resume && args.redis.is_some() {
        return usage(
            "--resume is for a URL list; a --redis crawl resumes from its queue (pending entries are claimed again, --dedupe skips fetched URLs)",
        );
    }
    if args.resume && args.output == "-" {
        return usage("--resume reads and appends to the output file: give -o FILE");
    }
    if args.resume && args.demo.is_some() {
        return usage(
            "--resume cannot match --demo's URLs: the demo site gets a new port each run",
        );
    }
    let headers = match args::headers(&args.headers) {
        Ok(h) => h,
        Err(e) => return usage(e),
    };
    let input = match &args.input {
        Some(path) => match Input::open(path, args.repeat) {
            Ok(input) => Some(input),
            Err(e) => return usage(format!("cannot read {path}: {e}")),
        },
        None => None,
    };
    let per_host = args.per_host.unwrap_or(args.concurrency);
    if let Some(ca) = &args.ca_file {
        if let Err(e) = TlsConfig::default().add_root_pem_file(ca) {
            return usage(e);
        }
    }
    let proxy = match proxies(&args) {
        Ok(proxy) => proxy,
        Err(e) => return usage(e),
    };
    if let Some(dir) = &args.save {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage(format!("cannot create {}: {e}", dir.display()));
        }
    }
    if args.enqueue {
        return enqueue_main(&args, input);
    }
    let cookies = match &args.cookie_jar {
        Some(path) => match cookies::load(path) {
            Ok(jar) => Some(jar),
            Err(e) => return usage(e),
        },
        None if args.cookies => Some(CookieJar::new()),
        None => None,
    };
    let (out, done) = if args.resume {
        match open_resumed(&args.output, args.resume_all) {
            Ok((out, done)) => (out, Some(done)),
            Err(why) => return usage(why),
        }
    } else {
        match Output::open(&args.output) {
            Ok(out) => (out, None),
            Err(e) => return usage(format!("cannot write {}: {e}", args.output)),
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Every thread needs at least one request in flight of each cap.
    let threads = args
        .workers
        .unwrap_or(cores)
        .min(args.concurrency)
        .min(per_host)
        .max(1);
    let mut demo_port = None;
    let mut demo_site = None;
    if let Some(n) = args.demo {
        match demo::start(threads > 1) {
            Ok((port, base)) => {
                demo_port = Some(port);
                demo_site = Some((base, n));
            }
            Err(e) => return usage(e),
        }
    }
    let lines = Lines::new(args.urls.clone(), input, demo_site, args.repeat);
    // A queue's length is not known (other processes share it).
    let known = if redis_mode { None } else { lines.known_len() };
    let bar = progress(args.quiet, known);
    let frontier = args.redis.as_ref().map(|url| frontier::Config {
        url: url.clone(),
        queue: args.queue.clone().unwrap_or_default(),
        group: args.group.clone(),
        consumer: args
            .consumer
            .clone()
            .unwrap_or_else(frontier::default_consumer),
        claim_idle: args.claim_idle,
        idle_exit: args.idle_exit,
        follow: args.follow,
        results: args.results.clone(),
        dedupe: args.dedupe.clone(),
    });
    // robots.txt groups go by the User-Agent sent: --user-agent, else -H's.
    let robots_agent = args
        .user_agent
        .clone()
        .or_else(|| headers.get("user-agent").map(str::to_string));
    let plan = Arc::new(Plan {
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        dns: (args.dns_ttl > 0).then(|| DnsCache::new(Duration::from_secs(args.dns_ttl))),
        max_redirects: args.max_redirects,
        max_bytes: args.max_bytes,
        headers,
        user_agent: args.user_agent.clone(),
        ca_file: args.ca_file.clone(),
        proxy,
        keepalive: !args.no_keepalive,
        threads,
        concurrency: args.concurrency,
        per_host,
        retry: RetryPolicy {
            max_retries: args.retries,
            backoff_base: args.retry_backoff,
            backoff_cap: args.retry_max_backoff,
            ..RetryPolicy::default()
        },
        save: args.save.clone(),
        cookies,
        lines: SharedLines::new(lines),
        frontier,
        demo: demo_port
            .as_ref()
            .filter(|_| threads > 1)
            .map(|port| (port.address(), demo::AllDone::new(threads))),
        polite: Polite::new(
            args.delay,
            args.rate,
            args.obey_robots,
            robots_agent.as_deref(),
            args.timeout,
        ),
    });
    let shared = Shared::new(out, bar, done);
    shared.add_handle(reactor::handle());

    // Flush finished lines regularly, so a killed crawl keeps them.
    let flusher = {
        let shared = shared.clone();
        LoopingCall::new(move || {
            let _ = shared.flush();
        })
    };
    let _ = flusher.start(Duration::from_millis(200), false);

    // Threads 1..N on their own reactors; thread 0 here, beside the demo.
    let started = Instant::now();
    let (p, s) = (plan.clone(), shared.clone());
    let others = match ReactorThreads::spawn(threads - 1, move |i| p.run(i + 1, s.clone())) {
        Ok(others) => others,
        Err(e) => return usage(format!("cannot start {threads} threads: {e}")),
    };
    for handle in others.handles() {
        shared.add_handle(handle);
    }
    // The reactor here stops when its workers are done and the other
    // threads have ended.
    let remaining = Rc::new(Cell::new(2));
    let finished = Rc::new(Cell::new(true));
    let one_done = {
        let (remaining, finished) = (remaining.clone(), finished.clone());
        move |ok: bool| {
            if !ok {
                finished.set(false);
            }
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                let _ = reactor::stop();
            }
        }
    };
    let (results_tx, results_rx) = std::sync::mpsc::channel();
    {
        let done = one_done.clone();
        OTHERS_DONE.with(|slot| *slot.borrow_mut() = Some(Box::new(done)));
        let here = reactor::handle();
        let joined = std::thread::spawn(move || {
            let ok = others.join().iter().all(Result::is_ok);
            let _ = results_tx.send(ok);
            here.call_from_thread(move || {
                if let Some(done) = OTHERS_DONE.with(|slot| slot.borrow_mut().take()) {
                    done(ok);
                }
            });
        });
        drop(joined);
    }
    let here_done = Rc::new(Cell::new(false));
    let h = here_done.clone();
    plan.run(0, shared.clone()).add_both(move |result| {
        h.set(true);
        one_done(result.is_ok());
    });
    if let Err(e) = reactor::run() {
        eprintln!("crawl: {e}");
    }
    // Interrupted (or a fatal error): stop every thread, and wait for them
    // (each one acknowledges what it wrote before it ends).
    shared.stop_all_quietly();
    let others_ok = results_rx.recv().unwrap_or(false);
    let finished = finished.get() && here_done.get() && others_ok;
    let _ = flusher.stop();
    let seconds = started.elapsed().as_secs_f64();
    let _ = shared.flush();
    if let Some(bar) = &shared.bar {
        bar.finish_and_clear();
    }
    if let Some(port) = demo_port {
        port.stop_listening();
    }

    let saved = match (&args.cookie_jar, &plan.cookies) {
        (Some(path), Some(jar)) => cookies::save(jar, path),
        _ => Ok(()),
    };
    if let Err(why) = &saved {
        eprintln!("crawl: {why}");
    }

    let written = shared.out().written();
    let done = shared.recorded();
    let fatal = shared.fatal();
    let unreadable = plan.lines.error();
    let follow_end = args.follow && fatal.is_none();
    let skipped = shared.skipped();
    if done == 0
        && skipped == 0
        && finished
        && fatal.is_none()
        && unreadable.is_none()
        && !redis_mode
    {
        return usage("no URLs in the input");
    }
    if let Some(why) = &fatal {
        eprintln!("crawl: {why}");
    } else if !finished && !follow_end {
        eprintln!("interrupted: {done} fetches done, the rest not fetched");
    }
    if let Some(why) = &unreadable {
        let input = args.input.as_deref().unwrap_or("-");
        eprintln!("crawl: cannot read {input}: {why}; the URLs after it were not fetched");
    }
    summary(&shared, seconds);
    if args.resume {
        eprintln!(
            "resume: skipped {skipped} URL(s) already in {}",
            args.output
        );
    }
    eprintln!("ok={} failed={}", written.ok, written.failed);
    if fatal.is_some() || unreadable.is_some() || saved.is_err() {
        ExitCode::from(2)
    } else if written.failed > 0 || (!finished && !follow_end) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--resume`: reads `path` for the URLs already done (any line with
/// `all`, else success lines), reports a torn last line, and opens the file
/// to append after its last complete line.
fn open_resumed(path: &str, all: bool) -> Result<(Output, resume::Done), String> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(format!("--resume needs a regular file; {path} is not one"));
        }
        _ => {}
    }
    let scan = resume::scan(std::path::Path::new(path), all)
        .map_err(|e| format!("cannot read {path} to resume: {e}"))?;
    if let Some(torn) = &scan.torn {
        eprintln!(
            "crawl: {path}: ignoring a torn last line ({torn}); the file is cut to its last complete line"
        );
    }
    if scan.bad > 0 {
        eprintln!(
            "crawl: {path}: {} line(s) are not crawl lines; left as they are, ignored",
            scan.bad
        );
    }
    let kind = if all { "line" } else { "success line" };
    eprintln!("resume: {} URL(s) with a {kind} in {path}", scan.done.len());
    let out =
        Output::append(path, scan.keep).map_err(|e| format!("cannot append to {path}: {e}"))?;
    Ok((out, scan.done))
}

/// `--enqueue`: loads the URL list into the queue and exits.
fn enqueue_main(args: &Args, input: Option<Input>) -> ExitCode {
    let (Some(url), Some(queue)) = (&args.redis, &args.queue) else {
        return usage("--enqueue needs --redis URL and --queue NAME");
    };
    if args.demo.is_some() {
        return usage("--enqueue loads URL arguments and -i FILE; the --demo site lives only as long as its crawl");
    }
    let client = match Client::new(url) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let lines = Lines::new(args.urls.clone(), input, None, args.repeat);
    let feed = Feed::new(SharedLines::new(lines));
    let result = twined::task::react(|| enqueue::enqueue(client, queue.clone(), &args.group, feed));
    match result {
        Ok(loaded) => {
            eprintln!("enqueued={} skipped={}", loaded.added, loaded.skipped);
            ExitCode::from(u8::from(loaded.skipped > 0))
        }
        Err(failure) => {
            eprintln!("crawl: redis: {failure}");
            ExitCode::from(2)
        }
    }
}
