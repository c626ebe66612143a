//! HTTP for the reactor (Twisted's `twisted.web`): a client with
//! `get_page`, an `Agent` with a keep-alive connection pool, HTTPS with
//! rustls, and a small HTTP/1.1 server.
//!
//! Every failure is a [`web::Error`](Error) inside the Deferred's `Failure`;
//! its [`kind()`](Error::kind) is an [`ErrorKind`] to branch on, whose
//! [`as_str()`](ErrorKind::as_str) is a stable short name.

pub mod client;
mod error;
#[cfg(feature = "fuzzing")]
pub mod http1;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod http1;
pub mod server;

pub use error::{Cause, Error, ErrorKind, ProxyError, RedirectError, RobotsDenial, TimeoutStage};
pub use http1::{CodecError, Headers, Version};
