//! The web client's cookie jar, [`CookieJar`] (Twisted's `CookieAgent`
//! jar): RFC 6265 storage by the `cookie_store` crate, with public
//! suffixes, `Secure` and size and count bounds on top.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use cookie_store::{Cookie, CookieDomain, CookieExpiration, CookieStore, RawCookie, StoreAction};
use url::{Host, Url};

use crate::web::http1::Field;

/// The default [`CookieJarOptions::max_cookie_size`]: 4096 bytes (RFC 6265
/// section 6.1).
pub const DEFAULT_MAX_COOKIE_SIZE: usize = 4096;

/// The default [`CookieJarOptions::max_per_site`]: 50 (RFC 6265 section 6.1).
pub const DEFAULT_MAX_COOKIES_PER_SITE: usize = 50;

/// The default [`CookieJarOptions::max_cookies`]: 3000 (RFC 6265 section 6.1).
pub const DEFAULT_MAX_COOKIES: usize = 3000;

/// Bounds of a [`CookieJar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieJarOptions {
    /// Longest `Set-Cookie` field value kept (name, value and attributes),
    /// in bytes; a longer one is ignored. Default: 4096
    /// ([`DEFAULT_MAX_COOKIE_SIZE`]).
    pub max_cookie_size: usize,
    /// Most cookies kept for one site: a registrable domain and its
    /// subdomains (`example.com`, `www.example.com`), or one IP address.
    /// Past it the site's least recently set cookie is dropped. Default: 50
    /// ([`DEFAULT_MAX_COOKIES_PER_SITE`]).
    pub max_per_site: usize,
    /// Most cookies in the jar; past it the least recently set cookie is
    /// dropped. Default: 3000 ([`DEFAULT_MAX_COOKIES`]).
    pub max_cookies: usize,
}

impl Default for CookieJarOptions {
    fn default() -> CookieJarOptions {
        CookieJarOptions {
            max_cookie_size: DEFAULT_MAX_COOKIE_SIZE,
            max_per_site: DEFAULT_MAX_COOKIES_PER_SITE,
            max_cookies: DEFAULT_MAX_COOKIES,
        }
    }
}

impl CookieJarOptions {
    /// The largest jar file [`CookieJar::load_with_options`] reads: room
    /// for every cookie at its largest, JSON-escaped, with its attributes.
    fn max_file_size(&self) -> u64 {
        let per_cookie = self.max_cookie_size.saturating_mul(2).saturating_add(1024);
        (self.max_cookies.saturating_mul(per_cookie) as u64).max(64 * 1024)
    }
}

/// Why a jar could not be loaded or saved.
#[derive(Debug)]
#[non_exhaustive]
pub enum CookieJarError {
    /// Reading or writing failed.
    Io(io::Error),
    /// The file is larger than the jar's bounds allow.
    TooLarge {
        /// The most bytes read.
        limit: u64,
    },
    /// The input is not the JSON that [`CookieJar::save`] writes (or, on
    /// saving, a cookie could not be written as JSON).
    Format(Box<dyn StdError + Send + Sync>),
}

impl fmt::Display for CookieJarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieJarError::Io(e) => write!(f, "cookie jar I/O failed: {e}"),
            CookieJarError::TooLarge { limit } => {
                write!(f, "cookie jar file is larger than {limit} bytes")
            }
            CookieJarError::Format(e) => write!(f, "not a cookie jar file: {e}"),
        }
    }
}

impl StdError for CookieJarError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CookieJarError::Io(e) => Some(e),
            CookieJarError::TooLarge { .. } => None,
            CookieJarError::Format(e) => Some(&**e),
        }
    }
}

impl From<io::Error> for CookieJarError {
    fn from(e: io::Error) -> CookieJarError {
        CookieJarError::Io(e)
    }
}

/// A cookie's identity in the store: domain, path, name.
type Key = (String, String, String);

/// What the bounds need to know of a stored cookie.
#[derive(Debug)]
struct Tracked {
    /// When it was last set (a sequence number).
    seq: u64,
    /// The site it counts against.
    site: String,
    /// When it expires (Unix seconds); `None` for a session cookie.
    expires: Option<i64>,
}

/// The store and what the bounds need that the store does not keep.
#[derive(Debug)]
struct Jar {
    store: CookieStore,
    options: CookieJarOptions,
    tracked: HashMap<Key, Tracked>,
    /// The cookies by when they were last set, oldest first.
    order: BTreeMap<u64, Key>,
    /// Each site's cookies by when they were last set.
    per_site: HashMap<String, BTreeSet<u64>>,
    /// The persistent cookies by expiry.
    expiring: BTreeSet<(i64, u64)>,
    next: u64,
}

impl Jar {
    /// A jar holding `loaded` (from a file), within `options`' bounds: a
    /// cookie that would pass one is skipped.
    fn new(loaded: Vec<Cookie<'static>>, options: CookieJarOptions) -> Jar {
        let mut jar = Jar {
            store: CookieStore::default(),
            options,
            tracked: HashMap::new(),
            order: BTreeMap::new(),
            per_site: HashMap::new(),
            expiring: BTreeSet::new(),
            next: 0,
        };
        let mut kept = Vec::new();
        for cookie in loaded {
            if cookie.is_expired()
                || cookie.to_string().len() > jar.options.max_cookie_size
                || is_public_suffix_domain(&cookie.domain)
            {
                continue;
            }
            let key = key_of(&cookie);
            let site = site_of(&key.0);
            let full = jar.per_site.get(&site).map_or(0, BTreeSet::len) >= jar.options.max_per_site
                || jar.tracked.len() >= jar.options.max_cookies;
            if full || jar.tracked.contains_key(&key) {
                continue;
            }
            jar.track(key, expiry_of(&cookie));
            kept.push(cookie);
        }
        jar.store =
            CookieStore::from_cookies(kept.into_iter().map(Ok::<_, ()>), false).unwrap_or_default();
        jar
    }

    /// Stores one `Set-Cookie` field received from `url`.
    fn set_cookie(&mut self, url: &Url, field: &str) -> bool {
        if field.len() > self.options.max_cookie_size {
            log::debug!(
                "ignored a Set-Cookie of {} bytes from {url} (limit {})",
                field.len(),
                self.options.max_cookie_size
            );
            return false;
        }
        let Ok(mut raw) = RawCookie::parse(field.to_string()) else {
            return false;
        };
        if raw.secure() == Some(true) && url.scheme() != "https" {
            return false;
        }
        if let Some(domain) = raw.domain() {
            match public_suffix_rule(domain, url) {
                DomainRule::Keep => {}
                DomainRule::HostOnly => raw.unset_domain(),
                DomainRule::Refuse => return false,
            }
        }
        let Ok(cookie) = Cookie::try_from_raw_cookie(&raw, url) else {
            return false;
        };
        let cookie = cookie.into_owned();
        let key = key_of(&cookie);
        let expires = expiry_of(&cookie);
        self.purge_expired();
        match self.store.insert(cookie, url) {
            Ok(StoreAction::Inserted) => {
                self.track(key.clone(), expires);
                self.enforce(&key);
                true
            }
            Ok(StoreAction::UpdatedExisting) => {
                self.untrack(&key);
                self.track(key, expires);
                true
            }
            Ok(StoreAction::ExpiredExisting) => {
                self.drop_cookie(&key);
                true
            }
            Err(_) => false,
        }
    }

    fn track(&mut self, key: Key, expires: Option<i64>) {
        let seq = self.next;
        self.next += 1;
        let site = site_of(&key.0);
        self.per_site.entry(site.clone()).or_default().insert(seq);
        if let Some(at) = expires {
            self.expiring.insert((at, seq));
        }
        self.order.insert(seq, key.clone());
        self.tracked.insert(key, Tracked { seq, site, expires });
    }

    fn untrack(&mut self, key: &Key) {
        let Some(Tracked { seq, site, expires }) = self.tracked.remove(key) else {
            return;
        };
        self.order.remove(&seq);
        if let Some(at) = expires {
            self.expiring.remove(&(at, seq));
        }
        if let Some(seqs) = self.per_site.get_mut(&site) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.per_site.remove(&site);
            }
        }
    }

    fn drop_cookie(&mut self, key: &Key) {
        self.store.remove(&key.0, &key.1, &key.2);
        self.untrack(key);
    }

    /// Drops the cookies whose time has come.
    fn purge_expired(&mut self) {
        let now = unix_now();
        while let Some(&(at, seq)) = self.expiring.first() {
            if at > now {
                break;
            }
            match self.order.get(&seq).cloned() {
                Some(key) => self.drop_cookie(&key),
                None => {
                    self.expiring.remove(&(at, seq));
                }
            }
        }
    }

    /// Applies the bounds after `added` came in (expired cookies are gone
    /// already): the least recently set cookie of its site goes, then the
    /// least recently set of the jar.
    fn enforce(&mut self, added: &Key) {
        let site = site_of(&added.0);
        loop {
            let seqs = self.per_site.get(&site);
            if seqs.map_or(0, BTreeSet::len) <= self.options.max_per_site {
                break;
            }
            let oldest = seqs
                .and_then(|s| s.first())
                .and_then(|seq| self.order.get(seq));
            match oldest.cloned() {
                Some(key) => self.drop_cookie(&key),
                None => break,
            }
        }
        while self.tracked.len() > self.options.max_cookies {
            match self.order.values().next().cloned() {
                Some(key) => self.drop_cookie(&key),
                None => break,
            }
        }
    }

    /// The `Cookie` field value for a request to `url`: the matching
    /// cookies, longer paths first, then the earlier set (RFC 6265 section
    /// 5.4).
    fn header_for(&self, url: &Url) -> Option<String> {
        let https = url.scheme() == "https";
        let host = url.host_str()?;
        // A matching cookie's domain is the host or one of its parents, so
        // it counts against one of their sites: only those are looked at.
        let mut sites: Vec<String> = Vec::new();
        for domain in parents(host) {
            let site = site_of(domain);
            if !sites.contains(&site) {
                sites.push(site);
            }
        }
        let mut found: Vec<(usize, u64, &str, &str)> = sites
            .iter()
            .filter_map(|site| self.per_site.get(site))
            .flatten()
            .filter_map(|seq| self.order.get(seq).map(|key| (*seq, key)))
            .filter_map(|(seq, (domain, path, name))| {
                self.store.get_any(domain, path, name).map(|c| (seq, c))
            })
            .filter(|(_, c)| !c.is_expired() && c.matches(url))
            .filter(|(_, c)| https || c.secure() != Some(true))
            .filter(|(_, c)| sendable(c.name()) && sendable(c.value()))
            .map(|(seq, c)| (c.path.len(), seq, c.name(), c.value()))
            .collect();
        if found.is_empty() {
            return None;
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let pairs: Vec<String> = found
            .iter()
            .map(|(_, _, name, value)| format!("{name}={value}"))
            .collect();
        Some(pairs.join("; "))
    }
}

/// Bytes a name or value may have on the wire (a loaded file could hold
/// anything).
fn sendable(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != 0x7f && b != b';')
}

/// When a cookie expires, in Unix seconds; `None` for a session cookie.
fn expiry_of(cookie: &Cookie<'_>) -> Option<i64> {
    match &cookie.expires {
        CookieExpiration::AtUtc(at) => Some(at.unix_timestamp()),
        CookieExpiration::SessionEnd => None,
    }
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn key_of(cookie: &Cookie<'_>) -> Key {
    (
        String::from(&cookie.domain),
        String::from(&cookie.path),
        cookie.name().to_string(),
    )
}

/// The site a cookie domain counts against: its registrable domain
/// (`www.example.co.uk` -> `example.co.uk`; under a suffix not on the list,
/// the last two labels), or the domain itself (an IP address, a public
/// suffix).
fn site_of(domain: &str) -> String {
    let bare = domain.trim_start_matches('.');
    let ip = bare.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<IpAddr>().is_ok() {
        return bare.to_string();
    }
    match psl::domain(bare.as_bytes()) {
        Some(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
        None => bare.to_string(),
    }
}

/// A host and its parent domains (`a.b.c`, `b.c`, `c`); an IP address
/// alone.
fn parents(host: &str) -> Vec<&str> {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<IpAddr>().is_ok() {
        return vec![host];
    }
    let mut out = vec![host];
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        if !parent.is_empty() {
            out.push(parent);
        }
        rest = parent;
    }
    out
}

/// Whether a loaded cookie's `Domain` is a public suffix (a file could
/// hold anything).
fn is_public_suffix_domain(domain: &CookieDomain) -> bool {
    match domain {
        CookieDomain::Suffix(d) => is_public_suffix(d),
        _ => false,
    }
}

/// Whether `ascii` (a lowercase ASCII domain) is a public suffix: on the
/// list (`com`, `co.uk`, `github.io`), or one label (`test`, `internal`:
/// a top-level domain the list does not know).
fn is_public_suffix(ascii: &str) -> bool {
    let ascii = ascii.trim_end_matches('.');
    !ascii.contains('.')
        || psl::suffix(ascii.as_bytes())
            .is_some_and(|s| s.is_known() && s.as_bytes() == ascii.as_bytes())
}

enum DomainRule {
    Keep,
    HostOnly,
    Refuse,
}

/// RFC 6265 section 5.3 step 5: a `Domain` that is a public suffix is
/// refused, unless it is the request's host (then the cookie is
/// host-only).
fn public_suffix_rule(domain: &str, url: &Url) -> DomainRule {
    let bare = domain.trim().trim_start_matches('.');
    let Ok(Host::Domain(ascii)) = Host::parse(bare) else {
        return DomainRule::Keep; // the store judges IPs and bad names
    };
    let ascii = ascii.to_ascii_lowercase();
    if !is_public_suffix(&ascii) {
        DomainRule::Keep
    } else if url.host_str() == Some(ascii.as_str()) {
        DomainRule::HostOnly
    } else {
        DomainRule::Refuse
    }
}

/// HTTP cookies kept across requests (Twisted's `CookieAgent`
/// with a `cookielib.CookieJar`, aiohttp's `CookieJar`, reqwest's
/// `cookie_store`).
///
/// The storage rules are RFC 6265's, by the [`cookie_store`](https://docs.rs/cookie_store) crate: a cookie
/// without `Domain` is host-only (sent back to exactly the host that set
/// it), a `Domain` that the host does not domain-match is refused, `Path`
/// scopes a cookie to a path and below, `Max-Age` (first) or `Expires` set
/// its end, `Max-Age=0` or an `Expires` in the past deletes it. On top of
/// the crate this jar adds:
///
/// - **Public suffixes** (the compiled-in list of the [`psl`](https://docs.rs/psl) crate): a
///   `Domain` that is a public suffix (`Domain=com`, `Domain=co.uk`) or a
///   single label (`Domain=test`) is refused, unless it is the very host that set it, in which case the
///   cookie becomes host-only (RFC 6265 section 5.3 step 5).
/// - **`Secure` only over https**: a `Secure` cookie is sent only on https
///   requests, and one set by a plain-http response is ignored (RFC 6265bis).
///   Unlike browsers, `http://localhost` and `http://127.0.0.1` are not
///   treated as secure.
/// - **Bounds**, for a server that sends thousands of cookies
///   ([`CookieJarOptions`], RFC 6265 section 6.1 minimums): a `Set-Cookie`
///   field longer than 4096 bytes is ignored; a site (its registrable
///   domain, `a.example.com` and `b.example.com` together) keeps at most 50
///   cookies and the jar at most 3000. Past a bound, expired cookies go first,
///   then the least recently set (of that site, or of the jar).
///
/// `HttpOnly` does not matter to an HTTP client: every cookie is sent.
///
/// A jar is cheap to clone and clones share their cookies; it is `Send +
/// Sync`, so one jar may serve agents on several reactor threads. Give it to
/// an agent with [`AgentOptions::cookies`](super::AgentOptions::cookies).
///
/// # Saving and loading
///
/// [`CookieJar::save`] writes the cookie_store crate's JSON format;
/// [`CookieJar::load`] reads it back. As browsers do, `save` keeps only
/// persistent cookies (those with `Max-Age` or `Expires`): session cookies
/// end with the session. [`CookieJar::save_including_session`] keeps them
/// too. A loaded file goes through the same bounds as cookies from servers,
/// and a cookie in it for a public suffix is dropped.
///
/// ```
/// use twined::web::client::{Agent, AgentOptions, ConnectionPool, CookieJar};
///
/// let jar = CookieJar::new();
/// let agent = Agent::with_options(
///     ConnectionPool::new(),
///     AgentOptions { cookies: Some(jar.clone()), ..Default::default() },
/// );
/// assert!(agent.options().cookies.is_some());
///
/// // Given to an agent, it fills and sends itself; by hand:
/// jar.set_cookie("http://example.com/login", "sid=abc; Path=/; Max-Age=3600");
/// jar.set_cookie("http://example.com/login", "theme=dark");
/// assert_eq!(
///     jar.cookie_header("http://example.com/account").as_deref(),
///     Some("sid=abc; theme=dark")
/// );
/// // Host-only: not sent to another host, even a subdomain.
/// assert_eq!(jar.cookie_header("http://www.example.com/"), None);
///
/// // Only the persistent cookie is saved.
/// let mut file = Vec::new();
/// jar.save(&mut file).unwrap();
/// let loaded = CookieJar::load(file.as_slice()).unwrap();
/// assert_eq!(loaded.cookie_header("http://example.com/").as_deref(), Some("sid=abc"));
/// ```
///
/// Clones share the same cookies.
#[derive(Clone)]
pub struct CookieJar {
    jar: Arc<Mutex<Jar>>,
}

impl fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jar = self.lock();
        f.debug_struct("CookieJar")
            .field("cookies", &jar.tracked.len())
            .field("options", &jar.options)
            .finish()
    }
}

impl Default for CookieJar {
    fn default() -> CookieJar {
        CookieJar::new()
    }
}

impl CookieJar {
    /// An empty jar with the default bounds.
    pub fn new() -> CookieJar {
        CookieJar::with_options(CookieJarOptions::default())
    }

    /// An empty jar with `options`.
    pub fn with_options(options: CookieJarOptions) -> CookieJar {
        CookieJar::from_jar(Jar::new(Vec::new(), options))
    }

    fn from_jar(jar: Jar) -> CookieJar {
        CookieJar {
            jar: Arc::new(Mutex::new(jar)),
        }
    }

    /// The jar, even if a thread panicked while holding it: every change
    /// leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, Jar> {
        self.jar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The jar's bounds.
    pub fn options(&self) -> CookieJarOptions {
        self.lock().options.clone()
    }

    /// Stores the cookie of one `Set-Cookie` field value received from
    /// `url` (or deletes one, for `Max-Age=0` or a past `Expires`). Returns
    /// whether the jar took it: `false` for a bad URL, a field it cannot
    /// parse, one past [`max_cookie_size`](CookieJarOptions::max_cookie_size),
    /// a `Domain` that does not match the host or is a public suffix, a
    /// `Secure` cookie from plain http, or a new cookie already expired.
    pub fn set_cookie(&self, url: &str, set_cookie: &str) -> bool {
        match Url::parse(url) {
            Ok(url) => self.lock().set_cookie(&url, set_cookie),
            Err(_) => false,
        }
    }

    /// The `Cookie` field value a request to `url` carries (`a=1; b=2`), or
    /// `None` when no cookie matches (or `url` is not a URL).
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        Url::parse(url).ok().and_then(|url| self.header_for(&url))
    }

    pub(crate) fn header_for(&self, url: &Url) -> Option<String> {
        self.lock().header_for(url)
    }

    /// Adds the jar's cookies for `url` to a request's header fields, in
    /// one `Cookie` field: after the user's own pairs, skipping the names the
    /// user gave (the agent's request serializer calls this).
    pub(crate) fn add_to_fields(&self, fields: &mut Vec<Field<'_>>, url: &Url) {
        let Some(from_jar) = self.header_for(url) else {
            return;
        };
        let at = fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case("cookie"));
        let mine: Vec<&[u8]> = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| v.as_ref())
            .collect();
        let mut value: Vec<u8> = mine.join(&b"; "[..]);
        fields.retain(|(n, _)| !n.eq_ignore_ascii_case("cookie"));
        let given = |name: &str| {
            value.split(|&b| b == b';').any(|pair| {
                pair.split(|&b| b == b'=').next().map(<[u8]>::trim_ascii) == Some(name.as_bytes())
            })
        };
        let added: Vec<&str> = from_jar
            .split("; ")
            .filter(|pair| !given(pair.split('=').next().unwrap_or("")))
            .collect();
        for pair in added {
            if !value.is_empty() {
                value.extend_from_slice(b"; ");
            }
            value.extend_from_slice(pair.as_bytes());
        }
        let at = at.unwrap_or(fields.len()).min(fields.len());
        fields.insert(at, ("Cookie".into(), value.into()));
    }

    /// Stores every `Set-Cookie` field of a response from `url`. Values
    /// that are not UTF-8 are ignored.
    pub(crate) fn store_response(&self, url: &Url, headers: &crate::web::Headers) {
        let mut fields = headers.get_all_bytes("set-cookie").peekable();
        if fields.peek().is_none() {
            return;
        }
        let mut jar = self.lock();
        for field in fields {
            if let Ok(field) = std::str::from_utf8(field) {
                jar.set_cookie(url, field);
            }
        }
    }

    /// How many unexpired cookies the jar holds.
    pub fn len(&self) -> usize {
        let mut jar = self.lock();
        jar.purge_expired();
        jar.tracked.len()
    }

    /// Whether the jar holds no cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cookie.
    pub fn clear(&self) {
        let mut jar = self.lock();
        let options = jar.options.clone();
        *jar = Jar::new(Vec::new(), options);
    }

    /// Reads a jar written by [`save`](Self::save), with the default
    /// bounds. Expired cookies are skipped.
    pub fn load(reader: impl Read) -> Result<CookieJar, CookieJarError> {
        CookieJar::load_with_options(reader, CookieJarOptions::default())
    }

    /// Reads a jar written by [`save`](Self::save), with `options`: a
    /// cookie past its bounds is dropped as if a server had sent it, and a
    /// file larger than the bounds could need fails with
    /// [`CookieJarError::TooLarge`].
    pub fn load_with_options(
        reader: impl Read,
        options: CookieJarOptions,
    ) -> Result<CookieJar, CookieJarError> {
        let limit = options.max_file_size();
        let mut text = Vec::new();
        reader.take(limit + 1).read_to_end(&mut text)?;
        if text.len() as u64 > limit {
            return Err(CookieJarError::TooLarge { limit });
        }
        let loaded: Vec<Cookie<'static>> = if text.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            serde_json::from_slice(&text).map_err(|e| CookieJarError::Format(Box::new(e)))?
        };
        Ok(CookieJar::from_jar(Jar::new(loaded, options)))
    }

    /// Writes the persistent, unexpired cookies as JSON (the cookie_store
    /// crate's format); session cookies are not saved, as browsers do.
    pub fn save(&self, writer: impl Write) -> Result<(), CookieJarError> {
        self.save_as(writer, false)
    }

    /// Writes every unexpired cookie, session cookies included.
    pub fn save_including_session(&self, writer: impl Write) -> Result<(), CookieJarError> {
        self.save_as(writer, true)
    }

    fn save_as(&self, mut writer: impl Write, session: bool) -> Result<(), CookieJarError> {
        let out = {
            let jar = self.lock();
            // Oldest first, so that a loaded jar keeps the order.
            let kept: Vec<&Cookie<'static>> = jar
                .order
                .values()
                .filter_map(|(domain, path, name)| jar.store.get_any(domain, path, name))
                .filter(|c| !c.is_expired() && (session || c.is_persistent()))
                .collect();
            serde_json::to_vec_pretty(&kept).map_err(|e| CookieJarError::Format(Box::new(e)))?
        };
        writer.write_all(&out)?;
        writer.flush()?;
        Ok(())
    }
}
