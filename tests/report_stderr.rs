//! Reports that have no caller to go to ("Unhandled error in Deferred", a
//! panicking timed call, a failing system event trigger) reach standard error
//! when the program installed no logger, and the logger when it did.
//!
//! The `log` logger is process-global, so each case runs in a child process:
//! the parent test runs this test binary again with `--ignored --exact` on one
//! of the `child_*` tests below and looks at what the child wrote.

use std::process::Command;
use std::time::Duration;

use twined::defer::{self, Deferred, Failure};
use twined::reactor::{self, Event, Phase};

/// Runs the ignored test `name` of this binary in a child process; returns
/// its (stdout, stderr). Fails if the child fails.
fn child(name: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            name,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} did not run:\n{stdout}"
    );
    (stdout, stderr)
}

fn drop_a_failed_deferred() {
    let d: Deferred<u32> = defer::fail(Failure::msg("the disk is on fire"));
    drop(d);
}

#[test]
fn unhandled_failure_goes_to_stderr_without_a_logger() {
    let (_, stderr) = child("child_unhandled_failure");
    assert_eq!(
        stderr.matches("Unhandled error in Deferred").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("the disk is on fire"), "{stderr}");
}

#[test]
#[ignore = "run in a child process by unhandled_failure_goes_to_stderr_without_a_logger"]
fn child_unhandled_failure() {
    drop_a_failed_deferred();
}

#[test]
fn debug_mode_report_on_stderr_says_where_the_deferred_was_created() {
    let (_, stderr) = child("child_unhandled_failure_debug");
    assert!(stderr.contains("Unhandled error in Deferred"), "{stderr}");
    assert!(stderr.contains("was created at"), "{stderr}");
}

#[test]
#[ignore = "run in a child process by debug_mode_report_on_stderr_says_where_the_deferred_was_created"]
fn child_unhandled_failure_debug() {
    defer::set_debugging(true);
    drop_a_failed_deferred();
}

#[test]
fn with_a_logger_the_report_goes_to_the_logger_only() {
    let (stdout, stderr) = child("child_unhandled_failure_with_logger");
    assert!(!stderr.contains("Unhandled error in Deferred"), "{stderr}");
    assert!(
        stdout.contains("LOGGED ERROR: Unhandled error in Deferred"),
        "{stdout}"
    );
}

struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        use std::io::Write;
        let line = format!("LOGGED {}: {}\n", record.level(), record.args());
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
    fn flush(&self) {}
}

#[test]
#[ignore = "run in a child process by with_a_logger_the_report_goes_to_the_logger_only"]
fn child_unhandled_failure_with_logger() {
    static LOGGER: StdoutLogger = StdoutLogger;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    drop_a_failed_deferred();
}

#[test]
fn panicking_timed_call_and_failing_trigger_go_to_stderr_without_a_logger() {
    let (_, stderr) = child("child_reactor_reports");
    assert!(
        stderr.contains("a timed call panicked: the timed call broke"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a system event trigger panicked: the trigger broke"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a before-Shutdown trigger failed: the cleanup failed"),
        "{stderr}"
    );
}

#[test]
#[ignore = "run in a child process by panicking_timed_call_and_failing_trigger_go_to_stderr_without_a_logger"]
fn child_reactor_reports() {
    std::panic::set_hook(Box::new(|_| {})); // only twined's reports on stderr
    reactor::call_later(Duration::ZERO, || -> () { panic!("the timed call broke") });
    reactor::add_system_event_trigger(Phase::During, Event::Shutdown, || -> () {
        panic!("the trigger broke")
    });
    reactor::add_system_event_trigger(Phase::Before, Event::Shutdown, || {
        defer::fail::<()>(Failure::msg("the cleanup failed"))
    });
    reactor::call_later(Duration::from_millis(5), || reactor::stop().unwrap());
    reactor::run().unwrap();
}
