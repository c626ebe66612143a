//! `robots.txt` (RFC 9309): fetched once per origin, parsed, cached, and
//! asked whether a URL may be fetched and how long to wait between requests
//! (Scrapy's `RobotsTxtMiddleware` with `ROBOTSTXT_OBEY`, Python's
//! `urllib.robotparser`).
//!
//! - [`RobotsTxt`]: one parsed file (or the verdict that stands in for it
//!   when there is none), answering [`is_allowed`](RobotsTxt::is_allowed)
//!   (the longest matching `Allow`/`Disallow` rule of the group of the
//!   user agent's product token; `Allow` wins a tie) and
//!   [`crawl_delay`](RobotsTxt::crawl_delay). Parsing is the `robotxt`
//!   crate's.
//! - [`RobotsCache`]: `Send + Sync` and cheap to clone; the reactors of many
//!   threads share one. [`rules`](RobotsCache::rules) fetches an origin's
//!   `/robots.txt` once: the first asker fetches it with its own
//!   [`Agent`]'s pool, later askers (on any thread) wait for that fetch and
//!   are handed the result on their own reactor. [`check`](RobotsCache::check)
//!   fails a refused URL with [`Error::Robots`] (kind `robots`).
//!
//! # What a fetch ends in (RFC 9309 section 2.3.1)
//!
//! | The fetch of `/robots.txt` | Verdict ([`Access`]) |
//! |---|---|
//! | 2xx | the file's rules ([`Access::Fetched`]) |
//! | 2xx larger than [`max_bytes`](RobotsOptions::max_bytes) (500 KiB) | the rules of its first 500 KiB, as Google does; the rest is not read |
//! | 4xx but 429, more than 5 redirects, any other status | allow everything ([`Access::Unavailable`]) |
//! | 5xx, 429, no answer (refused, DNS, TLS, reset, timeout) | disallow everything ([`Access::Unreachable`]) |
//!
//! A failed fetch disallows, as the RFC says (section 2.3.1.4), and unlike
//! Scrapy, which lets every URL through when `robots.txt` cannot be had: a
//! site that is down or overloaded is not crawled harder. 429 counts with
//! the 5xx, as Google counts it: the server asks for less traffic. The
//! verdict of an unreachable file is cached for a short time only
//! ([`unreachable_ttl`](RobotsOptions::unreachable_ttl), 10 minutes), so
//! the site is tried again.
//!
//! # Bounds
//!
//! Every fetch is bounded: 500 KiB of body ([`DEFAULT_MAX_BYTES`]), 10 s
//! for the whole request ([`DEFAULT_TIMEOUT`]), 5 redirects (the RFC's
//! minimum, section 2.3.1.2; the rules found apply to the origin asked
//! for). The cache holds at most 10,000 origins
//! ([`max_origins`](RobotsOptions::max_origins)), each for 24 hours at most
//! (the RFC's section 2.4); when it is full, expired entries and then the
//! oldest go first. A `Crawl-delay` above 60 s is taken as 60 s
//! ([`max_crawl_delay`](RobotsOptions::max_crawl_delay)).
//!
//! ```
//! use twined::reactor;
//! use twined::task;
//! use twined::web::client::{Agent, RobotsCache, RobotsOptions};
//! use twined::web::server::{Request, Response, Site};
//! use twined::web::ErrorKind;
//!
//! let site = Site::new(|req: Request| match req.path() {
//!     "/robots.txt" => Response::new(200).body("User-agent: *\nDisallow: /private\nCrawl-delay: 2\n"),
//!     _ => Response::new(200).body("page"),
//! });
//! let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
//! let base = format!("http://{}", port.address());
//!
//! let robots = RobotsCache::new(RobotsOptions::default());
//! let agent = Agent::new();
//! let (r, a, b) = (robots.clone(), agent.clone(), base.clone());
//! let rules = task::react(move || r.check(&a, &format!("{b}/public/page"))).unwrap();
//! assert_eq!(rules.crawl_delay(), Some(std::time::Duration::from_secs(2)));
//!
//! let (r, b) = (robots.clone(), base.clone());
//! let refused = task::react(move || r.check(&agent, &format!("{b}/private/x"))).unwrap_err();
//! let error = refused.downcast_ref::<twined::web::Error>().unwrap();
//! assert_eq!(error.kind(), ErrorKind::Robots);
//! assert_eq!(robots.fetches(), 1); // once for the origin
//! port.stop_listening();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use url::Url;

use super::agent::{Agent, AgentOptions};
use super::response::{read_body_prefix, Response};
use crate::defer::{Deferred, Failure};
use crate::task::Pacer;
use crate::threads::{remote_trigger, RemoteTrigger};
use crate::web::http1::USER_AGENT;
use crate::web::{Error, ErrorKind, Headers, RobotsDenial};

/// The default [`RobotsOptions::max_bytes`]: 500 KiB, Google's limit
/// (RFC 9309 section 2.5 asks for at least 500 kibibytes).
pub const DEFAULT_MAX_BYTES: usize = 500 * 1024;

/// The default [`RobotsOptions::timeout`]: 10 s for the whole fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`RobotsCache`].
#[derive(Debug, Clone)]
pub struct RobotsOptions {
    /// The crawler's user agent. Its product token (the leading letters,
    /// `-` and `_`: `mybot` of `mybot/1.2 (+https://...)`) picks the group
    /// of the file, case-insensitively; without a group of its own, the `*`
    /// group applies. Default: the client's `twined/<version>`.
    pub user_agent: String,
    /// Most bytes of a file read; the rest is not read (the connection is
    /// closed). Default: [`DEFAULT_MAX_BYTES`] (500 KiB), which is also the
    /// most the parser looks at: a larger value reads more but parses no
    /// more.
    pub max_bytes: usize,
    /// Time allowed for one fetch, redirects and body included. Default:
    /// [`DEFAULT_TIMEOUT`] (10 s). Past it the file is unreachable.
    pub timeout: Duration,
    /// Most redirects followed to the file. Default: 5 (RFC 9309 section
    /// 2.3.1.2); past them the file is unavailable (allow everything).
    pub redirect_limit: usize,
    /// How long a fetched (or unavailable) file is used. Default: 24 hours,
    /// the RFC's longest (section 2.4).
    pub ttl: Duration,
    /// How long an unreachable verdict (disallow everything) is used before
    /// the file is asked for again. Default: 10 minutes.
    pub unreachable_ttl: Duration,
    /// Most origins cached. Default: 10,000. When full, expired entries go
    /// first, then the oldest; fetches still in flight are never dropped.
    pub max_origins: usize,
    /// Largest `Crawl-delay` taken from a file; a larger one is taken as
    /// this. Default: 60 s.
    pub max_crawl_delay: Duration,
    /// Requests for `robots.txt` wait for a slot of this pacer (keyed by
    /// the host), like the crawler's other requests. Default: none.
    pub pacer: Option<Arc<Pacer>>,
}

impl Default for RobotsOptions {
    fn default() -> RobotsOptions {
        RobotsOptions {
            user_agent: USER_AGENT.to_string(),
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: DEFAULT_TIMEOUT,
            redirect_limit: 5,
            ttl: Duration::from_secs(24 * 3600),
            unreachable_ttl: Duration::from_secs(600),
            max_origins: 10_000,
            max_crawl_delay: Duration::from_secs(60),
            pacer: None,
        }
    }
}

/// How a `robots.txt` was had: what decides the verdict of
/// [`RobotsTxt::is_allowed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// The file was fetched (2xx); its rules apply.
    Fetched {
        /// It was larger than the limit: only its first
        /// [`max_bytes`](RobotsOptions::max_bytes) were parsed.
        truncated: bool,
    },
    /// There is no file to follow (4xx but 429, too many redirects, an
    /// unexpected status): every URL is allowed.
    Unavailable {
        /// Why, for people ("HTTP 404").
        reason: String,
    },
    /// The file could not be had (5xx, 429, no answer): every URL is
    /// disallowed.
    Unreachable {
        /// Why, for people ("HTTP 503", "connection refused: ...").
        reason: String,
    },
}

/// One origin's `robots.txt`, read for one user agent.
///
/// ```
/// use std::time::Duration;
/// use twined::web::client::RobotsTxt;
///
/// let txt = RobotsTxt::parse(
///     b"User-agent: *\nDisallow: /\n\nUser-agent: mybot\nDisallow: /private\nAllow: /private/open\nCrawl-delay: 1.5\n",
///     "mybot/2.0",
/// );
/// assert!(txt.is_allowed("https://example.org/index.html"));
/// assert!(!txt.is_allowed("https://example.org/private/x"));
/// assert!(txt.is_allowed("https://example.org/private/open/y")); // the longer rule wins
/// assert_eq!(txt.crawl_delay(), Some(Duration::from_millis(1500)));
/// ```
#[derive(Clone)]
pub struct RobotsTxt {
    access: Access,
    /// The parsed rules, when fetched.
    rules: Option<robotxt::Robots>,
    crawl_delay: Option<Duration>,
}

impl fmt::Debug for RobotsTxt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotsTxt")
            .field("access", &self.access)
            .field("crawl_delay", &self.crawl_delay)
            .finish()
    }
}

/// The product token of a user agent (RFC 9309 section 2.2.1): its leading
/// letters, `-` and `_`; the whole string when it has none.
fn product_token(user_agent: &str) -> &str {
    let ua = user_agent.trim();
    let end = ua
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '-' || c == '_'))
        .unwrap_or(ua.len());
    if end == 0 {
        ua
    } else {
        &ua[..end]
    }
}

impl RobotsTxt {
    /// The rules of `body` (a whole file, or its first part) for
    /// `user_agent`; see [`RobotsOptions::user_agent`] for how the group is
    /// picked. Bytes past [`DEFAULT_MAX_BYTES`] are ignored.
    pub fn parse(body: &[u8], user_agent: &str) -> RobotsTxt {
        RobotsTxt::fetched(body, user_agent, false)
    }

    fn fetched(body: &[u8], user_agent: &str, truncated: bool) -> RobotsTxt {
        let rules = robotxt::Robots::from_bytes(body, product_token(user_agent));
        RobotsTxt {
            access: Access::Fetched { truncated },
            crawl_delay: rules.crawl_delay(),
            rules: Some(rules),
        }
    }

    /// The verdict without a file that allows everything.
    pub fn unavailable(reason: impl Into<String>) -> RobotsTxt {
        RobotsTxt {
            access: Access::Unavailable {
                reason: reason.into(),
            },
            rules: None,
            crawl_delay: None,
        }
    }

    /// The verdict without a file that disallows everything.
    pub fn unreachable(reason: impl Into<String>) -> RobotsTxt {
        RobotsTxt {
            access: Access::Unreachable {
                reason: reason.into(),
            },
            rules: None,
            crawl_delay: None,
        }
    }

    /// How the file was had.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Whether `url` may be fetched: its path and query against the rules
    /// (`/robots.txt` itself always may). A URL that does not parse is not
    /// allowed.
    pub fn is_allowed(&self, url: &str) -> bool {
        match (&self.access, &self.rules) {
            (Access::Fetched { .. }, Some(rules)) => {
                Url::parse(url).is_ok_and(|u| rules.is_absolute_allowed(&u))
            }
            (Access::Unreachable { .. }, _) => false,
            _ => true,
        }
    }

    /// The `Crawl-delay` of the user agent's group (the smallest, when it
    /// is given more than once), capped by the cache's
    /// [`max_crawl_delay`](RobotsOptions::max_crawl_delay).
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.crawl_delay
    }

    /// `Ok` when `url` is allowed, else the [`Error::Robots`] that says why.
    pub fn check(&self, url: &str, robots_url: &str) -> Result<(), Error> {
        if self.is_allowed(url) {
            return Ok(());
        }
        let denial = match &self.access {
            Access::Unreachable { reason } => RobotsDenial::Unreachable {
                reason: reason.clone(),
            },
            _ => RobotsDenial::Disallowed,
        };
        Err(Error::Robots {
            url: url.to_string(),
            robots_url: robots_url.to_string(),
            denial,
        })
    }
}

/// Hands a fetched file to one asker, on the asker's thread.
type Waiter = RemoteTrigger<Arc<RobotsTxt>>;

enum Entry {
    /// Fetched; used until `expires`.
    Ready {
        txt: Arc<RobotsTxt>,
        expires: Instant,
    },
    /// Being fetched by one thread; these wait for it.
    Fetching { waiters: Vec<Waiter> },
}

struct Shared {
    options: RobotsOptions,
    entries: Mutex<HashMap<String, Entry>>,
    fetches: AtomicU64,
}

/// The `robots.txt` of every origin a crawler meets, fetched once each and
/// shared by every thread. Clones share the cache.
///
/// How threads share it: one map under a mutex holds, per origin, either
/// the parsed file or the askers waiting for the fetch in flight. The
/// first asker of an origin marks it in flight and starts the fetch on its
/// own reactor with its own [`Agent`]'s pool. Every asker, that one
/// included, leaves a waiter: the `Send` end of a Deferred on its own
/// thread, fired through its reactor's
/// [`Handle`](crate::reactor::Handle) (the mechanism that also brings
/// [`threads::defer_to_thread`](crate::threads::defer_to_thread) results
/// home). When the fetch ends, the fetching thread stores the file and
/// hands it to each waiter through the waiter's reactor. The lock is held
/// only to look up and update the map, never across a fetch or a callback;
/// cancelling an asker's Deferred leaves the fetch to the others.
#[derive(Clone)]
pub struct RobotsCache {
    shared: Arc<Shared>,
}

impl fmt::Debug for RobotsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotsCache")
            .field("options", &self.shared.options)
            .field("origins", &self.len())
            .field("fetches", &self.fetches())
            .finish()
    }
}

/// A Deferred on this thread and the waiter that fires it from any thread
/// (through this thread's reactor). While the thread exits, the Deferred
/// has already failed.
fn waiter() -> (Deferred<Arc<RobotsTxt>>, Waiter) {
    remote_trigger()
}

/// The origin of `url` (`scheme://host:port`) and the URL of its
/// `robots.txt`.
fn origin_of(url: &str) -> Result<(String, Url), Error> {
    let bad = |reason: &str| Error::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad("not an http or https URL"));
    }
    let origin = parsed.origin().ascii_serialization();
    let robots = Url::parse(&format!("{origin}/robots.txt")).map_err(|e| bad(&e.to_string()))?;
    Ok((origin, robots))
}

impl RobotsCache {
    /// An empty cache with `options`.
    pub fn new(options: RobotsOptions) -> RobotsCache {
        RobotsCache {
            shared: Arc::new(Shared {
                options,
                entries: Mutex::new(HashMap::new()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// The settings.
    pub fn options(&self) -> &RobotsOptions {
        &self.shared.options
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every change under the lock is one insert or remove: a panic
        // elsewhere leaves the map whole.
        self.shared
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Origins held (fetched or in flight).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no origin is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many fetches of a `robots.txt` this cache has started.
    pub fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// The cached file of `url`'s origin, when there is a fresh one.
    pub fn cached(&self, url: &str) -> Option<Arc<RobotsTxt>> {
        let (origin, _) = origin_of(url).ok()?;
        match self.entries().get(&origin) {
            Some(Entry::Ready { txt, expires }) if *expires > Instant::now() => Some(txt.clone()),
            _ => None,
        }
    }

    /// The `robots.txt` of `url`'s origin: from the cache, from the fetch
    /// another asker has in flight, or fetched now with `agent`'s pool and
    /// settings (redirects, timeout and body limit are the cache's; the
    /// agent's [`before_request`](AgentOptions::before_request) hook is not
    /// run, since it may be the one asking: [`RobotsOptions::pacer`] paces
    /// the fetch). Never
    /// fails for the file's sake (see the module's table); fails only when
    /// `url` is not an http or https URL ([`Error::Url`]).
    pub fn rules(&self, agent: &Agent, url: &str) -> Deferred<Arc<RobotsTxt>> {
        let (origin, robots_url) = match origin_of(url) {
            Ok(found) => found,
            Err(e) => return crate::defer::fail(e),
        };
        let now = Instant::now();
        let asked = {
            let mut entries = self.entries();
            match entries.get_mut(&origin) {
                Some(Entry::Ready { txt, expires }) if *expires > now => {
                    return crate::defer::succeed(txt.clone());
                }
                Some(Entry::Fetching { waiters }) => {
                    let (d, wake) = waiter();
                    waiters.push(wake);
                    return d;
                }
                _ => {}
            }
            self.make_room(&mut entries, now);
            // The fetching asker waits like the others: cancelling its
            // Deferred leaves the fetch to the rest.
            let (d, wake) = waiter();
            let waiters = vec![wake];
            entries.insert(origin.clone(), Entry::Fetching { waiters });
            d
        };
        self.shared.fetches.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            cache: self.clone(),
            origin: Some(origin),
        };
        // Never fails (see `fetch`); kept alive by the request's timers and
        // connection until it ends.
        let fetched = fetch(agent, robots_url, &self.shared.options)
            .add_callback(move |txt: RobotsTxt| pending.finish(txt));
        drop(fetched);
        asked
    }

    /// Like [`rules`](Self::rules), and fails with [`Error::Robots`] (kind
    /// `robots`) when the file refuses `url`. Fires with the file when it
    /// allows `url`, for its [`crawl_delay`](RobotsTxt::crawl_delay).
    pub fn check(&self, agent: &Agent, url: &str) -> Deferred<Arc<RobotsTxt>> {
        let url = url.to_string();
        self.rules(agent, &url)
            .and_then(move |txt: Arc<RobotsTxt>| {
                let robots_url = origin_of(&url)
                    .map(|(_, r)| r.to_string())
                    .unwrap_or_default();
                txt.check(&url, &robots_url)
                    .map(|()| txt)
                    .map_err(Failure::new)
            })
    }

    /// Before a new origin goes in: when the cache is full, drop the
    /// expired entries, and the one expiring first if that is not enough.
    fn make_room(&self, entries: &mut HashMap<String, Entry>, now: Instant) {
        let max = self.shared.options.max_origins.max(1);
        if entries.len() < max {
            return;
        }
        entries.retain(|_, e| match e {
            Entry::Ready { expires, .. } => *expires > now,
            Entry::Fetching { .. } => true,
        });
        while entries.len() >= max {
            let oldest = entries
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Ready { expires, .. } => Some((*expires, k.clone())),
                    Entry::Fetching { .. } => None,
                })
                .min();
            match oldest {
                Some((_, key)) => {
                    entries.remove(&key);
                }
                // Only fetches in flight: they are bounded by the askers.
                None => break,
            }
        }
    }
}

/// One origin's fetch in flight: stores the file and wakes the waiters when
/// it ends, and, should the fetching thread drop the fetch unfinished (its
/// reactor gone), wakes them with "unreachable" and forgets the origin so
/// that the next asker fetches it again.
struct Pending {
    cache: RobotsCache,
    /// Until finished.
    origin: Option<String>,
}

impl Pending {
    fn finish(&mut self, txt: RobotsTxt) {
        let Some(origin) = self.origin.take() else {
            return;
        };
        let options = &self.cache.shared.options;
        let ttl = match txt.access {
            Access::Unreachable { .. } => options.unreachable_ttl,
            _ => options.ttl,
        };
        let txt = Arc::new(RobotsTxt {
            crawl_delay: txt.crawl_delay.map(|d| d.min(options.max_crawl_delay)),
            ..txt
        });
        let ready = Entry::Ready {
            txt: txt.clone(),
            expires: Instant::now() + ttl,
        };
        let before = self.cache.entries().insert(origin, ready);
        wake_all(before, &txt);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(origin) = self.origin.take() {
            let before = self.cache.entries().remove(&origin);
            let txt = Arc::new(RobotsTxt::unreachable(
                "the thread fetching it stopped before the fetch ended",
            ));
            wake_all(before, &txt);
        }
    }
}

/// Hands `txt` to the waiters of an entry that was in flight.
fn wake_all(entry: Option<Entry>, txt: &Arc<RobotsTxt>) {
    if let Some(Entry::Fetching { waiters }) = entry {
        for wake in waiters {
            wake.callback(txt.clone());
        }
    }
}

/// Fetches `robots_url` and reads it into its verdict; never fails.
fn fetch(agent: &Agent, robots_url: Url, options: &RobotsOptions) -> Deferred<RobotsTxt> {
    let robots_agent = Agent::with_options(
        agent.pool().clone(),
        AgentOptions {
            follow_redirects: true,
            redirect_limit: options.redirect_limit,
            timeout: Some(options.timeout),
            // The body is cut at `max_bytes` below, whatever it claims.
            max_body: None,
            // The agent's hook may be the one asking this cache: it would
            // wait on this very fetch. `options.pacer` paces it instead.
            before_request: None,
            // The agent's name cache, not one of its own.
            dns_cache: agent.dns_cache().cloned(),
            ..agent.options().clone()
        },
    );
    let paced = match (&options.pacer, robots_url.host_str()) {
        (Some(pacer), Some(host)) => pacer.wait(&host.to_ascii_lowercase()),
        _ => crate::defer::succeed(()),
    };
    let user_agent = options.user_agent.clone();
    let max_bytes = options.max_bytes;
    let url = robots_url.to_string();
    paced
        .and_then(move |()| robots_agent.request("GET", &url, Headers::new(), None))
        .and_then(move |response: Response| match response.status {
            200..=299 => read_body_prefix(response, max_bytes).add_callback(
                move |(body, truncated): (Vec<u8>, bool)| {
                    RobotsTxt::fetched(&body, &user_agent, truncated)
                },
            ),
            status @ (429 | 500..=599) => {
                crate::defer::succeed(RobotsTxt::unreachable(format!("HTTP {status}")))
            }
            status => crate::defer::succeed(RobotsTxt::unavailable(format!("HTTP {status}"))),
        })
        .then(
            |result: Result<RobotsTxt, Failure>| -> Result<RobotsTxt, Failure> {
                Ok(match result {
                    Ok(txt) => txt,
                    Err(failure) => match failure.downcast_ref::<Error>() {
                        // Too many redirects, or one that cannot be followed:
                        // the RFC's "unavailable" (section 2.3.1.2).
                        Some(e) if e.kind() == ErrorKind::Redirect => {
                            RobotsTxt::unavailable(e.to_string())
                        }
                        _ => RobotsTxt::unreachable(failure.to_string()),
                    },
                })
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_token_picks_the_group() {
        assert_eq!(product_token("mybot/1.2 (+https://x)"), "mybot");
        assert_eq!(product_token("  My_Bot-2"), "My_Bot-");
        assert_eq!(product_token("123"), "123");
        let txt = RobotsTxt::parse(
            b"User-agent: mybot\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n",
            "MyBot/1.0",
        );
        assert!(!txt.is_allowed("http://h/a"));
        assert!(txt.is_allowed("http://h/b"));
        let other = RobotsTxt::parse(
            b"User-agent: mybot\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n",
            "otherbot",
        );
        assert!(other.is_allowed("http://h/a"));
        assert!(!other.is_allowed("http://h/b"));
    }

    #[test]
    fn verdicts_without_a_file() {
        assert!(RobotsTxt::unavailable("HTTP 404").is_allowed("http://h/x"));
        let down = RobotsTxt::unreachable("HTTP 503");
        assert!(!down.is_allowed("http://h/x"));
        let e = down.check("http://h/x", "http://h/robots.txt").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Robots);
        assert_eq!(
            e.to_string(),
            "http://h/x not fetched: http://h/robots.txt unreachable (HTTP 503), so every URL is disallowed"
        );
    }

    #[test]
    fn a_disallowed_url_names_the_file() {
        let txt = RobotsTxt::parse(b"User-agent: *\nDisallow: /p\n", "bot");
        let e = txt
            .check("http://h/p?q=1", "http://h/robots.txt")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "http://h/p?q=1 is disallowed by http://h/robots.txt"
        );
        assert!(txt.check("http://h/q", "http://h/robots.txt").is_ok());
        assert!(!txt.is_allowed("not a url"));
    }

    #[test]
    fn origins_and_their_files() {
        let (origin, robots) = origin_of("HTTP://Example.ORG:80/a/b?c#d").unwrap();
        assert_eq!(origin, "http://example.org");
        assert_eq!(robots.as_str(), "http://example.org/robots.txt");
        let (origin, _) = origin_of("https://example.org:8443/").unwrap();
        assert_eq!(origin, "https://example.org:8443");
        assert!(origin_of("ftp://example.org/").is_err());
        assert!(origin_of("nonsense").is_err());
    }

    #[test]
    fn a_full_cache_drops_the_oldest_first() {
        let cache = RobotsCache::new(RobotsOptions {
            max_origins: 2,
            ..Default::default()
        });
        let now = Instant::now();
        let mut entries = cache.entries();
        for (i, name) in ["a", "b"].iter().enumerate() {
            entries.insert(
                name.to_string(),
                Entry::Ready {
                    txt: Arc::new(RobotsTxt::unavailable("x")),
                    expires: now + Duration::from_secs(10 + i as u64),
                },
            );
        }
        entries.insert(
            "c".into(),
            Entry::Fetching {
                waiters: Vec::new(),
            },
        );
        cache.make_room(&mut entries, now);
        // "a" expires first; the fetch in flight stays.
        assert!(!entries.contains_key("a"));
        assert!(entries.contains_key("c"));
        assert_eq!(entries.len(), 1);
    }
}
