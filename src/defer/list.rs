//! Combinators over many Deferreds: `DeferredList`, `gather_results` and `race`.
//!
//! All of them are one mechanism, [`gather`]: each input gets one step that
//! reports its result to a shared collector, and a policy decides when the
//! output fires and with what. The output's canceller cancels the inputs that
//! were passed in (and only those).
//!
//! The combinators own their inputs (they are moved in), so no one else can
//! add an errback to them afterwards: a failure of an input is delivered to the
//! combinator and counts as handled. [`ListOptions::consume_errors`]`(false)`
//! brings back Twisted's default, where each such failure is also reported as
//! an unhandled error.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::chain::{self, Chain};
use super::{Deferred, Failure, FailureGroup, FirstError, Trigger};

/// Twisted's `DeferredList`: waits for a list of Deferreds and fires with all
/// their results, in input order.
///
/// This is a namespace for the constructors; each returns a [`Deferred`], so a
/// port of `DeferredList(ds).addBoth(all_done)` reads
/// `DeferredList::new(ds).add_both(all_done)`.
///
/// ```
/// use twined::defer::{self, DeferredList, Failure};
///
/// let ds = vec![defer::succeed(1), defer::fail(Failure::msg("boom")), defer::succeed(3)];
/// let results = DeferredList::new(ds).result().unwrap().unwrap();
/// assert_eq!(results[0].as_ref().ok(), Some(&1));
/// assert_eq!(results[1].as_ref().unwrap_err().to_string(), "boom");
/// ```
#[derive(Debug)]
pub enum DeferredList {}

/// Options for [`DeferredList::with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    fire_on_one_errback: bool,
    consume_errors: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            fire_on_one_errback: false,
            consume_errors: true,
        }
    }
}

impl ListOptions {
    /// The defaults: wait for every input; consume their errors.
    pub fn new() -> ListOptions {
        ListOptions::default()
    }

    /// Errback with [`FirstError`] as soon as one input fails (Twisted's
    /// `fireOnOneErrback`).
    pub fn fire_on_one_errback(mut self, yes: bool) -> ListOptions {
        self.fire_on_one_errback = yes;
        self
    }

    /// Whether an input's failure counts as handled once the list has it
    /// (default `true`). With `false`, each input failure is also logged as
    /// "Unhandled error in Deferred", which is what Twisted does by default
    /// (`consumeErrors=False`) when nothing else handles the input.
    pub fn consume_errors(mut self, yes: bool) -> ListOptions {
        self.consume_errors = yes;
        self
    }
}

impl DeferredList {
    /// Fires with every input's result, in input order, once all have fired;
    /// an empty list fires at once with an empty `Vec`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: 'static>(
        deferreds: impl IntoIterator<Item = Deferred<T>>,
    ) -> Deferred<Vec<Result<T, Failure>>> {
        DeferredList::with_options(deferreds, ListOptions::default())
    }

    /// [`new`](Self::new) with options: fire on the first failure, and whether
    /// to consume the inputs' errors.
    pub fn with_options<T: 'static>(
        deferreds: impl IntoIterator<Item = Deferred<T>>,
        options: ListOptions,
    ) -> Deferred<Vec<Result<T, Failure>>> {
        gather(
            deferreds,
            AllResults::<T> {
                results: Vec::new(),
                options,
            },
        )
    }

    /// Fires with `(index, value)` of the first input to succeed (Twisted's
    /// `fireOnOneCallback`); the others are left running. If every input
    /// fails, errbacks with a [`FailureGroup`]. Unlike Twisted, an empty list
    /// errbacks at once (an empty `FailureGroup`) instead of never firing.
    pub fn first_success<T: 'static>(
        deferreds: impl IntoIterator<Item = Deferred<T>>,
    ) -> Deferred<(usize, T)> {
        gather(
            deferreds,
            FirstSuccess {
                failures: Vec::new(),
                cancel_losers: false,
            },
        )
    }
}

/// Fires with all the values, in input order, or errbacks with [`FirstError`]
/// on the first failure (Twisted's `gatherResults`). The inputs' failures are
/// consumed. Cancelling the result cancels the inputs.
///
/// ```
/// use twined::defer::{self, FirstError, Failure};
///
/// let all = defer::gather_results(vec![defer::succeed(1), defer::succeed(2)]);
/// assert_eq!(all.result(), Some(Ok(vec![1, 2])));
///
/// let err = defer::gather_results(vec![defer::succeed(1), defer::fail(Failure::msg("no"))])
///     .result().unwrap().unwrap_err();
/// assert_eq!(err.downcast_ref::<FirstError>().map(|e| e.index), Some(1));
/// ```
pub fn gather_results<T: 'static>(
    deferreds: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    gather(deferreds, AllValues { values: Vec::new() })
}

/// Fires with `(index, value)` of the first input to succeed and cancels every
/// other input (Twisted's `race`). If all fail, errbacks with a
/// [`FailureGroup`]. A loser that fires after being cancelled goes nowhere.
///
/// ```
/// use twined::defer::{self, Deferred};
///
/// let (slow, _t) = Deferred::<&str>::new();
/// let winner = defer::race(vec![slow, defer::succeed("fast")]);
/// assert_eq!(winner.result(), Some(Ok((1, "fast"))));
/// ```
pub fn race<T: 'static>(deferreds: impl IntoIterator<Item = Deferred<T>>) -> Deferred<(usize, T)> {
    gather(
        deferreds,
        FirstSuccess {
            failures: Vec::new(),
            cancel_losers: true,
        },
    )
}

/// Decides what a gathering Deferred fires with.
trait Policy<T>: 'static {
    type Output: 'static;
    /// Called once, with the number of inputs.
    fn start(&mut self, len: usize);
    /// One input's result; `Some` fires the output now.
    fn arrive(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
    ) -> Option<Result<Self::Output, Failure>>;
    /// Every input has arrived and none fired the output.
    fn finish(&mut self) -> Result<Self::Output, Failure>;
    /// A result that arrived after the output fired.
    fn late(&mut self, _result: Result<T, Failure>) {}
    /// Cancel the inputs still running once the output fires.
    fn cancel_rest(&self) -> bool {
        false
    }
}

struct Gather<P: Policy<T>, T> {
    policy: P,
    remaining: usize,
    output: Option<Trigger<P::Output>>,
    inputs: Rc<[Weak<Chain>]>,
}

fn gather<T: 'static, P: Policy<T>>(
    deferreds: impl IntoIterator<Item = Deferred<T>>,
    mut policy: P,
) -> Deferred<P::Output> {
    let deferreds: Vec<Deferred<T>> = deferreds.into_iter().collect();
    let inputs: Rc<[Weak<Chain>]> = deferreds.iter().map(|d| Rc::downgrade(&d.chain)).collect();
    let to_cancel = inputs.clone();
    let (output, trigger) = Deferred::with_canceller(move |_| cancel_all(&to_cancel));
    policy.start(deferreds.len());
    if deferreds.is_empty() {
        trigger.fire_with(policy.finish());
        return output;
    }
    let shared = Rc::new(RefCell::new(Gather {
        policy,
        remaining: deferreds.len(),
        output: Some(trigger),
        inputs,
    }));
    for (index, d) in deferreds.into_iter().enumerate() {
        let shared = shared.clone();
        // The step returns (), so nothing is left on the input's chain.
        d.add_both(move |result| arrive(&shared, index, result));
    }
    output
}

fn arrive<T: 'static, P: Policy<T>>(
    shared: &Rc<RefCell<Gather<P, T>>>,
    index: usize,
    result: Result<T, Failure>,
) {
    // Decide under the borrow; fire and cancel after releasing it, because
    // both run user code that may reach this collector again.
    let (trigger, outcome, cancel) = {
        let mut g = shared.borrow_mut();
        if g.output.is_none() {
            g.policy.late(result);
            return;
        }
        g.remaining -= 1;
        let outcome = match g.policy.arrive(index, result) {
            Some(outcome) => outcome,
            None if g.remaining == 0 => g.policy.finish(),
            None => return,
        };
        let cancel = (g.remaining > 0 && g.policy.cancel_rest()).then(|| g.inputs.clone());
        (g.output.take(), outcome, cancel)
    };
    // The losers are cancelled before the winner's result reaches the
    // output's callbacks (Twisted's `race`), so those callbacks never see a
    // loser still running. Their results arrive here as late ones: the
    // output trigger was taken above.
    if let Some(inputs) = cancel {
        cancel_all(&inputs);
    }
    if let Some(trigger) = trigger {
        trigger.fire_with(outcome);
    }
}

fn cancel_all(inputs: &[Weak<Chain>]) {
    for input in inputs {
        if let Some(chain) = input.upgrade() {
            chain::cancel(&chain);
        }
    }
}

struct AllResults<T> {
    results: Vec<Option<Result<T, Failure>>>,
    options: ListOptions,
}

impl<T: 'static> Policy<T> for AllResults<T> {
    type Output = Vec<Result<T, Failure>>;

    fn start(&mut self, len: usize) {
        self.results.resize_with(len, || None);
    }

    fn arrive(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
    ) -> Option<Result<Self::Output, Failure>> {
        if let Err(failure) = &result {
            if !self.options.consume_errors {
                chain::report_failure(failure);
            }
            if self.options.fire_on_one_errback {
                return Some(Err(Failure::new(FirstError {
                    index,
                    failure: failure.clone(),
                })));
            }
        }
        self.results[index] = Some(result);
        None
    }

    fn finish(&mut self) -> Result<Self::Output, Failure> {
        Ok(std::mem::take(&mut self.results)
            .into_iter()
            .flatten()
            .collect())
    }

    fn late(&mut self, result: Result<T, Failure>) {
        if let Err(failure) = result {
            if !self.options.consume_errors {
                chain::report_failure(&failure);
            }
        }
    }
}

struct AllValues<T> {
    values: Vec<Option<T>>,
}

impl<T: 'static> Policy<T> for AllValues<T> {
    type Output = Vec<T>;

    fn start(&mut self, len: usize) {
        self.values.resize_with(len, || None);
    }

    fn arrive(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
    ) -> Option<Result<Self::Output, Failure>> {
        match result {
            Ok(value) => {
                self.values[index] = Some(value);
                None
            }
            Err(failure) => Some(Err(Failure::new(FirstError { index, failure }))),
        }
    }

    fn finish(&mut self) -> Result<Self::Output, Failure> {
        Ok(std::mem::take(&mut self.values)
            .into_iter()
            .flatten()
            .collect())
    }
}

struct FirstSuccess {
    failures: Vec<Option<Failure>>,
    cancel_losers: bool,
}

impl<T: 'static> Policy<T> for FirstSuccess {
    type Output = (usize, T);

    fn start(&mut self, len: usize) {
        self.failures.resize_with(len, || None);
    }

    fn arrive(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
    ) -> Option<Result<Self::Output, Failure>> {
        match result {
            Ok(value) => Some(Ok((index, value))),
            Err(failure) => {
                self.failures[index] = Some(failure);
                None
            }
        }
    }

    fn finish(&mut self) -> Result<Self::Output, Failure> {
        let failures = std::mem::take(&mut self.failures)
            .into_iter()
            .flatten()
            .collect();
        Err(Failure::new(FailureGroup { failures }))
    }

    fn cancel_rest(&self) -> bool {
        self.cancel_losers
    }
}
