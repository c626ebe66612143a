//! The command line: every option, its default and its range. A value out of
//! range is a usage error (exit status 2) that names the option, never a
//! panic and never a silent fallback.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::Parser;
use twined::web::Headers;

/// Most requests in flight overall, and per host.
pub const MAX_CONCURRENCY: u64 = 10_000;
/// Longest timeout accepted, in seconds (one week).
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// Shortest timeout accepted, in seconds.
pub const MIN_TIMEOUT_SECS: f64 = 0.001;
/// Largest `--max-bytes` accepted (1 PiB).
pub const MAX_BODY_BYTES: u64 = 1 << 50;

#[derive(Parser, Debug)]
#[command(
    name = "crawl",
    version = concat!(env!("CARGO_PKG_VERSION"), " (twined ", env!("CARGO_PKG_VERSION"), ")"),
    about = "Fetch many URLs with twined; one JSON line per fetch."
)]
pub struct Args {
    /// URLs to fetch.
    pub urls: Vec<String>,
    /// URLs one a line, read as they are needed (blank lines and lines
    /// starting with # skipped; '-' = stdin).
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<String>,
    /// Serve a generated site on 127.0.0.1 and crawl N of its URLs.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5000",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000_000))]
    pub demo: Option<usize>,
    /// Fetch the whole URL list K times.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000_000))]
    pub repeat: usize,
    /// Requests in flight overall (1 to 10000).
    #[arg(short, long, value_name = "N", default_value_t = 64,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONCURRENCY))]
    pub concurrency: usize,
    /// Requests in flight per host (default: --concurrency; 1 to 10000).
    #[arg(long, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONCURRENCY))]
    pub per_host: Option<usize>,
    /// Whole-request timeout in seconds, redirects and body included, waits
    /// for --delay, --rate and robots.txt not (0.001 to 604800).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub timeout: Duration,
    /// Connect timeout in seconds (0.001 to 604800).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Seconds a host name's addresses are reused before it is looked up
    /// again (0 = look up for every connection; at most 604800). One cache
    /// serves every -j thread: a host is looked up once, not once per
    /// thread.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = RangedU64ValueParser::<u64>::new().range(0..=604_800))]
    pub dns_ttl: u64,
    /// Retries per URL (0 to 100) after what a retry can fix: a refused or
    /// timed-out connection, a connection closed before any response byte,
    /// status 429/502/503/504. Waits follow --retry-backoff, or the
    /// server's Retry-After on 429/503 (up to --retry-max-backoff; a longer
    /// one is not retried).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = RangedU64ValueParser::<u32>::new().range(0..=100))]
    pub retries: u32,
    /// Backoff base in seconds: the wait before retry n is drawn at random
    /// from 0 to min(--retry-max-backoff, BASE * 2^n) (full jitter; 0.001 to
    /// 604800).
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = seconds)]
    pub retry_backoff: Duration,
    /// The longest wait before a retry, in seconds (0.001 to 604800); a
    /// Retry-After asking for more is not retried.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    pub retry_max_backoff: Duration,
    /// Most redirects followed per URL (0 = none; at most 100).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=100))]
    pub max_redirects: usize,
    /// Largest body accepted per URL, in bytes, as received and as decoded
    /// from gzip (1 to 2^50; default 1 GiB, as Scrapy's DOWNLOAD_MAXSIZE).
    /// Past it the fetch fails with kind too_large.
    #[arg(long, value_name = "BYTES", default_value_t = twined::web::client::DEFAULT_MAX_BODY,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=MAX_BODY_BYTES))]
    pub max_bytes: u64,
    /// A new connection per request.
    #[arg(long)]
    pub no_keepalive: bool,
    /// Extra request header, 'Name: value' (repeatable; Content-Length and
    /// Transfer-Encoding are refused).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The User-Agent to send.
    #[arg(long, value_name = "STR")]
    pub user_agent: Option<String>,
    /// Send requests through this proxy: http://[user:pass@]host:port (https
    /// URLs through a CONNECT tunnel), socks5://[user:pass@]host:port
    /// (names resolved here) or socks5h://... (names resolved by the proxy).
    /// Replaces HTTP_PROXY, HTTPS_PROXY and ALL_PROXY; NO_PROXY still
    /// applies.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Ignore the proxy variables of the environment (HTTP_PROXY,
    /// HTTPS_PROXY, ALL_PROXY, NO_PROXY and their lower-case forms), which
    /// are honoured by default (not with --demo, whose site is local).
    #[arg(long)]
    pub no_proxy_env: bool,
    /// Extra trusted root certificates (PEM) for HTTPS.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Keep cookies across the crawl: Set-Cookie from any response is sent
    /// back on later requests (RFC 6265 rules; one jar for all workers).
    #[arg(long)]
    pub cookies: bool,
    /// Load cookies from FILE at the start (a missing file is an empty jar)
    /// and save them there at the end, session cookies included, as curl's
    /// --cookie-jar does (JSON; written to a temporary file, then renamed).
    /// Implies --cookies.
    #[arg(long, value_name = "FILE")]
    pub cookie_jar: Option<PathBuf>,
    /// Write each body into DIR (new files only; symlinks are never followed).
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Least time between two requests to one host, in seconds, over all
    /// workers (0 to 604800; 0 = none). Retries and redirect hops wait too
    /// (a hop for its own host). With --obey-robots, a host's Crawl-delay
    /// raises it (taken as 60 s at most).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = delay)]
    pub delay: Duration,
    /// Most requests per second overall, over all workers (0.001 to
    /// 1000000; default: no limit).
    #[arg(long, value_name = "N", value_parser = rate)]
    pub rate: Option<f64>,
    /// Fetch each site's robots.txt first (once per site, 10 s and 500 KiB
    /// at most) and skip the URLs it disallows for the
    /// User-Agent sent (kind robots), redirect hops included: a hop is
    /// checked against its own site's robots.txt before it is sent. A
    /// robots.txt answered 4xx allows everything; 5xx, 429 or no answer
    /// disallows everything (RFC 9309).
    #[arg(long)]
    pub obey_robots: bool,
    /// JSON lines go here ('-' = stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: String,
    /// Skip URLs that already have a success line (no error) in -o FILE and
    /// append to it; a torn last line left by a crash is cut off first.
    /// Needs -o FILE (a regular file); not with --redis or --demo.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: skip URLs that have any line in FILE, failures too.
    #[arg(long, requires = "resume")]
    pub resume_all: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Reactor threads (default: the number of cores; at most --concurrency
    /// and --per-host, which stay global caps split among the threads).
    #[arg(short = 'j', long = "workers", value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub workers: Option<usize>,
    /// Take URLs from a Redis stream (the shared frontier): redis://[:password@]host[:port][/db].
    #[arg(long, value_name = "URL", requires = "queue")]
    pub redis: Option<String>,
    /// The Redis stream holding the URLs (field `url`).
    #[arg(long, value_name = "NAME", requires = "redis")]
    pub queue: Option<String>,
    /// The consumer group of the crawlers.
    #[arg(long, value_name = "NAME", default_value = "crawl")]
    pub group: String,
    /// This process's consumer name (default: host-pid).
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
    /// Take over entries another consumer left pending this long (seconds).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    pub claim_idle: Duration,
    /// Exit once the queue is empty and nothing is pending for this long (seconds).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    pub idle_exit: Duration,
    /// Keep waiting for new URLs until Ctrl-C.
    #[arg(long, requires = "redis")]
    pub follow: bool,
    /// Also append each JSON line to this Redis stream (field `line`).
    #[arg(long, value_name = "STREAM", requires = "redis")]
    pub results: Option<String>,
    /// Skip URLs in this Redis set; add each fetched URL to it.
    #[arg(long, value_name = "SET", requires = "redis")]
    pub dedupe: Option<String>,
    /// Load the queue from the URLs given (and -i FILE) instead of crawling.
    #[arg(long, requires = "redis")]
    pub enqueue: bool,
}

/// A timeout in seconds: a finite number from 0.001 to one week.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs) {
        // NaN and the infinities land here too.
        return Err(format!(
            "{text} is out of range: from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Largest `--rate` accepted, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;

/// A `--delay` in seconds: a finite number from 0 to one week.
fn delay(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    seconds(text)
}

/// A `--rate`: requests per second, from 0.001 to one million.
fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    if !(0.001..=MAX_RATE).contains(&rate) {
        return Err(format!(
            "{text} is out of range: from 0.001 to {MAX_RATE} requests per second"
        ));
    }
    Ok(rate)
}

/// Header fields that frame the request body: the client sets them, a user
/// value would corrupt the request on the wire.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// The `-H` headers, checked: `Name: value`, a valid field name and value,
/// no framing header, at most one `Host`. Each replaces the client's default
/// of the same name.
pub fn headers(given: &[String]) -> Result<Headers, String> {
    let mut headers = Headers::new();
    for h in given {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("bad header {h:?}: expected 'Name: value'"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("bad header {h:?}: {name:?} is not a field name"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!(
                "bad header {h:?}: the value has a control character"
            ));
        }
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            return Err(format!(
                "-H {h:?}: {name} frames the request and is set by the client; it cannot be given"
            ));
        }
        headers.append(name, value);
    }
    if headers.get_all_bytes("host").count() > 1 {
        return Err("-H: more than one Host; give it once".into());
    }
    Ok(headers)
}

/// A character of an HTTP token (RFC 9110, section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
