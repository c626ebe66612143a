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
//! [`workers`] (the loop), [`demo`] (the offline site).
//!
//! Offline demo: `cargo run --release --example crawl -- --demo`.

mod args;
mod demo;
mod fetch;
mod input;
mod output;
mod record;
mod target;
mod workers;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use twined::defer::{Deferred, DeferredList};
use twined::reactor;
use twined::task::LoopingCall;
use twined::web::client::{Agent, AgentOptions, ConnectionPool, PoolOptions, TlsConfig};

use args::Args;
use input::{Feed, Input, Lines};
use output::Output;
use workers::Crawl;

/// A usage problem: exit status 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("crawl: {message}");
    ExitCode::from(2)
}

/// The progress bar, on a terminal without `-q`.
fn progress(quiet: bool, len: Option<u64>) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:40} {pos}/{len} {per_sec} {msg} [{elapsed_precise}]",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} {pos} {per_sec} {msg} [{elapsed_precise}]",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(bar)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.urls.is_empty() && args.input.is_none() && args.demo.is_none() {
        return usage("no URLs: give some, or --input FILE, or --demo");
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
    let mut options = AgentOptions {
        timeout: Some(args.timeout),
        connect_timeout: Some(args.connect_timeout),
        redirect_limit: args.max_redirects,
        follow_redirects: args.max_redirects > 0,
        max_body: Some(args.max_bytes),
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
    let out = match Output::open(&args.output) {
        Ok(out) => out,
        Err(e) => return usage(format!("cannot write {}: {e}", args.output)),
    };
    let mut demo_port = None;
    let mut demo_site = None;
    if let Some(n) = args.demo {
        match demo::start() {
            Ok((port, base)) => {
                demo_port = Some(port);
                demo_site = Some((base, n));
            }
            Err(e) => return usage(e),
        }
    }
    let lines = Lines::new(args.urls.clone(), input, demo_site, args.repeat);
    let bar = progress(args.quiet, lines.known_len());
    let crawl = Crawl::new(
        Agent::with_options(pool, AgentOptions { tls, ..options }),
        Feed::new(lines),
        args.retries,
        args.save.clone(),
        out,
        bar,
    );

    // Flush finished lines regularly, so a killed crawl keeps them.
    let flusher = {
        let crawl = crawl.clone();
        LoopingCall::new(move || {
            let flushed = crawl.out.borrow_mut().flush();
            if let Err(why) = flushed {
                crawl.stop(why);
            }
        })
    };
    let _ = flusher.start(Duration::from_millis(200), false);

    // `concurrency` workers; the reactor stops when all of them are done.
    let started = Instant::now();
    let workers: Vec<Deferred<()>> = (0..args.concurrency).map(|_| crawl.worker()).collect();
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let all_done = finished.clone();
    DeferredList::new(workers).add_both(move |_| {
        all_done.set(true);
        let _ = reactor::stop();
    });
    if let Err(e) = reactor::run() {
        eprintln!("crawl: {e}");
    }
    let _ = flusher.stop();
    let seconds = started.elapsed().as_secs_f64();
    let flushed = crawl.out.borrow_mut().flush();
    if let Err(why) = flushed {
        crawl.stop(why);
    }
    if let Some(bar) = &crawl.bar {
        bar.finish_and_clear();
    }
    if let Some(port) = demo_port {
        port.stop_listening();
    }

    let written = crawl.out.borrow().written();
    let done = crawl.recorded();
    let fatal = crawl.fatal();
    let unreadable = crawl.feed.error();
    if done == 0 && finished.get() && fatal.is_none() && unreadable.is_none() {
        return usage("no URLs in the input");
    }
    if let Some(why) = &fatal {
        eprintln!("crawl: {why}");
    } else if !finished.get() {
        eprintln!("interrupted: {done} fetches done, the rest not fetched");
    }
    if let Some(why) = &unreadable {
        let input = args.input.as_deref().unwrap_or("-");
        eprintln!("crawl: cannot read {input}: {why}; the URLs after it were not fetched");
    }
    eprintln!(
        "{done} fetches, {} bytes in {seconds:.2} s: {:.0} req/s",
        crawl.bytes(),
        done as f64 / seconds.max(1e-9)
    );
    eprintln!("ok={} failed={}", written.ok, written.failed);
    if fatal.is_some() || unreadable.is_some() {
        ExitCode::from(2)
    } else if written.failed > 0 || !finished.get() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
