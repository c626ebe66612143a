//! Which proxy a request goes through (Twisted's `ProxyAgent`, reqwest's
//! `Proxy`): a [`Proxy`] parsed from `http://[user:pass@]host:port`,
//! `socks5://...` or `socks5h://...`, and [`Proxies`], the choice per URL scheme with its [`NoProxy`]
//! exceptions, set by hand or read from the environment
//! ([`Proxies::from_env`]: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`).
//!
//! An [`Agent`](super::Agent) uses a proxy only when its
//! [`AgentOptions::proxy`](super::AgentOptions::proxy) says so; the default
//! is a direct connection, and the environment is read only when asked.
//!
//! Through an HTTP proxy, an `http://` URL is sent to the proxy in absolute form
//! (`GET http://host:port/path HTTP/1.1`) on a connection to the proxy that
//! carries requests for any origin; an `https://` URL goes through a
//! `CONNECT host:port` tunnel, inside which TLS runs end to end with the
//! origin (its certificate checked against its name, as on a direct
//! connection). The proxy's credentials go to the proxy only, as a Basic
//! `Proxy-Authorization` on each forwarded request and on `CONNECT`, never
//! inside a tunnel.
//!
//! Through a SOCKS5 proxy, both schemes go through a tunnel per origin (the
//! SOCKS5 `CONNECT` of RFC 1928, with RFC 1929's user name and password
//! when the setting has credentials): `http://` requests in origin form
//! inside it, `https://` with TLS end to end. (The example is in the [client module's
//! documentation](super#proxies).)

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use url::Url;

use crate::web::{Error, ProxyError};

/// One proxy: its kind, host, port and optional credentials, parsed from
///
/// - `http://[user:pass@]host[:port]`: an HTTP proxy (the port defaults
///   to 80; a setting without a scheme, `host:port`, is taken as
///   `http://`, as curl and reqwest do). Credentials are sent as Basic
///   `Proxy-Authorization` to the proxy only.
/// - `socks5://[user:pass@]host[:port]`: a SOCKS5 proxy (port 1080 by
///   default) to which the client gives the origin's IP address: the
///   client resolves the origin's name itself.
/// - `socks5h://[user:pass@]host[:port]`: a SOCKS5 proxy that resolves the
///   origin's name: the client sends the name (curl's and reqwest's
///   meaning of the two schemes). Credentials are sent with RFC 1929's
///   user name and password authentication (each at most 255 bytes).
///
/// Other schemes (`https://`, `socks4://`) are refused with an
/// [`Error::Proxy`] of [`ProxyError::BadUrl`]. Credentials are
/// percent-decoded. `Display` and `Debug` never show the password.
///
/// ```
/// use twined::web::client::{Proxy, ProxyScheme};
///
/// let proxy = Proxy::parse("http://alice:p%40ss@proxy.example:3128").unwrap();
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example", 3128));
/// assert_eq!(proxy.to_string(), "http://alice:***@proxy.example:3128");
///
/// let socks = Proxy::parse("socks5h://bob:secret@127.0.0.1").unwrap();
/// assert_eq!(socks.scheme(), ProxyScheme::Socks5h);
/// assert_eq!(socks.port(), 1080);
/// assert_eq!(socks.to_string(), "socks5h://bob:***@127.0.0.1:1080");
/// assert!(Proxy::parse("socks4://proxy.example:1080").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    scheme: ProxyScheme,
    host: String,
    port: u16,
    /// The user name and password, percent-decoded.
    credentials: Option<(String, String)>,
    /// The `Proxy-Authorization` value, `Basic ...`, of an HTTP proxy.
    authorization: Option<String>,
}

/// What kind of proxy a [`Proxy`] is, from its setting's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyScheme {
    /// `http://`: an HTTP proxy (forwarding and `CONNECT`).
    Http,
    /// `socks5://`: SOCKS5, the client resolving the origin's name.
    Socks5,
    /// `socks5h://`: SOCKS5, the proxy resolving the origin's name.
    Socks5h,
}

impl ProxyScheme {
    /// The scheme as written in a setting: `"http"`, `"socks5"`,
    /// `"socks5h"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        }
    }

    /// Whether this is a SOCKS5 proxy (either resolution).
    pub fn is_socks(self) -> bool {
        matches!(self, ProxyScheme::Socks5 | ProxyScheme::Socks5h)
    }
}

/// The longest user name or password of RFC 1929.
const SOCKS_CREDENTIAL_MAX: usize = 255;

impl Proxy {
    /// Parses a proxy setting; see the type's documentation.
    pub fn parse(setting: &str) -> Result<Proxy, Error> {
        let setting = setting.trim();
        let bad = |reason: String| Error::Proxy {
            proxy: redact(setting),
            error: ProxyError::BadUrl { reason },
        };
        if setting.is_empty() {
            return Err(bad("empty proxy setting".into()));
        }
        let with_scheme;
        let full = if setting.contains("://") {
            setting
        } else {
            with_scheme = format!("http://{setting}");
            &with_scheme
        };
        let url = Url::parse(full).map_err(|e| bad(e.to_string()))?;
        let scheme = match url.scheme() {
            "http" => ProxyScheme::Http,
            "socks5" => ProxyScheme::Socks5,
            "socks5h" => ProxyScheme::Socks5h,
            other => {
                return Err(bad(format!(
                    "unsupported proxy scheme {other:?}: \
                     http://, socks5:// and socks5h:// proxies are supported"
                )))
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(bad("no host".into())),
        };
        let port = match scheme {
            ProxyScheme::Http => url.port_or_known_default().unwrap_or(80),
            ProxyScheme::Socks5 | ProxyScheme::Socks5h => url.port().unwrap_or(1080),
        };
        let decode = |part: &str, what: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad(format!("the {what} is not UTF-8 once percent-decoded")))
        };
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = decode(url.username(), "user name")?;
            let password = decode(url.password().unwrap_or(""), "password")?;
            if scheme.is_socks()
                && (user.len() > SOCKS_CREDENTIAL_MAX || password.len() > SOCKS_CREDENTIAL_MAX)
            {
                return Err(bad(format!(
                    "a SOCKS5 user name or password is at most {SOCKS_CREDENTIAL_MAX} bytes"
                )));
            }
            Some((user, password))
        };
        let authorization = match (&credentials, scheme) {
            (Some((user, password)), ProxyScheme::Http) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            _ => None,
        };
        Ok(Proxy {
            scheme,
            host,
            port,
            credentials,
            authorization,
        })
    }

    /// What kind of proxy this is.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host name or IP literal (an IPv6 literal in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the setting carried credentials.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `host:port`, the proxy's name in errors.
    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Proxy-Authorization` value sent to an HTTP proxy.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The user name and password, percent-decoded (for SOCKS5's RFC 1929
    /// authentication).
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }
}

impl FromStr for Proxy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Proxy, Error> {
        Proxy::parse(s)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        match &self.credentials {
            Some((user, _)) => write!(f, "{scheme}://{user}:***@{}:{}", self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Proxy").field(&self.to_string()).finish()
    }
}

/// A proxy setting as it may be shown: any password replaced by `***`.
fn redact(setting: &str) -> String {
    let Some(scheme_end) = setting.find("://").map(|i| i + 3) else {
        return match setting.rfind('@') {
            Some(at) => format!("***@{}", &setting[at + 1..]),
            None => setting.to_string(),
        };
    };
    let rest = &setting[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &setting[..scheme_end], &rest[at + 1..]),
        None => setting.to_string(),
    }
}

/// Hosts that are reached directly, never through the proxy (the
/// `NO_PROXY` variable), with reqwest's and curl's rules: a comma-separated
/// list (spaces ignored, case ignored) of
///
/// - `*`: every host;
/// - a domain, `example.org` or `.example.org`: that domain and every
///   name under it (`a.example.org`), but not `badexample.org`;
/// - an IP address (`127.0.0.1`, `::1`, `[::1]`) or a CIDR block
///   (`10.0.0.0/8`, `fd00::/8`): URLs whose host is such an IP literal.
///
/// A name is never resolved to check it against an IP entry, and a port
/// after an entry (`example.org:8080`) is ignored. The default is empty:
/// every host goes through the proxy, `localhost` included.
///
/// ```
/// use twined::web::client::NoProxy;
///
/// let no = NoProxy::parse("example.org, 192.168.0.0/16");
/// assert!(no.matches("www.example.org"));
/// assert!(no.matches("192.168.1.20"));
/// assert!(!no.matches("notexample.org"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Bypass>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    All,
    /// A domain, lower case, without its leading dot.
    Domain(String),
    /// An IP block: address and prefix length.
    Net(IpAddr, u8),
}

impl NoProxy {
    /// Parses a `NO_PROXY` list; entries that are none of the forms above
    /// are ignored.
    pub fn parse(list: &str) -> NoProxy {
        let entries = list
            .split(',')
            .filter_map(|raw| {
                let entry = raw.trim().to_ascii_lowercase();
                if entry.is_empty() {
                    return None;
                }
                if entry == "*" {
                    return Some(Bypass::All);
                }
                if let Some((ip, len)) = entry.split_once('/') {
                    let ip = parse_ip(ip)?;
                    let len: u8 = len.parse().ok()?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    return (len <= max).then_some(Bypass::Net(ip, len));
                }
                if let Some(ip) = parse_ip(&entry) {
                    let len = if ip.is_ipv4() { 32 } else { 128 };
                    return Some(Bypass::Net(ip, len));
                }
                // `name:port`: the port is not matched.
                let name = entry.split(':').next().unwrap_or("");
                let name = name.trim_start_matches('.').trim_end_matches('.');
                (!name.is_empty()).then(|| Bypass::Domain(name.to_string()))
            })
            .collect();
        NoProxy { entries }
    }

    /// Whether requests to `host` (a name, or an IP literal with or without
    /// IPv6 brackets) bypass the proxy.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = parse_ip(&host);
        self.entries.iter().any(|entry| match entry {
            Bypass::All => true,
            Bypass::Domain(domain) => {
                ip.is_none()
                    && (host == *domain
                        || host
                            .strip_suffix(domain.as_str())
                            .is_some_and(|head| head.ends_with('.')))
            }
            Bypass::Net(net, len) => ip.is_some_and(|ip| in_block(ip, *net, *len)),
        })
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An IP literal, IPv6 with or without brackets.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// Whether `ip` is in the block `net/len` (an IPv4-mapped IPv6 address
/// counts as its IPv4 address).
fn in_block(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Which proxy each request goes through: one for `http://` URLs, one for
/// `https://` URLs (tunnelled with `CONNECT`), and the hosts reached
/// directly. A scheme whose proxy is `None` goes direct. Set the fields
/// by hand, start from [`Proxies::all`], or read the environment with
/// [`Proxies::from_env`]. The default is all `None`: every request direct.
///
/// ```
/// use twined::web::client::{Proxies, Proxy};
///
/// let proxies = Proxies {
///     https: Some(Proxy::parse("http://127.0.0.1:3128").unwrap()),
///     ..Default::default()
/// };
/// assert!(proxies.for_url("http://example.org/").is_none());
/// assert_eq!(proxies.for_url("https://example.org/").unwrap().port(), 3128);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// The proxy for `http://` URLs.
    pub http: Option<Proxy>,
    /// The proxy for `https://` URLs.
    pub https: Option<Proxy>,
    /// Hosts reached directly whatever the scheme.
    pub no_proxy: NoProxy,
}

impl Proxies {
    /// One proxy for both schemes, no exceptions (reqwest's `Proxy::all`,
    /// curl's `--proxy`).
    pub fn all(proxy: Proxy) -> Proxies {
        Proxies {
            http: Some(proxy.clone()),
            https: Some(proxy),
            no_proxy: NoProxy::default(),
        }
    }

    /// Reads the proxy settings from this process's environment; see
    /// [`from_vars`](Self::from_vars) for the rules. `Err` when a variable
    /// is set to a proxy that cannot be used (the error names it).
    pub fn from_env() -> Result<Proxies, Error> {
        Proxies::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads proxy settings through `get` (a variable's value by name), as
    /// curl and reqwest read the environment:
    ///
    /// - `HTTP_PROXY`, else `http_proxy`: the proxy of `http://` URLs;
    /// - `HTTPS_PROXY`, else `https_proxy`: the proxy of `https://` URLs;
    /// - `ALL_PROXY`, else `all_proxy`: the proxy of a scheme that has none
    ///   of its own;
    /// - `NO_PROXY`, else `no_proxy`: the [`NoProxy`] list.
    ///
    /// An empty value counts as unset. When `REQUEST_METHOD` is set (the
    /// program runs as a CGI script, where a request's `Proxy:` header
    /// arrives as `HTTP_PROXY`: the "httpoxy" attack), `HTTP_PROXY` is
    /// ignored; lower-case `http_proxy`, which no request header can set,
    /// is still read.
    ///
    /// ```
    /// use twined::web::client::Proxies;
    ///
    /// let env = |name: &str| match name {
    ///     "http_proxy" => Some("proxy.example:3128".to_string()),
    ///     "NO_PROXY" => Some("localhost".to_string()),
    ///     _ => None,
    /// };
    /// let proxies = Proxies::from_vars(env).unwrap();
    /// assert_eq!(proxies.http.unwrap().host(), "proxy.example");
    /// assert!(proxies.https.is_none());
    /// assert!(proxies.no_proxy.matches("localhost"));
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Proxies, Error> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let cgi = var("REQUEST_METHOD").is_some();
        let read = |names: &[&str]| -> Result<Option<Proxy>, Error> {
            for name in names {
                if cgi && *name == "HTTP_PROXY" {
                    continue;
                }
                if let Some(value) = var(name) {
                    return Proxy::parse(&value).map(Some).map_err(|e| match e {
                        Error::Proxy {
                            proxy,
                            error: ProxyError::BadUrl { reason },
                        } => Error::Proxy {
                            proxy,
                            error: ProxyError::BadUrl {
                                reason: format!("{name}: {reason}"),
                            },
                        },
                        other => other,
                    });
                }
            }
            Ok(None)
        };
        let all = read(&["ALL_PROXY", "all_proxy"])?;
        let http = read(&["HTTP_PROXY", "http_proxy"])?.or_else(|| all.clone());
        let https = read(&["HTTPS_PROXY", "https_proxy"])?.or(all);
        let no_proxy = var("NO_PROXY")
            .or_else(|| var("no_proxy"))
            .map(|list| NoProxy::parse(&list))
            .unwrap_or_default();
        Ok(Proxies {
            http,
            https,
            no_proxy,
        })
    }

    /// Whether no scheme has a proxy.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request for `url` goes through, or `None` for a direct
    /// connection (no proxy for its scheme, its host in
    /// [`no_proxy`](Self::no_proxy), or not a URL).
    pub fn for_url(&self, url: &str) -> Option<&Proxy> {
        Url::parse(url).ok().and_then(|u| self.route(&u))
    }

    /// [`for_url`](Self::for_url) for a parsed URL.
    pub(crate) fn route(&self, url: &Url) -> Option<&Proxy> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }?;
        let host = url.host_str().unwrap_or("");
        (!self.no_proxy.matches(host)).then_some(proxy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn host_of(p: &Option<Proxy>) -> Option<String> {
        p.as_ref().map(Proxy::label)
    }

    #[test]
    fn proxy_urls() {
        // Ok((host, port, authorization)), or Err(part of the message).
        type Want = Result<(&'static str, u16, Option<&'static str>), &'static str>;
        let table: &[(&str, Want)] = &[
            ("http://127.0.0.1:3128", Ok(("127.0.0.1", 3128, None))),
            ("http://proxy.example", Ok(("proxy.example", 80, None))),
            ("proxy.example:8080", Ok(("proxy.example", 8080, None))),
            ("  http://P.Example:1/  ", Ok(("p.example", 1, None))),
            ("http://[::1]:3128", Ok(("[::1]", 3128, None))),
            // "user:pass" and "a@b:p:ss" in base64
            (
                "http://user:pass@h:1",
                Ok(("h", 1, Some("Basic dXNlcjpwYXNz"))),
            ),
            (
                "http://a%40b:p%3Ass@h:1",
                Ok(("h", 1, Some("Basic YUBiOnA6c3M="))),
            ),
            ("http://user@h:1", Ok(("h", 1, Some("Basic dXNlcjo=")))),
            ("https://h:443", Err("unsupported proxy scheme \"https\"")),
            (
                "socks4://h:1080",
                Err("unsupported proxy scheme \"socks4\""),
            ),
            ("socks5://h:1081", Ok(("h", 1081, None))),
            ("socks5://h", Ok(("h", 1080, None))),
            ("socks5h://u:p@[::1]", Ok(("[::1]", 1080, None))),
            ("", Err("empty")),
            ("http://h:99999", Err("invalid port")),
            ("http://u:%ff@h:1", Err("not UTF-8")),
        ];
        for (setting, want) in table {
            let got = Proxy::parse(setting);
            match (got, want) {
                (Ok(p), Ok((host, port, auth))) => {
                    assert_eq!(
                        (p.host(), p.port(), p.authorization()),
                        (*host, *port, *auth),
                        "{setting}"
                    );
                }
                (Err(e), Err(part)) => {
                    assert_eq!(e.kind(), crate::web::ErrorKind::Proxy);
                    assert!(e.to_string().contains(part), "{setting}: {e}");
                }
                (got, want) => panic!("{setting}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        let p = Proxy::parse("http://alice:secret@h:1").unwrap();
        assert_eq!(p.to_string(), "http://alice:***@h:1");
        assert!(!format!("{p:?}").contains("secret"));
        let e = Proxy::parse("socks4://alice:secret@h:1").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        let long = format!("socks5://{}:pw@h:1", "u".repeat(256));
        let e = Proxy::parse(&long).unwrap_err();
        assert!(e.to_string().contains("at most 255 bytes"), "{e}");
        assert!(Proxy::parse(&format!("socks5://{}:pw@h:1", "u".repeat(255))).is_ok());
        assert!(Proxy::parse(&format!("http://{}:pw@h:1", "u".repeat(256))).is_ok());
        let p = Proxy::parse("socks5://alice:secret@h:1").unwrap();
        assert_eq!(p.to_string(), "socks5://alice:***@h:1");
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(redact("alice:secret@h:1"), "***@h:1");
        assert_eq!(redact("http://h:1/a@b"), "http://h:1/a@b");
    }

    #[test]
    fn environment() {
        type Want = (Option<&'static str>, Option<&'static str>);
        let table: &[(&[(&str, &str)], Want)] = &[
            (&[], (None, None)),
            (&[("HTTP_PROXY", "a:1")], (Some("a:1"), None)),
            (&[("http_proxy", "a:1")], (Some("a:1"), None)),
            (
                &[("HTTP_PROXY", "a:1"), ("http_proxy", "b:1")],
                (Some("a:1"), None),
            ),
            (&[("HTTPS_PROXY", "a:1")], (None, Some("a:1"))),
            (&[("https_proxy", "a:1")], (None, Some("a:1"))),
            (&[("ALL_PROXY", "c:1")], (Some("c:1"), Some("c:1"))),
            (
                &[("all_proxy", "c:1"), ("https_proxy", "s:1")],
                (Some("c:1"), Some("s:1")),
            ),
            (
                &[("HTTP_PROXY", ""), ("http_proxy", "b:1")],
                (Some("b:1"), None),
            ),
            // httpoxy: a CGI request's `Proxy:` header is HTTP_PROXY.
            (
                &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")],
                (None, None),
            ),
            (
                &[
                    ("REQUEST_METHOD", "GET"),
                    ("HTTP_PROXY", "evil:1"),
                    ("http_proxy", "b:1"),
                ],
                (Some("b:1"), None),
            ),
        ];
        for (vars, (http, https)) in table {
            let p = Proxies::from_vars(env(vars)).unwrap();
            assert_eq!(
                (host_of(&p.http), host_of(&p.https)),
                (http.map(String::from), https.map(String::from)),
                "{vars:?}"
            );
        }
        let e = Proxies::from_vars(env(&[("HTTPS_PROXY", "socks4://x:1")])).unwrap_err();
        assert!(e.to_string().contains("HTTPS_PROXY"), "{e}");
        let p = Proxies::from_vars(env(&[("ALL_PROXY", "socks5h://s:1")])).unwrap();
        let schemes = [&p.http, &p.https].map(|p| p.as_ref().map(Proxy::scheme));
        assert_eq!(schemes, [Some(ProxyScheme::Socks5h); 2]);
    }

    #[test]
    fn no_proxy_lists() {
        // (list, host, bypassed)
        let table: &[(&str, &str, bool)] = &[
            ("", "example.org", false),
            ("*", "example.org", true),
            ("*", "10.1.2.3", true),
            ("example.org", "example.org", true),
            ("example.org", "www.example.org", true),
            ("example.org", "badexample.org", false),
            (".example.org", "example.org", true),
            (".example.org", "a.b.example.org", true),
            ("Example.ORG", "www.example.org", true),
            ("example.org.", "example.org.", true),
            (" a.test , example.org ", "example.org", true),
            ("example.org:8080", "example.org", true),
            ("localhost", "127.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.0/8", "127.9.9.9", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("::1", "[::1]", true),
            ("[::1]", "[::1]", true),
            ("fd00::/8", "[fd12::1]", true),
            ("fd00::/8", "[fe80::1]", false),
            ("127.0.0.0/8", "[::ffff:127.0.0.1]", true),
            ("10.0.0.0/33", "10.0.0.1", false),
            ("1.2.3.4", "1.2.3.4.example", false),
        ];
        for (list, host, want) in table {
            assert_eq!(NoProxy::parse(list).matches(host), *want, "{list:?} {host}");
        }
    }

    #[test]
    fn routes_by_scheme_and_exceptions() {
        let p = Proxy::parse("127.0.0.1:3128").unwrap();
        let proxies = Proxies {
            no_proxy: NoProxy::parse("direct.test"),
            ..Proxies::all(p)
        };
        assert!(proxies.for_url("http://a.test/").is_some());
        assert!(proxies.for_url("https://a.test/").is_some());
        assert!(proxies.for_url("http://direct.test/").is_none());
        assert!(proxies.for_url("ftp://a.test/").is_none());
        assert!(proxies.for_url("not a url").is_none());
        assert!(Proxies::default().for_url("http://a.test/").is_none());
    }
}
