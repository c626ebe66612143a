//! # twined
//!
//! Twisted's programming model in Rust: typed `Deferred` callback chains,
//! `DeferredList`, a global reactor on `mio`, and a `get_page`-style HTTP client.
//!
//! Porting tables and examples: see [`defer`] and [`reactor`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod defer;
pub mod reactor;
pub mod task;
