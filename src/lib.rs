//! # twined
//!
//! Twisted's programming model in Rust: typed `Deferred` callback chains,
//! `DeferredList`, and (in later parts) a global reactor on `mio` and a
//! `get_page`-style HTTP client.
//!
//! Porting table and examples: see [`defer`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod defer;
