//! Politeness, shared by every worker thread and applied to every request
//! the agent sends, redirect hops included (the agent's `before_request`
//! hook): `--delay` and `--rate` through
//! one `twined::task::Pacer` (slots reserved under one lock, each worker
//! waiting for its slot on its own reactor's timer), and `--obey-robots`
//! through one `twined::web::client::RobotsCache` (each origin's
//! `robots.txt` fetched once, whichever thread asks first; the others wait
//! for that fetch).

use std::sync::Arc;
use std::time::Duration;

use twined::defer::Deferred;
use twined::task::{Pacer, PacerOptions};
use twined::web::client::{Agent, BeforeRequest, RobotsCache, RobotsOptions, RobotsTxt, Url};

/// What the workers of every thread share to be polite.
#[derive(Clone, Default)]
pub struct Polite {
    /// `--delay` / `--rate`, when either is given.
    pacer: Option<Arc<Pacer>>,
    /// `--obey-robots`.
    robots: Option<RobotsCache>,
}

impl Polite {
    /// `delay` between requests to one host, at most `rate` requests per
    /// second overall, and `robots.txt` obeyed for `user_agent` (the
    /// client's default when `None`), fetched within `timeout` at most.
    pub fn new(
        delay: Duration,
        rate: Option<f64>,
        obey_robots: bool,
        user_agent: Option<&str>,
        timeout: Duration,
    ) -> Polite {
        let pacer = Pacer::new(PacerOptions { delay, rate });
        // With --obey-robots, a Crawl-delay needs a pacer even without
        // --delay or --rate.
        let pacer = (pacer.is_active() || obey_robots).then(|| Arc::new(pacer));
        let robots = obey_robots.then(|| {
            let defaults = RobotsOptions::default();
            RobotsCache::new(RobotsOptions {
                user_agent: user_agent.map_or(defaults.user_agent.clone(), str::to_string),
                timeout: timeout.min(defaults.timeout),
                pacer: pacer.clone(),
                ..defaults
            })
        });
        Polite { pacer, robots }
    }

    /// The hook that makes every request of `agent`-to-be polite, each
    /// redirect hop included: `robots.txt` asked for the hop's URL (a
    /// refusal fails the hop with kind `robots`, and nothing is sent), then
    /// a slot of the hop's host waited for, at least `max(--delay,
    /// Crawl-delay)` after the last request to that host and `1 / --rate`
    /// after any other, over all threads. `robots_agent` fetches the
    /// `robots.txt` files (an agent without this hook, on the same pool).
    /// The hook is untimed: `--timeout` counts a request's own work, not
    /// its waits here (a pacer slot always comes; robots.txt has its own
    /// timeout), or requests queued on one host would time out unsent.
    /// `None` without `--delay`, `--rate` or `--obey-robots`.
    pub fn before_request(&self, robots_agent: &Agent) -> Option<BeforeRequest> {
        if self.pacer.is_none() && self.robots.is_none() {
            return None;
        }
        let polite = self.clone();
        let agent = robots_agent.clone();
        Some(BeforeRequest::new(move |url: &Url| polite.gate(&agent, url)).untimed())
    }

    /// Admits one hop to `url`: its `robots.txt` first, then its host's slot.
    fn gate(&self, agent: &Agent, url: &Url) -> Deferred<()> {
        let gap = match &self.robots {
            None => twined::defer::succeed(Duration::ZERO),
            Some(robots) => robots
                .check(agent, url.as_str())
                .add_callback(|txt: Arc<RobotsTxt>| txt.crawl_delay().unwrap_or_default()),
        };
        let pacer = self.pacer.clone();
        let host = host_key(url);
        gap.and_then(move |gap: Duration| match pacer {
            None => twined::defer::succeed(()),
            Some(pacer) => pacer.wait_with(&host, gap),
        })
    }
}

/// The host a request goes to, for `--delay` (the port aside: one machine).
fn host_key(url: &Url) -> String {
    url.host_str()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}
