//! The request a handler is given.

use std::net::SocketAddr;

use crate::web::http1::{RequestHead, Version};
use crate::web::Headers;

/// An HTTP request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method (`GET`).
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields (values as sent, see [`Headers`]).
    pub headers: Headers,
    /// The body (empty when there is none).
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

impl Request {
    pub(super) fn new(head: RequestHead, body: Vec<u8>, peer: SocketAddr) -> Request {
        Request {
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers,
            body,
            peer: Some(peer),
        }
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name`, when it is UTF-8 text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The first value of header `name`, as sent (any bytes).
    ///
    /// ```
    /// # use twined::web::server::Request;
    /// # use twined::web::{Headers, Version};
    /// let mut headers = Headers::new();
    /// headers.append_bytes("X-Name", b"J\xf6rg".to_vec());
    /// let request = Request {
    ///     method: "GET".into(),
    ///     target: "/".into(),
    ///     version: Version::Http11,
    ///     headers,
    ///     body: Vec::new(),
    ///     peer: None,
    /// };
    /// assert_eq!(request.header("x-name"), None);
    /// assert_eq!(request.header_bytes("x-name"), Some(&b"J\xf6rg"[..]));
    /// ```
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.get_bytes(name)
    }
}
