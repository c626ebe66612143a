//! `crawl --redis URL --queue NAME --enqueue`: loads the URL list into the
//! stream (field `url`), streaming the input and pipelining the `XADD`s (at
//! most [`WINDOW`] in flight), after creating the consumer group.

use std::cell::Cell;
use std::rc::Rc;

use twined::defer::{Deferred, Failure, Trigger};
use twined::redis::Client;

use crate::input::{Entry, Feed};

/// Most `XADD`s awaiting their reply.
const WINDOW: usize = 1024;

/// What was loaded.
#[derive(Default)]
pub struct Loaded {
    pub added: u64,
    /// Lines that are not URLs (not UTF-8, too long): not queued.
    pub skipped: u64,
}

struct Load {
    client: Client,
    queue: String,
    feed: Rc<Feed>,
    added: Cell<u64>,
    skipped: Cell<u64>,
    error: std::cell::RefCell<Option<Failure>>,
}

/// Loads every entry of `feed` into `queue` (creating `group` from the
/// stream's start if it does not exist).
pub fn enqueue(client: Client, queue: String, group: &str, feed: Rc<Feed>) -> Deferred<Loaded> {
    let load = Rc::new(Load {
        client,
        queue,
        feed,
        added: Cell::new(0),
        skipped: Cell::new(0),
        error: Default::default(),
    });
    let group = load.client.xgroup_create(&load.queue, group, "0");
    group.and_then(move |_| {
        let lanes: Vec<Deferred<()>> = (0..WINDOW)
            .map(|_| {
                let (d, t) = Deferred::new();
                lane(load.clone(), t);
                d
            })
            .collect();
        twined::defer::DeferredList::new(lanes).then(move |_| {
            if let Some(failure) = load.error.borrow_mut().take() {
                return Err(failure);
            }
            Ok(Loaded {
                added: load.added.get(),
                skipped: load.skipped.get(),
            })
        })
    })
}

/// One of the [`WINDOW`] lanes: takes a line, adds it, takes the next.
fn lane(load: Rc<Load>, done: Trigger<()>) {
    if load.error.borrow().is_some() {
        return done.callback(());
    }
    let next = load.feed.next();
    next.add_callback(move |entry| match entry {
        None => done.callback(()),
        Some(Entry::Invalid { shown, reason }) => {
            eprintln!("crawl: not queued: {shown}: {reason}");
            load.skipped.set(load.skipped.get() + 1);
            twined::reactor::call_later(std::time::Duration::ZERO, move || lane(load, done));
        }
        Some(Entry::Url(url)) => {
            let added = load.client.xadd(&load.queue, [("url", url)]);
            added.add_both(move |result| {
                match result {
                    Ok(_) => load.added.set(load.added.get() + 1),
                    Err(failure) => {
                        load.error.borrow_mut().get_or_insert(failure);
                    }
                }
                lane(load, done);
            });
        }
    });
}
