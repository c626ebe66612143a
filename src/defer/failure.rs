//! `Failure`: the error value that travels down a Deferred's errback chain.
//!
//! Twisted's `Failure` wraps an exception so that it can be passed around as a
//! value. twined's `Failure` wraps any `std::error::Error + Send + Sync + 'static`
//! and keeps its concrete type, so an errback can ask "is this a timeout?" with
//! [`Failure::check`], [`Failure::trap`] or [`Failure::downcast_ref`].
//!
//! A `Failure` is cheap to clone (one reference count) and is `Send + Sync`, so a
//! failure produced on a worker thread can be handed to the reactor thread.
//!
//! `Failure` deliberately does not implement `std::error::Error` itself: that is
//! what lets `?` turn *any* error into a `Failure` inside a callback (the same
//! choice `anyhow::Error` makes). Use [`Failure::error`] to get the error as a
//! `&dyn Error`, or `Box<dyn Error + Send + Sync>::from(failure)`.

use std::any::Any;
use std::backtrace::Backtrace;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::debug;

/// The error value carried by an errback chain.
///
/// Build one from any error with [`Failure::new`] (or `?`/`From`), from a plain
/// message with [`Failure::msg`]. Inspect it with [`check`](Failure::check),
/// [`trap`](Failure::trap) and [`downcast_ref`](Failure::downcast_ref).
/// `Display` prints the error's message (Twisted's `getErrorMessage()`); `Debug`
/// prints the error's detail, its `source()` chain and, when
/// [`set_debugging`](super::set_debugging) is on, where the failure was created.
///
/// ```
/// use twined::defer::{Failure, CancelledError};
///
/// let f = Failure::new(CancelledError);
/// assert!(f.check::<CancelledError>());
/// assert!(!f.check::<std::io::Error>());
/// assert_eq!(f.to_string(), "the Deferred was cancelled");
/// ```
#[derive(Clone)]
pub struct Failure {
    inner: Arc<Inner<dyn Error + Send + Sync + 'static>>,
}

struct Inner<E: ?Sized> {
    /// Where the failure was created; only captured while debugging is on.
    backtrace: Option<Backtrace>,
    error: E,
}

/// The wrapper used when a `Failure` is built from an already boxed error, so
/// that `downcast_ref` still sees the error inside the box.
struct Boxed(Box<dyn Error + Send + Sync + 'static>);

impl fmt::Debug for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Boxed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl Failure {
    /// Wraps `error`, keeping its concrete type for `check`/`trap`/`downcast_ref`.
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Failure {
        Failure {
            inner: Arc::new(Inner {
                backtrace: debug::capture(),
                error,
            }),
        }
    }

    /// Wraps an already boxed error; `downcast_ref` sees through the box.
    pub fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Failure {
        Failure::new(Boxed(error))
    }

    /// A failure that carries only a message (the error type is [`Message`]).
    pub fn msg(message: impl fmt::Display) -> Failure {
        Failure::new(Message(message.to_string()))
    }

    /// Turns a caught panic payload into a [`Panicked`] failure.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        Failure::new(Panicked::from_payload(payload))
    }

    /// The wrapped error.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        let error = &self.inner.error;
        match error.downcast_ref::<Boxed>() {
            Some(boxed) => &*boxed.0,
            None => error,
        }
    }

    /// Returns the error as `E` if that is its type (Twisted's `failure.value`).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error().downcast_ref::<E>()
    }

    /// `true` if the error is an `E` (Twisted's `failure.check(E)`).
    pub fn check<E: Error + 'static>(&self) -> bool {
        self.error().is::<E>()
    }

    /// `Ok(self)` if the error is an `E`, otherwise `Err(self)` so that `?`
    /// passes the failure on down the chain (Twisted's `failure.trap(E)`).
    ///
    /// ```
    /// use twined::defer::{self, Failure, CancelledError};
    ///
    /// let d = defer::fail::<u32>(Failure::new(CancelledError))
    ///     .or_else(|f| {
    ///         f.trap::<CancelledError>()?; // anything else goes on down the chain
    ///         Ok(0)
    ///     });
    /// assert_eq!(d.result(), Some(Ok(0)));
    /// ```
    pub fn trap<E: Error + 'static>(self) -> Result<Failure, Failure> {
        if self.check::<E>() {
            Ok(self)
        } else {
            Err(self)
        }
    }

    /// The backtrace of where this failure was created, if debugging was on then.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.inner.backtrace.as_ref()
    }

    /// `true` if both values are the same failure (clones of one another).
    pub fn same_as(&self, other: &Failure) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.error(), f)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({:?})", self.error())?;
        let mut source = self.error().source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        if let Some(backtrace) = &self.inner.backtrace {
            write!(f, "\n  created at:\n{backtrace}")?;
        }
        Ok(())
    }
}

/// Two `Failure`s are equal when they are the same failure (one is a clone of
/// the other); errors in general have no equality.
impl PartialEq for Failure {
    fn eq(&self, other: &Failure) -> bool {
        self.same_as(other)
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::new(error)
    }
}

impl From<Failure> for Box<dyn Error + Send + Sync + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(FailureError(failure))
    }
}

/// A `Failure` seen as a `std::error::Error` (what `Box<dyn Error>::from` makes).
#[derive(Debug, Clone)]
pub struct FailureError(pub Failure);

impl fmt::Display for FailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for FailureError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.0.error())
    }
}

/// A panic caught inside a callback, errback, canceller or thread-pool job.
///
/// The reactor keeps running; the panic goes down the errback chain as this
/// error, with the panic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    message: String,
}

impl Panicked {
    /// Builds the error from a `catch_unwind` payload.
    pub fn from_payload(payload: Box<dyn Any + Send>) -> Panicked {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        Panicked { message }
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked: {}", self.message)
    }
}

impl Error for Panicked {}

/// An error that is only a message (see [`Failure::msg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}
