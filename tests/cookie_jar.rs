//! `CookieJar` on its own: RFC 6265 domain, path, expiry and Secure rules
//! as tables of (URL that set it, Set-Cookie, URL asked, expected Cookie),
//! the bounds against a flood of cookies, and load/save.

use std::io::Cursor;

use twined::web::client::{CookieJar, CookieJarError, CookieJarOptions};

/// One row: a fresh jar takes `set` from `from`; `expect` is each probed
/// URL's `Cookie` field.
struct Row {
    from: &'static str,
    set: &'static str,
    stored: bool,
    expect: &'static [(&'static str, Option<&'static str>)],
}

fn check(rows: &[Row]) {
    for row in rows {
        let jar = CookieJar::new();
        assert_eq!(
            jar.set_cookie(row.from, row.set),
            row.stored,
            "stored? {:?} from {}",
            row.set,
            row.from
        );
        for (url, want) in row.expect {
            assert_eq!(
                jar.cookie_header(url).as_deref(),
                *want,
                "{:?} from {} asked by {url}",
                row.set,
                row.from
            );
        }
    }
}

#[test]
fn domain_rules() {
    check(&[
        // No Domain: host-only, the exact host only.
        Row {
            from: "http://example.com/",
            set: "a=1",
            stored: true,
            expect: &[
                ("http://example.com/", Some("a=1")),
                ("http://example.com:8080/x", Some("a=1")),
                ("http://www.example.com/", None),
                ("http://other.com/", None),
            ],
        },
        // Domain=: the domain and its subdomains.
        Row {
            from: "http://www.example.com/",
            set: "a=1; Domain=example.com",
            stored: true,
            expect: &[
                ("http://example.com/", Some("a=1")),
                ("http://www.example.com/", Some("a=1")),
                ("http://a.b.example.com/", Some("a=1")),
                ("http://notexample.com/", None),
                ("http://example.com.evil.net/", None),
            ],
        },
        // A leading dot is ignored.
        Row {
            from: "http://example.com/",
            set: "a=1; Domain=.example.com",
            stored: true,
            expect: &[("http://www.example.com/", Some("a=1"))],
        },
        // A Domain the host does not domain-match is refused.
        Row {
            from: "http://example.com/",
            set: "a=1; Domain=other.com",
            stored: false,
            expect: &[("http://other.com/", None), ("http://example.com/", None)],
        },
        Row {
            from: "http://example.com/",
            set: "a=1; Domain=www.example.com",
            stored: false,
            expect: &[("http://www.example.com/", None)],
        },
        // Public suffixes: no supercookies.
        Row {
            from: "http://example.com/",
            set: "a=1; Domain=com",
            stored: false,
            expect: &[("http://example.com/", None), ("http://other.com/", None)],
        },
        Row {
            from: "http://shop.example.co.uk/",
            set: "a=1; Domain=co.uk",
            stored: false,
            expect: &[("http://bank.co.uk/", None)],
        },
        Row {
            from: "http://mine.github.io/",
            set: "a=1; Domain=github.io",
            stored: false,
            expect: &[("http://yours.github.io/", None)],
        },
        // ... unless the suffix is the host itself: then host-only.
        Row {
            from: "http://co.uk/",
            set: "a=1; Domain=co.uk",
            stored: true,
            expect: &[("http://co.uk/", Some("a=1")), ("http://bank.co.uk/", None)],
        },
        // A single label is a top-level domain, on the list or not.
        Row {
            from: "http://a.b.test/",
            set: "a=1; Domain=test",
            stored: false,
            expect: &[("http://other.test/", None), ("http://a.b.test/", None)],
        },
        Row {
            from: "http://a.b.test/",
            set: "a=1; Domain=b.test",
            stored: true,
            expect: &[
                ("http://c.b.test/", Some("a=1")),
                ("http://other.test/", None),
            ],
        },
        Row {
            from: "http://localhost:8080/",
            set: "a=1; Domain=localhost",
            stored: true,
            expect: &[
                ("http://localhost/", Some("a=1")),
                ("http://a.localhost/", None),
            ],
        },
        // IPv6 literals are hosts too.
        Row {
            from: "http://[::1]:8080/",
            set: "a=1",
            stored: true,
            expect: &[("http://[::1]/", Some("a=1")), ("http://[::2]/", None)],
        },
        // A registrable domain under a suffix is fine.
        Row {
            from: "http://www.example.co.uk/",
            set: "a=1; Domain=example.co.uk",
            stored: true,
            expect: &[("http://shop.example.co.uk/", Some("a=1"))],
        },
        // IP addresses: host-only, never a suffix match.
        Row {
            from: "http://127.0.0.1:8080/",
            set: "a=1",
            stored: true,
            expect: &[
                ("http://127.0.0.1:9/", Some("a=1")),
                ("http://127.0.0.2/", None),
            ],
        },
        Row {
            from: "http://127.0.0.1/",
            set: "a=1; Domain=0.0.1",
            stored: false,
            expect: &[("http://127.0.0.1/", None)],
        },
        // Not a cookie at all.
        Row {
            from: "http://example.com/",
            set: "no equals sign",
            stored: false,
            expect: &[("http://example.com/", None)],
        },
    ]);
}

#[test]
fn path_rules() {
    check(&[
        Row {
            from: "http://example.com/",
            set: "a=1; Path=/admin",
            stored: true,
            expect: &[
                ("http://example.com/admin", Some("a=1")),
                ("http://example.com/admin/users?x=1", Some("a=1")),
                ("http://example.com/administrator", None),
                ("http://example.com/", None),
                ("http://example.com/other/admin", None),
            ],
        },
        // No Path: the directory of the URL that set it.
        Row {
            from: "http://example.com/docs/page.html",
            set: "a=1",
            stored: true,
            expect: &[
                ("http://example.com/docs/other", Some("a=1")),
                ("http://example.com/", None),
            ],
        },
    ]);
}

#[test]
fn secure_cookies_go_over_https_only() {
    check(&[
        Row {
            from: "https://example.com/",
            set: "s=1; Secure",
            stored: true,
            expect: &[
                ("https://example.com/", Some("s=1")),
                ("http://example.com/", None),
            ],
        },
        // A Secure cookie from plain http is ignored (RFC 6265bis).
        Row {
            from: "http://example.com/",
            set: "s=1; Secure",
            stored: false,
            expect: &[("https://example.com/", None)],
        },
        // Loopback http is not "secure" here, unlike in browsers.
        Row {
            from: "https://localhost/",
            set: "s=1; Secure",
            stored: true,
            expect: &[
                ("https://localhost:8443/", Some("s=1")),
                ("http://localhost/", None),
            ],
        },
        // HttpOnly changes nothing for an HTTP client.
        Row {
            from: "http://example.com/",
            set: "h=1; HttpOnly",
            stored: true,
            expect: &[("http://example.com/", Some("h=1"))],
        },
    ]);
}

#[test]
fn expiry() {
    let jar = CookieJar::new();
    let url = "http://example.com/";
    assert!(jar.set_cookie(url, "a=1; Max-Age=3600"));
    assert!(jar.set_cookie(url, "b=2; Expires=Wed, 01 Jan 2200 00:00:00 GMT"));
    assert!(jar.set_cookie(url, "c=3"));
    assert_eq!(jar.cookie_header(url).as_deref(), Some("a=1; b=2; c=3"));
    // Max-Age=0 deletes.
    assert!(jar.set_cookie(url, "a=gone; Max-Age=0"));
    // An Expires in the past deletes.
    assert!(jar.set_cookie(url, "b=gone; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
    // A negative Max-Age deletes too.
    assert!(jar.set_cookie(url, "c=gone; Max-Age=-1"));
    assert_eq!(jar.cookie_header(url), None);
    assert_eq!(jar.len(), 0);
    // Max-Age wins over Expires.
    assert!(jar.set_cookie(
        url,
        "d=4; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    ));
    assert_eq!(jar.cookie_header(url).as_deref(), Some("d=4"));
    // Extreme dates neither panic nor wrap around to the past.
    assert!(jar.set_cookie(url, "f=6; Max-Age=99999999999999999999999"));
    assert!(jar.set_cookie(url, "g=7; Expires=Fri, 31 Dec 9999 23:59:59 GMT"));
    assert!(!jar.set_cookie(url, "h=8; Max-Age=-99999999999999999999999"));
    assert!(jar.set_cookie(url, "i=9; Expires=garbage"));
    assert_eq!(
        jar.cookie_header(url).as_deref(),
        Some("d=4; f=6; g=7; i=9")
    );
    let mut file = Vec::new();
    jar.save(&mut file).unwrap();
    let loaded = CookieJar::load(file.as_slice()).unwrap();
    assert_eq!(loaded.cookie_header(url).as_deref(), Some("d=4; f=6; g=7"));
    for name in ["d", "f", "g", "i"] {
        jar.set_cookie(url, &format!("{name}=x; Max-Age=0"));
    }
    // A new cookie that is already expired is not stored.
    assert!(!jar.set_cookie(url, "e=5; Max-Age=0"));
    assert_eq!(jar.len(), 0);
}

#[test]
fn replacing_and_ordering() {
    let jar = CookieJar::new();
    let url = "http://example.com/a/b";
    jar.set_cookie(url, "x=1; Path=/");
    jar.set_cookie(url, "y=1; Path=/a/b");
    jar.set_cookie(url, "z=1; Path=/a");
    // Longer paths first (RFC 6265 section 5.4).
    assert_eq!(jar.cookie_header(url).as_deref(), Some("y=1; z=1; x=1"));
    // Same name, domain and path: replaced, not added.
    jar.set_cookie(url, "x=2; Path=/");
    assert_eq!(jar.len(), 3);
    assert_eq!(
        jar.cookie_header("http://example.com/").as_deref(),
        Some("x=2")
    );
    jar.clear();
    assert!(jar.is_empty());
}

#[test]
fn a_cookie_past_the_size_limit_is_ignored() {
    let jar = CookieJar::new();
    let url = "http://example.com/";
    let at_limit = format!("a={}", "v".repeat(4096 - 2));
    let past = format!("b={}", "v".repeat(4096 - 1));
    assert!(jar.set_cookie(url, &at_limit));
    assert!(!jar.set_cookie(url, &past));
    assert_eq!(jar.len(), 1);
    let small = CookieJar::with_options(CookieJarOptions {
        max_cookie_size: 10,
        ..Default::default()
    });
    assert!(!small.set_cookie(url, "name=0123456789"));
}

#[test]
fn thousands_of_cookies_from_one_site_keep_the_newest_fifty() {
    let jar = CookieJar::new();
    // Subdomains of one site count together.
    for i in 0..5000 {
        let host = ["a.example.com", "b.example.com", "example.com"][i % 3];
        assert!(jar.set_cookie(&format!("http://{host}/"), &format!("c{i}=v")));
    }
    assert_eq!(jar.len(), 50);
    let sent = jar.cookie_header("http://example.com/").unwrap();
    // example.com got every third cookie; of the newest 50 it holds 16.
    assert_eq!(sent.split("; ").count(), 16);
    assert!(sent.contains("c4952=v") && sent.contains("c4997=v"));
    assert!(!sent.contains("c4949=v"), "the oldest were evicted: {sent}");
    // Another site is not pushed out by this one.
    jar.set_cookie("http://other.org/", "mine=1");
    assert_eq!(
        jar.cookie_header("http://other.org/").as_deref(),
        Some("mine=1")
    );
}

#[test]
fn the_whole_jar_is_bounded_across_sites() {
    let jar = CookieJar::new();
    for site in 0..100 {
        for i in 0..50 {
            jar.set_cookie(&format!("http://site{site}.com/"), &format!("c{i}=v"));
        }
    }
    assert_eq!(jar.len(), 3000);
    // The oldest sites went first.
    assert_eq!(jar.cookie_header("http://site0.com/"), None);
    assert_eq!(jar.cookie_header("http://site39.com/"), None);
    assert_eq!(
        jar.cookie_header("http://site99.com/")
            .unwrap()
            .split("; ")
            .count(),
        50
    );
    let small = CookieJar::with_options(CookieJarOptions {
        max_per_site: 2,
        max_cookies: 3,
        ..Default::default()
    });
    for (host, name) in [
        ("a.com", "1"),
        ("a.com", "2"),
        ("a.com", "3"),
        ("b.com", "4"),
        ("c.com", "5"),
    ] {
        small.set_cookie(&format!("http://{host}/"), &format!("n{name}=v"));
    }
    assert_eq!(small.len(), 3);
    assert_eq!(
        small.cookie_header("http://a.com/").as_deref(),
        Some("n3=v")
    );
    assert_eq!(
        small.cookie_header("http://c.com/").as_deref(),
        Some("n5=v")
    );
}

#[test]
fn expired_cookies_are_evicted_before_live_ones() {
    let jar = CookieJar::with_options(CookieJarOptions {
        max_per_site: 2,
        ..Default::default()
    });
    let url = "http://example.com/";
    jar.set_cookie(url, "old=1");
    // Expires one second from now.
    jar.set_cookie(url, "brief=1; Max-Age=1");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    jar.set_cookie(url, "new=1");
    assert_eq!(jar.cookie_header(url).as_deref(), Some("old=1; new=1"));
}

#[test]
fn save_and_load_round_trip() {
    let jar = CookieJar::new();
    jar.set_cookie("https://example.com/", "persist=1; Max-Age=3600; Secure");
    jar.set_cookie(
        "http://www.example.com/",
        "wide=2; Domain=example.com; Expires=Wed, 01 Jan 2200 00:00:00 GMT; Path=/x",
    );
    jar.set_cookie("http://example.com/", "session=3");
    let mut file = Vec::new();
    jar.save(&mut file).unwrap();
    let loaded = CookieJar::load(file.as_slice()).unwrap();
    assert_eq!(loaded.len(), 2, "session cookies are not saved");
    assert_eq!(
        loaded.cookie_header("https://example.com/").as_deref(),
        Some("persist=1")
    );
    assert_eq!(loaded.cookie_header("http://example.com/").as_deref(), None);
    assert_eq!(
        loaded
            .cookie_header("http://sub.example.com/x/y")
            .as_deref(),
        Some("wide=2")
    );
    // Asked for, session cookies are saved too.
    let mut all = Vec::new();
    jar.save_including_session(&mut all).unwrap();
    let loaded = CookieJar::load(all.as_slice()).unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(
        loaded.cookie_header("http://example.com/").as_deref(),
        Some("session=3")
    );
}

#[test]
fn loading_applies_the_bounds_and_refuses_garbage() {
    let jar = CookieJar::new();
    for i in 0..10 {
        jar.set_cookie("http://example.com/", &format!("c{i}=v; Max-Age=600"));
    }
    let mut file = Vec::new();
    jar.save(&mut file).unwrap();
    let small = CookieJar::load_with_options(
        file.as_slice(),
        CookieJarOptions {
            max_per_site: 4,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(small.len(), 4);
    // An empty file is an empty jar.
    assert!(CookieJar::load(&b""[..]).unwrap().is_empty());
    assert!(CookieJar::load(&b"\n"[..]).unwrap().is_empty());
    let bad = CookieJar::load(&b"{not json"[..]).unwrap_err();
    assert!(matches!(bad, CookieJarError::Format(_)), "{bad:?}");
    assert!(
        bad.to_string().starts_with("not a cookie jar file"),
        "{bad}"
    );
    let huge = CookieJar::load_with_options(
        Cursor::new(vec![b' '; 200_000]),
        CookieJarOptions {
            max_cookies: 1,
            max_cookie_size: 10,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(huge, CookieJarError::TooLarge { .. }), "{huge:?}");
}

#[test]
fn a_write_error_is_an_io_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let jar = CookieJar::new();
    jar.set_cookie("http://example.com/", "a=1; Max-Age=60");
    let error = jar.save(Broken).unwrap_err();
    assert!(matches!(error, CookieJarError::Io(_)), "{error:?}");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn one_jar_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CookieJar>();
    let jar = CookieJar::new();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let jar = jar.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    jar.set_cookie(&format!("http://site{t}.com/"), &format!("c{i}=v"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(jar.len(), 40);
}
#[test]
fn a_loaded_jar_keeps_its_order_and_drops_public_suffix_cookies() {
    let jar = CookieJar::with_options(CookieJarOptions {
        max_per_site: 3,
        ..Default::default()
    });
    let url = "http://example.com/";
    for name in ["first", "second", "third"] {
        jar.set_cookie(url, &format!("{name}=v; Max-Age=600"));
    }
    let mut file = Vec::new();
    jar.save(&mut file).unwrap();
    let loaded = CookieJar::load_with_options(file.as_slice(), jar.options()).unwrap();
    assert_eq!(
        loaded.cookie_header(url).as_deref(),
        Some("first=v; second=v; third=v")
    );
    // The oldest goes first, as it would have without the round trip.
    loaded.set_cookie(url, "fourth=v");
    assert_eq!(
        loaded.cookie_header(url).as_deref(),
        Some("second=v; third=v; fourth=v")
    );
    // A hand-edited file cannot plant a supercookie.
    let planted = r#"[{"raw_cookie": "a=1; Domain=com; Max-Age=600", "path": ["/", false],
        "domain": {"Suffix": "com"}, "expires": {"AtUtc": "2200-01-01T00:00:00Z"}},
        {"raw_cookie": "b=2; Domain=example.com; Max-Age=600", "path": ["/", false],
        "domain": {"Suffix": "example.com"}, "expires": {"AtUtc": "2200-01-01T00:00:00Z"}}]"#;
    let loaded = CookieJar::load(planted.as_bytes()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded.cookie_header("http://other.com/"), None);
    assert_eq!(
        loaded.cookie_header("http://www.example.com/").as_deref(),
        Some("b=2")
    );
}
