//! The HTTP client (Twisted's `twisted.web.client`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `getPage(url, method=, postdata=, headers=, timeout=, followRedirect=)` | [`get_page`], [`get_page_with`] with [`PageOptions`] |
//! | `downloadPage(url, file)` | [`download_page`] |
//! | treq `treq.get(url)` + `treq.content(r)`, Tornado `AsyncHTTPClient.fetch(url, raise_error=False)` | [`fetch`], [`fetch_with`] -> `Deferred<`[`Page`]`>`: status, reason, headers, final URL and body together; a 404 is a result |
//! | `Agent(reactor, pool=HTTPConnectionPool(reactor))` | [`Agent::with_options`] with a [`ConnectionPool`] |
//! | `agent.request(method, url, headers, body)` | [`Agent::request`] -> `Deferred<Response>` |
//! | `readBody(response)` / `response.deliverBody(protocol)` | [`read_body`] / [`Response::deliver_body`] with a [`BodyConsumer`] |
//! | `RedirectAgent`, `ContentDecoderAgent(GzipDecoder)` | [`AgentOptions`] `follow_redirects`, `gzip` (gzip and deflate; brotli and zstd with the `br` and `zstd` features) |
//! | Scrapy's `RetryMiddleware`, urllib3's `Retry` | [`RetryPolicy`] with [`fetch_retrying`] -> `Deferred<`[`Retried`]`>`: backoff with full jitter, `Retry-After`, idempotent methods only |
//! | Scrapy's `RobotsTxtMiddleware` (`ROBOTSTXT_OBEY`), `urllib.robotparser` | [`RobotsCache`] (fetched once per origin, shared by threads), [`RobotsTxt`] |
//! | Scrapy's downloader middlewares (`process_request`), run again for each redirect hop | [`AgentOptions`] `before_request`: a [`BeforeRequest`] hook every hop waits for (a pacer, `robots.txt`) |
//! | `CookieAgent(agent, cookielib.CookieJar())`, aiohttp `CookieJar` | [`AgentOptions`] `cookies` with a [`CookieJar`] |
//! | `BrowserLikePolicyForHTTPS` | [`TlsConfig`] in [`AgentOptions`] `tls` (certificates verified, SNI) |
//! | `ProxyAgent(TCP4ClientEndpoint(reactor, host, port))` | [`AgentOptions`] `proxy`: [`Proxies`] of [`Proxy`] (`http://` forwarded, `https://` through `CONNECT`), [`Proxies::from_env`] for `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` |
//!
//! Every failure is a [`web::Error`](crate::web::Error) inside the `Failure`.
//!
//! # Bounds and headers
//!
//! Every request is bounded: the response head at 64 KiB
//! ([`AgentOptions::head_limit`]), the body at 1 GiB as received and as
//! decoded ([`AgentOptions::max_body`], [`DEFAULT_MAX_BODY`]; a gzip, brotli or zstd bomb is
//! stopped at the limit in bounded memory, a larger `Content-Length` fails
//! at the head), connecting at 30 s; the head and whole-request timeouts are
//! options. A header you give replaces the agent's default of the same name
//! (`Host`, `User-Agent`, `Accept-Encoding`); `Content-Length` and
//! `Transfer-Encoding` are the agent's and refused from you
//! ([`Error::Header`](crate::web::Error::Header)); credentials and `Host`
//! are not sent on after a redirect to another origin.
//! Cookies are kept and sent only with a [`CookieJar`] in
//! [`AgentOptions::cookies`] (bounded: 4096 bytes a cookie, 50 a site, 3000
//! in all by default).
//!
//! # Proxies
//!
//! [`AgentOptions::proxy`] sends requests through HTTP or SOCKS5 proxies
//! (default: none, and the environment is read only through
//! [`Proxies::from_env`]). Through an HTTP proxy, `http://` URLs go in
//! absolute form to the proxy, `https://` URLs through a `CONNECT` tunnel
//! with TLS to the origin; through a SOCKS5 proxy (`socks5://`, or
//! `socks5h://` to let the proxy resolve names), both go through a tunnel
//! per origin. The proxy's credentials go to
//! the proxy only. A proxy that cannot be reached, refuses, drops the
//! tunnel or answers garbage fails the request with an error of kind
//! [`Proxy`](crate::web::ErrorKind::Proxy).
//!
//! ```
//! use twined::web::client::{Agent, AgentOptions, ConnectionPool, NoProxy, Proxies, Proxy};
//!
//! let proxy: Proxy = "http://user:s%40cret@127.0.0.1:3128".parse().unwrap();
//! let proxies = Proxies {
//!     no_proxy: NoProxy::parse("localhost, .internal.example, 10.0.0.0/8"),
//!     ..Proxies::all(proxy)
//! };
//! assert!(proxies.for_url("https://example.org/").is_some());
//! assert!(proxies.for_url("http://db.internal.example/").is_none());
//! let agent = Agent::with_options(
//!     ConnectionPool::new(),
//!     AgentOptions { proxy: Some(proxies), ..Default::default() },
//! );
//! # drop(agent);
//! ```
//!
//! # Settings: options structs
//!
//! Every setting lives in a plain options struct with public fields and a
//! `Default` that documents each default: [`AgentOptions`] (redirects,
//! timeouts, limits, TLS), [`PoolOptions`] (keep-alive, caps) and
//! [`PageOptions`] (one `get_page` call). Fill one with struct-update syntax;
//! there are no builders.
//!
//! `with_*` has one meaning: the same operation as the name without it,
//! taking an options struct. [`Agent::new`] / [`Agent::with_options`],
//! [`ConnectionPool::new`] / [`ConnectionPool::with_options`], [`get_page`] /
//! [`get_page_with`], [`fetch`] / [`fetch_with`], [`download_page`] /
//! [`download_page_with`]. A
//! [`PageOptions`] field left at `None` keeps the agent's setting.
//!
//! ```
//! use std::time::Duration;
//! use twined::web::client::{Agent, AgentOptions, ConnectionPool, PoolOptions};
//!
//! let agent = Agent::with_options(
//!     ConnectionPool::with_options(PoolOptions { max_per_host: Some(8), ..Default::default() }),
//!     AgentOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() },
//! );
//! assert_eq!(agent.options().timeout, Some(Duration::from_secs(10)));
//! ```

mod agent;
mod before;
mod conn;
mod cookies;
mod decode;
mod fetch;
mod into_url;
mod page;
mod pool;
mod proxy;
mod response;
mod retry;
pub mod robots;
// Public with the `fuzzing` feature, for the `client_inputs` fuzz target;
// not a stable API.
#[cfg(feature = "fuzzing")]
pub mod socks;
#[cfg(not(feature = "fuzzing"))]
mod socks;
#[cfg(feature = "tls")]
mod tls;
mod tunnel;

pub use agent::{Agent, AgentOptions, DEFAULT_MAX_BODY};
pub use before::BeforeRequest;
pub use cookies::{
    CookieJar, CookieJarError, CookieJarOptions, DEFAULT_MAX_COOKIES, DEFAULT_MAX_COOKIES_PER_SITE,
    DEFAULT_MAX_COOKIE_SIZE,
};
pub use fetch::{fetch, fetch_with, Page};
pub use into_url::IntoUrl;
pub use page::{download_page, download_page_with, get_page, get_page_with, PageOptions};
pub use pool::{ConnectionPool, PoolKey, PoolOptions};
pub use proxy::{NoProxy, Proxies, Proxy, ProxyScheme};
pub use response::{read_body, BodyConsumer, Redirect, Response};
pub use retry::{
    fetch_retrying, fetch_retrying_on, parse_retry_after, Attempt, Retried, RetryDecision,
    RetryPolicy, StopReason, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_STATUSES,
};
pub use robots::{Access, RobotsCache, RobotsOptions, RobotsTxt};
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
/// A parsed URL (the `url` crate's), which every request function takes as
/// well as text: see [`IntoUrl`].
pub use url::Url;
