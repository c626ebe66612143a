//! # twined
//!
//! Twisted's programming model in Rust: a per-thread global reactor on `mio`,
//! [`Deferred`](defer::Deferred)s with typed callback/errback chains,
//! [`DeferredList`](defer::DeferredList), and a `get_page`-style HTTP client.
//!
//! A Twisted program ports line by line with the table below beside it; the
//! result is checked by the compiler (each callback must accept what the one
//! before produced, and a Deferred cannot be fired twice) and runs without a
//! garbage collector or an interpreter in the way.
//!
//! ```
//! use std::time::Duration;
//! use twined::defer::{Deferred, DeferredList, Failure};
//! use twined::reactor;
//!
//! // Something that produces a result later, like getPage.
//! fn later(n: u32) -> Deferred<u32> {
//!     let (d, trigger) = Deferred::new();
//!     reactor::call_later(Duration::from_millis(u64::from(n)), move || trigger.callback(n));
//!     d
//! }
//!
//! let pages = (1..=3).map(|n| {
//!     later(n)
//!         .add_callback(|n| n * 10)                                   // addCallback
//!         .and_then(|n| if n < 30 { Ok(n) } else { Err(Failure::msg("too big")) })
//!         .add_errback(|_failure| 0)                                  // addErrback
//! });
//! DeferredList::new(pages).add_both(|results| {                       // DeferredList(...).addBoth
//!     let values: Vec<u32> = results.unwrap().into_iter().map(Result::unwrap).collect();
//!     assert_eq!(values, [10, 20, 0]);
//!     reactor::stop().unwrap();
//! });
//! reactor::run().unwrap();
//! ```
//!
//! ## `@inlineCallbacks` and `async def`
//!
//! ```python
//! @inlineCallbacks
//! def fetch_all(urls):
//!     total = 0
//!     for url in urls:
//!         try:
//!             body = yield getPage(url)
//!             total += len(body)
//!         except error.Error as e:
//!             log.msg("skipped", url, e.status)
//!     returnValue(total)
//! ```
//!
//! ```no_run
//! use twined::defer::{ensure_deferred, Deferred, Failure};
//! use twined::web::client::get_page;
//!
//! fn fetch_all(urls: Vec<String>) -> Deferred<usize> {
//!     ensure_deferred(async move {
//!         let mut total = 0;
//!         for url in &urls {
//!             match get_page(url).await {
//!                 Ok(body) => total += body.len(),
//!                 Err(e) => eprintln!("skipped {url}: {e}"),
//!             }
//!         }
//!         Ok::<_, Failure>(total)
//!     })
//! }
//! ```
//!
//! The Deferred `fetch_all` returns takes callbacks like any other; cancelling
//! it cancels the `get_page` it is waiting on, and the future sees the
//! cancellation as an `Err` it may handle.
//!
//! ## The porting table
//!
//! | Twisted | twined |
//! |---|---|
//! | `from twisted.internet import reactor` | `use twined::reactor;` (one reactor per thread) |
//! | `reactor.run()` / `stop()` / `crash()` | `reactor::run()` / `reactor::stop()` / `reactor::crash()` |
//! | `reactor.running`, `reactor.seconds()` | `reactor::running()`, `reactor::seconds()` (monotonic) |
//! | `reactor.callLater(2, f, x)` -> `IDelayedCall` | `reactor::call_later(Duration, move \|\| f(x))` -> `DelayedCall` (`cancel`, `reset`, `delay`, `active`, `time`) |
//! | `reactor.callWhenRunning(f)` | `reactor::call_when_running(f)` |
//! | `reactor.addSystemEventTrigger('before', 'shutdown', f)` | `reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, f)` (f may return a Deferred that holds shutdown) |
//! | `reactor.callFromThread(f)` | `reactor::handle().call_from_thread(f)` (the handle is `Send + Clone`) |
//! | `threads.blockingCallFromThread(reactor, f)` | [`threads::blocking_call_from_thread(&handle, f)`](threads::blocking_call_from_thread) (fails instead of hanging on the reactor thread or after shutdown) |
//! | `reactor.fireSystemEvent('myevent')` | [`reactor::fire_system_event(Event::Custom("myevent"))`](reactor::fire_system_event) |
//! | `threads.deferToThread(f)` / `reactor.callInThread(f)` | [`threads::defer_to_thread(f)`](threads::defer_to_thread) / [`threads::call_in_thread(f)`](threads::call_in_thread) (a process-wide pool of 10 threads, [`threads::set_pool_size`]) |
//! | `reactor.suggestThreadPoolSize(n)` / `reactor.resolve(name)` | [`threads::set_pool_size(n)`](threads::set_pool_size) / [`threads::resolve(name, port)`](threads::resolve) -> `Deferred<Vec<SocketAddr>>` (IP literals at once, names on the pool, [`threads::ResolveError`]) |
//! | `reactor.addReader(obj)` | [`reactor::add_reader(&fd, callback)`](reactor::add_reader), [`add_writer`](reactor::add_writer), [`remove_reader`](reactor::remove_reader), [`remove_writer`](reactor::remove_writer), [`remove_all`](reactor::remove_all) (any `AsRawFd`, level-triggered like Twisted's) |
//! | `reactor.listenTCP(port, factory)` / `connectTCP(host, port, factory)` | [`reactor::listen_tcp(addr, factory)`](reactor::listen_tcp) -> [`Port`](reactor::Port) / [`reactor::connect_tcp(host, port, factory)`](reactor::connect_tcp); endpoint style: [`reactor::connect_protocol(host, port, protocol)`](reactor::connect_protocol) -> `Deferred<Transport>` |
//! | `reactor.listenUDP(port, proto)`, `DatagramProtocol.datagramReceived(data, addr)`, `transport.write(data, addr)` | [`reactor::listen_udp(addr, proto)`](reactor::listen_udp) -> [`DatagramTransport`](reactor::DatagramTransport), [`DatagramProtocol::datagram_received`](reactor::DatagramProtocol::datagram_received), [`write_to(data, addr)`](reactor::DatagramTransport::write_to) (connected: `connect` + `write`; multicast: `join_group`, `leave_group`) |
//! | `reactor.listenUNIX(path, factory)` / `connectUNIX(path, factory)` | [`reactor::listen_unix(path, factory)`](reactor::listen_unix) -> [`UnixPort`](reactor::UnixPort) (file removed on `stop_listening`) / [`reactor::connect_unix(path, factory)`](reactor::connect_unix) -> `Deferred<Transport>`; [`Transport::peer_credentials`](protocol::Transport::peer_credentials) |
//! | `endpoints.serverFromString(reactor, "tcp:8080:interface=127.0.0.1")` / `clientFromString(reactor, "tcp:host=h:port=80")`, `endpoint.listen(f)` / `connect(f)` | [`endpoints::server_from_string`] / [`endpoints::client_from_string`] (`tcp`, `ssl`, `tls`, `unix`, `udp`; Twisted's syntax and escapes), [`listen(factory)`](endpoints::ServerEndpoint::listen) -> `Deferred<ListeningPort>`, [`connect(factory)`](endpoints::ClientEndpoint::connect) -> `Deferred<Transport>` |
//! | `reactor.listenSSL(port, factory, ctx)` / `connectSSL(host, port, factory, ctx)` | [`reactor::listen_ssl(addr, factory, ServerTlsConfig)`](reactor::listen_ssl) / [`reactor::connect_ssl(host, port, factory, ClientTlsConfig)`](reactor::connect_ssl); endpoint style: [`reactor::connect_protocol_ssl`] -> `Deferred<Transport>` once the handshake is done; feature `tls` |
//! | `TLSMemoryBIOProtocol` / `transport.startTLS(ctx)` | [`reactor::tls`]: one rustls layer under any [`protocol::Protocol`]; [`Transport::start_tls(config)`](protocol::Transport::start_tls) for STARTTLS |
//! | `ssl.optionsForClientTLS(host, trustRoot)` / `PrivateCertificate.loadPEM(...).options()` / `SSL.Error` | [`reactor::tls::ClientTlsConfig`] (webpki roots, extra roots from PEM, SNI, ALPN) / [`reactor::tls::ServerTlsConfig::from_pem_files`] / [`reactor::tls::TlsError`] (`source()` is the `rustls::Error`) |
//! | `Protocol.connectionMade/dataReceived/connectionLost` | [`protocol::Protocol`] `{ connection_made, data_received, connection_lost }`; a closure `\|peer\| P` is a [`protocol::Factory`] |
//! | `transport.write/writeSequence/loseConnection/abortConnection/getPeer` | `Transport::write/write_sequence/lose_connection/abort_connection/peer` |
//! | `reactor.spawnProcess(proto, exe, args, env, path)` / `utils.getProcessOutput` | [`reactor::spawn_process(program, args, ProcessOptions { env, cwd }, proto)`](reactor::spawn_process) with a [`ProcessProtocol`](reactor::ProcessProtocol) / [`utils::get_process_output`] (also errbacks on a failing exit status) |
//! | `d = Deferred()` | `let (d, trigger) = Deferred::new();` |
//! | `d.callback(v)` / `d.errback(e)` | `trigger.callback(v)` / `trigger.errback(e)` (consumes the trigger: firing twice does not compile) |
//! | `d.addCallback(f)` | `d.add_callback(f)` when `f` returns a value or a Deferred; `d.and_then(f)` when it may raise (`Err`/`?`) |
//! | `d.addCallback(f)` as a statement (Python changes `d` in place) | `let d = d.add_callback(f);` (or chain the calls): `add_*` takes the handle and returns the next one, whose type is the callback's result; `d.add_callback(f);` alone keeps the chain running but drops the handle |
//! | a callback using a local (`lambda r: seen.append(r)`, `callbackArgs`) | `move \|r\| ...`: callbacks are `'static`, so move owned values in; share state with `Rc<RefCell<_>>` (clone the `Rc` first), send across threads with `Arc<Mutex<_>>` |
//! | `d.addErrback(f)` / `addBoth` / `addCallbacks(f, g)` | `d.add_errback(f)` or `d.or_else(f)` (re-raise, or return a Deferred) / `add_both` or `then` / `add_callbacks(f, g)` |
//! | callback returns a Deferred (chaining) | `add_callback(\|v\| other_deferred)` (or `add_both`, `and_then`, `or_else`): the outer chain waits for the inner one, as in Twisted; a value that merely holds a Deferred (or a future) does not compile, so a Deferred is never silently nested |
//! | `d.pause()` / `d.unpause()` / `d.cancel()` / `d.addTimeout(t, clock, onTimeoutCancel)` | `d.pause()` / `d.unpause()` / `d.cancel()` / `d.add_timeout(Duration)` (`add_timeout_on(&clock, t)`, `add_timeout_with(&clock, t, f)`; fails with `TimeoutError`) |
//! | `d.chainDeferred(d2)` | `d.chain_deferred(trigger2)` |
//! | `defer.succeed(v)` / `defer.fail(e)` / `defer.maybeDeferred(f)` | `defer::succeed(v)` / `defer::fail(e)` / `defer::maybe_deferred(f)` |
//! | `DeferredList(ds, fireOnOneCallback, fireOnOneErrback, consumeErrors)` | `DeferredList::new(ds)`, `DeferredList::with_options(ds, ListOptions)`, `DeferredList::first_success(ds)`; results `Vec<Result<T, Failure>>` in input order |
//! | `defer.gatherResults(ds)` / `defer.race(ds)` | `defer::gather_results(ds)` (errback `FirstError { index, failure }`) / `defer::race(ds)` |
//! | `DeferredLock`, `DeferredSemaphore(n).run(f)`, `DeferredQueue` | the same names in `twined::defer` (guards release on drop) |
//! | `@inlineCallbacks` / `ensureDeferred(coro)` / `Deferred.fromCoroutine` | [`defer::ensure_deferred(async move { ... })`](defer::ensure_deferred); `Deferred<T>` is a `Future<Output = Result<T, Failure>>` (see below); `task.react(lambda r: ensureDeferred(main()))` is [`task::react_async(\|\| async { ... })`](task::react_async); `deferLater(reactor, t)` awaited is [`task::sleep(t)`](task::sleep) |
//! | `task.react(main)` | `task::react(main)` (returns main's result; `task::exit_code` maps it to 0, 1 or a `SystemExit` code) |
//! | `react` on every core (N processes in Twisted) | `task::react_threads(n, main)`: one reactor per thread, each thread's result collected |
//! | `task.deferLater`, `LoopingCall(f)`, `LoopingCall.withCount(f)`, `coiterate`/`cooperate`/`Cooperator`, `Clock` | `task::defer_later`, `task::LoopingCall::new(f)`, `LoopingCall::with_count(f)`, `LoopingCall::with_handle(f)` (`f` receives the loop: `lc.stop()` from inside `f`), `task::coiterate`/`cooperate`/`Cooperator`, `task::Clock` |
//! | `Failure.trap(E)` / `check(E)` / `value` / `getErrorMessage()` | `failure.trap::<E>()` / `check::<E>()` / `downcast_ref::<E>()` / `Display` |
//! | `defer.setDebugging(True)` | `defer::set_debugging(true)` |
//! | `client.getPage(url, ...)` / `downloadPage(url, file)` | [`web::client::get_page(url)`](web::client::get_page) -> `Deferred<Vec<u8>>` / [`get_page_with(url, PageOptions)`](web::client::get_page_with) / [`download_page(url, path)`](web::client::download_page) |
//! | `Agent(reactor, pool=HTTPConnectionPool(reactor))`, `agent.request(...)`, `readBody(r)`; `RedirectAgent`, `ContentDecoderAgent` | [`web::client::Agent`], [`ConnectionPool`](web::client::ConnectionPool) (idle cap **and** in-flight caps), [`agent.request(method, url, headers, body)`](web::client::Agent::request) -> `Deferred<Response>`, [`read_body`](web::client::read_body); redirects and gzip are [`AgentOptions`](web::client::AgentOptions) |
//! | Scrapy's `RetryMiddleware` / urllib3's `Retry` (Twisted has none) | [`web::client::RetryPolicy`] (backoff with full jitter, `Retry-After`, idempotent methods only) and [`fetch_retrying`](web::client::fetch_retrying) -> `Deferred<`[`Retried`](web::client::Retried)`>` |
//! | Scrapy's downloader middlewares' `process_request`, run again for each redirect hop (Twisted has none) | [`AgentOptions::before_request`](web::client::AgentOptions::before_request): a [`BeforeRequest`](web::client::BeforeRequest) hook each hop waits for and may refuse (a pacer, `robots.txt`) |
//! | `ProxyAgent(TCP4ClientEndpoint(reactor, host, port))` | [`AgentOptions::proxy`](web::client::AgentOptions::proxy) with [`Proxies`](web::client::Proxies) / [`Proxy`](web::client::Proxy): `http://` in absolute form, `https://` through `CONNECT`; [`Proxies::from_env`](web::client::Proxies::from_env) reads `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` |
//! | `CookieAgent(agent, cookielib.CookieJar())` | [`AgentOptions`](web::client::AgentOptions) `cookies: Some(`[`CookieJar`](web::client::CookieJar)`)` (RFC 6265, bounded, shareable across reactor threads, JSON `load`/`save`) |
//! | `twisted.web.error.Error`, `PageRedirect` | [`web::Error::Http { status, .. }`](web::Error::Http), [`web::Error::Redirect { .. }`](web::Error::Redirect); [`web::Error::kind()`](web::Error::kind) names every failure |
//! | `twisted.web.server.Site` | [`web::server::Site`] (keep-alive, pipelining, handlers returning a `Response` or a `Deferred<Response>`) |
//! | `reactor.listenSSL(443, Site(root), ctx)` | [`reactor::listen_ssl(addr, site, ServerTlsConfig)`](reactor::listen_ssl): a `Site` is a factory like any other |
//! | `txredisapi.lazyConnection(host, port, dbid, password)` / `Connection(...)` | [`redis::Client::new(url)`](redis::Client::new) (connects on first use) / [`redis::Client::connect(url)`](redis::Client::connect) -> `Deferred<Client>`, `redis://[user:password@]host:port/db`; feature `redis` |
//! | `conn.execute_command(*args)`, `ResponseError` | [`client.command([...])`](redis::Client::command) -> `Deferred<redis::Value>` (pipelined, replies in order); an error reply is [`redis::RedisError::Server { kind, message }`](redis::RedisError::Server) |
//! | `twisted.internet.testing`: `StringTransport`, `MemoryReactorClock`; `iosim.connect`/`IOPump`, `loopbackAsync` | [`testing::StringTransport`], [`testing::MemoryReactor`] (records `listen_tcp`/`connect_tcp`, keeps a `Clock`); [`testing::loopback::connect`] -> [`IOPump`](testing::IOPump) |
//! | `TimeoutMixin.setTimeout/resetTimeout/timeoutConnection` | a [`protocol::policies::Timeout`] field: `set_timeout`, `reset_timeout`, `on_timeout` (on any `ReactorTime`) |
//! | `LimitTotalConnectionsFactory`, `LimitConnectionsByPeer` | [`protocol::policies::LimitTotalConnectionsFactory`], [`protocol::policies::LimitConnectionsByPeer`] |
//! | `ReconnectingClientFactory` (`initialDelay`, `factor`, `maxDelay`, `jitter`, `maxRetries`, `resetDelay`, `stopTrying`) | [`protocol::reconnect::ReconnectingClientFactory`] (builder) `.connect_tcp(host, port)` -> [`Reconnecting`](protocol::reconnect::Reconnecting) (`reset_delay`, `stop_trying`, `when_stopped`: errbacks once `max_retries` are spent) |
//! | `ClientService(endpoint, factory, retryPolicy, clock)`, `whenConnected(failAfterFailures)`, `stopService()` | [`application::ClientService`] (`tcp(host, port, make)` or `new(connect)`), `when_connected()`, `when_connected_failing_after(n)`, `stop_service()`; [`application::BackoffPolicy`] |
//! | a "done" Deferred fired from the protocol's `connectionLost` (endpoint examples) | [`Transport::when_closed()`](protocol::Transport::when_closed) -> `Deferred<Failure>` with the close reason |
//!
//! Each module's docs say where twined differs from Twisted on purpose (for
//! example: constant-stack chains, FIFO order for equal-time timers,
//! deterministic unhandled-error reports, a restartable reactor, and
//! `reactor::stop()` before `reactor::run()`, which Twisted refuses with
//! `ReactorNotRunning` and twined keeps for the next `run()`: one full pass,
//! then a normal shutdown).
//!
//! ## Out of scope
//!
//! HTTP/2, a DNS resolver of our own, and Windows.
#![deny(unsafe_code)] // one audited exception: defer/value.rs (inline storage)
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod application;
pub mod defer;
pub mod endpoints;
pub mod protocol;
pub mod reactor;
#[cfg(feature = "redis")]
pub mod redis;
pub mod task;
pub mod testing;
pub mod threads;
pub mod time;
pub mod utils;
#[cfg(feature = "web")]
pub mod web;
