//! The crawl example's politeness flags (`--obey-robots`, `--delay`,
//! `--rate`), run as a child process against servers this test starts on
//! its own reactor, which log every request's path and arrival time.

mod support;

#[path = "support/examples.rs"]
mod examples;

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use examples::{example, run_with_reactor};
use twined::defer::{Deferred, Failure};
use twined::reactor;
use twined::task;
use twined::web::server::{Request, Response, Site};

/// How the test site answers `/robots.txt`.
#[derive(Clone)]
enum Robots {
    Body(Vec<u8>),
    Status(u16),
    /// Answers after a minute: never, for the crawler.
    Never,
}

/// Every request's path and arrival time.
type Log = Rc<RefCell<Vec<(String, Instant)>>>;

/// A site that answers `/robots.txt` as told, `/hop/REST` with a redirect
/// to `/REST`, `/off/PORT/REST` with one to `http://127.0.0.1:PORT/REST`,
/// and every other path with 200.
fn site(robots: Robots) -> (String, reactor::Port, Log) {
    let log: Log = Rc::default();
    let seen = log.clone();
    let site = Site::new(move |req: Request| -> Deferred<Response> {
        seen.borrow_mut()
            .push((req.path().to_string(), Instant::now()));
        if let Some(rest) = req.path().strip_prefix("/hop") {
            return twined::defer::succeed(Response::new(302).header("Location", rest));
        }
        if let Some((port, rest)) = req
            .path()
            .strip_prefix("/off/")
            .and_then(|p| p.split_once('/'))
        {
            let to = format!("http://127.0.0.1:{port}/{rest}");
            return twined::defer::succeed(Response::new(302).header("Location", to));
        }
        if req.path() != "/robots.txt" {
            return twined::defer::succeed(Response::new(200).body("page"));
        }
        match robots.clone() {
            Robots::Body(body) => twined::defer::succeed(Response::new(200).body(body)),
            Robots::Status(status) => twined::defer::succeed(Response::new(status).body("no")),
            Robots::Never => task::defer_later(Duration::from_secs(60), || {
                Ok::<_, Failure>(Response::new(200).body(""))
            }),
        }
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    (format!("http://{}", port.address()), port, log)
}

/// `(url, error kind)` of each output line.
fn kinds(stdout: &[u8]) -> Vec<(String, Option<String>, Option<String>)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["url"].as_str().unwrap_or("").to_string(),
                v["error"]["kind"].as_str().map(str::to_string),
                v["error"]["message"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn kind_of<'a>(got: &'a [(String, Option<String>, Option<String>)], url: &str) -> Option<&'a str> {
    got.iter()
        .find(|(u, _, _)| u == url)
        .unwrap_or_else(|| panic!("no line for {url}"))
        .1
        .as_deref()
}

fn crawl(args: &[&str], urls: &[String]) -> std::process::Output {
    let mut cmd = Command::new(example("crawl"));
    cmd.arg("-q").args(args).args(urls);
    run_with_reactor(cmd, None, Duration::from_secs(60))
}

/// The `attempts` of the line for `url`.
fn attempts_of(stdout: &[u8], url: &str) -> u64 {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|v| v["url"] == url)
        .and_then(|v| v["attempts"].as_u64())
        .unwrap_or_else(|| panic!("no attempts for {url}"))
}

fn paths(log: &Log, path: &str) -> usize {
    log.borrow().iter().filter(|(p, _)| p == path).count()
}

#[test]
fn robots_disallow_allow_and_the_longest_match() {
    let body = b"User-agent: *\nDisallow: /private\nAllow: /private/open\n".to_vec();
    let (base, port, log) = site(Robots::Body(body));
    let urls = [
        format!("{base}/public"),
        format!("{base}/private/secret"),
        format!("{base}/private/open/page"),
    ];
    let out = crawl(&["--obey-robots"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(kind_of(&got, &urls[0]), None);
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    assert_eq!(kind_of(&got, &urls[2]), None);
    let message = got[..]
        .iter()
        .find(|(u, _, _)| u == &urls[1])
        .and_then(|(_, _, m)| m.clone())
        .unwrap();
    assert!(message.contains("robots.txt"), "{message}");
    // The refused URL was never requested.
    assert_eq!(paths(&log, "/private/secret"), 0);
    assert_eq!(out.status.code(), Some(1));
    port.stop_listening();
}

#[test]
fn the_user_agents_own_group_applies() {
    let body = b"User-agent: *\nDisallow: /\n\nUser-agent: politebot\nDisallow: /no\n".to_vec();
    let (base, port, _log) = site(Robots::Body(body));
    let urls = [format!("{base}/yes"), format!("{base}/no")];
    let out = crawl(
        &["--obey-robots", "--user-agent", "PoliteBot/1.0 (+test)"],
        &urls,
    );
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), None);
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    // A User-Agent given with -H picks the group too.
    let out = crawl(&["--obey-robots", "-H", "User-Agent: politebot/2"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), None);
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    // The default user agent falls in the `*` group: everything refused.
    let out = crawl(&["--obey-robots"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), Some("robots"));
    port.stop_listening();
}

#[test]
fn robots_txt_is_fetched_once_per_origin_under_two_workers() {
    let (a, port_a, log_a) = site(Robots::Body(b"User-agent: *\nDisallow: /x\n".to_vec()));
    let (b, port_b, log_b) = site(Robots::Status(404));
    let mut urls: Vec<String> = (0..20).map(|i| format!("{a}/p{i}")).collect();
    urls.extend((0..20).map(|i| format!("{b}/p{i}")));
    urls.push(format!("{a}/x/1"));
    let out = crawl(&["--obey-robots", "-j", "2", "-c", "8"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(got.len(), urls.len());
    assert_eq!(paths(&log_a, "/robots.txt"), 1);
    assert_eq!(paths(&log_b, "/robots.txt"), 1);
    assert_eq!(got.iter().filter(|(_, k, _)| k.is_some()).count(), 1);
    assert_eq!(kind_of(&got, &format!("{a}/x/1")), Some("robots"));
    port_a.stop_listening();
    port_b.stop_listening();
}

#[test]
fn a_404_allows_everything_and_a_500_disallows_everything() {
    let (allow, port_allow, _) = site(Robots::Status(404));
    let (deny, port_deny, log_deny) = site(Robots::Status(500));
    let urls = [format!("{allow}/a"), format!("{deny}/a")];
    let out = crawl(&["--obey-robots"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), None);
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    let message = got[1..]
        .iter()
        .chain(&got[..1])
        .find(|(u, _, _)| u == &urls[1]);
    let message = message.and_then(|(_, _, m)| m.clone()).unwrap();
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(paths(&log_deny, "/a"), 0);
    port_allow.stop_listening();
    port_deny.stop_listening();
}

#[test]
fn a_robots_txt_that_never_comes_disallows_after_the_timeout() {
    let (base, port, log) = site(Robots::Never);
    let urls = [format!("{base}/a"), format!("{base}/b")];
    let started = Instant::now();
    let out = crawl(&["--obey-robots", "--timeout", "0.5"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), Some("robots"));
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    assert!(
        got[0].2.as_deref().unwrap_or("").contains("timed out"),
        "{:?}",
        got[0].2
    );
    assert_eq!(paths(&log, "/robots.txt"), 1);
    assert_eq!(paths(&log, "/a") + paths(&log, "/b"), 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    port.stop_listening();
}

#[test]
fn only_the_first_500_kib_of_a_large_robots_txt_count() {
    let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
    while body.len() < 600 * 1024 {
        body.extend_from_slice(b"# padding padding padding padding padding padding\n");
    }
    body.extend_from_slice(b"Disallow: /late\n");
    let (base, port, _log) = site(Robots::Body(body));
    let urls = [format!("{base}/early"), format!("{base}/late")];
    let out = crawl(&["--obey-robots"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), Some("robots"));
    assert_eq!(kind_of(&got, &urls[1]), None);
    port.stop_listening();
}

/// The gaps between arrivals of the requests for `prefix` paths.
fn gaps(log: &Log, prefix: &str) -> Vec<Duration> {
    let times: Vec<Instant> = log
        .borrow()
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(_, t)| *t)
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Arrival times are stamped by this test's server, not by the crawler
/// when its slot comes: the pacer spaces the slots exactly, but between a
/// slot and the request's arrival lie a connect, a write and two busy
/// reactors, so a request that left on time can arrive later than the one
/// after it would suggest (a few ms here, tens of ms on a loaded machine).
/// The gaps are asserted against the delay less this much, never more.
const SLACK: Duration = Duration::from_millis(50);

#[test]
fn crawl_delay_spaces_the_requests_to_its_host() {
    let body = b"User-agent: *\nCrawl-delay: 0.5\n".to_vec();
    let (base, port, log) = site(Robots::Body(body));
    let urls: Vec<String> = (0..4).map(|i| format!("{base}/p{i}")).collect();
    let out = crawl(&["--obey-robots", "-j", "2", "-c", "4"], &urls);
    assert_eq!(out.status.code(), Some(0));
    let gaps = gaps(&log, "/p");
    assert_eq!(gaps.len(), 3);
    for gap in gaps {
        assert!(gap + SLACK >= Duration::from_millis(500), "{gap:?}");
    }
    port.stop_listening();
}

#[test]
fn delay_spaces_the_requests_to_one_host_under_two_workers() {
    let (base, port, log) = site(Robots::Status(404));
    let urls: Vec<String> = (0..5).map(|i| format!("{base}/p{i}")).collect();
    let out = crawl(&["--delay", "0.3", "-j", "2", "-c", "4"], &urls);
    assert_eq!(out.status.code(), Some(0));
    let gaps = gaps(&log, "/p");
    assert_eq!(gaps.len(), 4);
    for gap in gaps {
        assert!(gap + SLACK >= Duration::from_millis(300), "{gap:?}");
    }
    port.stop_listening();
}

#[test]
fn rate_bounds_the_requests_per_second_overall() {
    let (a, port_a, log_a) = site(Robots::Status(404));
    let (b, port_b, log_b) = site(Robots::Status(404));
    let mut urls: Vec<String> = (0..3).map(|i| format!("{a}/p{i}")).collect();
    urls.extend((0..3).map(|i| format!("{b}/p{i}")));
    let out = crawl(&["--rate", "5", "-j", "2", "-c", "6"], &urls);
    assert_eq!(out.status.code(), Some(0));
    let mut times: Vec<Instant> = log_a
        .borrow()
        .iter()
        .chain(log_b.borrow().iter())
        .map(|(_, t)| *t)
        .collect();
    times.sort();
    assert_eq!(times.len(), 6);
    // 6 requests at 5 per second: at least 5 intervals of 0.2 s.
    let span = times[5] - times[0];
    assert!(span + SLACK >= Duration::from_secs(1), "{span:?}");
    port_a.stop_listening();
    port_b.stop_listening();
}

#[test]
fn politeness_flags_out_of_range_are_usage_errors() {
    for (flag, value) in [
        ("--delay", "-1"),
        ("--delay", "nan"),
        ("--rate", "0"),
        ("--rate", "2000000"),
    ] {
        let out = Command::new(example("crawl"))
            .arg(format!("{flag}={value}"))
            .arg("http://127.0.0.1:9/")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag));
    }
}

#[test]
fn a_redirect_to_a_disallowed_path_is_refused_and_never_requested() {
    let body = b"User-agent: *\nDisallow: /private\n".to_vec();
    let (base, port, log) = site(Robots::Body(body));
    let urls = [
        format!("{base}/hop/private/x"),
        format!("{base}/private/y"),
        format!("{base}/hop/public"),
    ];
    let out = crawl(&["--obey-robots"], &urls);
    assert_eq!(out.status.code(), Some(1));
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), Some("robots"));
    assert_eq!(kind_of(&got, &urls[1]), Some("robots"));
    assert_eq!(kind_of(&got, &urls[2]), None);
    let message = got
        .iter()
        .find(|(u, _, _)| u == &urls[0])
        .unwrap()
        .2
        .clone();
    assert!(message.unwrap_or_default().contains("/private/x"));
    // The hop was asked; the path it led to never was.
    assert_eq!(paths(&log, "/hop/private/x"), 1);
    assert_eq!(paths(&log, "/private/x"), 0);
    assert_eq!(paths(&log, "/private/y"), 0);
    assert_eq!(paths(&log, "/public"), 1);
    assert_eq!(paths(&log, "/robots.txt"), 1);
    // The refused first URL sent nothing; the refused hop's URL sent one.
    assert_eq!(attempts_of(&out.stdout, &urls[0]), 1);
    assert_eq!(attempts_of(&out.stdout, &urls[1]), 0);
    port.stop_listening();
}

#[test]
fn a_redirect_to_another_origin_obeys_that_origins_robots_txt() {
    let (base, port, log) = site(Robots::Status(404));
    let (other, other_port, other_log) =
        site(Robots::Body(b"User-agent: *\nDisallow: /\n".to_vec()));
    let other_port_number = other.rsplit(':').next().unwrap().to_string();
    let urls = [format!("{base}/off/{other_port_number}/page")];
    let out = crawl(&["--obey-robots"], &urls);
    let got = kinds(&out.stdout);
    assert_eq!(kind_of(&got, &urls[0]), Some("robots"));
    assert_eq!(paths(&log, &format!("/off/{other_port_number}/page")), 1);
    assert_eq!(paths(&other_log, "/robots.txt"), 1);
    assert_eq!(paths(&other_log, "/page"), 0);
    port.stop_listening();
    other_port.stop_listening();
}

#[test]
fn a_redirect_hop_to_the_same_host_waits_for_the_delay() {
    let (base, port, log) = site(Robots::Status(404));
    let urls = [format!("{base}/hop/landing")];
    let out = crawl(&["--delay", "0.4"], &urls);
    assert_eq!(out.status.code(), Some(0));
    let times: Vec<Instant> = log.borrow().iter().map(|(_, t)| *t).collect();
    let paths: Vec<String> = log.borrow().iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths, ["/hop/landing", "/landing"]);
    let gap = times[1] - times[0];
    assert!(gap + SLACK >= Duration::from_millis(400), "{gap:?}");
    port.stop_listening();
}

/// `--timeout` counts a request's own work, not its wait for its host's
/// slot: six requests queued 0.2 s apart on one host all finish under a
/// 0.5 s timeout, the last after waiting 1 s.
#[test]
fn requests_queued_for_one_hosts_slots_do_not_time_out_waiting() {
    let (base, port, log) = site(Robots::Status(404));
    let urls: Vec<String> = (0..6).map(|i| format!("{base}/q{i}")).collect();
    let out = crawl(
        &["--delay", "0.2", "-c", "6", "-j", "1", "--timeout", "0.5"],
        &urls,
    );
    let got = kinds(&out.stdout);
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|(_, kind, _)| kind.is_none()), "{got:?}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(gaps(&log, "/q").len(), 5);
    port.stop_listening();
}
