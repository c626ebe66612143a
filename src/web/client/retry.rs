//! Retries that behave: which failures a request is sent again after, and
//! how long it waits first (Scrapy's `RetryMiddleware`, urllib3's `Retry`).
//!
//! A [`RetryPolicy`] decides, for one finished attempt, whether to send the
//! request again and after what wait ([`RetryPolicy::decide`], a pure
//! function of the attempt, the retries made so far, the time and a jitter
//! draw). [`fetch_retrying`] runs [`fetch_with`] under a policy and fires
//! with the last attempt's result and the number of attempts
//! ([`Retried`]); [`fetch_retrying_on`] schedules its waits on any
//! [`ReactorTime`], such as a [`task::Clock`](crate::task::Clock) in tests.

use std::time::{Duration, SystemTime};

use url::Url;

use super::fetch::{fetch_with, Page};
use super::into_url::IntoUrl;
use super::page::PageOptions;
use crate::defer::{Deferred, Failure};
use crate::task::defer_later_on;
use crate::time::{Current, ReactorTime};
use crate::web::{Error, TimeoutStage};

/// The default [`RetryPolicy::max_retries`]: 2, as Scrapy's `RETRY_TIMES`.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The default [`RetryPolicy::backoff_base`]: 0.5 s.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The default [`RetryPolicy::backoff_cap`]: 60 s.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(60);
/// The default [`RetryPolicy::statuses`]: 429, 502, 503, 504.
pub const DEFAULT_RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// When and how often a request is sent again.
///
/// # What is retried
///
/// Only what a second try can fix:
///
/// | outcome | retried | why |
/// |---|---|---|
/// | [`Error::Connect`] (refused, unreachable), [`Error::Timeout`] while connecting | yes, any method | nothing was sent |
/// | [`Error::NoResponse`]: reset or closed before any response byte | idempotent methods | the server may have acted on it |
/// | status 429, 502, 503, 504 ([`RetryPolicy::statuses`]) | idempotent methods | the server says "later" |
/// | [`Error::Dns`] | only with [`RetryPolicy::retry_dns`] (default no) | a name that does not resolve seldom does a second later; retrying every dead domain multiplies a crawl's time |
/// | TLS errors, `too_large`, other 4xx and 5xx, a reset after part of the response, timeouts waiting for the head or the whole request, redirect and protocol errors, cancellation | never | the same request would fail the same way, or already used its time |
///
/// Idempotent methods are `GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE` and
/// `TRACE` (RFC 9110, section 9.2.2).
///
/// # How long it waits
///
/// Exponential backoff with full jitter: before retry `n` (counting from
/// 0) the wait is drawn uniformly from
/// `0 ..= min(backoff_cap, backoff_base * 2^n)`. A 429 or 503 with a `Retry-After` header (delta-seconds or an
/// HTTP-date) waits exactly what the server asks instead; a server asking
/// for more than [`backoff_cap`](RetryPolicy::backoff_cap) is not retried
/// (its response is the result): waiting less than asked would only earn
/// another 429, and waiting longer than the cap is what the cap forbids.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use twined::web::client::{Attempt, RetryDecision, RetryPolicy, StopReason};
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.max_retries, 2);
/// let now = SystemTime::now();
///
/// // A 503 asking for 2 s: retried after exactly 2 s.
/// let busy = Attempt::Response { status: 503, retry_after: Some("2") };
/// assert_eq!(
///     policy.decide_at("GET", &busy, 0, now, 0.5),
///     RetryDecision::Retry { after: Duration::from_secs(2) },
/// );
/// // A POST is never resent after a response.
/// assert_eq!(
///     policy.decide_at("POST", &busy, 0, now, 0.5),
///     RetryDecision::Stop(StopReason::NotIdempotent),
/// );
/// // A 502 without Retry-After: full jitter under base * 2^retries.
/// let bad_gateway = Attempt::Response { status: 502, retry_after: None };
/// assert_eq!(
///     policy.decide_at("GET", &bad_gateway, 1, now, 0.5),
///     RetryDecision::Retry { after: Duration::from_millis(500) },
/// );
/// // The retries are spent.
/// assert_eq!(
///     policy.decide_at("GET", &bad_gateway, 2, now, 0.5),
///     RetryDecision::Stop(StopReason::Exhausted),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1`
    /// attempts). Default: 2 ([`DEFAULT_MAX_RETRIES`]); 0 turns retrying off.
    pub max_retries: u32,
    /// The backoff before the first retry, doubled for each later one
    /// (before the jitter). Default: 0.5 s ([`DEFAULT_BACKOFF_BASE`]).
    pub backoff_base: Duration,
    /// The longest wait: a computed backoff is capped at it, and a
    /// `Retry-After` asking for more is not retried. Default: 60 s
    /// ([`DEFAULT_BACKOFF_CAP`]).
    pub backoff_cap: Duration,
    /// The statuses retried (idempotent methods only). Default: 429, 502,
    /// 503, 504 ([`DEFAULT_RETRY_STATUSES`]). `Retry-After` is honoured on
    /// 429 and 503 only.
    pub statuses: Vec<u16>,
    /// Retry a failed name lookup ([`Error::Dns`]). Default: no.
    pub retry_dns: bool,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
            statuses: DEFAULT_RETRY_STATUSES.to_vec(),
            retry_dns: false,
        }
    }
}

/// One finished attempt, as [`RetryPolicy::decide`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// A response arrived (whatever its status).
    Response {
        /// Its status.
        status: u16,
        /// Its `Retry-After` header, if any.
        retry_after: Option<&'a str>,
    },
    /// The attempt failed without a response to show.
    Failed(&'a Error),
}

/// What [`RetryPolicy::decide`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send the request again after this wait.
    Retry {
        /// The wait.
        after: Duration,
    },
    /// The attempt's result stands.
    Stop(StopReason),
}

/// Why an attempt is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A success, or a failure a retry cannot fix.
    NotRetryable,
    /// The failure could be retried, but the method is not idempotent and
    /// the request may have been acted on.
    NotIdempotent,
    /// [`RetryPolicy::max_retries`] retries were made.
    Exhausted,
    /// The server asked (`Retry-After`) for a wait longer than
    /// [`RetryPolicy::backoff_cap`].
    RetryAfterTooLong(Duration),
}

/// Whether a retry may resend: before a request was sent, any method; after.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    Any,
    Idempotent,
}

/// Whether `method` is idempotent (RFC 9110, section 9.2.2).
pub(crate) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// The wait a `Retry-After` value asks for at `now`: delta-seconds, or an
/// HTTP-date (a date in the past asks for no wait). `None` when the value
/// is neither.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use twined::web::client::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64: longer than any cap.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// [`decide_at`](Self::decide_at) now, with a fresh jitter draw.
    pub fn decide(&self, method: &str, attempt: &Attempt<'_>, retries: u32) -> RetryDecision {
        self.decide_at(method, attempt, retries, SystemTime::now(), fastrand::f64())
    }

    /// Whether to retry `attempt` of a `method` request after `retries`
    /// retries, and after what wait: at `now` (for an HTTP-date
    /// `Retry-After`), with `jitter` in `0.0..=1.0` the fraction of the
    /// backoff ceiling to wait (full jitter). Pure: the table tests call it.
    pub fn decide_at(
        &self,
        method: &str,
        attempt: &Attempt<'_>,
        retries: u32,
        now: SystemTime,
        jitter: f64,
    ) -> RetryDecision {
        let (resend, status, retry_after) = match *attempt {
            Attempt::Response {
                status,
                retry_after,
            } if self.statuses.contains(&status) => (Resend::Idempotent, Some(status), retry_after),
            Attempt::Response { .. } => return RetryDecision::Stop(StopReason::NotRetryable),
            Attempt::Failed(error) => match self.classify(error) {
                Some(resend) => (resend, error.status(), None),
                None => return RetryDecision::Stop(StopReason::NotRetryable),
            },
        };
        if resend == Resend::Idempotent && !idempotent(method) {
            return RetryDecision::Stop(StopReason::NotIdempotent);
        }
        if retries >= self.max_retries {
            return RetryDecision::Stop(StopReason::Exhausted);
        }
        let asked = match (status, retry_after) {
            (Some(429 | 503), Some(value)) => parse_retry_after(value, now),
            _ => None,
        };
        match asked {
            Some(wait) if wait > self.backoff_cap => {
                RetryDecision::Stop(StopReason::RetryAfterTooLong(wait))
            }
            Some(wait) => RetryDecision::Retry { after: wait },
            None => RetryDecision::Retry {
                after: self.backoff(retries, jitter),
            },
        }
    }

    /// The backoff before retry number `retry` (from 0): `jitter` (clamped
    /// to `0.0..=1.0`) of `min(backoff_cap, backoff_base * 2^retry)`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        let ceiling = self
            .backoff_base
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.backoff_cap);
        let jitter = if jitter.is_nan() {
            1.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        // `mul_f64` panics past `Duration::MAX`, which rounding can reach.
        Duration::try_from_secs_f64(ceiling.as_secs_f64() * jitter)
            .map_or(ceiling, |wait| wait.min(ceiling))
    }

    /// Whether a failure may be retried, and for which methods.
    fn classify(&self, error: &Error) -> Option<Resend> {
        match error {
            Error::Connect { .. }
            | Error::Timeout {
                stage: TimeoutStage::Connect,
                ..
            } => Some(Resend::Any),
            Error::Dns { .. } if self.retry_dns => Some(Resend::Any),
            Error::NoResponse { .. } => Some(Resend::Idempotent),
            Error::Http { status, .. } if self.statuses.contains(status) => {
                Some(Resend::Idempotent)
            }
            _ => None,
        }
    }
}

/// What [`fetch_retrying`] fires with: the last attempt's result and how
/// many attempts were made (1 when the first one stood).
#[derive(Debug)]
pub struct Retried {
    /// The last attempt's page (any status, as [`fetch`](super::fetch)
    /// gives it) or failure.
    pub result: Result<Page, Failure>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

/// [`fetch_with`] under `policy`: resends what the policy retries, after
/// the waits it says, on this thread's reactor. Fires with the last
/// attempt's result and the number of attempts, whether that result is a
/// page or a failure; it errbacks only when cancelled.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use twined::{reactor, task};
/// use twined::web::client::{fetch_retrying, PageOptions, RetryPolicy};
/// use twined::web::server::{Request, Response, Site};
///
/// // Busy once, then fine.
/// let calls = Rc::new(Cell::new(0));
/// let seen = calls.clone();
/// let site = Site::new(move |_req: Request| {
///     seen.set(seen.get() + 1);
///     match seen.get() {
///         1 => Response::new(503).header("Retry-After", "0"),
///         _ => Response::new(200).body("ok"),
///     }
/// });
/// let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
/// let url = format!("http://{}/", port.address());
///
/// let policy = RetryPolicy { backoff_base: Duration::from_millis(10), ..Default::default() };
/// let retried = task::react(|| fetch_retrying(&url, PageOptions::default(), &policy)).unwrap();
/// assert_eq!(retried.attempts, 2);
/// assert_eq!(retried.result.unwrap().body, b"ok");
/// port.stop_listening();
/// ```
pub fn fetch_retrying(
    url: impl IntoUrl,
    options: PageOptions,
    policy: &RetryPolicy,
) -> Deferred<Retried> {
    fetch_retrying_on(Current, url, options, policy)
}

/// [`fetch_retrying`] with its waits scheduled on `time` (a
/// [`task::Clock`](crate::task::Clock) in tests). Cancelling the Deferred
/// cancels the attempt in flight or the wait.
pub fn fetch_retrying_on(
    time: impl ReactorTime + Clone + 'static,
    url: impl IntoUrl,
    options: PageOptions,
    policy: &RetryPolicy,
) -> Deferred<Retried> {
    let url = match url.into_url() {
        Ok(url) => url,
        // Nothing a retry can mend: one attempt, failed.
        Err(e) => {
            return crate::defer::succeed(Retried {
                result: Err(Failure::new(e)),
                attempts: 1,
            })
        }
    };
    let job = Job {
        url,
        options,
        policy: policy.clone(),
    };
    attempt(std::rc::Rc::new(job), time, 1)
}

/// One retrying fetch.
struct Job {
    url: Url,
    options: PageOptions,
    policy: RetryPolicy,
}

/// Attempt number `n` (from 1) of `job`.
fn attempt(
    job: std::rc::Rc<Job>,
    time: impl ReactorTime + Clone + 'static,
    n: u32,
) -> Deferred<Retried> {
    fetch_with(&job.url, job.options.clone()).then(move |result: Result<Page, Failure>| {
        let decision = {
            let attempt = match &result {
                Ok(page) => Some(Attempt::Response {
                    status: page.status,
                    retry_after: page.headers.get("retry-after"),
                }),
                Err(failure) => failure.downcast_ref::<Error>().map(Attempt::Failed),
            };
            match attempt {
                Some(attempt) => job.policy.decide(&job.options.method, &attempt, n - 1),
                None => RetryDecision::Stop(StopReason::NotRetryable),
            }
        };
        match decision {
            RetryDecision::Retry { after } => {
                let again = time.clone();
                defer_later_on(&time, after, move || attempt(job, again, n + 1))
            }
            RetryDecision::Stop(_) => crate::defer::succeed(Retried {
                result,
                attempts: n,
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn io_err(kind: io::ErrorKind) -> Arc<io::Error> {
        Arc::new(io::Error::from(kind))
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(10),
            ..RetryPolicy::default()
        }
    }

    use RetryDecision::{Retry, Stop};
    use StopReason::*;

    fn secs(s: u64) -> RetryDecision {
        Retry {
            after: Duration::from_secs(s),
        }
    }

    #[test]
    fn errors_table() {
        let host = || "h:80".to_string();
        let connect = Error::Connect {
            host: host(),
            addr: None,
            source: io_err(io::ErrorKind::ConnectionRefused),
        };
        let connect_timeout = Error::Timeout {
            stage: TimeoutStage::Connect,
            host: host(),
            after: Duration::from_secs(1),
        };
        let head_timeout = Error::Timeout {
            stage: TimeoutStage::Head,
            host: host(),
            after: Duration::from_secs(1),
        };
        let whole_timeout = Error::Timeout {
            stage: TimeoutStage::Whole,
            host: host(),
            after: Duration::from_secs(1),
        };
        let no_response = Error::NoResponse {
            host: host(),
            source: io_err(io::ErrorKind::ConnectionReset),
        };
        let mid_body = Error::Io {
            host: host(),
            source: io_err(io::ErrorKind::ConnectionReset),
        };
        let dns = Error::Dns {
            host: host(),
            source: io_err(io::ErrorKind::NotFound),
        };
        let tls = Error::Tls {
            host: host(),
            reason: "bad certificate".into(),
            source: None,
        };
        let too_large = Error::TooLarge {
            host: host(),
            what: "body",
            limit: 10,
        };
        let http = |status| Error::Http {
            status,
            reason: String::new(),
            url: "http://h/".into(),
            body: Vec::new(),
        };
        let cancelled = Error::Cancelled { url: host() };
        let (h503, h404, h500) = (http(503), http(404), http(500));
        // (error, method, retries made, expected), jitter 1.0: the ceiling.
        let table: Vec<(&Error, &str, u32, RetryDecision)> = vec![
            (&connect, "GET", 0, secs(1)),
            (&connect, "POST", 0, secs(1)),
            (&connect, "GET", 1, secs(2)),
            (&connect, "GET", 2, secs(4)),
            (&connect, "GET", 3, Stop(Exhausted)),
            (&connect_timeout, "POST", 0, secs(1)),
            (&head_timeout, "GET", 0, Stop(NotRetryable)),
            (&whole_timeout, "GET", 0, Stop(NotRetryable)),
            (&no_response, "GET", 0, secs(1)),
            (&no_response, "PUT", 1, secs(2)),
            (&no_response, "POST", 0, Stop(NotIdempotent)),
            (&no_response, "PATCH", 0, Stop(NotIdempotent)),
            (&mid_body, "GET", 0, Stop(NotRetryable)),
            (&dns, "GET", 0, Stop(NotRetryable)),
            (&tls, "GET", 0, Stop(NotRetryable)),
            (&too_large, "GET", 0, Stop(NotRetryable)),
            (&h503, "GET", 0, secs(1)),
            (&h503, "POST", 0, Stop(NotIdempotent)),
            (&h404, "GET", 0, Stop(NotRetryable)),
            (&h500, "GET", 0, Stop(NotRetryable)),
            (&cancelled, "GET", 0, Stop(NotRetryable)),
        ];
        let p = policy();
        for (error, method, retries, expected) in table {
            let got = p.decide_at(method, &Attempt::Failed(error), retries, at(0), 1.0);
            assert_eq!(got, expected, "{error} {method} after {retries}");
        }
        let with_dns = RetryPolicy {
            retry_dns: true,
            ..policy()
        };
        assert_eq!(
            with_dns.decide_at("POST", &Attempt::Failed(&dns), 0, at(0), 1.0),
            secs(1)
        );
    }

    #[test]
    fn responses_table() {
        let now = at(1_000_000);
        let in_5s = httpdate::fmt_http_date(now + Duration::from_secs(5));
        let in_60s = httpdate::fmt_http_date(now + Duration::from_secs(60));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        let r = |status, retry_after| Attempt::Response {
            status,
            retry_after,
        };
        // (status, Retry-After, method, retries made, expected), jitter 0.5.
        let table: Vec<(u16, Option<&str>, &str, u32, RetryDecision)> = vec![
            (200, None, "GET", 0, Stop(NotRetryable)),
            (200, Some("1"), "GET", 0, Stop(NotRetryable)),
            (404, None, "GET", 0, Stop(NotRetryable)),
            (500, None, "GET", 0, Stop(NotRetryable)),
            (501, None, "GET", 0, Stop(NotRetryable)),
            (
                429,
                None,
                "GET",
                0,
                Retry {
                    after: Duration::from_millis(500),
                },
            ),
            (429, Some("2"), "GET", 0, secs(2)),
            (429, Some(" 3 "), "HEAD", 2, secs(3)),
            (429, Some("10"), "GET", 0, secs(10)),
            (
                429,
                Some("11"),
                "GET",
                0,
                Stop(RetryAfterTooLong(Duration::from_secs(11))),
            ),
            (
                429,
                Some("99999999999999999999999"),
                "GET",
                0,
                Stop(RetryAfterTooLong(Duration::from_secs(u64::MAX))),
            ),
            (429, Some("2"), "GET", 3, Stop(Exhausted)),
            (429, Some("2"), "POST", 0, Stop(NotIdempotent)),
            (503, Some(&in_5s), "GET", 0, secs(5)),
            (
                503,
                Some(&in_60s),
                "GET",
                0,
                Stop(RetryAfterTooLong(Duration::from_secs(60))),
            ),
            (503, Some(&past), "GET", 0, secs(0)),
            (503, Some("-1"), "GET", 1, secs(1)),
            (503, Some("soon"), "GET", 2, secs(2)),
            // Retry-After counts on 429 and 503 only.
            (
                502,
                Some("7"),
                "GET",
                0,
                Retry {
                    after: Duration::from_millis(500),
                },
            ),
            (504, Some("7"), "GET", 1, secs(1)),
            (
                502,
                None,
                "DELETE",
                0,
                Retry {
                    after: Duration::from_millis(500),
                },
            ),
            (502, None, "PATCH", 0, Stop(NotIdempotent)),
        ];
        let p = policy();
        for (status, retry_after, method, retries, expected) in table {
            let got = p.decide_at(method, &r(status, retry_after), retries, now, 0.5);
            assert_eq!(
                got, expected,
                "{status} {retry_after:?} {method} after {retries}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_and_jitter_bounded() {
        let p = policy();
        assert_eq!(p.backoff(0, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(8));
        assert_eq!(p.backoff(4, 1.0), Duration::from_secs(10));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(10));
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 7.0), Duration::from_secs(4));
        assert_eq!(p.backoff(2, -1.0), Duration::ZERO);
        assert_eq!(p.backoff(2, f64::NAN), Duration::from_secs(4));
        let huge = RetryPolicy {
            backoff_base: Duration::MAX,
            backoff_cap: Duration::MAX,
            ..policy()
        };
        assert_eq!(huge.backoff(40, 1.0), Duration::MAX);
        for _ in 0..1000 {
            let d = p.decide(
                "GET",
                &Attempt::Response {
                    status: 502,
                    retry_after: None,
                },
                1,
            );
            match d {
                Retry { after } => assert!(after <= Duration::from_secs(2)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn never_retries_nothing() {
        let attempt = Attempt::Response {
            status: 503,
            retry_after: None,
        };
        assert_eq!(
            RetryPolicy::never().decide("GET", &attempt, 0),
            Stop(Exhausted)
        );
    }
}
