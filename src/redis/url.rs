//! [`ConnectInfo`]: where a client connects and how it logs in, from a
//! `redis://[user:password@]host[:port][/db]` URL.

use std::fmt;

use super::error::RedisError;

/// The server address and login of a [`Client`](super::Client), parsed from
/// a URL.
///
/// `redis://[[user]:password@]host[:port][/db]`: the port defaults to 6379
/// and the database to 0. A password (percent-decoded) makes the client send
/// `AUTH [user] password` on every new connection, a database other than 0
/// `SELECT db`. `Display` and `Debug` show the password as `***`.
///
/// ```
/// use twined::redis::ConnectInfo;
///
/// let info = ConnectInfo::parse("redis://worker:s%40cret@127.0.0.1:6380/2").unwrap();
/// assert_eq!((info.host(), info.port(), info.db()), ("127.0.0.1", 6380, 2));
/// assert_eq!(info.username(), Some("worker"));
/// assert_eq!(info.password(), Some("s@cret"));
/// assert_eq!(info.to_string(), "redis://worker:***@127.0.0.1:6380/2");
///
/// assert!(ConnectInfo::parse("http://127.0.0.1").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    host: String,
    port: u16,
    db: u32,
    username: Option<String>,
    password: Option<String>,
}

impl ConnectInfo {
    /// Parses a `redis://` URL. Refused with [`RedisError::BadUrl`]: another
    /// scheme (`rediss://` included: TLS is not supported yet), no host, a
    /// database that is not a number, a query string or fragment (no option
    /// is read from them, so none is silently ignored), a user name without
    /// a password.
    pub fn parse(url: &str) -> Result<ConnectInfo, RedisError> {
        let bad = |reason: &str| RedisError::BadUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            bad(&format!(
                "{e} (expected redis://[user:password@]host[:port][/db])"
            ))
        })?;
        match parsed.scheme() {
            "redis" => {}
            "rediss" => return Err(bad("TLS (rediss://) is not supported")),
            other => return Err(bad(&format!("the scheme is {other:?}, not \"redis\""))),
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("no host")),
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query string or fragment is not supported"));
        }
        let port = parsed.port().unwrap_or(6379);
        let path = parsed.path().trim_start_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse::<u32>()
                .map_err(|_| bad(&format!("the database {path:?} is not a number")))?
        };
        let decode = |s: &str| -> Result<String, RedisError> {
            percent_decode(s)
                .ok_or_else(|| bad("the user or password is not valid percent-encoded UTF-8"))
        };
        let username = match parsed.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = parsed.password().map(decode).transpose()?;
        if username.is_some() && password.is_none() {
            return Err(bad(
                "a user name needs a password (redis://user:password@host)",
            ));
        }
        Ok(ConnectInfo {
            host,
            port,
            db,
            username,
            password,
        })
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (6379 unless the URL says otherwise).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number (0 unless the URL says otherwise).
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port`, for messages.
    pub(crate) fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            _ => {}
        }
        write!(f, "{}/{}", self.server(), self.db)
    }
}

impl fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectInfo({self})")
    }
}

/// The URL as given with the password part replaced by `***`, for error
/// messages, without trusting the URL to parse.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls() {
        let table = [
            ("redis://127.0.0.1", "127.0.0.1", 6379, 0, None, None),
            ("redis://localhost:7000/", "localhost", 7000, 0, None, None),
            ("redis://h/15", "h", 6379, 15, None, None),
            ("redis://:pw@h:1/3", "h", 1, 3, None, Some("pw")),
            ("redis://u:p%3Aq@h", "h", 6379, 0, Some("u"), Some("p:q")),
            ("redis://[::1]:6390/1", "::1", 6390, 1, None, None),
        ];
        for (url, host, port, db, user, pass) in table {
            let info = ConnectInfo::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(info.host(), host, "{url}");
            assert_eq!(info.port(), port, "{url}");
            assert_eq!(info.db(), db, "{url}");
            assert_eq!(info.username(), user, "{url}");
            assert_eq!(info.password(), pass, "{url}");
        }
    }

    #[test]
    fn bad_urls_say_why_and_hide_the_password() {
        let table = [
            ("", "relative URL"),
            ("127.0.0.1:6379", "expected redis://"),
            ("http://h", "scheme"),
            ("rediss://h", "TLS"),
            ("redis://h/x", "not a number"),
            ("redis://h/1?timeout=3", "query"),
            ("redis://u@h", "needs a password"),
            ("redis://h:99999", "invalid port"),
            ("redis://u:%ZZ@h", "percent"),
        ];
        for (url, why) in table {
            let err = ConnectInfo::parse(url).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let err = ConnectInfo::parse("redis://u:secret@h/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("u:***@h/x"), "{err}");
    }

    #[test]
    fn display_hides_the_password() {
        let info = ConnectInfo::parse("redis://:hunter2@h:7/1").unwrap();
        assert_eq!(info.to_string(), "redis://:***@h:7/1");
        assert!(!format!("{info:?}").contains("hunter2"));
        let info = ConnectInfo::parse("redis://[::1]").unwrap();
        assert_eq!(info.to_string(), "redis://[::1]:6379/0");
    }
}
