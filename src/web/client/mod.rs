//! The HTTP client (Twisted's `twisted.web.client`).
//!
//! | Twisted | twined |
//! |---|---|
//! | `getPage(url, method=, postdata=, headers=, timeout=, followRedirect=)` | [`get_page`], [`get_page_with`] with [`PageOptions`] |
//! | `downloadPage(url, file)` | [`download_page`] |
//! | `Agent(reactor, pool=HTTPConnectionPool(reactor))` | [`Agent::with_options`] with a [`ConnectionPool`] |
//! | `agent.request(method, url, headers, body)` | [`Agent::request`] -> `Deferred<Response>` |
//! | `readBody(response)` / `response.deliverBody(protocol)` | [`read_body`] / [`Response::deliver_body`] with a [`BodyConsumer`] |
//! | `RedirectAgent`, `ContentDecoderAgent(GzipDecoder)` | [`AgentOptions`] `follow_redirects`, `gzip` |
//! | `BrowserLikePolicyForHTTPS` | [`TlsConfig`] (certificates verified, SNI) |
//!
//! Every failure is a [`web::Error`](crate::web::Error) inside the `Failure`.

mod agent;
mod conn;
mod decode;
mod page;
mod pool;
mod response;
#[cfg(feature = "tls")]
mod tls;

pub use agent::{Agent, AgentOptions};
pub use page::{download_page, download_page_with, get_page, get_page_with, PageOptions};
pub use pool::{ConnectionPool, PoolKey, PoolOptions};
pub use response::{read_body, BodyConsumer, Redirect, Response};
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
