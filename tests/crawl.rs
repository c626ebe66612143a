//! The crawl example's command-line contract, run as a child process against
//! servers this test starts on its own reactor.

#[path = "support/certs.rs"]
mod certs;
mod support;

#[path = "support/examples.rs"]
mod examples;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/socks.rs"]
mod socks;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use examples::{example, interrupt_with_reactor, run_with_reactor};
use support::{raw_server, Then};
use twined::defer::{Deferred, Failure};
use twined::protocol::{Protocol, Transport};
use twined::reactor;
use twined::task;
use twined::web::server::{Request, Response, Site};

fn site() -> reactor::Port {
    let site = Site::new(|req: Request| -> Deferred<Response> {
        match req.path() {
            "/slow" => task::defer_later(Duration::from_secs(3), || {
                Ok::<_, Failure>(Response::new(200).body("late"))
            }),
            "/404" => twined::defer::succeed(Response::new(404).body("missing")),
            "/500" => twined::defer::succeed(Response::new(500).body("broken")),
            _ => twined::defer::succeed(
                Response::new(200)
                    .header("Content-Type", "text/plain")
                    .body("fine"),
            ),
        }
    });
    reactor::listen_tcp("127.0.0.1:0", site).unwrap()
}

/// A server that resets every connection as soon as the request arrives.
struct Reset(Option<Transport>);

impl Protocol for Reset {
    fn connection_made(&mut self, t: Transport) {
        self.0 = Some(t);
    }
    fn data_received(&mut self, _data: &[u8]) {
        if let Some(t) = &self.0 {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc");
            t.abort_connection();
        }
    }
}

struct Line {
    url: String,
    status: Option<u64>,
    bytes: u64,
    kind: Option<String>,
    message: Option<String>,
}

fn lines(stdout: &[u8]) -> Vec<Line> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            for key in [
                "url",
                "final_url",
                "status",
                "bytes",
                "elapsed_ms",
                "redirects",
                "content_type",
                "error",
            ] {
                assert!(v.get(key).is_some(), "{key} missing in {l}");
            }
            Line {
                url: v["url"].as_str().unwrap_or("").to_string(),
                status: v["status"].as_u64(),
                bytes: v["bytes"].as_u64().unwrap_or(0),
                kind: v["error"]["kind"].as_str().map(str::to_string),
                message: v["error"]["message"].as_str().map(str::to_string),
            }
        })
        .collect()
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[test]
fn faults_end_in_the_right_kinds_and_exit_status_1() {
    let good = site();
    let base = format!("http://{}", good.address());
    let reset = reactor::listen_tcp("127.0.0.1:0", |_p: SocketAddr| Reset(None)).unwrap();
    let (garbage, garbage_port) =
        raw_server(vec![b"SPAM SPAM\r\n\r\n"], Duration::ZERO, Then::Close);
    let (short, short_port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        Duration::ZERO,
        Then::Close,
    );
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let urls = [
        (format!("{base}/ok"), None),
        (format!("{base}/404"), Some("http")),
        (format!("{base}/500"), Some("http")),
        (format!("{base}/slow"), Some("timeout")),
        (format!("http://{}/", reset.address()), Some("io")),
        (format!("{garbage}/"), Some("protocol")),
        (format!("{short}/"), Some("protocol")),
        (format!("http://{refused}/"), Some("connect")),
        ("not a url".to_string(), Some("url")),
        ("http://no-such-host.invalid/".to_string(), Some("dns")),
    ];
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--timeout", "0.5", "-c", "4"]);
    cmd.args(urls.iter().map(|(u, _)| u.as_str()));
    let out = run_with_reactor(cmd, None, Duration::from_secs(60));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), urls.len(), "one line per URL");
    for (url, kind) in &urls {
        let line = got
            .iter()
            .find(|l| &l.url == url)
            .expect("a line for each URL");
        assert_eq!(line.kind.as_deref(), *kind, "{url}: {:?}", line.message);
        if let Some(message) = &line.message {
            assert!(!message.is_empty());
        }
    }
    let l404 = got.iter().find(|l| l.url.ends_with("/404")).unwrap();
    assert_eq!(l404.status, Some(404));
    let ok = got.iter().find(|l| l.url.ends_with("/ok")).unwrap();
    assert_eq!((ok.status, ok.bytes), (Some(200), 4));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_line(&out.stderr), "ok=1 failed=9");
    for port in [good, reset, garbage_port, short_port] {
        port.stop_listening();
    }
}

#[test]
fn urls_from_stdin_and_repeat() {
    let good = site();
    let base = format!("http://{}", good.address());
    let input = format!("# a comment\n\n{base}/a\n{base}/b\n");
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-i", "-", "--repeat", "3"]);
    let out = run_with_reactor(cmd, Some(input.into_bytes()), Duration::from_secs(30));
    assert_eq!(lines(&out.stdout).len(), 6);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(last_line(&out.stderr), "ok=6 failed=0");
    good.stop_listening();
}

#[test]
fn save_keeps_names_inside_the_directory() {
    let good = site();
    let base = format!("http://{}", good.address());
    let dir = std::env::temp_dir().join(format!("twined-crawl-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let urls = [
        format!("{base}/plain"),
        format!("{base}/../../../../etc/passwd"),
        format!("{base}/a/b/..%2F..%2Fescape?x=/../y"),
        format!("{base}/.hidden"),
    ];
    let mut cmd = Command::new(example("crawl"));
    cmd.arg("-q").arg("--save").arg(&dir).args(&urls);
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), urls.len(), "{names:?}");
    for name in &names {
        assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
        let content = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(content, b"fine");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    good.stop_listening();
}

#[test]
fn a_missing_input_file_is_a_usage_error() {
    let out = Command::new(example("crawl"))
        .args(["-i", "/nonexistent/urls.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/urls.txt"));
    let out = Command::new(example("crawl"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(example("crawl")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no URLs at all");
}

#[test]
fn the_demo_fetches_5000_pages_without_a_failure() {
    let out = Command::new(example("crawl"))
        .args(["--demo", "-q", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_line(&out.stderr), "ok=5000 failed=0");
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 5000);
    assert!(got
        .iter()
        .all(|l| l.kind.is_none() && l.status == Some(200)));
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_the_finished_lines() {
    let good = site();
    let base = format!("http://{}", good.address());
    let mut urls: Vec<String> = (0..5).map(|i| format!("{base}/fast{i}")).collect();
    urls.extend((0..5).map(|_| format!("{base}/slow")));
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-c", "2"]).args(&urls);
    // Once the fast pages are done and two slow ones hang, press Ctrl-C.
    let out = interrupt_with_reactor(cmd, Duration::from_millis(800), Duration::from_secs(20));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 5, "the five finished fetches are kept");
    assert!(got.iter().all(|l| l.kind.is_none()));
    assert_eq!(
        out.status.code(),
        Some(1),
        "an interrupted crawl did not fetch everything"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted: 5 fetches done"), "{stderr}");
    assert_eq!(last_line(&out.stderr), "ok=5 failed=0");
    good.stop_listening();
}

/// A scratch directory of this test process, removed first if it exists.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("twined-crawl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn framing_headers_are_refused_as_usage_errors() {
    for header in [
        "Content-Length: 5",
        "content-length:0",
        "Transfer-Encoding: chunked",
        "TRANSFER-ENCODING: gzip",
    ] {
        let out = Command::new(example("crawl"))
            .args(["-q", "-H", header, "http://127.0.0.1:9/"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{header}");
        let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(stderr.contains("frames the request"), "{header}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing fetched");
    }
    for header in ["no colon", ": empty name", "Bad Name: x", "X-Ok: a\rb"] {
        let out = Command::new(example("crawl"))
            .args(["-q", "-H", header, "http://127.0.0.1:9/"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{header:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad header"));
    }
}

#[test]
fn user_headers_still_reach_the_server() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    let site = Site::new(move |req: Request| {
        s.borrow_mut()
            .push(req.header("x-token").unwrap_or("").to_string());
        Response::new(200).body("ok")
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-H", "X-Token: abc"])
        .arg(format!("http://{}/", port.address()));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(*seen.borrow(), ["abc"]);
    port.stop_listening();
}

#[test]
fn an_unwritable_output_is_fatal_and_counts_nothing() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let good = site();
    let base = format!("http://{}", good.address());
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-o", "/dev/full"])
        .arg(format!("{base}/a"))
        .arg(format!("{base}/b"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write to /dev/full"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("2 result line(s) lost"), "{stderr}");
    assert_eq!(last_line(&out.stderr), "ok=0 failed=0");
    good.stop_listening();
}

#[test]
fn save_never_follows_a_symlink_and_a_collision_is_an_io_failure() {
    let good = site();
    let port = good.address().port();
    let base = format!("http://{}", good.address());
    let root = scratch("symlink");
    let dir = root.join("bodies");
    std::fs::create_dir_all(&dir).unwrap();
    let outside = root.join("outside.txt");
    std::fs::write(&outside, "untouched").unwrap();
    // The names the crawl gives the first two bodies.
    let planted = dir.join(format!("0000000-127.0.0.1_{port}_victim"));
    std::os::unix::fs::symlink(&outside, &planted).unwrap();
    let taken = dir.join(format!("0000001-127.0.0.1_{port}_taken"));
    std::fs::write(&taken, "mine").unwrap();
    let dangling = dir.join(format!("0000002-127.0.0.1_{port}_dangling"));
    std::os::unix::fs::symlink(root.join("created-through-link"), &dangling).unwrap();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--retries", "2", "--save"])
        .arg(&dir)
        .args([
            format!("{base}/victim"),
            format!("{base}/taken"),
            format!("{base}/dangling"),
            format!("{base}/fresh"),
        ]);
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 4);
    for name in ["victim", "taken", "dangling"] {
        let line = got.iter().find(|l| l.url.ends_with(name)).unwrap();
        assert_eq!(line.kind.as_deref(), Some("io"), "{name}");
        let message = line.message.as_deref().unwrap_or("");
        assert!(message.contains("File exists"), "{name}: {message}");
    }
    let fresh = got.iter().find(|l| l.url.ends_with("fresh")).unwrap();
    assert_eq!(fresh.kind, None);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "mine");
    assert!(!root.join("created-through-link").exists());
    let fresh_file = dir.join(format!("0000003-127.0.0.1_{port}_fresh"));
    assert_eq!(std::fs::read_to_string(fresh_file).unwrap(), "fine");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_line(&out.stderr), "ok=1 failed=3");
    std::fs::remove_dir_all(&root).unwrap();
    good.stop_listening();
}

#[test]
fn numeric_options_out_of_range_are_usage_errors_naming_the_option() {
    let cases = [
        ("--timeout", "1e20"),
        ("--timeout", "inf"),
        ("--timeout", "NaN"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--timeout", "soon"),
        ("--connect-timeout", "1e300"),
        ("--connect-timeout", "0"),
        ("--connect-timeout", "-inf"),
        ("--dns-ttl", "604801"),
        ("--dns-ttl", "-1"),
        ("--dns-ttl", "soon"),
        ("--concurrency", "0"),
        ("--concurrency", "10001"),
        ("--concurrency", "99999999999999999999999"),
        ("--per-host", "0"),
        ("--retries", "101"),
        ("--retries", "-1"),
        ("--max-redirects", "1000"),
        ("--repeat", "0"),
        ("--demo", "0"),
    ];
    for (option, value) in cases {
        let out = Command::new(example("crawl"))
            .arg("-q")
            .arg(format!("{option}={value}"))
            .arg("http://127.0.0.1:9/")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option}={value}: {stderr}");
        assert!(stderr.contains(option), "{option}={value}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_invalid_line_is_a_url_error_and_the_crawl_goes_on() {
    let good = site();
    let base = format!("http://{}", good.address());
    let mut input = format!("{base}/a\n").into_bytes();
    input.extend_from_slice(b"http://bad.example/\xff\xfeok\r\n");
    input.extend_from_slice(format!("http://long.example/{}\n", "x".repeat(70_000)).as_bytes());
    input.extend_from_slice(format!("{base}/b").as_bytes()); // no final newline
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-i", "-"]);
    let out = run_with_reactor(cmd, Some(input), Duration::from_secs(30));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 4, "{}", String::from_utf8_lossy(&out.stderr));
    let bad = got.iter().find(|l| l.url.contains("bad.example")).unwrap();
    assert_eq!(bad.url, "http://bad.example/\\xff\\xfeok");
    assert_eq!(bad.kind.as_deref(), Some("url"));
    assert!(bad.message.as_deref().unwrap_or("").contains("UTF-8"));
    let long = got.iter().find(|l| l.url.contains("long.example")).unwrap();
    assert_eq!(long.kind.as_deref(), Some("url"));
    assert!(long.url.len() < 300 && long.url.ends_with("..."));
    assert!(got
        .iter()
        .filter(|l| l.url.starts_with(&base))
        .all(|l| l.kind.is_none()));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_line(&out.stderr), "ok=2 failed=2");
    good.stop_listening();
}

#[test]
fn a_long_run_of_lines_that_fail_at_once_keeps_the_stack_flat() {
    let input = "not a url\n".repeat(50_000);
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-c", "1", "-i", "-"]);
    let out = run_with_reactor(cmd, Some(input.into_bytes()), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_line(&out.stderr), "ok=0 failed=50000");
    assert_eq!(lines(&out.stdout).len(), 50_000);
}

#[test]
fn userinfo_is_sent_as_basic_auth_never_across_origins_and_never_written() {
    use base64::Engine;
    type Seen = std::rc::Rc<std::cell::RefCell<Vec<(String, Option<String>)>>>;
    let seen: Seen = Default::default();
    let recorder = |seen: &Seen, location: Option<String>| {
        let seen = seen.clone();
        Site::new(move |req: Request| {
            let auth = req.header("authorization").map(str::to_string);
            seen.borrow_mut().push((req.path().to_string(), auth));
            match (&location, req.path()) {
                (Some(to), "/hop") => Response::new(302).header("Location", to.clone()),
                _ => Response::new(200).body("ok"),
            }
        })
    };
    let other = reactor::listen_tcp("127.0.0.1:0", recorder(&seen, None)).unwrap();
    let land = format!("http://{}/land", other.address());
    let first = reactor::listen_tcp("127.0.0.1:0", recorder(&seen, Some(land))).unwrap();
    let at = first.address();
    let mut cmd = Command::new(example("crawl"));
    cmd.args([
        "-q".to_string(),
        format!("http://alice:s3cret@{at}/private"),
        format!("http://alice:s3cret@{at}/hop"),
        format!("http://bob@{at}/nopass"),
    ]);
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let alice = Some(basic("alice:s3cret"));
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("/hop".to_string(), alice.clone()),
            ("/land".to_string(), None),
            ("/nopass".to_string(), Some(basic("bob:"))),
            ("/private".to_string(), alice),
        ]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));
    let got = lines(&out.stdout);
    assert!(got
        .iter()
        .any(|l| l.url == format!("http://alice:***@{at}/private")));
    // A URL that fails to parse is redacted in its error too.
    let out = Command::new(example("crawl"))
        .args(["-q", "http://carol:hunter2@127.0.0.1:99999/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("hunter2") && stdout.contains("carol:***@"),
        "{stdout}"
    );
    first.stop_listening();
    other.stop_listening();
}

#[test]
fn a_url_file_is_read_again_for_repeat_and_an_empty_one_is_a_usage_error() {
    let good = site();
    let base = format!("http://{}", good.address());
    let dir = scratch("repeat");
    let file = dir.join("urls.txt");
    std::fs::write(&file, format!("{base}/a\n# skip\n{base}/b\n")).unwrap();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--repeat", "3", "-i"]).arg(&file);
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out.stdout).len(), 6);
    assert_eq!(last_line(&out.stderr), "ok=6 failed=0");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# nothing\n\n").unwrap();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--repeat", "1000000", "-i"]).arg(&empty);
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no URLs"));
    std::fs::remove_dir_all(&dir).unwrap();
    good.stop_listening();
}

#[test]
fn lines_come_out_before_the_input_ends() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let good = site();
    let base = format!("http://{}", good.address());
    let mut child = Command::new(example("crawl"))
        .args(["-q", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = reactor::handle();
    std::thread::spawn(move || {
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The first URL goes in; the pipe stays open.
        let _ = writeln!(stdin, "{base}/first");
        let _ = stdin.flush();
        let first = line_rx.recv_timeout(Duration::from_secs(20));
        let _ = writeln!(stdin, "{base}/second");
        drop(stdin);
        let second = line_rx.recv_timeout(Duration::from_secs(20));
        let output = child.wait_with_output();
        let _ = tx.send((first, second, output));
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
    });
    let watchdog = reactor::call_later(Duration::from_secs(60), || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    let (first, second, output) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let first = first
        .expect("a line while the input is still open")
        .unwrap();
    assert!(first.contains("/first"), "{first}");
    assert!(second.unwrap().unwrap().contains("/second"));
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(last_line(&output.stderr), "ok=2 failed=0");
    good.stop_listening();
}

#[test]
fn max_bytes_out_of_range_is_a_usage_error() {
    for value in ["0", "-1", "1125899906842625", "lots", "1e9"] {
        let out = Command::new(example("crawl"))
            .arg("-q")
            .arg(format!("--max-bytes={value}"))
            .arg("http://127.0.0.1:9/")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--max-bytes"), "{value}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn max_bytes_bounds_the_decoded_body_and_a_user_accept_encoding_turns_decoding_off() {
    use std::io::Write;
    // 4 MiB of zeros, a few KiB on the wire.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&vec![0u8; 4 << 20]).unwrap();
    let zipped = encoder.finish().unwrap();
    let wire_len = zipped.len() as u64;
    let site = Site::new(move |req: Request| match req.path() {
        "/bomb" => Response::new(200)
            .header("Content-Encoding", "gzip")
            .body(zipped.clone()),
        "/big" => Response::new(200).body(vec![b'x'; 5000]),
        _ => Response::new(200).body("small"),
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let base = format!("http://{}", port.address());

    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-c", "1", "--max-bytes", "1000000"])
        .arg(format!("{base}/bomb"))
        .arg(format!("{base}/small"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    let got = lines(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", last_line(&out.stderr));
    assert_eq!(got.len(), 2);
    let bomb = got.iter().find(|l| l.url.ends_with("/bomb")).unwrap();
    assert_eq!(
        bomb.kind.as_deref(),
        Some("too_large"),
        "{:?}",
        bomb.message
    );
    assert!(bomb.message.as_deref().unwrap_or("").contains("1000000"));
    let small = got.iter().find(|l| l.url.ends_with("/small")).unwrap();
    assert_eq!((small.kind.as_deref(), small.bytes), (None, 5));
    assert_eq!(last_line(&out.stderr), "ok=1 failed=1");

    // A body over the limit with a Content-Length fails at the head.
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--max-bytes", "1000"])
        .arg(format!("{base}/big"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    let got = lines(&out.stdout);
    assert_eq!(got[0].kind.as_deref(), Some("too_large"));
    assert_eq!(out.status.code(), Some(1));

    // -H 'Accept-Encoding: identity' replaces the crawler's gzip: the body
    // is counted as sent, never inflated.
    let mut cmd = Command::new(example("crawl"));
    cmd.args([
        "-q",
        "--max-bytes",
        "1000000",
        "-H",
        "Accept-Encoding: identity",
    ])
    .arg(format!("{base}/bomb"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    let got = lines(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", last_line(&out.stderr));
    assert_eq!((got[0].status, got[0].bytes), (Some(200), wire_len));
    port.stop_listening();
}

#[test]
fn a_user_host_replaces_the_default_and_two_are_a_usage_error() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    let site = Site::new(move |req: Request| {
        s.borrow_mut()
            .push(req.header("host").unwrap_or("").to_string());
        Response::new(200).body("ok")
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-H", "Host: example.test"])
        .arg(format!("http://{}/", port.address()));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    // The server refuses a request with two Host fields, so one got through.
    assert_eq!(out.status.code(), Some(0), "{}", last_line(&out.stderr));
    assert_eq!(*seen.borrow(), ["example.test"]);
    port.stop_listening();

    let out = Command::new(example("crawl"))
        .args(["-q", "-H", "Host: a.test", "-H", "host: b.test"])
        .arg("http://127.0.0.1:9/")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than one Host"));
}

#[test]
fn workers_share_one_writer_the_input_and_the_totals() {
    let out = Command::new(example("crawl"))
        .args(["--demo", "3000", "-j", "3", "-q", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_line(&out.stderr), "ok=3000 failed=0");
    // Every line whole (`lines` parses each), every URL exactly once.
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3000);
    let distinct: std::collections::HashSet<&str> = got.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(distinct.len(), 3000);
}

#[test]
fn workers_on_every_thread_reach_a_host_by_name_through_the_shared_dns_cache() {
    let good = site();
    // A name, not an address: every thread's connects go through the one
    // cache (`--no-keepalive`: a connect, so a resolve, per request).
    let base = format!("http://localhost:{}", good.address().port());
    let input: String = (0..60).map(|i| format!("{base}/p{i}\n")).collect();
    for ttl in ["60", "0"] {
        let mut cmd = Command::new(example("crawl"));
        cmd.args([
            "-q",
            "-i",
            "-",
            "-j",
            "3",
            "--no-keepalive",
            "--dns-ttl",
            ttl,
        ]);
        let out = run_with_reactor(
            cmd,
            Some(input.clone().into_bytes()),
            Duration::from_secs(30),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "--dns-ttl {ttl}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(last_line(&out.stderr), "ok=60 failed=0");
    }
    good.stop_listening();
}

#[test]
fn workers_beyond_the_caps_are_clamped_and_zero_is_a_usage_error() {
    let good = site();
    let base = format!("http://{}", good.address());
    let urls: Vec<String> = (0..20).map(|i| format!("{base}/p{i}")).collect();
    for j in ["1", "8"] {
        let mut cmd = Command::new(example("crawl"));
        cmd.args(["-q", "-j", j, "-c", "3", "--per-host", "2"])
            .args(&urls);
        let out = run_with_reactor(cmd, None, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(0), "-j {j}");
        assert_eq!(last_line(&out.stderr), "ok=20 failed=0", "-j {j}");
        let mut got: Vec<String> = lines(&out.stdout).into_iter().map(|l| l.url).collect();
        got.sort();
        let mut want = urls.clone();
        want.sort();
        assert_eq!(got, want, "-j {j}");
    }
    let out = Command::new(example("crawl"))
        .args(["-j", "0", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    good.stop_listening();
}

#[test]
fn ctrl_c_stops_every_worker_and_keeps_every_finished_line() {
    let good = site();
    let base = format!("http://{}", good.address());
    let mut urls: Vec<String> = (0..6).map(|i| format!("{base}/fast{i}")).collect();
    urls.extend((0..6).map(|_| format!("{base}/slow")));
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-j", "3", "-c", "3"]).args(&urls);
    // Once the fast pages are done and every worker hangs on a slow one.
    let out = interrupt_with_reactor(cmd, Duration::from_millis(1000), Duration::from_secs(20));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 6, "the six finished fetches are kept");
    assert!(got.iter().all(|l| l.kind.is_none()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted: 6 fetches done"), "{stderr}");
    assert_eq!(last_line(&out.stderr), "ok=6 failed=0");
    good.stop_listening();
}

/// A crawl command with no proxy variable from the test's environment.
fn crawl_without_proxy_env() -> Command {
    let mut cmd = Command::new(example("crawl"));
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
    ] {
        cmd.env_remove(name);
    }
    cmd.arg("-q");
    cmd
}

#[test]
fn proxy_from_the_option_or_the_environment_and_kind_proxy_when_it_refuses() {
    use proxy::{Mode, TestProxy};
    let good = site();
    let base = format!("http://{}", good.address());
    let forward = TestProxy::start(Mode::Forward);
    let run = |cmd: Command| run_with_reactor(cmd, None, Duration::from_secs(60));

    // --proxy: the request reaches the proxy in absolute form.
    let mut cmd = crawl_without_proxy_env();
    cmd.args(["--proxy", &forward.url(), &format!("{base}/a")]);
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out.stdout)[0].status, Some(200));
    assert!(forward.heads()[0].starts_with(&format!("GET {base}/a HTTP/1.1\r\n")));

    // HTTP_PROXY, honoured by default.
    let mut cmd = crawl_without_proxy_env();
    cmd.env("HTTP_PROXY", forward.url())
        .arg(format!("{base}/b"));
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(forward.heads()[1].starts_with(&format!("GET {base}/b HTTP/1.1\r\n")));

    // --no-proxy-env, and NO_PROXY: direct.
    let mut cmd = crawl_without_proxy_env();
    cmd.env("HTTP_PROXY", forward.url())
        .arg("--no-proxy-env")
        .arg(format!("{base}/c"));
    assert_eq!(run(cmd).status.code(), Some(0));
    let mut cmd = crawl_without_proxy_env();
    cmd.env("HTTP_PROXY", forward.url())
        .env("NO_PROXY", "127.0.0.1")
        .arg(format!("{base}/d"));
    assert_eq!(run(cmd).status.code(), Some(0));
    assert_eq!(forward.heads().len(), 2, "{:?}", forward.heads());

    // A proxy answering 407: kind proxy, exit 1, no password in the line.
    let refusing = TestProxy::start(Mode::Refuse407);
    let mut cmd = crawl_without_proxy_env();
    cmd.args([
        "--proxy",
        &format!("http://alice:hunter2@{}", refusing.addr),
        &format!("{base}/e"),
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out.stdout);
    assert_eq!(got[0].kind.as_deref(), Some("proxy"));
    let message = got[0].message.clone().unwrap_or_default();
    assert!(message.contains("407"), "{message}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
    assert_eq!(last_line(&out.stderr), "ok=0 failed=1");

    // An unusable proxy setting is a usage error naming its source.
    let mut cmd = crawl_without_proxy_env();
    cmd.args(["--proxy", "socks4://127.0.0.1:1080", &format!("{base}/f")]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--proxy"));
    let mut cmd = crawl_without_proxy_env();
    cmd.env("HTTPS_PROXY", "socks4://127.0.0.1:1080")
        .arg(format!("{base}/g"));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTPS_PROXY"));
    good.stop_listening();
}

#[test]
fn a_socks5_proxy_from_the_option_or_the_environment() {
    let Some(microsocks) = socks::Microsocks::start(Some(("alice", "hunter2"))) else {
        panic!("microsocks is not installed (the CI script installs it)");
    };
    let good = site();
    let base = format!("http://{}", good.address());
    let run = |cmd: Command| run_with_reactor(cmd, None, Duration::from_secs(60));
    let setting = format!("socks5h://alice:hunter2@127.0.0.1:{}", microsocks.port);
    let mut cmd = crawl_without_proxy_env();
    cmd.args(["--proxy", &setting, &format!("{base}/a")]);
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out.stdout)[0].status, Some(200));
    let mut cmd = crawl_without_proxy_env();
    cmd.env("ALL_PROXY", &setting).arg(format!("{base}/b"));
    assert_eq!(run(cmd).status.code(), Some(0));

    // A wrong password: kind proxy, exit 1, no password in the line.
    let wrong = format!("socks5://alice:wrong-pw@127.0.0.1:{}", microsocks.port);
    let mut cmd = crawl_without_proxy_env();
    cmd.args(["--proxy", &wrong, &format!("{base}/c")]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out.stdout);
    assert_eq!(got[0].kind.as_deref(), Some("proxy"));
    let message = got[0].message.clone().unwrap_or_default();
    assert!(message.contains("user name and password"), "{message}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrong-pw"));
    good.stop_listening();
}

#[test]
fn https_urls_go_through_the_proxy_tunnel_with_the_ca_file_trusted() {
    use proxy::{Mode, TestProxy};
    use twined::reactor::tls::listen_ssl;
    let cert = certs::localhost();
    let (cert_pem, config) = (cert.cert_pem.clone(), cert.server_tls());
    let site = Site::new(|req: Request| Response::new(200).body(format!("secure {}", req.path())));
    let port = listen_ssl("127.0.0.1:0", site, config).unwrap();
    let dir = scratch("proxy-ca");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let forward = TestProxy::start(Mode::Forward);
    let url = format!("https://localhost:{}/tunnelled", port.address().port());
    let mut cmd = crawl_without_proxy_env();
    cmd.env("HTTPS_PROXY", forward.url())
        .arg("--ca-file")
        .arg(&ca)
        .arg(&url);
    let out = run_with_reactor(cmd, None, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = lines(&out.stdout);
    assert_eq!((got[0].status, got[0].bytes), (Some(200), 17));
    let heads = forward.heads();
    assert!(
        heads[0].starts_with(&format!(
            "CONNECT localhost:{} HTTP/1.1\r\n",
            port.address().port()
        )),
        "{heads:?}"
    );
    port.stop_listening();
}

/// The closing stats block of `stderr`, as `(label, value)` pairs.
fn stats(stderr: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(stderr);
    let block = text
        .split_once("crawl stats:\n")
        .unwrap_or_else(|| panic!("no closing stats in {text}"))
        .1;
    block
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn stat<'a>(stats: &'a [(String, String)], label: &str) -> &'a str {
    stats
        .iter()
        .find(|(k, _)| k == label)
        .map_or_else(|| panic!("no {label} in {stats:?}"), |(_, v)| v.as_str())
}

#[test]
fn the_closing_stats_count_every_thread_by_kind_and_status_class() {
    let good = site();
    let base = format!("http://{}", good.address());
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // 30 ok ("fine", 4 bytes each), 5 404s, 3 500s, 2 refused, 1 bad URL.
    let mut urls: Vec<String> = (0..30).map(|i| format!("{base}/ok{i}")).collect();
    urls.extend((0..5).map(|_| format!("{base}/404")));
    urls.extend((0..3).map(|_| format!("{base}/500")));
    urls.extend((0..2).map(|_| format!("http://{refused}/")));
    urls.push("not a url".into());
    for quiet in [true, false] {
        let mut cmd = Command::new(example("crawl"));
        cmd.args(["-j", "2", "-c", "8"]);
        if quiet {
            cmd.arg("-q");
        }
        cmd.args(&urls);
        let out = run_with_reactor(cmd, None, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1));
        let stats = stats(&out.stderr);
        assert_eq!(stat(&stats, "done"), "41 URLs", "{stats:?}");
        assert_eq!(stat(&stats, "ok"), "30");
        assert_eq!(stat(&stats, "failed"), "11 (connect 2, http 8, url 1)");
        assert_eq!(stat(&stats, "responses"), "2xx 30, 3xx 0, 4xx 5, 5xx 3");
        // "fine" and "missing" and "broken": 30 * 4 + 5 * 7 + 3 * 6.
        assert_eq!(stat(&stats, "bytes"), "173 (173 B)");
        assert!(stat(&stats, "elapsed").ends_with(" s"), "{stats:?}");
        assert!(stat(&stats, "rate").ends_with("/s"), "{stats:?}");
        assert_eq!(last_line(&out.stderr), "ok=30 failed=11");
    }
    good.stop_listening();
}

#[test]
fn version_names_the_crawl_and_twined() {
    let out = Command::new(example("crawl"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("crawl {version} (twined {version})")
    );
}

/// The (path, `Cookie`) of every request a [`cookie_site`] got.
type CookiesSeen = std::rc::Rc<std::cell::RefCell<Vec<(String, String)>>>;

/// A site whose `/login` sets a persistent and a session cookie and whose
/// every request's `Cookie` is recorded.
fn cookie_site() -> (reactor::Port, CookiesSeen) {
    let seen: CookiesSeen = Default::default();
    let s = seen.clone();
    let site = Site::new(move |req: Request| {
        let cookie = req.header("cookie").unwrap_or("").to_string();
        s.borrow_mut().push((req.path().to_string(), cookie));
        match req.path() {
            "/login" => Response::new(200)
                .header("Set-Cookie", "sid=abc; Max-Age=3600; Path=/")
                .header("Set-Cookie", "sess=1; Path=/")
                .body("in"),
            _ => Response::new(200).body("ok"),
        }
    });
    (reactor::listen_tcp("127.0.0.1:0", site).unwrap(), seen)
}

#[test]
fn cookies_are_kept_across_the_crawl_only_when_asked() {
    let (port, seen) = cookie_site();
    let at = port.address();
    for (flag, want) in [(None, ""), (Some("--cookies"), "sid=abc; sess=1")] {
        seen.borrow_mut().clear();
        let mut cmd = Command::new(example("crawl"));
        // One request at a time: /page goes after /login.
        cmd.args(["-q", "-c", "1", "-j", "1"]);
        cmd.args(flag);
        cmd.arg(format!("http://{at}/login"))
            .arg(format!("http://{at}/page"));
        let out = run_with_reactor(cmd, None, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(0), "{flag:?}");
        assert_eq!(
            *seen.borrow(),
            [
                ("/login".to_string(), String::new()),
                ("/page".to_string(), want.to_string())
            ],
            "{flag:?}"
        );
    }
    port.stop_listening();
}

#[test]
fn a_cookie_jar_file_is_created_and_sent_back_on_the_next_run() {
    let dir = scratch("cookie-jar");
    let file = dir.join("jar.json");
    let (port, seen) = cookie_site();
    let at = port.address();
    // First run: no file yet (an empty jar); the file is written at the end.
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--cookie-jar"])
        .arg(&file)
        .arg(format!("http://{at}/login"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("sid=abc") && saved.contains("sess=1"),
        "{saved}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "cookies are credentials: {mode:o}");
    // Nothing but the jar is left in the directory (no temporary file).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["jar.json"]);
    // Second run: the saved cookies go out on the first request.
    seen.borrow_mut().clear();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--cookie-jar"])
        .arg(&file)
        .arg(format!("http://{at}/again"));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let sent = seen.borrow()[0].1.clone();
    let mut pairs: Vec<&str> = sent.split("; ").collect();
    pairs.sort();
    assert_eq!(pairs, ["sess=1", "sid=abc"], "{sent}");
    // A file that is not a jar is a usage error, and is left as it was.
    std::fs::write(&file, "not json").unwrap();
    let out = Command::new(example("crawl"))
        .args(["-q", "--cookie-jar"])
        .arg(&file)
        .arg(format!("http://{at}/never"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot load cookies from"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not json");
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_cookie_jar_is_an_error_exit() {
    let dir = scratch("cookie-jar-unwritable");
    // The jar's directory does not exist: nothing can be saved there.
    let file = dir.join("missing").join("jar.json");
    let (port, _seen) = cookie_site();
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--cookie-jar"])
        .arg(&file)
        .arg(format!("http://{}/login", port.address()));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot save cookies to"), "{stderr}");
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_worker_thread_fills_and_reads_the_one_jar() {
    let site = Site::new(|req: Request| match req.path().strip_prefix("/set/") {
        Some(n) => Response::new(200)
            .header("Set-Cookie", format!("c{n}=1; Max-Age=600; Path=/set/{n}"))
            .body("set"),
        None => Response::new(200).body(req.header("cookie").unwrap_or("").to_string()),
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let at = port.address();
    let dir = scratch("cookie-jar-threads");
    let file = dir.join("jar.json");
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "-j", "2", "-c", "4", "--cookie-jar"])
        .arg(&file)
        .args((0..20).map(|n| format!("http://{at}/set/{n}")));
    let out = run_with_reactor(cmd, None, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    // Both threads' cookies reached the one jar that was saved.
    let jar = twined::web::client::CookieJar::load(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(jar.len(), 20);
    for n in 0..20 {
        assert_eq!(
            jar.cookie_header(&format!("http://{at}/set/{n}"))
                .as_deref(),
            Some(format!("c{n}=1").as_str())
        );
    }
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}
