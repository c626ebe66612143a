//! [`BeforeRequest`]: the hook an [`Agent`](super::Agent) runs before every
//! request it sends, each redirect hop included, and waits for (what
//! Scrapy's downloader middlewares see when its `RedirectMiddleware`
//! reschedules a redirect as a new request). Pacing and `robots.txt` go
//! there, so that a redirect cannot walk past them.

use std::fmt;
use std::rc::Rc;

use url::Url;

use crate::defer::Deferred;

/// A hook run before every request an [`Agent`](super::Agent) sends: the
/// first, and each redirect hop, with the URL that hop goes to
/// ([`AgentOptions::before_request`](super::AgentOptions::before_request)).
///
/// The request waits for the hook's Deferred, and only then asks the pool
/// for a connection:
///
/// - when it fires, the hop is sent;
/// - when it fails, the request fails with that failure and nothing is
///   sent for the hop (a [`web::Error`](crate::web::Error) keeps its kind,
///   so [`Error::Robots`](crate::web::Error::Robots) stays `robots`; a
///   panic in the hook becomes a failure too);
/// - when the request is cancelled, or its whole-request
///   [`timeout`](super::AgentOptions::timeout) passes while it waits, the
///   hook's Deferred is cancelled (a [`Pacer`](crate::task::Pacer) wait
///   stops its timer) and nothing is sent.
///
/// The whole-request timeout counts the hook's waits, as it counts the
/// rest of the request. A hook made [`untimed`](Self::untimed) stops that
/// clock while it waits instead (what a wait for a turn needs: many
/// requests queued on one host's [`Pacer`](crate::task::Pacer) slots would
/// otherwise time out before they are sent); such a hook must bound its
/// own waits.
///
/// The hook runs once per hop: the agent's one transparent resend of a
/// request whose reused connection closed before any response (the same
/// hop again) does not run it again.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use twined::reactor;
/// use twined::task;
/// use twined::web::client::{Agent, AgentOptions, BeforeRequest, ConnectionPool, Url};
/// use twined::web::server::{Request, Response, Site};
///
/// let site = Site::new(|req: Request| match req.path() {
///     "/old" => Response::new(301).header("Location", "/new"),
///     _ => Response::new(200).body("page"),
/// });
/// let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
///
/// // Every hop is seen, in order; a pacer's `wait` could be returned instead.
/// let seen: Rc<RefCell<Vec<String>>> = Rc::default();
/// let log = seen.clone();
/// let hook = BeforeRequest::new(move |url: &Url| {
///     log.borrow_mut().push(url.path().to_string());
///     twined::defer::succeed(())
/// });
/// let agent = Agent::with_options(
///     ConnectionPool::new(),
///     AgentOptions { before_request: Some(hook), ..Default::default() },
/// );
/// let url = format!("http://{}/old", port.address());
/// let response = task::react(move || agent.request("GET", url.as_str(), Default::default(), None))
///     .unwrap();
/// assert_eq!(response.status, 200);
/// assert_eq!(*seen.borrow(), ["/old", "/new"]);
/// port.stop_listening();
/// ```
#[derive(Clone)]
pub struct BeforeRequest {
    hook: Rc<Hook>,
    /// The whole-request timeout runs while the hook waits.
    timed: bool,
}

/// The function inside a [`BeforeRequest`].
type Hook = dyn Fn(&Url) -> Deferred<()>;

impl BeforeRequest {
    /// A hook that calls `hook` with the URL of each hop before it is sent.
    /// The whole-request timeout counts its waits.
    pub fn new(hook: impl Fn(&Url) -> Deferred<()> + 'static) -> BeforeRequest {
        BeforeRequest {
            hook: Rc::new(hook),
            timed: true,
        }
    }

    /// The same hook, with the whole-request
    /// [`timeout`](super::AgentOptions::timeout) stopped while it waits
    /// (as Scrapy's `DOWNLOAD_TIMEOUT` leaves out the wait for a download
    /// slot): the request gets what was left of it once the hook fires.
    /// Cancelling the request still ends the wait. The hook must bound its
    /// own waits (a [`Pacer`](crate::task::Pacer) slot always comes; a
    /// [`RobotsCache`](super::RobotsCache) fetch has its own timeout).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use twined::task::{Pacer, PacerOptions};
    /// use twined::web::client::{AgentOptions, BeforeRequest, Url};
    ///
    /// let pacer = Arc::new(Pacer::new(PacerOptions {
    ///     delay: Duration::from_secs(1),
    ///     ..Default::default()
    /// }));
    /// // One request a second per host, each hop; the 30 s count only
    /// // once a hop's slot has come.
    /// let hook = BeforeRequest::new(move |url: &Url| pacer.wait(url.host_str().unwrap_or("")));
    /// let options = AgentOptions {
    ///     before_request: Some(hook.untimed()),
    ///     timeout: Some(Duration::from_secs(30)),
    ///     ..Default::default()
    /// };
    /// # drop(options);
    /// ```
    pub fn untimed(self) -> BeforeRequest {
        BeforeRequest {
            timed: false,
            ..self
        }
    }

    /// Whether the whole-request timeout runs while the hook waits (see
    /// [`untimed`](Self::untimed)).
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Runs the hook for `url`; a panic in it is a failed Deferred.
    pub(crate) fn run(&self, url: &Url) -> Deferred<()> {
        let hook = self.hook.clone();
        crate::defer::maybe_deferred(move || hook(url))
    }
}

impl fmt::Debug for BeforeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeforeRequest")
            .field("timed", &self.timed)
            .finish_non_exhaustive()
    }
}
