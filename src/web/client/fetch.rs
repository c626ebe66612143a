//! `fetch`: the whole response at once (status, reason, headers, final URL
//! and body), failing only when no response could be had. Tornado's
//! `AsyncHTTPClient.fetch(url, raise_error=False)`, treq's `treq.get(url)`
//! followed by `treq.content(response)`.

use std::borrow::Cow;

use super::into_url::IntoUrl;
use super::page::PageOptions;
use super::response::{read_body, Redirect, Response};
use crate::defer::Deferred;
use crate::web::{Headers, Version};

/// A complete response, as [`fetch`] fires with it: the head and the whole
/// body (decoded from gzip or deflate when the agent asked for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The status code (Tornado's `response.code`, treq's `response.code`).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields (without `Content-Encoding` and `Content-Length`
    /// when the agent decoded a gzip or deflate body).
    pub headers: Headers,
    /// The URL that answered, after redirects (Tornado's `effective_url`).
    pub url: String,
    /// The redirects followed, in order.
    pub history: Vec<Redirect>,
    /// The body.
    pub body: Vec<u8>,
}

impl Page {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, invalid UTF-8 replaced by U+FFFD (treq's
    /// `text_content`, without charset detection).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Fetches `url` and fires with the whole [`Page`]: status, reason, headers,
/// final URL and body together. Unlike [`get_page`](super::get_page), a 404
/// or a 500 is a result, not a failure: the Deferred errbacks only when no
/// complete response could be had (a [`web::Error`](crate::web::Error) of
/// kind `url`, `dns`, `connect`, `tls`, `timeout`, `redirect`, `protocol`,
/// `io`, `too_large` or `cancelled`). Redirects are followed.
///
/// ```
/// use twined::reactor;
/// use twined::task;
/// use twined::web::client::fetch;
/// use twined::web::server::{Request, Response, Site};
///
/// let site = Site::new(|req: Request| match req.path() {
///     "/" => Response::new(200).header("Content-Type", "text/plain").body("hello"),
///     _ => Response::new(404).body("no such page"),
/// });
/// let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
/// let base = format!("http://{}", port.address());
///
/// let page = task::react(|| fetch(&format!("{base}/"))).unwrap();
/// assert_eq!((page.status, page.reason.as_str()), (200, "OK"));
/// assert_eq!(page.headers.get("content-type"), Some("text/plain"));
/// assert_eq!(page.text(), "hello");
///
/// // A 404 is a page too, not a failure.
/// let missing = task::react(|| fetch(&format!("{base}/gone"))).unwrap();
/// assert_eq!(missing.status, 404);
/// assert_eq!(missing.body, b"no such page");
/// assert_eq!(missing.url, format!("{base}/gone"));
/// port.stop_listening();
/// ```
pub fn fetch(url: impl IntoUrl) -> Deferred<Page> {
    fetch_with(url, PageOptions::default())
}

/// [`fetch`] with [`PageOptions`]: method, headers, body, timeout,
/// redirects, body limit, agent.
///
/// ```no_run
/// use std::time::Duration;
/// use twined::web::client::{fetch_with, PageOptions};
///
/// let options = PageOptions {
///     method: "POST".into(),
///     headers: [("Content-Type", "application/json")].into_iter().collect(),
///     body: Some(br#"{"name": "twined"}"#.to_vec()),
///     timeout: Some(Duration::from_secs(10)),
///     ..Default::default()
/// };
/// fetch_with("http://127.0.0.1:8080/items", options)
///     .add_callback(|page| println!("{} {}: {}", page.status, page.reason, page.text()));
/// ```
pub fn fetch_with(url: impl IntoUrl, options: PageOptions) -> Deferred<Page> {
    let agent = options.agent();
    agent
        .request(&options.method, url, options.headers, options.body)
        .and_then(|mut response: Response| {
            let head = Page {
                status: response.status,
                reason: std::mem::take(&mut response.reason),
                version: response.version,
                headers: std::mem::take(&mut response.headers),
                url: response.url.clone(),
                history: std::mem::take(&mut response.history),
                body: Vec::new(),
            };
            read_body(response).add_callback(move |body| Page { body, ..head })
        })
}
