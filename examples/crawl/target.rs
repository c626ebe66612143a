//! What one input line asks to fetch: the URL to request, the headers that
//! go with it, and the URL as shown in the output.
//!
//! Credentials in a URL (`http://user:pass@host/`) are sent as Basic auth,
//! as curl does, in a per-request `Authorization` header (which the agent
//! drops on a redirect to another origin); the URL requested carries none,
//! and the URL shown has its password replaced by `***`.

use std::borrow::Cow;

use base64::Engine;
use percent_encoding::percent_decode_str;
use twined::defer::Failure;
use twined::web::{Error as WebError, Headers};
use url::Url;

/// One URL to fetch.
pub struct Target {
    /// The URL as given, any password shown as `***`.
    pub shown: String,
    /// The URL requested (no userinfo), or why there is none.
    pub request: Result<String, Failure>,
    /// Per-request headers (`Authorization` from userinfo).
    pub headers: Headers,
}

impl Target {
    /// The target for `given`, a line of input or a command-line argument.
    pub fn new(given: &str) -> Target {
        let parsed = Url::parse(given);
        let shown = shown(given, parsed.as_ref().ok());
        let mut headers = Headers::new();
        let request = match parsed {
            Err(e) => Err(Failure::new(WebError::Url {
                url: shown.clone(),
                reason: e.to_string(),
            })),
            Ok(url) if url.username().is_empty() && url.password().is_none() => {
                Ok(given.to_string())
            }
            Ok(mut url) => {
                let mut pair = percent_decode_str(url.username()).collect::<Vec<u8>>();
                pair.push(b':');
                pair.extend(percent_decode_str(url.password().unwrap_or("")));
                let token = base64::engine::general_purpose::STANDARD.encode(pair);
                headers.append("Authorization", format!("Basic {token}"));
                // Cannot fail on a URL that has userinfo.
                let _ = url.set_password(None);
                let _ = url.set_username("");
                Ok(url.into())
            }
        };
        Target {
            shown,
            request,
            headers,
        }
    }

    /// A target for a line that is not a URL at all: `shown` is the line
    /// made printable, `reason` why it was refused.
    pub fn invalid(shown: String, reason: &str) -> Target {
        let shown = redact(&shown).into_owned();
        Target {
            request: Err(Failure::new(WebError::Url {
                url: shown.clone(),
                reason: reason.to_string(),
            })),
            shown,
            headers: Headers::new(),
        }
    }
}

/// `given` with any password replaced by `***`: textually, so the URL is
/// shown as given; through the parsed URL where the parser found a password
/// the text does not show in the usual place.
fn shown(given: &str, parsed: Option<&Url>) -> String {
    let textual = redact(given);
    match parsed {
        Some(url) if url.password().is_some() && textual == given => {
            let mut url = url.clone();
            let _ = url.set_password(Some("***"));
            url.into()
        }
        _ => textual.into_owned(),
    }
}

/// `url` with the password of its authority (`scheme://user:PASSWORD@host`)
/// replaced by `***`; unchanged when it has none.
pub fn redact(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#', '\\'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    let Some(colon) = authority[..at].find(':') else {
        return Cow::Borrowed(url);
    };
    Cow::Owned(format!(
        "{}***{}",
        &url[..start + colon + 1],
        &url[start + at..]
    ))
}
