//! Finding and running the example binaries from a test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use twined::reactor;

/// The example `name`, built fresh in the profile this test runs in
/// (debug or release): `cargo build --example` runs once per name and test
/// process, so a binary left from older sources is never run.
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf();
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--example", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cargo build");
        assert!(status.success(), "could not build example {name}");
        built.push(name.to_string());
    }
    path
}

/// Runs `command` to completion while this thread's reactor runs (so servers
/// the test started on it answer), at most `limit`.
pub fn run_with_reactor(command: Command, stdin: Option<Vec<u8>>, limit: Duration) -> Output {
    run_child(command, stdin, None, limit)
}

/// [`run_with_reactor`], pressing Ctrl-C (SIGINT to the child) `after` its
/// start.
pub fn interrupt_with_reactor(command: Command, after: Duration, limit: Duration) -> Output {
    run_child(command, None, Some(after), limit)
}

fn run_child(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    interrupt: Option<Duration>,
    limit: Duration,
) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("spawn example");
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&data);
        });
    }
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    let handle = reactor::handle();
    thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = tx.send(output);
        handle.call_from_thread(|| {
            let _ = reactor::stop();
        });
    });
    if let Some(after) = interrupt {
        reactor::call_later(after, move || {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        });
    }
    let watchdog = reactor::call_later(limit, || {
        let _ = reactor::stop();
    });
    reactor::run().expect("reactor");
    let _ = watchdog.cancel();
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the example did not finish in time")
        .expect("example output")
}
