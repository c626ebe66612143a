//! The crawl example's shared frontier (`--redis URL --queue NAME`) against a
//! real `redis-server` and a site this test serves on its own reactor: many
//! crawl processes on one queue, one of them killed, every URL fetched.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

#[path = "support/examples.rs"]
mod examples;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use examples::example;
use redis_support::RedisServer;
use support::wait;
use twined::defer::{succeed, Deferred};
use twined::reactor;
use twined::redis::{Client, Value};
use twined::web::server::{Request, Response, Site};

/// A site answering every path with a small page.
fn site() -> reactor::Port {
    let site = Site::new(|_req: Request| -> Deferred<Response> {
        succeed(
            Response::new(200)
                .header("Content-Type", "text/plain")
                .body("fine"),
        )
    });
    reactor::listen_tcp("127.0.0.1:0", site).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("twined-crawl-redis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `url` of every whole JSON line of `path`: a last line without its
/// newline is still being written, or was cut by a kill, and is left out.
fn urls(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            assert!(v["error"].is_null(), "{l}");
            v["url"].as_str().unwrap().to_string()
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

/// Runs `work` on another thread while this thread's reactor serves the
/// site; at most `limit`.
fn with_reactor<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = reactor::handle();
    std::thread::spawn(move || {
        // The reactor stops when the work ends, panic or not.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
        let _ = tx.send(result);
    });
    let watchdog = reactor::call_later(limit, || {
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the crawl processes did not finish in time"),
    }
}

/// Waits for `child` at most until `deadline`; kills it (by its pid) past it.
fn wait_until(mut child: Child, deadline: Instant) -> Output {
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "a crawl process did not exit in time: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn enqueue(redis: &str, queue: &str, file: &Path) -> Output {
    Command::new(example("crawl"))
        .args(["--redis", redis, "--queue", queue, "--enqueue", "-i"])
        .arg(file)
        .output()
        .unwrap()
}

fn pending(client: &Client, queue: &str) -> i64 {
    match wait(client.command(["XPENDING", queue, "crawl"])).unwrap() {
        Value::Array(parts) => parts[0].as_int().unwrap(),
        other => panic!("XPENDING: {other:?}"),
    }
}

#[test]
fn three_processes_one_killed_every_url_at_least_once_nothing_pending() {
    const N: usize = 20_000;
    let server = RedisServer::start();
    let redis = server.url(0);
    let port = site();
    let base = format!("http://{}", port.address());
    let dir = scratch("kill");
    let list = dir.join("urls.txt");
    let all: Vec<String> = (0..N).map(|i| format!("{base}/page/{i}")).collect();
    std::fs::write(&list, all.join("\n")).unwrap();

    let d = dir.clone();
    let r = redis.clone();
    let (enqueued, outputs) = with_reactor(Duration::from_secs(240), move || {
        let enqueued = enqueue(&r, "frontier", &d.join("urls.txt"));
        let spawn = |k: usize| {
            Command::new(example("crawl"))
                .args(["--redis", &r, "--queue", "frontier", "-q", "-j", "1"])
                .args(["--claim-idle", "1", "--idle-exit", "2"])
                .args(["--consumer", &format!("worker-{k}")])
                .arg("-o")
                .arg(d.join(format!("out{k}.jsonl")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut victim = spawn(0);
        let survivors = [spawn(1), spawn(2)];
        // Midway for the victim: once it has written some lines, SIGKILL.
        let deadline = Instant::now() + Duration::from_secs(120);
        while urls(&d.join("out0.jsonl")).len() < 2_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        victim.kill().unwrap();
        let _ = victim.wait();
        let deadline = Instant::now() + Duration::from_secs(180);
        let outputs: Vec<Output> = survivors
            .into_iter()
            .map(|c| wait_until(c, deadline))
            .collect();
        (enqueued, outputs)
    });
    assert_eq!(enqueued.status.code(), Some(0));
    assert_eq!(
        last_line(&enqueued.stderr),
        format!("enqueued={N} skipped=0")
    );
    for out in &outputs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let killed = urls(&dir.join("out0.jsonl"));
    assert!(killed.len() >= 2_000 && killed.len() < N, "killed midway");
    let killed: HashSet<String> = killed.into_iter().collect();
    let mut survived: HashMap<String, usize> = HashMap::new();
    for k in 1..=2 {
        for url in urls(&dir.join(format!("out{k}.jsonl"))) {
            *survived.entry(url).or_default() += 1;
        }
    }
    // Every URL has a line, at least once.
    for url in &all {
        assert!(
            survived.contains_key(url) || killed.contains(url),
            "no line for {url}"
        );
    }
    // The survivors never fetched a URL twice between them; a URL with two
    // lines was the killed process's (written, not yet acknowledged).
    assert!(survived.values().all(|&n| n == 1), "a live duplicate");
    // Those are at most the lines written since its last acknowledgement:
    // fewer than 256 (the crawler acknowledges every 256 lines), plus
    // those whose acknowledgement was on its way, and a line the kill cut.
    let duplicates = killed.iter().filter(|u| survived.contains_key(*u)).count();
    assert!(
        duplicates <= 2 * 256,
        "{duplicates} duplicates of the killed process's {} lines",
        killed.len()
    );
    // Nothing stays pending.
    let client = Client::new(&redis).unwrap();
    assert_eq!(pending(&client, "frontier"), 0);
    port.stop_listening();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dedupe_skips_fetched_urls_results_are_appended_and_an_empty_queue_exits() {
    let server = RedisServer::start();
    let redis = server.url(0);
    let port = site();
    let base = format!("http://{}", port.address());
    let dir = scratch("dedupe");
    let first: Vec<String> = (0..10).map(|i| format!("{base}/a/{i}")).collect();
    std::fs::write(dir.join("first.txt"), first.join("\n")).unwrap();
    let mut second = first.clone();
    second.extend((0..2).map(|i| format!("{base}/b/{i}")));
    std::fs::write(dir.join("second.txt"), second.join("\n")).unwrap();

    let (d, r) = (dir.clone(), redis.clone());
    let runs = with_reactor(Duration::from_secs(120), move || {
        let crawl = |name: &str| {
            Command::new(example("crawl"))
                .args(["--redis", &r, "--queue", "q", "-q", "--idle-exit", "0.5"])
                .args(["--dedupe", "seen", "--results", "results"])
                .arg("-o")
                .arg(d.join(name))
                .output()
                .unwrap()
        };
        let empty = crawl("empty.jsonl");
        let e1 = enqueue(&r, "q", &d.join("first.txt"));
        let c1 = crawl("one.jsonl");
        let e2 = enqueue(&r, "q", &d.join("second.txt"));
        let c2 = crawl("two.jsonl");
        vec![empty, e1, c1, e2, c2]
    });
    for run in &runs {
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    assert_eq!(
        last_line(&runs[0].stderr),
        "ok=0 failed=0",
        "an empty queue"
    );
    assert_eq!(urls(&dir.join("one.jsonl")).len(), 10);
    let mut two = urls(&dir.join("two.jsonl"));
    two.sort();
    assert_eq!(two, [format!("{base}/b/0"), format!("{base}/b/1")]);
    let client = Client::new(&redis).unwrap();
    assert_eq!(
        wait(client.command(["XLEN", "results"])).unwrap(),
        Value::Int(12)
    );
    assert_eq!(
        wait(client.command(["SCARD", "seen"])).unwrap(),
        Value::Int(12)
    );
    assert_eq!(pending(&client, "q"), 0);
    port.stop_listening();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_redis_is_an_error_not_a_hang() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(example("crawl"))
        .args([
            "--redis",
            &format!("redis://{closed}"),
            "--queue",
            "q",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis"));
    let out = Command::new(example("crawl"))
        .args([
            "--redis",
            "redis://127.0.0.1:1",
            "--queue",
            "q",
            "http://x/",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "URLs besides --redis");
}

#[test]
fn follow_runs_until_ctrl_c_and_acknowledges_every_written_line() {
    let server = RedisServer::start();
    let redis = server.url(0);
    let port = site();
    let base = format!("http://{}", port.address());
    let dir = scratch("follow");
    let list: Vec<String> = (0..300).map(|i| format!("{base}/f/{i}")).collect();
    std::fs::write(dir.join("urls.txt"), list.join("\n")).unwrap();
    let (d, r) = (dir.clone(), redis.clone());
    let (enqueued, out) = with_reactor(Duration::from_secs(60), move || {
        let child = Command::new(example("crawl"))
            .args([
                "--redis", &r, "--queue", "live", "-q", "--follow", "-j", "2",
            ])
            .arg("-o")
            .arg(d.join("out.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The crawler waits on an empty queue; the URLs arrive later.
        std::thread::sleep(Duration::from_millis(700));
        let enqueued = enqueue(&r, "live", &d.join("urls.txt"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while urls(&d.join("out.jsonl")).len() < 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still running with nothing to do: --follow waits for more.
        std::thread::sleep(Duration::from_millis(700));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        (
            enqueued,
            wait_until(child, Instant::now() + Duration::from_secs(20)),
        )
    });
    assert_eq!(enqueued.status.code(), Some(0));
    assert_eq!(
        out.status.code(),
        Some(0),
        "Ctrl-C is how --follow ends: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_line(&out.stderr), "ok=300 failed=0");
    assert_eq!(urls(&dir.join("out.jsonl")).len(), 300);
    let client = Client::new(&redis).unwrap();
    assert_eq!(pending(&client, "live"), 0);
    port.stop_listening();
    std::fs::remove_dir_all(&dir).unwrap();
}
