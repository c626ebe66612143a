//! The connection pool: persistent connections kept per host, with an idle
//! cap and idle timeout (Twisted's `HTTPConnectionPool`), and a real cap on
//! requests in flight per host and overall (Twisted has none): requests over
//! a cap wait in a FIFO queue.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::conn::ConnHandle;
use super::proxy::Proxy;
use crate::defer::{Deferred, Failure, Trigger};
use crate::reactor::{self, DelayedCall};

/// Where a connection goes: scheme, host and port, and the proxy it goes
/// through.
///
/// Through a proxy, an `http` key names the proxy itself (`host` and
/// `port` are the proxy's): its connections carry requests for any
/// `http://` origin. An `https` key names the origin, and its connections
/// are tunnels through that proxy, never shared with direct ones or with
/// another proxy (or the same proxy with other credentials).
///
/// Cheap to clone (shared): the pool keeps one per idle connection, lease
/// and timer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey(Rc<KeyParts>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyParts {
    scheme: String,
    host: String,
    port: u16,
    proxy: Option<Proxy>,
}

impl PoolKey {
    /// The key of connections to `scheme://host:port`, through `proxy` if any.
    pub(crate) fn new(scheme: &str, host: &str, port: u16, proxy: Option<Proxy>) -> PoolKey {
        PoolKey(Rc::new(KeyParts {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
            proxy,
        }))
    }

    /// `"http"` or `"https"`.
    pub fn scheme(&self) -> &str {
        &self.0.scheme
    }

    /// The host name or IP literal.
    pub fn host(&self) -> &str {
        &self.0.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// The proxy the connection goes through; `None` for a direct one.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.0.proxy.as_ref()
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let KeyParts {
            scheme,
            host,
            port,
            proxy,
        } = &*self.0;
        match proxy {
            None => write!(f, "{scheme}://{host}:{port}"),
            Some(proxy) if scheme == "http" => write!(f, "{proxy} (proxy)"),
            Some(proxy) => write!(f, "{scheme}://{host}:{port} via {proxy}"),
        }
    }
}

/// Settings of a [`ConnectionPool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Keep connections open between requests (Twisted's `persistent`).
    pub persistent: bool,
    /// Idle connections kept per host (Twisted: 2).
    pub max_idle_per_host: usize,
    /// An idle connection is closed after this (Twisted: 240 s).
    pub idle_timeout: Duration,
    /// Requests in flight per host; `None` for no cap.
    pub max_per_host: Option<usize>,
    /// Requests in flight overall; `None` for no cap.
    pub max_total: Option<usize>,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            persistent: true,
            max_idle_per_host: 16,
            idle_timeout: Duration::from_secs(240),
            max_per_host: None,
            max_total: None,
        }
    }
}

/// Opens a new connection for a key.
pub(crate) type Opener = Rc<dyn Fn(&PoolKey) -> Deferred<ConnHandle>>;

struct Idle {
    conn: ConnHandle,
    timer: DelayedCall,
}

struct Waiter {
    key: PoolKey,
    fresh: bool,
    opener: Opener,
    trigger: Trigger<Lease>,
}

struct PoolState {
    options: PoolOptions,
    idle: HashMap<PoolKey, Vec<Idle>>,
    in_flight: HashMap<PoolKey, usize>,
    total: usize,
    waiting: VecDeque<Waiter>,
    opened: u64,
}

/// A pool of HTTP connections shared by the requests of one or more
/// [`Agent`](super::Agent)s on this thread.
#[derive(Clone)]
pub struct ConnectionPool {
    state: Rc<RefCell<PoolState>>,
}

impl Default for ConnectionPool {
    fn default() -> ConnectionPool {
        ConnectionPool::new()
    }
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("ConnectionPool")
            .field("options", &st.options)
            .field("in_flight", &st.total)
            .field("waiting", &st.waiting.len())
            .finish()
    }
}

/// The right to run one request on one connection; given back with
/// [`release`](Lease::release) (or on drop, closing the connection).
pub(crate) struct Lease {
    pub(crate) conn: ConnHandle,
    /// The connection carried earlier requests.
    pub(crate) reused: bool,
    key: PoolKey,
    pool: Option<ConnectionPool>,
}

impl Lease {
    /// Gives the slot back; the connection is kept for reuse when `reusable`.
    pub(crate) fn release(mut self, reusable: bool) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(&self.key, self.conn.clone(), reusable);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(&self.key, self.conn.clone(), false);
        }
    }
}

impl ConnectionPool {
    /// A pool with the default [`PoolOptions`].
    pub fn new() -> ConnectionPool {
        ConnectionPool::with_options(PoolOptions::default())
    }

    /// A pool with `options`.
    ///
    /// ```
    /// use twined::web::client::{ConnectionPool, PoolOptions};
    ///
    /// let pool = ConnectionPool::with_options(PoolOptions {
    ///     max_per_host: Some(4),
    ///     ..Default::default()
    /// });
    /// assert_eq!(pool.options().max_per_host, Some(4));
    /// ```
    pub fn with_options(options: PoolOptions) -> ConnectionPool {
        ConnectionPool {
            state: Rc::new(RefCell::new(PoolState {
                options,
                idle: HashMap::new(),
                in_flight: HashMap::new(),
                total: 0,
                waiting: VecDeque::new(),
                opened: 0,
            })),
        }
    }

    /// The pool's settings.
    pub fn options(&self) -> PoolOptions {
        self.state.borrow().options.clone()
    }

    /// Requests holding a connection now.
    pub fn in_flight(&self) -> usize {
        self.state.borrow().total
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiting.len()
    }

    /// Idle connections kept.
    pub fn idle(&self) -> usize {
        self.state.borrow().idle.values().map(Vec::len).sum()
    }

    /// Connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.state.borrow().opened
    }

    /// Closes every idle connection (Twisted's `closeCachedConnections`).
    pub fn close_idle(&self) {
        let idle: Vec<Idle> = self
            .state
            .borrow_mut()
            .idle
            .drain()
            .flat_map(|(_, v)| v)
            .collect();
        for i in idle {
            let _ = i.timer.cancel();
            i.conn.close();
        }
    }

    fn has_room(st: &PoolState, key: &PoolKey) -> bool {
        let host = st.in_flight.get(key).copied().unwrap_or(0);
        st.options.max_total.is_none_or(|m| st.total < m)
            && st.options.max_per_host.is_none_or(|m| host < m)
    }

    /// A lease on a connection to `key`: an idle one unless `fresh`, or a
    /// new one from `opener`; queued while a cap is reached.
    pub(crate) fn acquire(&self, key: PoolKey, fresh: bool, opener: Opener) -> Deferred<Lease> {
        let room = {
            let st = self.state.borrow();
            st.waiting.is_empty() && Self::has_room(&st, &key)
        };
        if room {
            return self.grant(key, fresh, opener);
        }
        let (d, trigger) = Deferred::new();
        self.state.borrow_mut().waiting.push_back(Waiter {
            key,
            fresh,
            opener,
            trigger,
        });
        d
    }

    /// Takes a slot for `key` and finds it a connection.
    fn grant(&self, key: PoolKey, fresh: bool, opener: Opener) -> Deferred<Lease> {
        let reused = {
            let mut st = self.state.borrow_mut();
            st.total += 1;
            *st.in_flight.entry(key.clone()).or_insert(0) += 1;
            let mut found = None;
            if !fresh {
                if let Some(list) = st.idle.get_mut(&key) {
                    while let Some(idle) = list.pop() {
                        let _ = idle.timer.cancel();
                        if idle.conn.is_usable() {
                            found = Some(idle.conn);
                            break;
                        }
                    }
                }
            }
            found
        };
        if let Some(conn) = reused {
            return crate::defer::succeed(Lease {
                conn,
                reused: true,
                key,
                pool: Some(self.clone()),
            });
        }
        self.state.borrow_mut().opened += 1;
        let pool = self.clone();
        let failed_pool = self.clone();
        let failed_key = key.clone();
        opener(&key)
            .add_callback(move |conn| Lease {
                conn,
                reused: false,
                key,
                pool: Some(pool),
            })
            .or_else(move |failure: Failure| {
                failed_pool.slot_freed(&failed_key);
                Err(failure)
            })
    }

    fn give_back(&self, key: &PoolKey, conn: ConnHandle, reusable: bool) {
        let keep = {
            let st = self.state.borrow();
            reusable
                && st.options.persistent
                && conn.is_usable()
                && st.idle.get(key).map_or(0, Vec::len) < st.options.max_idle_per_host
        };
        if keep {
            let timeout = self.state.borrow().options.idle_timeout;
            let weak = Rc::downgrade(&self.state);
            let (k, c) = (key.clone(), conn.clone());
            let timer = reactor::call_later(timeout, move || {
                if let Some(state) = weak.upgrade() {
                    if let Some(list) = state.borrow_mut().idle.get_mut(&k) {
                        list.retain(|i| !i.conn.same(&c));
                    }
                }
                c.close();
            });
            self.state
                .borrow_mut()
                .idle
                .entry(key.clone())
                .or_default()
                .push(Idle { conn, timer });
        } else {
            conn.close();
        }
        self.slot_freed(key);
    }

    /// A slot for `key` is free: give it (or any slot now free) to waiters.
    fn slot_freed(&self, key: &PoolKey) {
        {
            let mut st = self.state.borrow_mut();
            st.total = st.total.saturating_sub(1);
            if let Some(n) = st.in_flight.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.in_flight.remove(key);
                }
            }
        }
        self.serve_waiters();
    }

    fn serve_waiters(&self) {
        loop {
            let next = {
                let mut st = self.state.borrow_mut();
                // Cancelled requests leave the queue.
                st.waiting.retain(|w| !w.trigger.is_cancelled());
                let position = st.waiting.iter().position(|w| Self::has_room(&st, &w.key));
                position.and_then(|i| st.waiting.remove(i))
            };
            let Some(waiter) = next else { return };
            let Waiter {
                key,
                fresh,
                opener,
                trigger,
            } = waiter;
            self.grant(key, fresh, opener).chain_deferred(trigger);
        }
    }
}
