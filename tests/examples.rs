//! Every example runs to completion, offline, and says what it should: none
//! of them may rot.

#[path = "support/examples.rs"]
mod examples;

use std::process::Command;

use examples::example;

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn deferred_basics() {
    assert!(run("deferred_basics", &[]).contains("#3: 8"));
}

#[test]
fn getpage_deferredlist() {
    assert!(run("getpage_deferredlist", &[]).contains("all done: 5 pages"));
}

#[test]
fn inline_callbacks() {
    let out = run("inline_callbacks", &[]);
    assert!(out.contains("sequential: [20, 30, 40]"), "{out}");
    assert!(out.contains("expected failure"), "{out}");
}

#[test]
fn tornado_style() {
    let out = run("tornado_style", &[]);
    assert!(out.contains("/missing: 404"), "{out}");
    assert!(out.contains("pending at exit: 0"), "{out}");
}

#[test]
fn grequests_map() {
    let out = run("grequests_map", &[]);
    assert!(out.contains("2 of 5 succeeded"), "{out}");
    for kind in ["timeout", "dns", "http"] {
        assert!(
            out.contains(&format!(": {kind}: ")),
            "{kind} missing: {out}"
        );
    }
}

#[test]
fn gevent_pool() {
    let out = run("gevent_pool", &[]);
    assert_eq!(out.matches("done /job").count(), 12, "{out}");
}

#[test]
fn thread_pool() {
    assert!(run("thread_pool", &[]).contains("sum of squares: 204"));
}

#[test]
fn process_pool() {
    let out = run("process_pool", &[]);
    assert!(out.contains("echo said: gamma"), "{out}");
    assert!(out.contains("sh wrote 5 lines"), "{out}");
}

#[test]
fn raw_http() {
    let out = run("raw_http", &[]);
    assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
    assert!(out.contains("hello from twined's web::server"), "{out}");
}

#[test]
fn select_loop() {
    let out = run("select_loop", &[]);
    assert!(out.contains("GET /teapot -> HTTP/1.0 418"), "{out}");
}

#[test]
fn sync_baseline() {
    let out = run("sync_baseline", &["12", "30"]);
    assert!(out.contains("12 pages, 780 bytes"), "{out}");
    assert!(out.contains("blocking loop:"), "{out}");
    assert!(out.contains("faster all at once"), "{out}");
}

#[test]
fn crawl_demo() {
    let out = Command::new(example("crawl"))
        .args(["--demo", "300", "-q", "-o", "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("ok=300 failed=0\n"));
}

#[test]
fn serve_refuses_a_bad_port_cleanly() {
    // `serve` runs until Ctrl-C; check only that it starts and reports a
    // port it cannot take.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(example("serve")).arg(&port).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&port));
}

#[test]
fn chat_server_demo() {
    let out = run("chat_server", &["--demo"]);
    assert!(
        out.contains("bob| Name taken, please choose another."),
        "{out}"
    );
    assert!(out.contains("bob| <alice> hi bob"), "{out}");
    assert!(out.contains("alice| <bob> hello alice, bye"), "{out}");
    assert!(out.contains("alice| bob has left"), "{out}");
    assert!(
        !out.contains("alice| <alice>"),
        "no echo to the sender: {out}"
    );
}

#[test]
fn rpc_demo() {
    let out = run("rpc", &["--demo"]);
    assert!(out.contains("upper hello, world -> HELLO, WORLD"), "{out}");
    assert!(out.contains("add 2 40 -> 42"), "{out}");
    assert!(out.contains("reverse stressed -> desserts"), "{out}");
    assert!(
        out.contains("divide 1 0 -> error: the server says: no such method: divide"),
        "{out}"
    );
    assert!(out.contains("add 1 1 -> 2"), "{out}");
}

#[test]
fn rpc_refuses_bad_usage() {
    let out = Command::new(example("rpc"))
        .arg("nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn reconnecting_client_follows_a_server_restart() {
    let out = run("reconnecting_client", &[]);
    assert!(out.contains("connected: hello #1"), "{out}");
    assert!(out.contains("client: connection lost"), "{out}");
    assert!(out.contains("reconnected: hello #2"), "{out}");
    assert!(out.contains("client service stopped"), "{out}");
    assert!(
        out.contains("reconnecting factory: gave up reconnecting after 3 retries"),
        "{out}"
    );
}

#[test]
fn udp_ping() {
    let out = run("udp_ping", &["4"]);
    assert!(out.contains("4/4 replies"), "{out}");
    assert!(out.contains("ping 1: no reply within 1s"), "{out}");
    assert!(out.contains("closed port: connection refused"), "{out}");
}

#[test]
fn multi_echo() {
    let out = run("multi_echo", &[]);
    assert!(out.contains("listening on tcp:127.0.0.1:"), "{out}");
    assert!(out.contains("listening on unix:"), "{out}");
    assert!(out.contains("tcp:host=127.0.0.1:port="), "{out}");
    assert!(out.contains("tls:localhost:"), "{out}");
    assert_eq!(out.matches("echoed hello").count(), 3, "{out}");
    assert!(out.contains(".sock removed: true"), "{out}");
}

#[test]
fn multi_echo_names_a_bad_endpoint() {
    let out = Command::new(example("multi_echo"))
        .args(["--serve", "tcp:http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad port \"http\""));
}

#[test]
fn starttls() {
    let out = run("starttls", &[]);
    assert!(out.contains("client got in clear: 220 go ahead"), "{out}");
    assert!(out.contains("server got: HELLO secret"), "{out}");
    assert!(
        out.contains("client got over TLS: 250 you said: HELLO secret"),
        "{out}"
    );
    assert!(out.contains("client: closed cleanly"), "{out}");
}
