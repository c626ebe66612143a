//! Random sequences of operations on one Deferred, checked against a small
//! reference model of Twisted's semantics.
//!
//! The operations: add a callback (that succeeds, or fails), an errback (that
//! recovers, or re-raises), a both-callback, a callback that returns a new
//! inner Deferred; pause, unpause; fire the Deferred (success or failure);
//! fire an inner Deferred; cancel. At the end every pause is undone and every
//! trigger still unfired is dropped (twined errbacks those with
//! `TriggerDropped`). The model is a plain list of steps run by a loop; the
//! test compares, after every operation, `called`/`paused`/`has_result`/
//! `is_waiting`, and at the end the order and arguments of every call and the
//! final result.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::rc::Rc;

use proptest::prelude::*;
use twined::defer::{CancelledError, Deferred, Failure, Trigger, TriggerDropped};

// ---------------------------------------------------------------------------
// Shared vocabulary
// ---------------------------------------------------------------------------

/// The error a failing step raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Code(u8);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {}", self.0)
    }
}

impl Error for Code {}

/// A failure as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Err {
    Code(u8),
    Cancelled,
    Dropped,
}

fn classify(failure: &Failure) -> Err {
    if let Some(Code(c)) = failure.downcast_ref::<Code>() {
        Err::Code(*c)
    } else if failure.check::<CancelledError>() {
        Err::Cancelled
    } else if failure.check::<TriggerDropped>() {
        Err::Dropped
    } else {
        panic!("unexpected failure: {failure:?}")
    }
}

type Res = Result<i64, Err>;

/// One call of a step, as recorded by the real callbacks and by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Callback { step: usize, value: i64 },
    Errback { step: usize, error: Err },
    Both { step: usize, result: Res },
    Inner { inner: usize, value: i64 },
}

#[derive(Debug, Clone)]
enum Op {
    /// `v -> v + k`
    AddCallback(i64),
    /// `v -> Err(Code(c))`
    AddFailingCallback(u8),
    /// `f -> k`
    AddErrback(i64),
    /// `f -> Err(f)`
    AddReraise,
    /// `r -> v + k | k`
    AddBoth(i64),
    /// `v -> inner.add_callback(x -> x + v)`, with a fresh inner Deferred.
    AddReturnDeferred,
    Pause,
    /// Only applied while an earlier `Pause` is outstanding.
    Unpause,
    Fire(Res),
    /// Fires inner Deferred number `which % inners` (if any, if unfired).
    FireInner(usize, Res),
    Cancel,
}

fn res_strategy() -> impl Strategy<Value = Res> {
    prop_oneof![
        3 => (-50i64..50).prop_map(Ok),
        1 => (0u8..4).prop_map(|c| Err(Err::Code(c))),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-10i64..10).prop_map(Op::AddCallback),
        1 => (0u8..4).prop_map(Op::AddFailingCallback),
        2 => (-10i64..10).prop_map(Op::AddErrback),
        1 => Just(Op::AddReraise),
        1 => (-10i64..10).prop_map(Op::AddBoth),
        2 => Just(Op::AddReturnDeferred),
        2 => Just(Op::Pause),
        2 => Just(Op::Unpause),
        2 => res_strategy().prop_map(Op::Fire),
        3 => (any::<usize>(), res_strategy()).prop_map(|(w, r)| Op::FireInner(w, r)),
        1 => Just(Op::Cancel),
    ]
}

/// What `called`, `paused`, `has_result`, `is_waiting` report.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    called: bool,
    paused: u32,
    has_result: bool,
    waiting: bool,
}

// ---------------------------------------------------------------------------
// The real Deferred
// ---------------------------------------------------------------------------

struct Real {
    d: Option<Deferred<i64>>,
    trigger: Option<Trigger<i64>>,
    inners: Vec<Option<Trigger<i64>>>,
    log: Rc<RefCell<Vec<Event>>>,
}

fn to_failure(error: Err) -> Failure {
    match error {
        Err::Code(c) => Failure::new(Code(c)),
        Err::Cancelled => Failure::new(CancelledError),
        Err::Dropped => Failure::new(TriggerDropped),
    }
}

impl Real {
    fn new() -> Real {
        let (d, trigger) = Deferred::new();
        Real {
            d: Some(d),
            trigger: Some(trigger),
            inners: Vec::new(),
            log: Rc::new(RefCell::new(Vec::new())),
        }
    }

    fn d(&self) -> &Deferred<i64> {
        self.d.as_ref().unwrap()
    }

    fn map(&mut self, f: impl FnOnce(Deferred<i64>) -> Deferred<i64>) {
        let d = self.d.take().unwrap();
        self.d = Some(f(d));
    }

    fn apply(&mut self, step: usize, op: &Op, unpause: bool) {
        let log = self.log.clone();
        match *op {
            Op::AddCallback(k) => self.map(|d| {
                d.add_callback(move |value| {
                    log.borrow_mut().push(Event::Callback { step, value });
                    value.wrapping_add(k)
                })
            }),
            Op::AddFailingCallback(c) => self.map(|d| {
                d.and_then(move |value| {
                    log.borrow_mut().push(Event::Callback { step, value });
                    Err(Failure::new(Code(c)))
                })
            }),
            Op::AddErrback(k) => self.map(|d| {
                d.add_errback(move |f| {
                    let error = classify(&f);
                    log.borrow_mut().push(Event::Errback { step, error });
                    k
                })
            }),
            Op::AddReraise => self.map(|d| {
                d.or_else(move |f| {
                    let error = classify(&f);
                    log.borrow_mut().push(Event::Errback { step, error });
                    Err(f)
                })
            }),
            Op::AddBoth(k) => self.map(|d| {
                d.add_both(move |r| {
                    let result = r.as_ref().copied().map_err(classify);
                    log.borrow_mut().push(Event::Both { step, result });
                    match r {
                        Ok(v) => v.wrapping_add(k),
                        Err(_) => k,
                    }
                })
            }),
            Op::AddReturnDeferred => {
                let inner_id = self.inners.len();
                let (inner, trigger) = Deferred::<i64>::new();
                self.inners.push(Some(trigger));
                self.map(|d| {
                    d.and_then(move |value| {
                        log.borrow_mut().push(Event::Callback { step, value });
                        let log = log.clone();
                        inner.add_callback(move |x| {
                            log.borrow_mut().push(Event::Inner {
                                inner: inner_id,
                                value: x,
                            });
                            x.wrapping_add(value)
                        })
                    })
                })
            }
            Op::Pause => self.d().pause(),
            Op::Unpause => {
                if unpause {
                    self.d().unpause()
                }
            }
            Op::Fire(r) => {
                if let Some(t) = self.trigger.take() {
                    t.fire_with(r.map_err(to_failure));
                }
            }
            Op::FireInner(which, r) => {
                if !self.inners.is_empty() {
                    let n = which % self.inners.len();
                    if let Some(t) = self.inners[n].take() {
                        t.fire_with(r.map_err(to_failure));
                    }
                }
            }
            Op::Cancel => self.d().cancel(),
        }
    }

    fn observe(&self) -> Observed {
        let d = self.d();
        Observed {
            called: d.called(),
            paused: d.paused(),
            has_result: d.has_result(),
            waiting: d.is_waiting(),
        }
    }

    /// Drops every unfired trigger, main first, then the inners in order.
    fn drop_triggers(&mut self) {
        drop(self.trigger.take());
        for t in &mut self.inners {
            drop(t.take());
        }
    }

    fn finish(mut self) -> (Vec<Event>, Option<Res>) {
        let d = self.d.take().unwrap();
        let result = d.try_result().ok().map(|r| r.map_err(|f| classify(&f)));
        let log = self.log.borrow().clone();
        (log, result)
    }
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    Callback(usize, i64),
    FailingCallback(usize, u8),
    Errback(usize, i64),
    Reraise(usize),
    Both(usize, i64),
    ReturnDeferred(usize, usize),
}

#[derive(Debug, Default)]
struct Inner {
    /// The trigger has been used (fired, or dropped at the end).
    trigger_used: bool,
    /// The inner has fired (by its trigger or by a cancel).
    fired: bool,
    /// Its result, while it has one of its own.
    result: Option<Res>,
    /// Set when the outer waits on it: the value its callback adds.
    waited_with: Option<i64>,
}

#[derive(Debug, Default)]
struct Model {
    steps: VecDeque<Step>,
    result: Option<Res>,
    called: bool,
    user_paused: u32,
    waiting: Option<usize>,
    trigger_used: bool,
    /// One late result of the main trigger is swallowed (cancel, no canceller).
    suppress: bool,
    inners: Vec<Inner>,
    log: Vec<Event>,
}

impl Model {
    fn push(&mut self, step: Step) {
        self.steps.push_back(step);
        self.run();
    }

    fn run(&mut self) {
        while self.called && self.user_paused == 0 && self.waiting.is_none() {
            let Some(step) = self.steps.pop_front() else {
                break;
            };
            let result = self
                .result
                .take()
                .expect("a fired, idle chain has a result");
            let next = match (step, result) {
                (Step::Callback(step, k), Ok(value)) => {
                    self.log.push(Event::Callback { step, value });
                    Ok(value.wrapping_add(k))
                }
                (Step::FailingCallback(step, c), Ok(value)) => {
                    self.log.push(Event::Callback { step, value });
                    Err(Err::Code(c))
                }
                (Step::Errback(step, k), Err(error)) => {
                    self.log.push(Event::Errback { step, error });
                    Ok(k)
                }
                (Step::Reraise(step), Err(error)) => {
                    self.log.push(Event::Errback { step, error });
                    Err(error)
                }
                (Step::Both(step, k), result) => {
                    self.log.push(Event::Both { step, result });
                    Ok(match result {
                        Ok(v) => v.wrapping_add(k),
                        Err(_) => k,
                    })
                }
                (Step::ReturnDeferred(step, inner), Ok(value)) => {
                    self.log.push(Event::Callback { step, value });
                    match self.inners[inner].result.take() {
                        // Fired already: its callback runs at once and the
                        // outer takes the result.
                        Some(Ok(x)) => {
                            self.log.push(Event::Inner { inner, value: x });
                            Ok(x.wrapping_add(value))
                        }
                        Some(Err(e)) => Err(e),
                        None => {
                            self.inners[inner].waited_with = Some(value);
                            self.waiting = Some(inner);
                            continue; // no result until the inner delivers
                        }
                    }
                }
                (_, result) => result,
            };
            self.result = Some(next);
        }
    }

    /// Inner `inner` fires with `result`.
    fn fire_inner(&mut self, inner: usize, result: Res) {
        let state = &mut self.inners[inner];
        state.fired = true;
        match state.waited_with.take() {
            Some(value) => {
                assert_eq!(self.waiting, Some(inner));
                self.waiting = None;
                self.result = Some(match result {
                    Ok(x) => {
                        self.log.push(Event::Inner { inner, value: x });
                        Ok(x.wrapping_add(value))
                    }
                    Err(e) => Err(e),
                });
                self.run();
            }
            None => state.result = Some(result),
        }
    }

    fn fire(&mut self, result: Res) {
        if self.called {
            // Only possible after a cancel: the one late result is swallowed.
            assert!(std::mem::take(&mut self.suppress));
            return;
        }
        self.called = true;
        self.result = Some(result);
        self.run();
    }

    fn apply(&mut self, step: usize, op: &Op) {
        match *op {
            Op::AddCallback(k) => self.push(Step::Callback(step, k)),
            Op::AddFailingCallback(c) => self.push(Step::FailingCallback(step, c)),
            Op::AddErrback(k) => self.push(Step::Errback(step, k)),
            Op::AddReraise => self.push(Step::Reraise(step)),
            Op::AddBoth(k) => self.push(Step::Both(step, k)),
            Op::AddReturnDeferred => {
                self.inners.push(Inner::default());
                self.push(Step::ReturnDeferred(step, self.inners.len() - 1));
            }
            Op::Pause => self.user_paused += 1,
            Op::Unpause => {
                if self.user_paused > 0 {
                    self.user_paused -= 1;
                    self.run();
                }
            }
            Op::Fire(r) => {
                if !std::mem::replace(&mut self.trigger_used, true) {
                    self.fire(r);
                }
            }
            Op::FireInner(which, r) => {
                if !self.inners.is_empty() {
                    let n = which % self.inners.len();
                    if !std::mem::replace(&mut self.inners[n].trigger_used, true)
                        && !self.inners[n].fired
                    {
                        self.fire_inner(n, r);
                    }
                    // A fired (cancelled) inner swallows its late result.
                }
            }
            Op::Cancel => {
                if !self.called {
                    self.suppress = true;
                    self.called = true;
                    self.result = Some(Err(Err::Cancelled));
                    self.run();
                } else if let Some(inner) = self.waiting {
                    // Forwarded to the unfired inner Deferred being waited on.
                    self.fire_inner(inner, Err(Err::Cancelled));
                }
            }
        }
    }

    fn observe(&self) -> Observed {
        Observed {
            called: self.called,
            paused: self.user_paused + u32::from(self.waiting.is_some()),
            has_result: self.result.is_some(),
            waiting: self.waiting.is_some(),
        }
    }

    fn drop_triggers(&mut self) {
        if !std::mem::replace(&mut self.trigger_used, true) && !self.called {
            self.fire(Err(Err::Dropped));
        }
        for n in 0..self.inners.len() {
            if !std::mem::replace(&mut self.inners[n].trigger_used, true) && !self.inners[n].fired {
                self.fire_inner(n, Err(Err::Dropped));
            }
        }
    }

    fn finish(self) -> (Vec<Event>, Option<Res>) {
        let finished =
            self.called && self.user_paused == 0 && self.waiting.is_none() && self.steps.is_empty();
        (self.log, if finished { self.result } else { None })
    }
}

// ---------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut real = Real::new();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        // Decide on the model's pause count whether this unpause is balanced.
        let unpause = matches!(op, Op::Unpause) && model.user_paused > 0;
        real.apply(step, op, unpause);
        model.apply(step, op);
        prop_assert_eq!(
            real.observe(),
            model.observe(),
            "after op #{} {:?}",
            step,
            op
        );
        prop_assert_eq!(
            &*real.log.borrow(),
            &model.log,
            "after op #{} {:?}",
            step,
            op
        );
    }
    while model.user_paused > 0 {
        model.user_paused -= 1;
        real.d().unpause();
        model.run();
    }
    real.drop_triggers();
    model.drop_triggers();
    prop_assert_eq!(
        real.observe(),
        model.observe(),
        "after dropping the triggers"
    );
    let (real_log, real_result) = real.finish();
    let (model_log, model_result) = model.finish();
    prop_assert_eq!(real_log, model_log);
    prop_assert!(model_result.is_some(), "everything has fired by now");
    prop_assert_eq!(real_result, model_result);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deferred_matches_the_reference_model(ops in prop::collection::vec(op_strategy(), 0..40)) {
        check(&ops)?;
    }
}

/// A few fixed sequences, so the interesting interleavings are always run.
#[test]
fn fixed_sequences_match_the_model() {
    use Op::*;
    let cases: Vec<Vec<Op>> = vec![
        vec![AddCallback(1), Fire(Ok(1)), AddCallback(2)],
        vec![
            Pause,
            Fire(Err(Err::Code(1))),
            AddErrback(5),
            AddCallback(1),
            Unpause,
        ],
        vec![
            AddReturnDeferred,
            AddCallback(1),
            Fire(Ok(10)),
            Pause,
            FireInner(0, Ok(5)),
            Unpause,
        ],
        vec![
            AddReturnDeferred,
            Fire(Ok(1)),
            Cancel,
            AddErrback(3),
            FireInner(0, Ok(9)),
        ],
        vec![
            AddReturnDeferred,
            FireInner(0, Err(Err::Code(2))),
            Fire(Ok(1)),
            AddReraise,
        ],
        vec![Cancel, Fire(Ok(1)), AddBoth(4)],
        vec![
            AddReturnDeferred,
            AddReturnDeferred,
            Fire(Ok(0)),
            FireInner(1, Ok(7)),
        ],
        vec![
            AddFailingCallback(3),
            AddBoth(1),
            Fire(Ok(0)),
            Pause,
            AddReturnDeferred,
        ],
    ];
    for ops in cases {
        check(&ops).unwrap_or_else(|e| panic!("{ops:?}: {e}"));
    }
}
