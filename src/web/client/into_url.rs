//! What the client's request functions take as a URL: [`IntoUrl`], as
//! reqwest's. Text is parsed (WHATWG rules, host names to ASCII) and
//! checked once per request; a [`Url`] parsed already is only checked, so
//! a URL fetched many times, or one a crawler parsed anyway, is not parsed
//! again.

use url::Url;

use crate::web::Error;

/// A URL a request can go to: text (`&str`, `String`, `&String`,
/// `&Rc<str>`: anything borrowed that is `AsRef<str>`), parsed per request,
/// or a parsed [`Url`](url::Url) (re-exported as
/// [`web::client::Url`](super::Url)), passed by value, which is only
/// checked (clone it to fetch it again; a borrowed `&Url` is text to this
/// trait, parsed again).
///
/// Whatever the form, the URL must be `http` or `https` (the latter with
/// the `tls` feature) and have a host; anything else fails the request with
/// [`Error::Url`].
///
/// ```
/// use twined::web::client::{IntoUrl, Url};
///
/// let parsed = Url::parse("http://example.org/a").unwrap();
/// assert_eq!(parsed.clone().into_url().unwrap(), parsed);
/// assert_eq!("http://example.org/a".into_url().unwrap(), parsed);
/// assert!("ftp://example.org/".into_url().is_err());
/// ```
pub trait IntoUrl: sealed::Sealed {
    /// The URL, parsed if need be and checked.
    fn into_url(self) -> Result<Url, Error>;
}

mod sealed {
    /// Only this crate's forms are URLs to the client.
    pub trait Sealed {}
    impl<T: AsRef<str> + ?Sized> Sealed for &T {}
    impl Sealed for String {}
    impl Sealed for url::Url {}
}

impl<T: AsRef<str> + ?Sized> IntoUrl for &T {
    fn into_url(self) -> Result<Url, Error> {
        let text = self.as_ref();
        let parsed = Url::parse(text).map_err(|e| Error::Url {
            url: text.to_string(),
            reason: e.to_string(),
        })?;
        checked(parsed, Some(text))
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        self.as_str().into_url()
    }
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        checked(self, None)
    }
}

/// `url` if the client can fetch it: its scheme and a host. An error
/// names `text`, the URL as given, or else the parsed URL (only then is
/// either copied).
fn checked(url: Url, text: Option<&str>) -> Result<Url, Error> {
    let bad = |reason: String| Error::Url {
        url: text.unwrap_or(url.as_str()).to_string(),
        reason,
    };
    match url.scheme() {
        "http" => {}
        #[cfg(feature = "tls")]
        "https" => {}
        #[cfg(not(feature = "tls"))]
        "https" => return Err(bad("https needs twined's `tls` feature".into())),
        other => return Err(bad(format!("unsupported scheme {other:?}"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_the_same_checked_url() {
        let text = "http://Example.ORG:8080/a?b#c";
        let parsed = Url::parse(text).unwrap();
        let owned = text.to_string();
        let shared: std::rc::Rc<str> = text.into();
        for url in [
            text.into_url().unwrap(),
            owned.clone().into_url().unwrap(),
            (&owned).into_url().unwrap(),
            (&shared).into_url().unwrap(),
            parsed.clone().into_url().unwrap(),
            (&parsed).into_url().unwrap(),
        ] {
            assert_eq!(url.as_str(), "http://example.org:8080/a?b#c");
        }
    }

    #[test]
    fn what_the_client_cannot_fetch_is_a_url_error_naming_the_text() {
        let cases = [
            ("not a url", "relative URL without a base"),
            ("ftp://example.org/", "unsupported scheme \"ftp\""),
            (
                "mailto:someone@example.org",
                "unsupported scheme \"mailto\"",
            ),
            ("http://[::1", "invalid IPv6 address"),
        ];
        for (text, why) in cases {
            match text.into_url() {
                Err(Error::Url { url, reason }) => {
                    assert_eq!(url, text);
                    assert_eq!(reason, why, "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // A parsed URL is checked too.
        let mailto = Url::parse("mailto:someone@example.org").unwrap();
        assert!(matches!(mailto.into_url(), Err(Error::Url { .. })));
    }
}
