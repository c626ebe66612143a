//! The crawl example's `--retries` (the library's retry policy) and
//! `--resume` (a killed crawl finished without a lost or a duplicated
//! line), run as child processes against servers this test starts.

mod support;

#[path = "support/examples.rs"]
mod examples;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use examples::{example, run_with_reactor};
use support::{raw_server, Then};
use twined::defer::{Deferred, Failure};
use twined::reactor;
use twined::task;
use twined::web::server::{Request, Response, Site};

/// A site: `/busy/..` answers 503 (`Retry-After: 0`) the first time a path
/// is asked for and 200 after; `/later/..` the same with 429 and
/// `Retry-After: 1`; `/always503` always 503; `/500` always 500;
/// `/slow/..` 200 after 20 ms; anything else 200 at once.
fn site() -> reactor::Port {
    let seen: Rc<RefCell<HashSet<String>>> = Rc::default();
    let site = Site::new(move |req: Request| -> Deferred<Response> {
        let path = req.path().to_string();
        let first = seen.borrow_mut().insert(path.clone());
        let now = |r: Response| twined::defer::succeed(r);
        if path.starts_with("/busy/") && first {
            return now(Response::new(503).header("Retry-After", "0"));
        }
        if path.starts_with("/later/") && first {
            return now(Response::new(429).header("Retry-After", "1"));
        }
        if path == "/always503" {
            return now(Response::new(503).body("busy"));
        }
        if path == "/500" {
            return now(Response::new(500).body("broken"));
        }
        if path.starts_with("/slow/") {
            return task::defer_later(Duration::from_millis(20), || {
                Ok::<_, Failure>(Response::new(200).body("late"))
            });
        }
        now(Response::new(200).body("fine"))
    });
    reactor::listen_tcp("127.0.0.1:0", site).unwrap()
}

struct Line {
    url: String,
    status: Option<u64>,
    attempts: u64,
    elapsed_ms: f64,
    kind: Option<String>,
}

fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            Line {
                url: v["url"].as_str().unwrap_or("").to_string(),
                status: v["status"].as_u64(),
                attempts: v["attempts"].as_u64().expect("attempts"),
                elapsed_ms: v["elapsed_ms"].as_f64().expect("elapsed_ms"),
                kind: v["error"]["kind"].as_str().map(str::to_string),
            }
        })
        .collect()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn last_line(out: &Output) -> String {
    stderr_of(out).lines().last().unwrap_or("").to_string()
}

/// A scratch directory of this test process, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twined-crawl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn retries_follow_the_policy_and_attempts_count_the_tries() {
    let port = site();
    let base = format!("http://{}", port.address());
    let (reset, reset_port) = raw_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        Duration::from_millis(10),
        Then::Abort,
    );
    let (closed, closed_port) = raw_server(vec![], Duration::ZERO, Then::Close);
    let urls = [
        format!("{base}/ok"),
        format!("{base}/busy/1"),
        format!("{base}/always503"),
        format!("{base}/500"),
        format!("{reset}/"),
        format!("{closed}/"),
    ];
    let mut cmd = Command::new(example("crawl"));
    cmd.args(["-q", "--retries", "2", "--retry-backoff", "0.001"]);
    cmd.args(&urls);
    let out = run_with_reactor(cmd, None, Duration::from_secs(60));
    let lines = parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), urls.len(), "{}", stderr_of(&out));
    let by_url: HashMap<&str, &Line> = lines.iter().map(|l| (l.url.as_str(), l)).collect();
    let get = |u: &String| by_url[u.as_str()];
    let ok = get(&urls[0]);
    assert_eq!(
        (ok.status, ok.attempts, ok.kind.as_deref()),
        (Some(200), 1, None)
    );
    let busy = get(&urls[1]);
    assert_eq!(
        (busy.status, busy.attempts, busy.kind.as_deref()),
        (Some(200), 2, None)
    );
    let always = get(&urls[2]);
    assert_eq!((always.status, always.attempts), (Some(503), 3));
    assert_eq!(always.kind.as_deref(), Some("http"));
    let e500 = get(&urls[3]);
    assert_eq!(
        (e500.status, e500.attempts),
        (Some(500), 1),
        "a 500 is not retried"
    );
    let mid_body = get(&urls[4]);
    assert_eq!(
        mid_body.attempts, 1,
        "a reset after part of the body is not retried"
    );
    let no_response = get(&urls[5]);
    assert_eq!(
        (no_response.attempts, no_response.kind.as_deref()),
        (3, Some("io"))
    );
    assert_eq!(out.status.code(), Some(1));
    for p in [port, reset_port, closed_port] {
        p.stop_listening();
    }
}

#[test]
fn retry_after_is_waited_up_to_the_cap_and_past_it_is_the_result() {
    let port = site();
    let base = format!("http://{}", port.address());
    let run = |url: String, cap: &str| {
        let mut cmd = Command::new(example("crawl"));
        cmd.args(["-q", "--retries", "3", "--retry-max-backoff", cap, &url]);
        let out = run_with_reactor(cmd, None, Duration::from_secs(30));
        let mut lines = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(lines.len(), 1, "{}", stderr_of(&out));
        lines.remove(0)
    };
    let waited = run(format!("{base}/later/1"), "60");
    assert_eq!((waited.status, waited.attempts), (Some(200), 2));
    assert!(waited.elapsed_ms >= 1000.0, "{} ms", waited.elapsed_ms);
    let refused = run(format!("{base}/later/2"), "0.5");
    assert_eq!((refused.status, refused.attempts), (Some(429), 1));
    assert_eq!(refused.kind.as_deref(), Some("http"));
    port.stop_listening();
}

#[test]
fn retry_options_out_of_range_are_usage_errors() {
    for (flag, value) in [
        ("--retry-backoff", "0"),
        ("--retry-backoff", "nan"),
        ("--retry-max-backoff", "-1"),
        ("--retries", "101"),
    ] {
        let out = Command::new(example("crawl"))
            .args([&format!("{flag}={value}"), "http://127.0.0.1:9/"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(stderr_of(&out).contains(flag), "{}", stderr_of(&out));
    }
}

#[test]
fn resume_needs_an_output_file_and_refuses_redis() {
    // Never written: each case is refused before the output is opened.
    let dir = scratch("resume-usage");
    let file = dir.join("out.jsonl");
    let x = file.to_str().unwrap();
    let cases: [&[&str]; 6] = [
        &["--resume", "http://127.0.0.1:9/"],
        &["--resume", "-o", "/dev/null", "http://127.0.0.1:9/"],
        &["--resume", "-o", x, "--demo", "5"],
        &["--resume", "-o", "-", "http://127.0.0.1:9/"],
        &[
            "--resume",
            "-o",
            "x.jsonl",
            "--redis",
            "redis://127.0.0.1:9",
            "--queue",
            "q",
        ],
        &["--resume-all", "-o", x, "http://127.0.0.1:9/"],
    ];
    for args in cases {
        let out = Command::new(example("crawl")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("resume"), "{}", stderr_of(&out));
        assert!(!file.exists(), "{args:?} wrote the output");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_skips_success_lines_and_resume_all_every_line() {
    let port = site();
    let base = format!("http://{}", port.address());
    let dir = scratch("resume-kinds");
    let file = dir.join("out.jsonl");
    let f = file.to_str().unwrap().to_string();
    // A password is recorded as *** and matched the same way.
    let urls = [
        format!("{base}/a"),
        format!("{base}/500"),
        format!("http://user:secret@{}/b", port.address()),
    ];
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(example("crawl"));
        cmd.args(["-q", "-o", &f]).args(extra).args(&urls);
        run_with_reactor(cmd, None, Duration::from_secs(30))
    };
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(1));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(parse(&text).len(), 3);
    assert!(text.contains("user:***@"), "{text}");

    let again = run(&["--resume"]);
    assert_eq!(again.status.code(), Some(1), "the 500 is fetched again");
    assert!(
        stderr_of(&again).contains("resume: skipped 2 URL(s)"),
        "{}",
        stderr_of(&again)
    );
    assert_eq!(last_line(&again), "ok=0 failed=1");
    let lines = parse(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(lines.len(), 4, "one line appended");
    assert_eq!(lines[3].status, Some(500));

    let all = run(&["--resume", "--resume-all"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr_of(&all));
    assert!(
        stderr_of(&all).contains("resume: skipped 3 URL(s)"),
        "{}",
        stderr_of(&all)
    );
    assert_eq!(last_line(&all), "ok=0 failed=0");
    assert_eq!(parse(&std::fs::read_to_string(&file).unwrap()).len(), 4);
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `work` on another thread while this thread's reactor serves the
/// site; at most `limit`.
fn with_reactor<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = reactor::handle();
    std::thread::spawn(move || {
        let _ = tx.send(work());
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
    });
    let watchdog = reactor::call_later(limit, || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the crawl did not finish in time")
}

fn complete_lines(path: &Path) -> usize {
    let text = std::fs::read(path).unwrap_or_default();
    text.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn a_killed_crawl_resumes_with_every_url_once_and_a_torn_line_cut_off() {
    const N: usize = 150;
    let port = site();
    let base = format!("http://{}", port.address());
    let dir = scratch("resume-kill");
    let input = dir.join("urls.txt");
    let urls: Vec<String> = (0..N).map(|i| format!("{base}/slow/{i}")).collect();
    std::fs::write(&input, urls.join("\n") + "\n").unwrap();
    let file = dir.join("out.jsonl");
    let (input_s, file_s) = (
        input.to_str().unwrap().to_string(),
        file.to_str().unwrap().to_string(),
    );
    let crawl = example("crawl");
    let (first_lines, resumed) = with_reactor(Duration::from_secs(90), move || {
        // 2 at a time, 20 ms each: about 1.5 s in all; killed once some
        // lines are on disk.
        let mut child = Command::new(&crawl)
            .args(["-q", "-c", "2", "-j", "1", "-i", &input_s, "-o", &file_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let file = PathBuf::from(&file_s);
        let deadline = Instant::now() + Duration::from_secs(30);
        while complete_lines(&file) < 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        let _ = child.wait();
        let text = std::fs::read(&file).unwrap();
        let complete = complete_lines(&file);
        // The crash's torn line: left by the kill, or made here.
        if text.last() != Some(&b'\n') {
            eprintln!("the kill left a torn line");
        } else {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .unwrap();
            write!(f, "{{\"url\":\"{}\",\"final_url\":\"ht", urls[N - 1]).unwrap();
        }
        let resumed = Command::new(&crawl)
            .args(["-q", "-c", "4", "--resume", "-i", &input_s, "-o", &file_s])
            .output()
            .unwrap();
        (complete, resumed)
    });
    assert!(
        (10..N).contains(&first_lines),
        "killed midway: {first_lines} lines"
    );
    let stderr = stderr_of(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ignoring a torn last line"), "{stderr}");
    assert!(
        stderr.contains(&format!("resume: skipped {first_lines} URL(s)")),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with('\n'));
    let lines = parse(&text);
    assert_eq!(lines.len(), N, "one line per URL, no torn line left");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        assert_eq!((line.status, line.kind.as_deref()), (Some(200), None));
        *count.entry(line.url.as_str()).or_default() += 1;
    }
    for url in (0..N).map(|i| format!("{base}/slow/{i}")) {
        assert_eq!(count.get(url.as_str()), Some(&1), "{url}");
    }
    port.stop_listening();
    let _ = std::fs::remove_dir_all(&dir);
}
