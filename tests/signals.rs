//! SIGINT/SIGTERM while `run()` runs stop the reactor cleanly (the shutdown
//! triggers run); without handlers, or outside `run()`, they kill as usual.
//!
//! Signals go to a whole process, so each case runs in a child: this test
//! binary re-executed with `TWINED_SIGNAL_CHILD=<mode>`, running only
//! `child_mode`. The parent waits for the child's ready marker, sends the
//! signal with `kill(1)`, and checks how the child ended and what it printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use twined::defer::Deferred;
use twined::reactor::{self, Event, Phase, RunOptions};

const CHILD_ENV: &str = "TWINED_SIGNAL_CHILD";
const READY: &str = "TWINED-READY";
const BEFORE: &str = "TWINED-BEFORE-SHUTDOWN";
const AFTER: &str = "TWINED-AFTER-SHUTDOWN";
const RETURNED: &str = "TWINED-RUN-RETURNED";
const LIMIT: Duration = Duration::from_secs(20);

fn say(marker: &str) {
    let mut out = std::io::stdout();
    // On a line of its own: the harness leaves "test child_mode ... " open.
    let _ = writeln!(out, "\n{marker}");
    let _ = out.flush();
}

/// In a normal test run this does nothing; in a child it is the whole child.
#[test]
fn child_mode() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The child's own watchdog: never outlive a confused parent.
    reactor::call_later(LIMIT, || std::process::exit(3));
    match mode.as_str() {
        "handlers" => {
            reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, || {
                say(BEFORE);
                // A before-shutdown Deferred holds the shutdown, also on a signal.
                let (d, trigger) = Deferred::<()>::new();
                reactor::call_later(Duration::from_millis(10), move || trigger.callback(()));
                d
            });
            reactor::add_system_event_trigger(Phase::After, Event::Shutdown, || say(AFTER));
            reactor::call_when_running(|| say(READY));
            reactor::run().unwrap();
            say(RETURNED);
        }
        "no-handlers" => {
            reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, || say(BEFORE));
            reactor::call_when_running(|| say(READY));
            reactor::run_with(RunOptions {
                install_signal_handlers: false,
            })
            .unwrap();
            say(RETURNED);
        }
        "after-run" => {
            reactor::call_when_running(|| reactor::stop().unwrap());
            reactor::run().unwrap();
            // The handlers are gone: a signal now does what it does by default.
            say(READY);
            thread::sleep(LIMIT);
            say(RETURNED);
        }
        other => panic!("unknown child mode {other:?}"),
    }
}

struct Outcome {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs `child_mode` in a child with `mode`, sends `signal` once it is ready.
fn signal_child(mode: &str, signal: &str) -> Outcome {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["child_mode", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut stdout = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while !stdout.iter().any(|l: &String| l == READY) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => stdout.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child never got ready; it printed {stdout:?}");
            }
        }
    }
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} failed");

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit after {signal}; it printed {stdout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    reader.join().unwrap();
    stdout.extend(lines_rx.try_iter());
    let stderr = err_reader.join().unwrap();
    Outcome {
        status,
        stdout,
        stderr,
    }
}

fn position(lines: &[String], marker: &str) -> Option<usize> {
    lines.iter().position(|l| l == marker)
}

fn assert_clean_stop(outcome: &Outcome) {
    let lines = &outcome.stdout;
    assert!(
        outcome.status.success(),
        "child ended with {:?}; stdout {lines:?}; stderr {}",
        outcome.status,
        outcome.stderr
    );
    let before = position(lines, BEFORE).expect("the before-shutdown trigger did not run");
    let after = position(lines, AFTER).expect("the after-shutdown trigger did not run");
    let returned = position(lines, RETURNED).expect("run() did not return");
    assert!(before < after && after < returned, "{lines:?}");
}

#[test]
fn sigint_while_running_stops_cleanly_and_runs_the_shutdown_triggers() {
    assert_clean_stop(&signal_child("handlers", "-INT"));
}

#[test]
fn sigterm_while_running_stops_cleanly_too() {
    assert_clean_stop(&signal_child("handlers", "-TERM"));
}

#[test]
fn without_signal_handlers_sigint_kills_the_process() {
    let outcome = signal_child("no-handlers", "-INT");
    assert_eq!(
        outcome.status.signal(),
        Some(2),
        "child ended with {:?}; stdout {:?}",
        outcome.status,
        outcome.stdout
    );
    assert_eq!(position(&outcome.stdout, BEFORE), None);
    assert_eq!(position(&outcome.stdout, RETURNED), None);
}

#[test]
fn after_run_returns_sigint_kills_the_process_again() {
    let outcome = signal_child("after-run", "-INT");
    assert_eq!(
        outcome.status.signal(),
        Some(2),
        "child ended with {:?}; stdout {:?}",
        outcome.status,
        outcome.stdout
    );
    assert_eq!(position(&outcome.stdout, RETURNED), None);
}
