//! Politeness, shared by every worker thread: `--delay` and `--rate` through
//! one `twined::task::Pacer` (slots reserved under one lock, each worker
//! waiting for its slot on its own reactor's timer), and `--obey-robots`
//! through one `twined::web::client::RobotsCache` (each origin's
//! `robots.txt` fetched once, whichever thread asks first; the others wait
//! for that fetch).

use std::sync::Arc;
use std::time::Duration;

use twined::defer::Deferred;
use twined::task::{Pacer, PacerOptions};
use twined::web::client::{Agent, RobotsCache, RobotsOptions, RobotsTxt};
use url::Url;

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

    /// Whether `url` may be fetched: fires with the least gap its host asks
    /// for (its `robots.txt` Crawl-delay, zero without one), or fails with
    /// the `robots` error that refuses it. Without `--obey-robots`, fires
    /// at once with zero.
    pub fn admit(&self, agent: &Agent, url: &str) -> Deferred<Duration> {
        match &self.robots {
            None => twined::defer::succeed(Duration::ZERO),
            Some(robots) => robots
                .check(agent, url)
                .add_callback(|txt: Arc<RobotsTxt>| txt.crawl_delay().unwrap_or_default()),
        }
    }

    /// Fires when a request to `url`'s host may start: at least
    /// `max(--delay, gap)` after the last one to that host and `1 / --rate`
    /// after any other, over all threads. At once without a pacer.
    pub fn pace(&self, url: &str, gap: Duration) -> Deferred<()> {
        match &self.pacer {
            None => twined::defer::succeed(()),
            Some(pacer) => pacer.wait_with(&host_key(url), gap),
        }
    }
}

/// The host a request goes to, for `--delay` (the port aside: one machine).
fn host_key(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}
