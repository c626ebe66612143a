//! The JSON line of one fetch (the crawl contract), and the one place that
//! turns a failure into the `kind` a user branches on.

use std::time::Duration;

use serde::Serialize;
use twined::defer::Failure;
use twined::web::Error as WebError;

use crate::fetch::Outcome;
use crate::target::redact;

/// One output line; fields in the documented order.
#[derive(Serialize)]
pub struct Record<'a> {
    /// The URL as given, any password shown as `***`.
    pub url: &'a str,
    pub final_url: Option<String>,
    pub status: Option<u16>,
    pub bytes: u64,
    pub elapsed_ms: f64,
    pub redirects: usize,
    pub attempts: usize,
    pub content_type: Option<&'a str>,
    pub error: Option<ErrorRecord>,
}

/// The `error` member: a kind from the contract's list and a message.
#[derive(Serialize)]
pub struct ErrorRecord {
    pub kind: &'static str,
    pub message: String,
}

impl<'a> Record<'a> {
    /// The line for `outcome` of fetching `url` (already redacted), after
    /// `attempts` tries taking `elapsed` in all.
    pub fn new(url: &'a str, outcome: &'a Outcome, attempts: usize, elapsed: Duration) -> Self {
        let head = outcome.head.as_ref();
        Record {
            url,
            final_url: head.map(|h| redact(&h.final_url).into_owned()),
            status: head.map(|h| h.status),
            bytes: outcome.bytes,
            elapsed_ms: (elapsed.as_secs_f64() * 10_000.0).round() / 10.0,
            redirects: head.map_or(0, |h| h.redirects),
            attempts,
            content_type: head.and_then(|h| h.content_type.as_deref()),
            error: outcome.error.as_ref().map(|failure| {
                let (kind, message) = error_kind(failure);
                ErrorRecord { kind, message }
            }),
        }
    }
}

/// The contract's kind of `failure` and its message. The only use of
/// `web::Error::kind` in the crawler: every kind of the contract comes from
/// it, `proxy` included (a proxy unreachable, refusing `CONNECT` or a
/// SOCKS5 handshake, closing the tunnel, or answering 407; its message
/// names the proxy, never its password).
pub fn error_kind(failure: &Failure) -> (&'static str, String) {
    match failure.downcast_ref::<WebError>() {
        Some(WebError::Http { status, .. }) => ("http", format!("HTTP status {status}")),
        // Every other kind by its name, `robots` (--obey-robots) included.
        Some(e) => (e.kind().as_str(), e.to_string()),
        // A `SaveError` (the --save file), or anything else met outside
        // the web client.
        None => ("io", failure.to_string()),
    }
}
