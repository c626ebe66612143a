//! A cache of host-name lookups with a time to live, so that a program
//! connecting many times to one host looks its name up once, not once per
//! connection, whichever of its reactor threads connects.
//!
//! The system resolver (`getaddrinfo`, through
//! [`threads::resolve`](crate::threads::resolve)) reports no TTL, so the
//! time an answer is kept is a policy of the cache, not the DNS record's:
//! [`DnsCacheOptions::ttl`]. A failed lookup is kept only briefly
//! ([`DnsCacheOptions::negative_ttl`], 5 s by default), so a name that did not
//! resolve is asked again soon, yet a burst of connections to a dead name
//! costs one lookup, not one each. The cache holds at most
//! [`DnsCacheOptions::max_entries`] names (4096 by default), lookups under
//! way included; past that, the expired answers go first, then the one
//! closest to expiring, and when every name held is a lookup under way a
//! new name is looked up without being cached. Lookups of one name that
//! overlap are coalesced: the first asks the system, the others wait for
//! its answer. IP literals never reach the cache.
//!
//! # Threads
//!
//! A cache is `Send + Sync`, and clones share it: build one and hand a
//! clone to every reactor thread (a crawler's workers), and each host is
//! looked up once for all of them. The map of names sits under one mutex,
//! held only to look up or update an entry, never while a lookup or a
//! callback runs. A lookup runs on the [thread pool](crate::threads); its
//! answer is stored, then handed to every asker on the asker's own reactor
//! thread, through that thread's
//! [`call_from_thread`](crate::reactor::Handle::call_from_thread) queue (the
//! way [`defer_to_thread`](crate::threads::defer_to_thread) results come
//! home). So a Deferred of the cache always fires on the thread that asked,
//! once its reactor runs; a cached answer has fired already. An asker whose
//! thread exits before the answer comes is dropped: its Deferred fails with
//! [`TriggerDropped`](crate::defer::TriggerDropped) as the thread goes, and
//! the others still get the answer.
//!
//! Hand a cache to every connect through
//! [`ConnectOptions::dns`](crate::reactor::ConnectOptions::dns); the web
//! client's [`Agent`](crate::web::client::Agent) makes one from its
//! `dns_ttl` option, or shares the one given in its `dns_cache` option.
//!
//! ```
//! use std::time::Duration;
//! use twined::reactor::{self, DnsCache};
//!
//! let cache = DnsCache::new(Duration::from_secs(60));
//! let again = cache.clone();
//! let d = cache
//!     .resolve("localhost", 80)
//!     .add_callback(move |first| {
//!         // The second lookup is answered from the cache, already fired.
//!         let second = again.resolve("localhost", 8080).result().unwrap().unwrap();
//!         assert!(second.iter().all(|a| a.port() == 8080));
//!         assert_eq!(first.len(), second.len());
//!         assert_eq!(again.lookups(), 1);
//!         reactor::stop().unwrap();
//!     });
//! reactor::run().unwrap();
//! # drop(d);
//! ```
//!
//! Shared by two reactor threads:
//!
//! ```
//! use std::time::Duration;
//! use twined::reactor::DnsCache;
//! use twined::task;
//!
//! let cache = DnsCache::new(Duration::from_secs(60));
//! let on_thread = cache.clone();
//! std::thread::spawn(move || {
//!     task::react(move || on_thread.resolve("localhost", 80)).unwrap();
//! })
//! .join()
//! .unwrap();
//! // Looked up over there, a hit here.
//! let addrs = cache.resolve("localhost", 443).result().unwrap().unwrap();
//! assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 443));
//! assert_eq!(cache.lookups(), 1);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::defer::{succeed, Deferred, Failure};
use crate::threads::{ip_literal, lookup, remote_trigger, unbracket, RemoteTrigger, ResolveError};

/// The default [`DnsCacheOptions::ttl`]: 60 s.
pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(60);

/// The default [`DnsCacheOptions::negative_ttl`]: 5 s.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The default [`DnsCacheOptions::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// Settings of a [`DnsCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsCacheOptions {
    /// How long a name's addresses are used before it is looked up again.
    /// Default: 60 s ([`DEFAULT_DNS_TTL`]).
    pub ttl: Duration,
    /// How long a failed lookup is remembered (never longer than `ttl`).
    /// Default: 5 s ([`DEFAULT_NEGATIVE_TTL`]).
    pub negative_ttl: Duration,
    /// The most names kept, lookups under way included (at least 1).
    /// Default: 4096 ([`DEFAULT_MAX_ENTRIES`]).
    pub max_entries: usize,
}

impl Default for DnsCacheOptions {
    fn default() -> DnsCacheOptions {
        DnsCacheOptions {
            ttl: DEFAULT_DNS_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// A lookup's outcome as the cache keeps it: `io::Error` is not `Clone`,
/// so a failure keeps its kind and message.
#[derive(Clone)]
enum Answer {
    Found(Arc<[IpAddr]>),
    Failed(io::ErrorKind, String),
}

/// Askers waiting for a lookup under way, on any thread: their ports and
/// the triggers that fire their Deferreds on their own threads.
type Waiters = Vec<(u16, RemoteTrigger<Vec<SocketAddr>>)>;

enum Entry {
    /// A lookup is under way.
    Pending(Waiters),
    /// An answer, good until `expires`.
    Ready { answer: Answer, expires: Instant },
}

struct State {
    options: DnsCacheOptions,
    entries: HashMap<String, Entry>,
    /// System lookups made (misses).
    lookups: u64,
}

/// A cache of host-name lookups (see the [module docs](self)). Cheap to
/// clone; clones share the cache, on any thread.
#[derive(Clone)]
pub struct DnsCache {
    state: Arc<Mutex<State>>,
}

impl PartialEq for DnsCache {
    /// The same cache (clones of one another).
    fn eq(&self, other: &DnsCache) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl Eq for DnsCache {}

impl fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("DnsCache")
            .field("options", &st.options)
            .field("entries", &st.entries.len())
            .field("lookups", &st.lookups)
            .finish()
    }
}

/// Where [`DnsCache::resolve`] found a name.
enum Asked {
    /// A live answer.
    Cached(Answer),
    /// A lookup under way, now with this asker waiting too; or, while the
    /// asking thread exits, a Deferred that has already failed.
    Waiting(Deferred<Vec<SocketAddr>>),
    /// Nothing: this asker starts the lookup (and waits for it).
    Missed(Deferred<Vec<SocketAddr>>),
    /// Nothing, and no room: every name held is a lookup under way.
    Full,
}

impl DnsCache {
    /// A cache keeping answers for `ttl`, with the other defaults.
    pub fn new(ttl: Duration) -> DnsCache {
        DnsCache::with_options(DnsCacheOptions {
            ttl,
            ..DnsCacheOptions::default()
        })
    }

    /// A cache with `options`.
    pub fn with_options(options: DnsCacheOptions) -> DnsCache {
        DnsCache {
            state: Arc::new(Mutex::new(State {
                options,
                entries: HashMap::new(),
                lookups: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a whole insert, remove or count,
        // and no user code runs under it: a poisoned lock is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache's settings.
    pub fn options(&self) -> DnsCacheOptions {
        self.lock().options
    }

    /// The addresses of `host` with `port`, as
    /// [`threads::resolve`](crate::threads::resolve) gives them: from the
    /// cache when it holds a live answer (the Deferred has then already
    /// fired), else from one system lookup shared by every caller asking for
    /// the name meanwhile, on any thread. The Deferred fires on this
    /// thread's reactor. An IP literal is returned at once, uncached. A
    /// failure is a [`ResolveError`] naming the host.
    pub fn resolve(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        let bare = unbracket(host);
        if let Some(ip) = ip_literal(bare) {
            return succeed(vec![SocketAddr::new(ip, port)]);
        }
        // Names are case-insensitive.
        let name = bare.to_ascii_lowercase();
        match self.ask(&name, port) {
            Asked::Cached(answer) => match answer_for(&name, &answer, port) {
                Ok(addrs) => succeed(addrs),
                Err(e) => crate::defer::fail(e),
            },
            Asked::Waiting(d) => d,
            Asked::Missed(d) => {
                let mut run = Lookup {
                    cache: self.clone(),
                    name: Some(name),
                };
                crate::threads::call_in_thread(move || run.run());
                d
            }
            // Still a lookup; only not kept.
            Asked::Full => crate::threads::resolve(name, port),
        }
    }

    /// Looks `name` up in the map, under the lock: a live answer, or this
    /// asker added to the lookup under way, or a new lookup marked under
    /// way (and counted).
    fn ask(&self, name: &str, port: u16) -> Asked {
        let now = Instant::now();
        let mut st = self.lock();
        match st.entries.get_mut(name) {
            Some(Entry::Ready { answer, expires }) if *expires > now => {
                return Asked::Cached(answer.clone());
            }
            Some(Entry::Pending(waiters)) => {
                let (d, remote) = remote_trigger();
                if !d.called() {
                    waiters.push((port, remote));
                }
                return Asked::Waiting(d);
            }
            _ => {}
        }
        if !st.make_room(name, now) {
            st.lookups += 1;
            return Asked::Full;
        }
        let (d, remote) = remote_trigger();
        if d.called() {
            // The thread is exiting: nobody would get the answer.
            return Asked::Waiting(d);
        }
        st.lookups += 1;
        st.entries
            .insert(name.to_string(), Entry::Pending(vec![(port, remote)]));
        Asked::Missed(d)
    }

    /// How many names are cached or being looked up.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many system lookups the cache has made (its misses), on every
    /// thread.
    pub fn lookups(&self) -> u64 {
        self.lock().lookups
    }

    /// Forgets every answer (lookups under way still deliver theirs).
    pub fn clear(&self) {
        self.lock()
            .entries
            .retain(|_, e| matches!(e, Entry::Pending(_)));
    }
}

/// One name's lookup under way, on a pool thread: stores the answer and
/// hands it to every asker. Should it end without an answer (a panic in the
/// resolver), the askers get a failure and the name is forgotten, so that
/// the next asker looks it up again.
struct Lookup {
    cache: DnsCache,
    /// Until answered.
    name: Option<String>,
}

impl Lookup {
    /// Asks the system (blocking; no lock held) and hands the answer out.
    fn run(&mut self) {
        let Some(name) = self.name.clone() else {
            return;
        };
        let answer = match lookup(&name, 0) {
            Ok(addrs) => Answer::Found(addrs.iter().map(SocketAddr::ip).collect()),
            Err(e) => Answer::Failed(e.source.kind(), e.source.to_string()),
        };
        self.name = None;
        let waiters = {
            let mut st = self.cache.lock();
            let keep = match answer {
                Answer::Found(_) => st.options.ttl,
                Answer::Failed(..) => st.options.negative_ttl.min(st.options.ttl),
            };
            let entry = Entry::Ready {
                answer: answer.clone(),
                expires: Instant::now() + keep,
            };
            match st.entries.insert(name.clone(), entry) {
                Some(Entry::Pending(waiters)) => waiters,
                _ => Vec::new(),
            }
        };
        // No lock is held while the answer goes out (to each asker's own
        // reactor queue).
        for (port, remote) in waiters {
            remote.fire_with(answer_for(&name, &answer, port));
        }
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let waiters = {
            let mut st = self.cache.lock();
            match st.entries.remove(&name) {
                Some(Entry::Pending(waiters)) => waiters,
                Some(ready) => {
                    st.entries.insert(name.clone(), ready);
                    Vec::new()
                }
                None => Vec::new(),
            }
        };
        let lost = Answer::Failed(
            io::ErrorKind::Other,
            "the lookup ended without an answer".to_string(),
        );
        for (port, remote) in waiters {
            remote.fire_with(answer_for(&name, &lost, port));
        }
    }
}

impl State {
    /// Makes room for `name`: when the cache is full, drops expired
    /// answers, then, while still full, the answer closest to expiring.
    /// Lookups under way are never dropped (their askers wait for them);
    /// returns whether there is room.
    fn make_room(&mut self, name: &str, now: Instant) -> bool {
        let max = self.options.max_entries.max(1);
        if self.entries.len() < max || self.entries.contains_key(name) {
            return true;
        }
        self.entries
            .retain(|_, e| !matches!(e, Entry::Ready { expires, .. } if *expires <= now));
        while self.entries.len() >= max {
            let oldest = self
                .entries
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Ready { expires, .. } => Some((*expires, k)),
                    Entry::Pending(_) => None,
                })
                .min()
                .map(|(_, k)| k.clone());
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => return false,
            }
        }
        true
    }
}

/// The cached `answer` for `name` as addresses with `port`, or its failure.
fn answer_for(name: &str, answer: &Answer, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    match answer {
        Answer::Found(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
        Answer::Failed(kind, message) => Err(Failure::new(ResolveError {
            host: name.to_string(),
            source: io::Error::new(*kind, message.clone()),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn run_until_fired<T: 'static>(d: Deferred<T>) -> Result<T, Failure> {
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        d.add_both(move |r| {
            *o.borrow_mut() = Some(r);
            if reactor::running() {
                let _ = reactor::stop();
            }
        });
        if out.borrow().is_none() {
            reactor::run().unwrap();
        }
        let r = out.borrow_mut().take().expect("fired");
        r
    }

    #[test]
    fn overlapping_lookups_of_one_name_coalesce() {
        let cache = DnsCache::new(Duration::from_secs(60));
        let ds: Vec<_> = (0..5)
            .map(|i| cache.resolve("LocalHost", 1000 + i))
            .collect();
        assert_eq!(cache.lookups(), 1);
        let all = crate::defer::gather_results(ds);
        let results = run_until_fired(all).unwrap();
        for (i, addrs) in results.iter().enumerate() {
            assert!(!addrs.is_empty());
            assert!(addrs.iter().all(|a| a.port() == 1000 + i as u16));
        }
        // Answered from the cache now.
        let d = cache.resolve("localhost", 1);
        assert!(d.result().is_some());
        assert_eq!(cache.lookups(), 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn ip_literals_bypass_the_cache() {
        let cache = DnsCache::new(Duration::from_secs(60));
        let d = cache.resolve("[::1]", 5);
        assert_eq!(
            d.result().unwrap().unwrap(),
            vec!["[::1]:5".parse().unwrap()]
        );
        assert!(cache.is_empty());
        assert_eq!(cache.lookups(), 0);
    }

    #[test]
    fn an_expired_answer_is_looked_up_again() {
        let cache = DnsCache::new(Duration::ZERO);
        run_until_fired(cache.resolve("localhost", 1)).unwrap();
        run_until_fired(cache.resolve("localhost", 1)).unwrap();
        assert_eq!(cache.lookups(), 2);
    }

    #[test]
    fn failures_are_cached_briefly_and_typed() {
        let cache = DnsCache::with_options(DnsCacheOptions {
            negative_ttl: Duration::from_secs(60),
            ..Default::default()
        });
        // `.invalid` never resolves (RFC 6761).
        let e = run_until_fired(cache.resolve("no-such-host.invalid", 1)).unwrap_err();
        assert!(e.check::<ResolveError>());
        let again = cache.resolve("no-such-host.invalid", 1);
        let e2 = again.result().expect("cached failure").unwrap_err();
        assert_eq!(
            e2.downcast_ref::<ResolveError>().unwrap().host,
            "no-such-host.invalid"
        );
        assert_eq!(cache.lookups(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = DnsCache::with_options(DnsCacheOptions {
            max_entries: 2,
            ..Default::default()
        });
        // Fill it by hand with answers expiring at different times.
        let now = Instant::now();
        for (i, name) in ["a.test", "b.test"].iter().enumerate() {
            cache.lock().entries.insert(
                name.to_string(),
                Entry::Ready {
                    answer: Answer::Found(Arc::from(vec![IpAddr::from([127, 0, 0, 1])])),
                    expires: now + Duration::from_secs(10 + i as u64),
                },
            );
        }
        run_until_fired(cache.resolve("localhost", 1)).unwrap();
        assert_eq!(cache.len(), 2);
        let st = cache.lock();
        assert!(
            !st.entries.contains_key("a.test"),
            "the soonest to expire went"
        );
        assert!(st.entries.contains_key("b.test"));
        assert!(st.entries.contains_key("localhost"));
    }

    #[test]
    fn a_full_cache_of_lookups_under_way_looks_a_new_name_up_uncached() {
        let cache = DnsCache::with_options(DnsCacheOptions {
            max_entries: 1,
            ..Default::default()
        });
        // The one slot holds a lookup under way (nobody waiting on it).
        cache
            .lock()
            .entries
            .insert("busy.test".to_string(), Entry::Pending(Vec::new()));
        let addrs = run_until_fired(cache.resolve("localhost", 9)).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        assert_eq!(cache.lookups(), 1, "still a lookup, and counted");
        assert_eq!(cache.len(), 1, "not kept: the bound holds");
        assert!(cache.lock().entries.contains_key("busy.test"));
    }

    #[test]
    fn a_lookup_that_ends_unanswered_fails_its_askers_and_is_forgotten() {
        let cache = DnsCache::new(Duration::from_secs(60));
        let (d, remote) = remote_trigger();
        cache
            .lock()
            .entries
            .insert("lost.test".to_string(), Entry::Pending(vec![(5, remote)]));
        drop(Lookup {
            cache: cache.clone(),
            name: Some("lost.test".to_string()),
        });
        assert!(cache.is_empty(), "the next asker looks it up again");
        let failure = run_until_fired(d).unwrap_err();
        let e = failure
            .downcast_ref::<ResolveError>()
            .expect("a ResolveError");
        assert_eq!(e.host, "lost.test");
    }

    #[test]
    fn the_cache_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<DnsCache>();
    }
}
