//! The crawl example's command-line contract, run as a child process against
//! servers this test starts on its own reactor.

mod support;

#[path = "support/examples.rs"]
mod examples;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use examples::{example, run_with_reactor};
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
    let child = Command::new(example("crawl"))
        .args(["-q", "-c", "2"])
        .args(&urls)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = reactor::handle();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
    });
    // Once the fast pages are done and two slow ones hang, press Ctrl-C.
    reactor::call_later(Duration::from_millis(800), move || {
        let _ = Command::new("kill").args(["-INT", &pid]).status();
    });
    let watchdog = reactor::call_later(Duration::from_secs(20), || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    let out = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
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
