//! The conveniences: `get_page` (the body, failing on status >= 400) and
//! `download_page` (the body streamed to a file), Twisted's
//! `client.getPage` and `client.downloadPage`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::agent::{Agent, AgentOptions};
use super::into_url::IntoUrl;
use super::response::{read_body_limited, BodyConsumer, Response};
use crate::defer::{Deferred, Failure, Trigger};
use crate::web::{Error, Headers};

/// How much of an error response's body [`Error::Http`] keeps.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Options of [`get_page_with`] and [`download_page_with`] (Twisted's
/// `getPage` keyword arguments).
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// The method (default `GET`).
    pub method: String,
    /// Extra header fields.
    pub headers: Headers,
    /// A request body (Twisted's `postdata`).
    pub body: Option<Vec<u8>>,
    /// Time allowed for the whole request, body included. Default: `None`,
    /// the agent's [`timeout`](AgentOptions::timeout) (none for the shared
    /// agent).
    pub timeout: Option<Duration>,
    /// Follow redirects. Default: `None`, the agent's
    /// [`follow_redirects`](AgentOptions::follow_redirects) (yes for the
    /// shared agent).
    pub follow_redirects: Option<bool>,
    /// Most redirects followed. Default: `None`, the agent's
    /// [`redirect_limit`](AgentOptions::redirect_limit) (20 for the shared
    /// agent).
    pub redirect_limit: Option<usize>,
    /// Largest body accepted, in bytes, received or decoded. Default:
    /// `None`, the agent's [`max_body`](AgentOptions::max_body) (1 GiB for
    /// the shared agent). Past it the call fails with
    /// [`Error::TooLarge`]; `Some(u64::MAX)` lifts the limit.
    pub max_body: Option<u64>,
    /// The agent to use; default: this thread's shared agent (and its pool).
    pub agent: Option<Agent>,
}

impl Default for PageOptions {
    fn default() -> PageOptions {
        PageOptions {
            method: "GET".into(),
            headers: Headers::new(),
            body: None,
            timeout: None,
            follow_redirects: None,
            redirect_limit: None,
            max_body: None,
            agent: None,
        }
    }
}

impl PageOptions {
    /// The agent these options ask for: the given (or shared) one, or one
    /// on its pool with the settings these options override.
    pub(super) fn agent(&self) -> Agent {
        let base = self.agent.clone().unwrap_or_else(Agent::shared);
        let current = base.options();
        let timeout = self.timeout.or(current.timeout);
        let follow_redirects = self.follow_redirects.unwrap_or(current.follow_redirects);
        let redirect_limit = self.redirect_limit.unwrap_or(current.redirect_limit);
        let max_body = self.max_body.or(current.max_body);
        if current.timeout == timeout
            && current.follow_redirects == follow_redirects
            && current.redirect_limit == redirect_limit
            && current.max_body == max_body
        {
            // Nothing overridden: the agent as it is, nothing copied.
            return base;
        }
        let options = AgentOptions {
            timeout,
            follow_redirects,
            redirect_limit,
            max_body,
            // The base agent's name cache, not one of its own.
            dns_cache: base.dns_cache().cloned(),
            ..current.clone()
        };
        Agent::with_options(base.pool().clone(), options)
    }
}

/// Fetches `url` and fires with its body (Twisted's `getPage`). Redirects are
/// followed; a status >= 400 errbacks with [`Error::Http`] (its body
/// included). Every failure is a [`web::Error`](Error) in the `Failure`.
///
/// ```no_run
/// use twined::reactor;
/// use twined::web::client::get_page;
///
/// get_page("http://127.0.0.1:8080/")
///     .add_callback(|body| println!("{} bytes", body.len()))
///     .add_errback(|failure| eprintln!("failed: {failure}"))
///     .add_both(|_| reactor::stop().unwrap());
/// reactor::run().unwrap();
/// ```
pub fn get_page(url: impl IntoUrl) -> Deferred<Vec<u8>> {
    get_page_with(url, PageOptions::default())
}

/// [`get_page`] with [`PageOptions`].
pub fn get_page_with(url: impl IntoUrl, options: PageOptions) -> Deferred<Vec<u8>> {
    let agent = options.agent();
    agent
        .request(&options.method, url, options.headers, options.body)
        .and_then(|response: Response| {
            if response.status >= 400 {
                let (status, reason, url) = (
                    response.status,
                    response.reason.clone(),
                    response.url.clone(),
                );
                read_body_limited(response, Some(ERROR_BODY_LIMIT)).and_then(move |body| {
                    Err::<Vec<u8>, _>(Failure::new(Error::Http {
                        status,
                        reason,
                        url,
                        body,
                    }))
                })
            } else {
                read_body_limited(response, None)
            }
        })
}

/// Writes a body into a file as it arrives.
struct ToFile {
    file: Option<File>,
    written: u64,
    error: Option<std::io::Error>,
    host: String,
    trigger: Option<Trigger<u64>>,
}

impl BodyConsumer for ToFile {
    fn data(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(file) = self.file.as_mut() {
            match file.write_all(chunk) {
                Ok(()) => self.written += chunk.len() as u64,
                Err(e) => self.error = Some(e),
            }
        }
    }

    fn finished(&mut self, result: Result<(), Failure>) {
        let flushed = self.file.take().map(|mut f| f.flush());
        let result = match (result, self.error.take(), flushed) {
            (Err(f), _, _) => Err(f),
            (Ok(()), Some(e), _) | (Ok(()), None, Some(Err(e))) => {
                Err(Failure::new(Error::io(self.host.clone(), e)))
            }
            (Ok(()), None, _) => Ok(self.written),
        };
        if let Some(trigger) = self.trigger.take() {
            trigger.fire_with(result);
        }
    }
}

/// Fetches `url` into the file at `path`, streaming: the body is never held
/// in memory (Twisted's `downloadPage`). Fires with the number of bytes
/// written; a status >= 400 errbacks with [`Error::Http`] and writes nothing.
///
/// The agent's body limit holds here too (1 GiB by default,
/// [`AgentOptions::max_body`]): for a larger file, lift it for this call
/// with `PageOptions { max_body: Some(u64::MAX), .. }`.
pub fn download_page(url: impl IntoUrl, path: impl AsRef<Path>) -> Deferred<u64> {
    download_page_with(url, path, PageOptions::default())
}

/// [`download_page`] with [`PageOptions`].
pub fn download_page_with(
    url: impl IntoUrl,
    path: impl AsRef<Path>,
    options: PageOptions,
) -> Deferred<u64> {
    let path = path.as_ref().to_path_buf();
    let agent = options.agent();
    agent
        .request(&options.method, url, options.headers, options.body)
        .and_then(move |response: Response| {
            if response.status >= 400 {
                let (status, reason, url) = (
                    response.status,
                    response.reason.clone(),
                    response.url.clone(),
                );
                return read_body_limited(response, Some(ERROR_BODY_LIMIT)).and_then(move |body| {
                    Err::<u64, _>(Failure::new(Error::Http {
                        status,
                        reason,
                        url,
                        body,
                    }))
                });
            }
            let host = response.url.clone();
            let file = match File::create(&path) {
                Ok(f) => f,
                Err(source) => {
                    response.abort();
                    return crate::defer::fail(Error::io(host, source));
                }
            };
            let (d, trigger) = Deferred::new();
            response.deliver_body(ToFile {
                file: Some(file),
                written: 0,
                error: None,
                host,
                trigger: Some(trigger),
            });
            d
        })
}
