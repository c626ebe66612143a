//! `crawl`: fetch many URLs with twined, print one JSON line per fetch.
//!
//! The Twisted original: `getPage(url).addCallback(one_done)` for every URL,
//! `DeferredList(ds).addBoth(all_done)` with `reactor.stop()` in `all_done`.
//! Here `concurrency` workers each take the next URL when their fetch is
//! done (so a million URLs never means a million Deferreds at once), a
//! `DeferredList` of the workers stops the reactor when all are done, and the
//! agent's pool caps requests per host.
//!
//! Offline demo: `cargo run --release --example crawl -- --demo`.

mod demo;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use twined::defer::{Deferred, DeferredList, Failure};
use twined::reactor;
use twined::task::LoopingCall;
use twined::web::client::{
    Agent, AgentOptions, BodyConsumer, ConnectionPool, PoolOptions, Response, TlsConfig,
};
use twined::web::{Error as WebError, Headers};

#[derive(Parser, Debug)]
#[command(
    name = "crawl",
    about = "Fetch many URLs with twined; one JSON line per fetch."
)]
struct Args {
    /// URLs to fetch.
    urls: Vec<String>,
    /// URLs one a line (blank lines and lines starting with # skipped; '-' = stdin).
    #[arg(short, long, value_name = "FILE")]
    input: Option<String>,
    /// Serve a generated site on 127.0.0.1 and crawl N of its URLs.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5000")]
    demo: Option<usize>,
    /// Fetch the whole URL list K times.
    #[arg(long, value_name = "K", default_value_t = 1)]
    repeat: usize,
    /// Requests in flight overall.
    #[arg(short, long, value_name = "N", default_value_t = 64)]
    concurrency: usize,
    /// Requests in flight per host (default: --concurrency).
    #[arg(long, value_name = "N")]
    per_host: Option<usize>,
    /// Whole-request timeout in seconds, body included.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
    /// Connect timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Retries for connection errors and 502/503/504 on GET.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: usize,
    /// Most redirects followed per URL.
    #[arg(long, value_name = "N", default_value_t = 20)]
    max_redirects: usize,
    /// A new connection per request.
    #[arg(long)]
    no_keepalive: bool,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The User-Agent to send.
    #[arg(long, value_name = "STR")]
    user_agent: Option<String>,
    /// Extra trusted root certificates (PEM) for HTTPS.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Write each body into DIR.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// JSON lines go here ('-' = stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    output: String,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

/// A usage problem: exit status 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("crawl: {message}");
    ExitCode::from(2)
}

fn read_urls(input: &str) -> io::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(io::BufReader::new(File::open(input)?))
    };
    let mut urls = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            urls.push(line.to_string());
        }
    }
    Ok(urls)
}

/// A file name for the `index`th body from `url`: safe characters only,
/// so it never leaves the directory.
fn save_name(index: usize, url: &str) -> String {
    let tail = url.split("://").nth(1).unwrap_or(url);
    let safe: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    format!("{index:07}-{}", safe.trim_start_matches('.'))
}

/// Counts a body (and writes it to a file with --save), keeping nothing.
struct Sink {
    bytes: u64,
    file: Option<BufWriter<File>>,
    write_error: Option<io::Error>,
    done: Option<twined::defer::Trigger<u64>>,
}

impl BodyConsumer for Sink {
    fn data(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if let (Some(file), None) = (self.file.as_mut(), self.write_error.as_ref()) {
            if let Err(e) = file.write_all(chunk) {
                self.write_error = Some(e);
            }
        }
    }

    fn finished(&mut self, result: Result<(), Failure>) {
        let flushed = self.file.take().map(|mut f| f.flush());
        let result = match (
            result,
            self.write_error.take().or(flushed.and_then(Result::err)),
        ) {
            (Err(f), _) => Err(f),
            (Ok(()), Some(e)) => Err(Failure::msg(format!("cannot save the body: {e}"))),
            (Ok(()), None) => Ok(self.bytes),
        };
        if let Some(done) = self.done.take() {
            done.fire_with(result);
        }
    }
}

/// One finished fetch.
struct Outcome {
    response: Option<(u16, String, usize, Option<String>)>,
    bytes: u64,
    error: Option<Failure>,
}

/// Fetches `url`: the response head, then its body counted (or saved).
fn fetch(agent: &Agent, url: &str, save: Option<PathBuf>) -> Deferred<Outcome> {
    agent
        .request("GET", url, Headers::new(), None)
        .and_then(move |response: Response| {
            let head = (
                response.status,
                response.url.clone(),
                response.history.len(),
                response.headers.get("content-type").map(str::to_string),
            );
            let file = match save.map(File::create).transpose() {
                Ok(f) => f.map(BufWriter::new),
                Err(e) => return twined::defer::fail(Failure::msg(format!("cannot save: {e}"))),
            };
            let (d, done) = Deferred::new();
            response.deliver_body(Sink {
                bytes: 0,
                file,
                write_error: None,
                done: Some(done),
            });
            d.add_callback(move |bytes| (head, bytes))
        })
        .add_both(|result| match result {
            Ok((head, bytes)) => {
                let error = (head.0 >= 400).then(|| {
                    Failure::new(WebError::Http {
                        status: head.0,
                        reason: String::new(),
                        url: head.1.clone(),
                        body: Vec::new(),
                    })
                });
                Outcome {
                    response: Some(head),
                    bytes,
                    error,
                }
            }
            Err(failure) => Outcome {
                response: None,
                bytes: 0,
                error: Some(failure),
            },
        })
}

/// Whether a failed fetch may be retried (connection errors, 502/503/504).
fn retryable(outcome: &Outcome) -> bool {
    let Some(error) = &outcome.error else {
        return false;
    };
    match error.downcast_ref::<WebError>() {
        Some(e) => {
            matches!(e.kind().as_str(), "connect" | "io") || matches!(e.status(), Some(502..=504))
        }
        None => false,
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `null` or the JSON of `v`.
fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "null".to_string(), f)
}

/// The JSON line of one fetch, keys in the documented order.
fn json_line(url: &str, outcome: &Outcome, elapsed: Duration) -> String {
    let (status, final_url, redirects, content_type) = match &outcome.response {
        Some((s, u, r, c)) => (Some(*s), Some(u.as_str()), *r, c.as_deref()),
        None => (None, None, 0, None),
    };
    let error = or_null(outcome.error.as_ref(), |f| {
        let (kind, message) = match f.downcast_ref::<WebError>() {
            Some(e) if e.kind().as_str() == "http" => {
                ("http", format!("HTTP status {}", e.status().unwrap_or(0)))
            }
            Some(e) => (e.kind().as_str(), e.to_string()),
            None => ("io", f.to_string()),
        };
        format!(
            r#"{{"kind":{},"message":{}}}"#,
            quote(kind),
            quote(&message)
        )
    });
    format!(
        r#"{{"url":{},"final_url":{},"status":{},"bytes":{},"elapsed_ms":{:.1},"redirects":{},"content_type":{},"error":{}}}"#,
        quote(url),
        or_null(final_url, quote),
        or_null(status, |s| s.to_string()),
        outcome.bytes,
        elapsed.as_secs_f64() * 1000.0,
        redirects,
        or_null(content_type, quote),
        error,
    )
}

/// What the workers share.
struct Crawl {
    agent: Agent,
    urls: Vec<String>,
    total: usize,
    next: Cell<usize>,
    retries: usize,
    save: Option<PathBuf>,
    out: RefCell<Box<dyn Write>>,
    ok: Cell<usize>,
    failed: Cell<usize>,
    bytes: Cell<u64>,
    bar: Option<ProgressBar>,
}

impl Crawl {
    /// Starts the next fetch, or fires `done` when the list is exhausted.
    fn step(self: &Rc<Self>, done: twined::defer::Trigger<()>) {
        let index = self.next.get();
        if index == self.total {
            return done.callback(());
        }
        self.next.set(index + 1);
        let url = self.urls[index % self.urls.len()].clone();
        self.attempt(index, url, 0, Instant::now(), done);
    }

    fn attempt(
        self: &Rc<Self>,
        index: usize,
        url: String,
        tries: usize,
        start: Instant,
        done: twined::defer::Trigger<()>,
    ) {
        let save = self
            .save
            .as_ref()
            .map(|dir| dir.join(save_name(index, &url)));
        let crawl = self.clone();
        fetch(&self.agent, &url, save).add_callback(move |outcome| {
            if tries < crawl.retries && retryable(&outcome) {
                return crawl.attempt(index, url, tries + 1, start, done);
            }
            crawl.record(&url, &outcome, start.elapsed());
            crawl.step(done);
        });
    }

    fn record(&self, url: &str, outcome: &Outcome, elapsed: Duration) {
        let line = json_line(url, outcome, elapsed);
        let mut out = self.out.borrow_mut();
        if writeln!(out, "{line}").is_err() {
            let _ = reactor::stop();
        }
        match outcome.error {
            None => self.ok.set(self.ok.get() + 1),
            Some(_) => self.failed.set(self.failed.get() + 1),
        }
        self.bytes.set(self.bytes.get() + outcome.bytes);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if outcome.error.is_some() {
                bar.set_message(format!("errors: {}", self.failed.get()));
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.concurrency == 0 || args.per_host == Some(0) {
        return usage("--concurrency and --per-host must be at least 1");
    }
    let mut urls = args.urls.clone();
    if let Some(input) = &args.input {
        match read_urls(input) {
            Ok(more) => urls.extend(more),
            Err(e) => return usage(format!("cannot read {input}: {e}")),
        }
    }
    let mut demo_port = None;
    if let Some(n) = args.demo {
        match demo::start(n) {
            Ok((port, demo_urls)) => {
                urls.extend(demo_urls);
                demo_port = Some(port);
            }
            Err(e) => return usage(e),
        }
    }
    if urls.is_empty() {
        return usage("no URLs: give some, or --input FILE, or --demo");
    }
    let mut headers = Headers::new();
    for h in &args.headers {
        match h.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                headers.append(name.trim(), value.trim())
            }
            _ => return usage(format!("bad header {h:?}: expected 'Name: value'")),
        }
    }
    let secs = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
    let mut options = AgentOptions {
        timeout: secs(args.timeout),
        connect_timeout: secs(args.connect_timeout),
        redirect_limit: args.max_redirects,
        follow_redirects: args.max_redirects > 0,
        headers,
        ..Default::default()
    };
    if let Some(ua) = &args.user_agent {
        options.user_agent = ua.clone();
    }
    let per_host = args.per_host.unwrap_or(args.concurrency);
    let pool = ConnectionPool::with_options(PoolOptions {
        persistent: !args.no_keepalive,
        max_idle_per_host: per_host,
        max_per_host: Some(per_host),
        max_total: Some(args.concurrency),
        ..Default::default()
    });
    let mut tls = TlsConfig::default();
    if let Some(ca) = &args.ca_file {
        tls = match tls.add_root_pem_file(ca) {
            Ok(t) => t,
            Err(e) => return usage(e),
        };
    }
    if let Some(dir) = &args.save {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage(format!("cannot create {}: {e}", dir.display()));
        }
    }
    let out: Box<dyn Write> = match args.output.as_str() {
        "-" => Box::new(BufWriter::new(io::stdout())),
        path => match File::create(Path::new(path)) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => return usage(format!("cannot write {path}: {e}")),
        },
    };
    let total = urls.len() * args.repeat;
    let bar = (!args.quiet && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg} [{elapsed_precise}]")
        {
            bar.set_style(style);
        }
        bar
    });
    let crawl = Rc::new(Crawl {
        agent: Agent::with_options(pool, AgentOptions { tls, ..options }),
        urls,
        total,
        next: Cell::new(0),
        retries: args.retries,
        save: args.save.clone(),
        out: RefCell::new(out),
        ok: Cell::new(0),
        failed: Cell::new(0),
        bytes: Cell::new(0),
        bar,
    });

    // Flush finished lines regularly, so a killed crawl keeps them.
    let flusher = {
        let crawl = crawl.clone();
        LoopingCall::new(move || {
            let _ = crawl.out.borrow_mut().flush();
        })
    };
    let _ = flusher.start(Duration::from_millis(200), false);

    // `concurrency` workers; the reactor stops when all of them are done.
    let started = Instant::now();
    let workers: Vec<Deferred<()>> = (0..args.concurrency.min(total))
        .map(|_| {
            let (d, done) = Deferred::new();
            crawl.step(done);
            d
        })
        .collect();
    DeferredList::new(workers).add_both(|_| {
        let _ = reactor::stop();
    });
    if let Err(e) = reactor::run() {
        eprintln!("crawl: {e}");
    }
    let _ = flusher.stop();
    let seconds = started.elapsed().as_secs_f64();
    let _ = crawl.out.borrow_mut().flush();
    if let Some(bar) = &crawl.bar {
        bar.finish_and_clear();
    }
    if let Some(port) = demo_port {
        port.stop_listening();
    }
    let (ok, failed) = (crawl.ok.get(), crawl.failed.get());
    let done = ok + failed;
    if done < total {
        eprintln!("interrupted: {done} of {total} fetches done");
    }
    eprintln!(
        "{done} fetches, {} bytes in {seconds:.2} s: {:.0} req/s",
        crawl.bytes.get(),
        done as f64 / seconds.max(1e-9)
    );
    eprintln!("ok={ok} failed={failed}");
    if failed == 0 && done == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
