//! An ordered, case-insensitive list of header fields whose values are
//! bytes.

use std::borrow::Cow;
use std::fmt;

/// Field names common enough on the wire that a received one spelled
/// exactly so is kept as this static text instead of a new string.
const COMMON_NAMES: [&str; 16] = [
    "Content-Length",
    "Content-Type",
    "Date",
    "Server",
    "Connection",
    "Transfer-Encoding",
    "Content-Encoding",
    "Location",
    "Set-Cookie",
    "Cache-Control",
    "Last-Modified",
    "ETag",
    "Vary",
    "Expires",
    "Host",
    "User-Agent",
];

/// `name` as a field name: a static one when it is a common name spelled
/// the usual way (the case as received is kept either way).
fn field_name(name: &str) -> Cow<'static, str> {
    match COMMON_NAMES.iter().find(|common| **common == name) {
        Some(common) => Cow::Borrowed(common),
        None => Cow::Owned(name.to_string()),
    }
}

/// HTTP header fields in the order they were given or received. Names
/// compare case-insensitively; a name may appear several times.
///
/// Values are kept as the bytes that were received or given: a value that
/// is not UTF-8 is never rewritten. The `&str` accessors ([`get`](Self::get),
/// [`get_all`](Self::get_all), [`iter`](Self::iter)) see the values that are
/// UTF-8 text; the `_bytes` ones see every value as sent.
///
/// ```
/// use twined::web::Headers;
///
/// let mut h = Headers::new();
/// h.append("Set-Cookie", "a=1");
/// h.append("set-cookie", "b=2");
/// h.insert("Content-Type", "text/plain");
/// h.append_bytes("X-Raw", b"caf\xe9".to_vec());
/// assert_eq!(h.get("content-type"), Some("text/plain"));
/// assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// assert_eq!(h.get("x-raw"), None); // not UTF-8
/// assert_eq!(h.get_bytes("x-raw"), Some(&b"caf\xe9"[..]));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(Cow<'static, str>, Vec<u8>)>,
}

impl Headers {
    /// No fields.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Fields as received: `(name, value)` pairs from a parser, in order,
    /// stored with one allocation for the list and none for common names.
    pub(crate) fn received<'a>(
        fields: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
    ) -> Headers {
        let mut list = Vec::with_capacity(fields.len());
        list.extend(fields.map(|(name, value)| (field_name(name), value.to_vec())));
        Headers { fields: list }
    }

    /// The first value of `name`, when that value is UTF-8 text (see
    /// [`get_bytes`](Self::get_bytes) for any value).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name`, as sent.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name` that is UTF-8 text, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all_bytes(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, as sent, in order.
    pub fn get_all_bytes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether `name` is present (whatever its value).
    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Adds a field, keeping any others of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields
            .push((Cow::Owned(name.into()), value.into().into_bytes()));
    }

    /// Adds a field whose value is any bytes (checked for CR, LF and NUL
    /// when written, as every value is).
    pub fn append_bytes(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.fields.push((Cow::Owned(name.into()), value.into()));
    }

    /// Sets `name` to `value`, replacing every field of that name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.insert_bytes(name, value.into().into_bytes());
    }

    /// Sets `name` to the bytes `value`, replacing every field of that name.
    pub fn insert_bytes(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        self.remove(&name);
        self.fields.push((Cow::Owned(name), value.into()));
    }

    /// Removes every field named `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before != self.fields.len()
    }

    /// The fields whose values are UTF-8 text, in order (see
    /// [`iter_bytes`](Self::iter_bytes) for every field).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter_bytes()
            .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
    }

    /// Every field, its value as sent, in order.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(n, v)| (n.as_ref(), v.as_slice()))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether any comma-separated element of any `name` field equals
    /// `token`, case-insensitively (`Connection: keep-alive, close`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all_bytes(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter_bytes()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        let mut headers = Headers::new();
        headers.extend(iter);
        headers
    }
}

impl<N: Into<String>, V: Into<String>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        self.fields.extend(
            iter.into_iter()
                .map(|(n, v)| (Cow::Owned(n.into()), v.into().into_bytes())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_fields_keep_their_case_order_and_bytes() {
        let wire: [(&str, &[u8]); 4] = [
            ("Content-Length", b"5"),
            ("content-type", b"text/plain"),
            ("X-Raw", b"caf\xe9"),
            ("Set-Cookie", b"a=1"),
        ];
        let got = Headers::received(wire.iter().copied());
        let mut built = Headers::new();
        for (name, value) in wire {
            built.append_bytes(name, value);
        }
        assert_eq!(got, built);
        assert_eq!(got.iter_bytes().collect::<Vec<_>>(), wire);
        // A common name spelled the usual way is the static text; another
        // spelling is kept as received.
        assert!(matches!(got.fields[0].0, Cow::Borrowed("Content-Length")));
        assert!(matches!(&got.fields[1].0, Cow::Owned(n) if n == "content-type"));
        assert_eq!(got.get("CONTENT-TYPE"), Some("text/plain"));
    }
}
