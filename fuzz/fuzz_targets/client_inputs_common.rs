//! Checks shared by the `client_inputs` fuzz target and its seed test: what
//! a hostile server or a careless setting hands the web client (a proxy
//! setting, a `NO_PROXY` list, a `Retry-After`, a `robots.txt`, a
//! `Set-Cookie`, a SOCKS5 proxy's replies) never panics, and each answer
//! keeps its promises.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use twined::web::client::robots::RobotsTxt;
use twined::web::client::socks::{Handshake, Step, Target};
use twined::web::client::{parse_retry_after, CookieJar, NoProxy, Proxy, DEFAULT_BACKOFF_CAP};

/// Splits `data` at its first NUL: a setting (text) and a body (bytes).
fn parts(data: &[u8]) -> (String, &[u8]) {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..cut]).into_owned();
    (text, data.get(cut + 1..).unwrap_or(&[]))
}

pub fn check_client_inputs(data: &[u8]) {
    let (text, body) = parts(data);

    // A proxy setting: parsed or refused; never shows a password.
    if let Ok(proxy) = Proxy::parse(&text) {
        let shown = format!("{proxy} {proxy:?}");
        if let Some((_, rest)) = text.split_once("://") {
            if let Some((userinfo, _)) = rest.split_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    if password.len() >= 4 {
                        assert!(!shown.contains(password), "{shown}");
                    }
                }
            }
        }
    }

    // A SOCKS5 proxy's replies (the body, in three parts cut where its
    // last two bytes say), with and without credentials: a step or an
    // error, never a panic, and nothing read once the handshake is over.
    for credentials in [None, Some(("user", "password"))] {
        let target = Target::Name("example.org".into());
        let Ok((mut handshake, _)) =
            Handshake::new(&target, 443, "example.org:443".into(), credentials)
        else {
            panic!("a short name is refused");
        };
        let at = |back: usize| {
            body.len()
                .checked_sub(back)
                .map_or(0, |i| usize::from(body[i]) % (body.len() + 1))
        };
        let (a, b) = (at(2).min(at(1)), at(2).max(at(1)));
        let mut over = false;
        for part in [&body[..a], &body[a..b], &body[b..]] {
            let step = handshake.receive(part);
            if over {
                assert!(step.is_err(), "read after the end: {step:?}");
            }
            over |= matches!(step, Ok(Step::Done) | Err(_));
        }
    }

    // A NO_PROXY list against a few hosts.
    let list = NoProxy::parse(&text);
    for host in [
        "example.org",
        "a.example.org",
        "127.0.0.1",
        "[::1]",
        "::1",
        "",
    ] {
        let _ = list.matches(host);
    }

    // Retry-After: a wait or nothing, never a panic or an overflow.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(wait) = parse_retry_after(&text, now) {
        let _ = wait.min(DEFAULT_BACKOFF_CAP);
    }

    // robots.txt: any body parses; the verdicts are answers.
    let robots = RobotsTxt::parse(body, "twined");
    for url in [
        "http://example.org/",
        "http://example.org/a/b?c",
        "not a url",
    ] {
        let _ = robots.is_allowed(url);
    }
    let _ = robots.crawl_delay();

    // Set-Cookie: stored or ignored, and the jar's header stays a header.
    let jar = CookieJar::new();
    for url in ["https://a.example.org/p/q", "http://127.0.0.1:8080/"] {
        let _ = jar.set_cookie(url, &text);
        if let Some(header) = jar.cookie_header(url) {
            assert!(!header.contains(['\r', '\n']), "{header:?}");
        }
    }
}
