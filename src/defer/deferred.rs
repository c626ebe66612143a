//! `Deferred<T>`, the typed handle on a callback/errback chain, and `Trigger<T>`,
//! the one-shot handle that fires it.

use std::fmt;
use std::marker::{PhantomData, PhantomPinned};
use std::rc::Rc;

use super::chain::{self, Chain, Link, Next, Res, Step, Value};
use super::{AlreadyCalled, Failure, TriggerDropped};

/// A result that is not there yet, and the chain of callbacks that will process
/// it (Twisted's `Deferred`).
///
/// `Deferred<T>` is the consuming end of a chain whose current result type is
/// `T`. Each `add_*` method takes the handle and returns a new one for the
/// result type of the function it added, so the compiler checks that every
/// callback gets what the one before produced. All handles of one chain share
/// one allocation; adding a callback costs one boxed closure.
///
/// What a callback returns decides what happens next:
///
/// | method | the function returns | Twisted |
/// |---|---|---|
/// | [`add_callback`](Self::add_callback) | a plain value `U`, or a `Deferred<U>` (the chain waits for it) | `addCallback(f)` |
/// | [`and_then`](Self::and_then) | `Result<U, Failure>` (an `Err` goes down the errbacks) or a `Deferred<U>` (the chain waits for it) | `addCallback(f)` where `f` may raise or return a Deferred |
/// | [`add_errback`](Self::add_errback) | a plain value `T`: the failure is handled | `addErrback(f)` |
/// | [`or_else`](Self::or_else) | `Result<T, Failure>` (an `Err` re-raises) or a `Deferred<T>` | `addErrback(f)` that may re-raise |
/// | [`add_both`](Self::add_both) / [`then`](Self::then) | a plain value or a Deferred / an [`Outcome`] | `addBoth(f)` |
/// | [`add_callbacks`](Self::add_callbacks) | a plain value from either function | `addCallbacks(f, g)` |
///
/// Extra arguments (Twisted's `callbackArgs`) are captured by the closure.
/// A panic inside any of them is caught and becomes a [`Panicked`](super::Panicked)
/// failure; the chain goes on.
///
/// ```
/// use twined::defer::{Deferred, Failure};
///
/// let (d, trigger) = Deferred::<&str>::new();
/// let d = d
///     .add_callback(|s| s.len())                        // plain value
///     .and_then(|n| if n > 3 { Ok(n * 2) } else { Err(Failure::msg("too short")) })
///     .add_errback(|_failure| 0);                       // recover
/// trigger.callback("orange");
/// assert_eq!(d.result(), Some(Ok(12)));
/// ```
///
/// A dropped handle is not an error. If the chain ends in a failure that no
/// errback handled, the failure is reported once ("Unhandled error in
/// Deferred: ...") when the last reference to the chain goes away:
/// deterministically, not when a garbage collector gets to it. The report goes
/// through `log::error!` when a logger would record it, and to standard error
/// when none would (no logger installed), so it is never silent.
pub struct Deferred<T> {
    pub(crate) chain: Rc<Chain>,
    _type: PhantomData<fn() -> T>,
    /// Makes `Deferred` (and anything holding one) `!Unpin`, which is how
    /// [`CallbackOutput`] tells a returned Deferred (chained) from a plain
    /// value. Nothing relies on a Deferred's address: the chain lives behind
    /// the `Rc`, and polling it as a future only needs `&self`.
    _not_unpin: PhantomPinned,
}

/// The one-shot producer end of a [`Deferred`] (Twisted's `d.callback` /
/// `d.errback`).
///
/// Firing consumes the trigger, so firing twice is a compile error rather than
/// Twisted's `AlreadyCalledError`. **A trigger dropped without firing errbacks
/// its Deferred with [`TriggerDropped`]**, so a forgotten trigger shows up as a
/// failure instead of a Deferred that waits forever.
pub struct Trigger<T> {
    chain: Option<Rc<Chain>>,
    _type: PhantomData<fn(T)>,
}

/// What a canceller receives: the means to fire the Deferred being cancelled
/// (Twisted passes the canceller the Deferred itself).
///
/// If the canceller does not fire the Deferred, it errbacks with
/// [`CancelledError`](super::CancelledError) when the canceller returns.
pub struct Canceller<T> {
    chain: Rc<Chain>,
    _type: PhantomData<fn(T)>,
}

/// What [`Deferred::and_then`], [`Deferred::or_else`], [`Deferred::then`] and
/// [`maybe_deferred`](super::maybe_deferred) accept from their function:
/// `Result<T, Failure>` (an `Err` continues down the errback chain, as a raised
/// exception does in Twisted) or a `Deferred<T>` (the chain waits for it, and
/// its result is moved into this chain).
///
/// Inside such a function `?` turns any `std::error::Error` into a `Failure`.
pub trait Outcome<T> {
    /// Converts the value into the chain's next step. Not meant to be called
    /// by users; the return type cannot be named outside twined.
    fn into_next(self) -> Next;
}

impl<T: 'static> Outcome<T> for Result<T, Failure> {
    #[inline]
    fn into_next(self) -> Next {
        Next::Ready(self.map(box_value))
    }
}

impl<T: 'static> Outcome<T> for Deferred<T> {
    #[inline]
    fn into_next(self) -> Next {
        Next::Wait(self.chain)
    }
}

/// The marker for a plain value returned to [`Deferred::add_callback`] or
/// [`add_both`](Deferred::add_both): the chain goes on with it.
#[derive(Debug)]
pub struct Plain;

/// The marker for a Deferred returned to [`Deferred::add_callback`] or
/// [`add_both`](Deferred::add_both): the chain waits for it.
#[derive(Debug)]
pub struct Chained;

/// What [`add_callback`](Deferred::add_callback) and
/// [`add_both`](Deferred::add_both) accept from their function: a plain value `U` (the chain goes on with it),
/// or a `Deferred<U>` (the chain waits for it and goes on with its result,
/// as Twisted's `addCallback` does with a returned Deferred).
///
/// The marker `M` ([`Plain`] or [`Chained`]) is inferred; it only keeps the
/// two cases apart. A plain value must be `Unpin`: a `Deferred` is not, and
/// neither is a value that holds one (a tuple, an `Option` or a `Vec` of
/// Deferreds) or an `async` block, so returning one of those is refused at
/// compile time rather than silently nested. Return such a value through
/// [`Deferred::and_then`] with `Ok(..)`, or box it.
#[diagnostic::on_unimplemented(
    message = "a callback passed to `add_callback`/`add_both` returned `{Self}`, which is neither a plain (`Unpin`) value nor a `Deferred`",
    label = "returns `{Self}`",
    note = "a returned `Deferred` is waited for; return a future as a Deferred with `ensure_deferred`, and a value that holds a Deferred through `and_then(|v| Ok(..))` or in a `Box`"
)]
pub trait CallbackOutput<U, M> {
    /// Converts the value into the chain's next step. Not meant to be called
    /// by users; the return type cannot be named outside twined.
    fn into_next(self) -> Next;
}

impl<U: Unpin + 'static> CallbackOutput<U, Plain> for U {
    #[inline]
    fn into_next(self) -> Next {
        Next::Ready(Ok(box_value(self)))
    }
}

impl<U: 'static> CallbackOutput<U, Chained> for Deferred<U> {
    #[inline]
    fn into_next(self) -> Next {
        Next::Wait(self.chain)
    }
}

#[inline]
fn box_value<T: 'static>(value: T) -> Value {
    Value::new(value)
}

/// Recovers the typed value. The handle types guarantee the chain's value has
/// type `T` here; a mismatch is a bug in twined and ends as a `Panicked`
/// failure on the chain (the runner catches it), never as a crash.
#[inline]
fn unbox<T: 'static>(value: Value) -> T {
    match value.take::<T>() {
        Ok(value) => value,
        Err(_) => panic!(
            "twined bug: a chain value is not a {}",
            std::any::type_name::<T>()
        ),
    }
}

#[inline]
pub(crate) fn unbox_result<T: 'static>(result: Res) -> Result<T, Failure> {
    result.map(unbox::<T>)
}

impl<T: 'static> Deferred<T> {
    /// A new, unfired Deferred and the trigger that fires it.
    ///
    /// ```
    /// use twined::defer::Deferred;
    ///
    /// let (d, trigger) = Deferred::new();
    /// let d = d.add_callback(|x: i32| x + 1);
    /// trigger.callback(41);
    /// assert_eq!(d.result(), Some(Ok(42)));
    /// ```
    pub fn new() -> (Deferred<T>, Trigger<T>) {
        let chain = Chain::new(None);
        (
            Deferred::from_chain(chain.clone()),
            Trigger::from_chain(chain),
        )
    }

    /// Like [`new`](Self::new), with a canceller that [`cancel`](Self::cancel)
    /// runs while the Deferred is unfired. The canceller may fire the Deferred
    /// (with a success or any failure); if it does not, the Deferred errbacks
    /// with `CancelledError`. A canceller that panics makes the Deferred fail
    /// with the panic. The canceller is dropped as soon as the Deferred fires.
    ///
    /// ```
    /// use twined::defer::{Deferred, CancelledError};
    ///
    /// let (d, _trigger) = Deferred::<u32>::with_canceller(|c| c.callback(7));
    /// d.cancel();
    /// assert_eq!(d.result(), Some(Ok(7)));
    /// ```
    pub fn with_canceller(
        canceller: impl FnOnce(Canceller<T>) + 'static,
    ) -> (Deferred<T>, Trigger<T>) {
        let canceller: Box<dyn FnOnce(Rc<Chain>)> = Box::new(move |chain| {
            canceller(Canceller {
                chain,
                _type: PhantomData,
            })
        });
        let chain = Chain::new(Some(canceller));
        (
            Deferred::from_chain(chain.clone()),
            Trigger::from_chain(chain),
        )
    }

    pub(crate) fn from_chain(chain: Rc<Chain>) -> Deferred<T> {
        Deferred {
            chain,
            _type: PhantomData,
            _not_unpin: PhantomPinned,
        }
    }

    pub(crate) fn fired(result: Result<T, Failure>) -> Deferred<T> {
        Deferred::from_chain(Chain::fired(result.map(box_value)))
    }

    #[inline]
    fn push<U>(self, step: Step) -> Deferred<U> {
        self.chain.push(step);
        Deferred {
            chain: self.chain,
            _type: PhantomData,
            _not_unpin: PhantomPinned,
        }
    }

    /// Adds a callback (Twisted's `addCallback`): it receives the success
    /// value; a failure passes it by.
    ///
    /// The callback returns a plain value, which the chain goes on with, or a
    /// `Deferred<U>`, which the chain **waits for** and goes on with its
    /// result, as in Twisted (a Deferred never ends up nested in another).
    /// For a callback that may fail, use [`and_then`](Self::and_then).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twined::defer::Deferred;
    /// use twined::{reactor, task};
    ///
    /// // `fetch` stands for anything that returns a Deferred, like get_page.
    /// fn fetch(n: u32) -> Deferred<u32> {
    ///     task::defer_later(Duration::from_millis(1), move || Ok(n * 2))
    /// }
    ///
    /// let d = fetch(1)
    ///     .add_callback(|n| n + 1)                // a plain value: Deferred<u32>
    ///     .add_callback(|n| fetch(n))             // a Deferred: waited for, still Deferred<u32>
    ///     .add_callback(|n| {
    ///         assert_eq!(n, 6);
    ///         reactor::stop().unwrap();
    ///     });
    /// reactor::run().unwrap();
    /// # drop(d);
    /// ```
    ///
    /// A plain value must be `Unpin` (see [`CallbackOutput`]); a value that
    /// holds a Deferred, or a future, is refused rather than nested. Return
    /// it through [`and_then`](Self::and_then) as `Ok(..)`, or box it:
    ///
    /// ```compile_fail
    /// use twined::defer;
    ///
    /// // An async block is not a Deferred: it would not be waited for.
    /// let d = defer::succeed(1).add_callback(|n| async move { n + 1 });
    /// ```
    pub fn add_callback<U: 'static, M, R: CallbackOutput<U, M>>(
        self,
        f: impl FnOnce(T) -> R + 'static,
    ) -> Deferred<U> {
        self.push(Step::Callback(Box::new(move |value| {
            f(unbox::<T>(value)).into_next()
        })))
    }

    /// Adds a callback that may fail (return `Err`, or use `?`) or return a
    /// Deferred for the chain to wait on.
    ///
    /// ```
    /// use twined::defer::{self, Deferred};
    ///
    /// let d = defer::succeed("42")
    ///     .and_then(|s| Ok(s.parse::<u32>()?))        // `?` makes any error a Failure
    ///     .and_then(|n| defer::succeed(n + 1));       // chain on another Deferred
    /// assert_eq!(d.result(), Some(Ok(43)));
    /// ```
    pub fn and_then<U: 'static, R: Outcome<U>>(
        self,
        f: impl FnOnce(T) -> R + 'static,
    ) -> Deferred<U> {
        self.push(Step::Callback(Box::new(move |value| {
            f(unbox::<T>(value)).into_next()
        })))
    }

    /// Adds an errback that handles the failure, producing a success value; a
    /// success passes it by (Twisted's `addErrback` returning a value).
    ///
    /// Unlike [`add_callback`](Self::add_callback), it takes a plain `T` only,
    /// so that a diverging errback (`|f| panic!("{f}")`) still infers. An
    /// errback that returns a Deferred (Twisted's
    /// `test_errbackReturnsDeferred`) or re-raises is
    /// [`or_else`](Self::or_else).
    pub fn add_errback(self, f: impl FnOnce(Failure) -> T + 'static) -> Deferred<T> {
        self.push(Step::Errback(Box::new(move |failure| {
            Next::Ready(Ok(box_value(f(failure))))
        })))
    }

    /// Adds an errback that may recover (`Ok`), re-raise (`Err`, or `?` on
    /// [`Failure::trap`]) or return a Deferred to wait on.
    pub fn or_else<R: Outcome<T>>(self, f: impl FnOnce(Failure) -> R + 'static) -> Deferred<T> {
        self.push(Step::Errback(Box::new(move |failure| {
            f(failure).into_next()
        })))
    }

    /// Adds a function that receives the result either way (Twisted's
    /// `addBoth`). It returns a plain value, or a Deferred that the chain
    /// waits for, as with [`add_callback`](Self::add_callback).
    pub fn add_both<U: 'static, M, R: CallbackOutput<U, M>>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> R + 'static,
    ) -> Deferred<U> {
        self.push(Step::Both(Box::new(move |result| {
            f(unbox_result::<T>(result)).into_next()
        })))
    }

    /// Adds a function that receives the result either way and returns an
    /// [`Outcome`]: a `Result` or a Deferred.
    pub fn then<U: 'static, R: Outcome<U>>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> R + 'static,
    ) -> Deferred<U> {
        self.push(Step::Both(Box::new(move |result| {
            f(unbox_result::<T>(result)).into_next()
        })))
    }

    /// Adds a callback and an errback at the same level of the chain: exactly
    /// one of them runs, and an errback here does not see a failure raised by
    /// the callback beside it (Twisted's `addCallbacks`).
    pub fn add_callbacks<U: 'static>(
        self,
        callback: impl FnOnce(T) -> U + 'static,
        errback: impl FnOnce(Failure) -> U + 'static,
    ) -> Deferred<U> {
        self.push(Step::Both(Box::new(move |result| {
            let value = match result {
                Ok(value) => callback(unbox::<T>(value)),
                Err(failure) => errback(failure),
            };
            Next::Ready(Ok(box_value(value)))
        })))
    }

    /// Fires `trigger`'s Deferred with this Deferred's result when it arrives
    /// (Twisted's `chainDeferred`). Unlike Twisted's, this does not recurse:
    /// a million Deferreds chained this way fire in constant stack.
    ///
    /// ```
    /// use twined::defer::{self, Deferred};
    ///
    /// let (d2, t2) = Deferred::new();
    /// defer::succeed(5).chain_deferred(t2);
    /// assert_eq!(d2.result(), Some(Ok(5)));
    /// ```
    pub fn chain_deferred(self, mut trigger: Trigger<T>) {
        if let Some(target) = trigger.chain.take() {
            target.record_source(&self.chain);
            self.chain.push(Step::Continue(target, Link::Explicit));
        }
    }

    /// Stops the chain from running callbacks until [`unpause`](Self::unpause)
    /// has been called as many times as `pause`.
    pub fn pause(&self) {
        self.chain.pause();
    }

    /// Undoes one [`pause`](Self::pause); at zero, pending callbacks run.
    pub fn unpause(&self) {
        self.chain.unpause();
    }

    /// Cancels the Deferred (Twisted's `cancel`):
    ///
    /// - unfired with a canceller: the canceller runs and may fire the
    ///   Deferred; if it does not, the Deferred errbacks with `CancelledError`;
    /// - unfired without one: the Deferred errbacks with `CancelledError`, and
    ///   the one late result its producer delivers is silently dropped;
    /// - fired and waiting on a Deferred a callback returned: that inner
    ///   Deferred is cancelled instead;
    /// - otherwise (already fired): nothing happens.
    pub fn cancel(&self) {
        chain::cancel(&self.chain);
    }

    /// Whether the Deferred has been fired (Twisted's `called`).
    pub fn called(&self) -> bool {
        self.chain.snapshot().called
    }

    /// How many unmatched [`pause`](Self::pause)s hold the chain (waiting on an
    /// inner Deferred counts as one, as in Twisted).
    pub fn paused(&self) -> u32 {
        self.chain.snapshot().paused
    }

    /// Whether the chain currently holds a result (fired, not moved on, not
    /// waiting on an inner Deferred).
    pub fn has_result(&self) -> bool {
        self.chain.snapshot().has_result
    }

    /// Whether the chain waits on another Deferred (Twisted's `_chainedTo` is
    /// set): one returned by one of its callbacks, or, until it fires, the one
    /// [`chain_deferred`](Self::chain_deferred) will fire it from.
    pub fn is_waiting(&self) -> bool {
        self.chain.snapshot().waiting_on.is_some()
    }

    /// Whether `self` is waiting on `other`'s chain.
    pub fn is_waiting_on<U>(&self, other: &Deferred<U>) -> bool {
        self.chain.snapshot().waiting_on == Some(Rc::as_ptr(&other.chain))
    }

    /// Takes the result if the chain has finished with one, else `None`
    /// (the handle is consumed either way; see [`try_result`](Self::try_result)
    /// to keep it).
    pub fn result(self) -> Option<Result<T, Failure>> {
        self.try_result().ok()
    }

    /// Takes the result if the chain has finished with one, or gives the
    /// handle back if it has not.
    pub fn try_result(self) -> Result<Result<T, Failure>, Deferred<T>> {
        match self.chain.take_final() {
            Some(result) => Ok(unbox_result::<T>(result)),
            None => Err(self),
        }
    }
}

impl<T: fmt::Debug + 'static> fmt::Debug for Deferred<T> {
    /// Twisted's repr: `<Deferred at 0x…>`, `<Deferred at 0x… current result:
    /// …>` or `<Deferred at 0x… waiting on Deferred at 0x…>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Deferred at {:p}", Rc::as_ptr(&self.chain))?;
        let snapshot = self.chain.snapshot();
        if let Some(inner) = snapshot.waiting_on {
            write!(f, " waiting on Deferred at {inner:p}")?;
        } else {
            self.chain.peek_final(|result| match result {
                Some(Ok(value)) => match value.downcast_ref::<T>() {
                    Some(value) => write!(f, " current result: {value:?}"),
                    None => Ok(()),
                },
                Some(Err(failure)) => write!(f, " current result: {failure:?}"),
                None => Ok(()),
            })?;
        }
        f.write_str(">")
    }
}

impl<T: 'static> Trigger<T> {
    fn from_chain(chain: Rc<Chain>) -> Trigger<T> {
        Trigger {
            chain: Some(chain),
            _type: PhantomData,
        }
    }

    /// Fires the Deferred with a success value (Twisted's `d.callback(v)`).
    ///
    /// If the Deferred was cancelled meanwhile, the value is dropped: silently
    /// when it had no canceller (Twisted swallows one late result), with a
    /// warning in the log when its canceller failed to stop the work.
    pub fn callback(self, value: T) {
        self.fire(Ok(box_value(value)));
    }

    /// Fires the Deferred with a failure (Twisted's `d.errback(e)`); takes a
    /// `Failure` or any error.
    pub fn errback(self, failure: impl Into<Failure>) {
        self.fire(Err(failure.into()));
    }

    /// Fires the Deferred with a `Result`: `Ok` goes to the callbacks, `Err` to
    /// the errbacks.
    pub fn fire_with(self, result: Result<T, Failure>) {
        self.fire(result.map(box_value));
    }

    /// Like [`callback`](Self::callback), but gives the value back if the
    /// Deferred has already fired (it was cancelled by a canceller that did not
    /// stop the work: Twisted's `AlreadyCalledError`).
    pub fn try_callback(mut self, value: T) -> Result<(), AlreadyCalled<T>> {
        let Some(chain) = self.chain.take() else {
            return Ok(());
        };
        chain::fire(&chain, Ok(box_value(value))).map_err(|rejected| AlreadyCalled {
            rejected: match rejected {
                Ok(value) => unbox::<T>(value),
                Err(_) => unreachable!("fire gives back the result it was given"),
            },
        })
    }

    /// Whether the Deferred has already fired, which before this trigger fires
    /// means it was cancelled.
    pub fn is_called(&self) -> bool {
        self.chain.as_ref().is_some_and(|c| c.is_called())
    }

    /// Whether [`Deferred::cancel`] reached this Deferred while it was unfired.
    /// A producer can check it to stop work nobody waits for.
    pub fn is_cancelled(&self) -> bool {
        self.chain.as_ref().is_some_and(|c| c.is_cancelled())
    }

    fn fire(mut self, result: Res) {
        if let Some(chain) = self.chain.take() {
            if let Err(late) = chain::fire(&chain, result) {
                chain::report_late(late);
            }
        }
    }
}

impl<T> Drop for Trigger<T> {
    fn drop(&mut self) {
        if let Some(chain) = self.chain.take() {
            if !chain.is_called() {
                let _ = chain::fire(&chain, Err(Failure::new(TriggerDropped)));
            }
        }
    }
}

impl<T> fmt::Debug for Trigger<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chain {
            Some(chain) => write!(f, "Trigger(Deferred at {:p})", Rc::as_ptr(chain)),
            None => f.write_str("Trigger(fired)"),
        }
    }
}

impl<T: 'static> Canceller<T> {
    /// Fires the Deferred being cancelled with a success value.
    pub fn callback(self, value: T) {
        if let Err(late) = chain::fire(&self.chain, Ok(box_value(value))) {
            chain::report_late(late);
        }
    }

    /// Fires the Deferred being cancelled with a failure.
    pub fn errback(self, failure: impl Into<Failure>) {
        if let Err(late) = chain::fire(&self.chain, Err(failure.into())) {
            chain::report_late(late);
        }
    }
}

impl<T> fmt::Debug for Canceller<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Canceller(Deferred at {:p})", Rc::as_ptr(&self.chain))
    }
}
