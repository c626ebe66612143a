//! Child processes: `spawn_process`, `ProcessProtocol`, `ProcessTransport`
//! and `utils::get_process_output*`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{gather_results, Deferred, Failure};
use twined::reactor::{
    self, ExitStatus, ProcessError, ProcessOptions, ProcessProtocol, ProcessTransport, Signal,
};
use twined::utils::{self, OutputError, ProcessOutput};

/// Runs the reactor with a watchdog that stops it and fails the test.
fn run_bounded() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let watchdog = reactor::call_later(Duration::from_secs(20), move || {
        f.set(true);
        let _ = reactor::stop();
    });
    reactor::run().unwrap();
    assert!(!fired.get(), "watchdog fired: the test did not finish");
    let _ = watchdog.cancel();
}

/// Runs the reactor until `d` fires and returns its result.
fn wait<T: 'static>(d: Deferred<T>) -> Result<T, Failure> {
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    d.then(move |res| {
        *r.borrow_mut() = Some(res);
        // Fired before `run`: no stop to keep for a later run.
        if reactor::running() {
            let _ = reactor::stop();
        }
        Ok::<(), Failure>(())
    });
    if result.borrow().is_none() {
        run_bounded();
    }
    let taken = result.borrow_mut().take();
    taken.expect("the Deferred did not fire")
}

/// Records every protocol event.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
    transport: Option<ProcessTransport>,
}

type OnStart = Box<dyn FnOnce(&ProcessTransport)>;
type OnOut = Box<dyn FnMut(&ProcessTransport, &[u8])>;

struct Recorder {
    log: Rc<RefCell<Log>>,
    dropped: Rc<Cell<bool>>,
    /// Called with the transport in `connection_made`.
    on_start: Option<OnStart>,
    /// Called with the transport and stdout data so far in `out_received`.
    on_out: Option<OnOut>,
}

impl Recorder {
    fn new(log: &Rc<RefCell<Log>>) -> Recorder {
        Recorder {
            log: log.clone(),
            dropped: Rc::new(Cell::new(false)),
            on_start: None,
            on_out: None,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

impl ProcessProtocol for Recorder {
    fn connection_made(&mut self, transport: ProcessTransport) {
        self.log.borrow_mut().events.push("made".into());
        if let Some(f) = self.on_start.take() {
            f(&transport);
        }
        // Keep it, as Twisted protocols do (a cycle the end must break).
        self.log.borrow_mut().transport = Some(transport);
    }
    fn out_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().stdout.extend_from_slice(data);
        if let Some(f) = self.on_out.as_mut() {
            let t = self.log.borrow().transport.clone().unwrap();
            f(&t, data);
        }
    }
    fn err_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().stderr.extend_from_slice(data);
    }
    fn in_connection_lost(&mut self) {
        self.log.borrow_mut().events.push("in lost".into());
    }
    fn out_connection_lost(&mut self) {
        self.log.borrow_mut().events.push("out lost".into());
    }
    fn err_connection_lost(&mut self) {
        self.log.borrow_mut().events.push("err lost".into());
    }
    fn process_exited(&mut self, status: ExitStatus) {
        self.log
            .borrow_mut()
            .events
            .push(format!("exited {status}"));
    }
    fn process_ended(&mut self, status: ExitStatus) {
        let mut log = self.log.borrow_mut();
        log.events.push(format!("ended {status}"));
        log.status = Some(status);
        log.transport = None;
        let _ = reactor::stop();
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["-c".into(), script.into()]
}

#[test]
fn output_and_exit_status_of_a_shell_command() {
    let start = reactor::source_count();
    let output = wait(utils::get_process_output_and_value(
        "sh",
        sh("echo out; echo err >&2; exit 3"),
    ))
    .unwrap();
    assert_eq!(
        output,
        ProcessOutput {
            status: ExitStatus::Exited(3),
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
        }
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(!output.status.success());
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn protocol_events_arrive_in_order_and_the_protocol_is_dropped_at_the_end() {
    let start = reactor::source_count();
    let log = Rc::new(RefCell::new(Log::default()));
    let protocol = Recorder::new(&log);
    let dropped = protocol.dropped.clone();
    let transport = reactor::spawn_process(
        "sh",
        sh("echo out; echo err >&2; exit 3"),
        ProcessOptions::default(),
        protocol,
    )
    .unwrap();
    assert!(transport.pid().is_some());
    assert_eq!(log.borrow().events, ["made"]);
    run_bounded();
    let log = log.borrow();
    assert_eq!(log.stdout, b"out\n");
    assert_eq!(log.stderr, b"err\n");
    assert_eq!(log.status, Some(ExitStatus::Exited(3)));
    // "made" first, "ended" last, with stdin closed before it; the others
    // depend on scheduling.
    assert_eq!(log.events.first().unwrap(), "made");
    assert_eq!(log.events.last().unwrap(), "ended exit code 3");
    let mut middle = log.events[1..log.events.len() - 1].to_vec();
    middle.sort();
    assert_eq!(
        middle,
        ["err lost", "exited exit code 3", "in lost", "out lost"]
    );
    assert!(dropped.get(), "the protocol outlived process_ended");
    assert_eq!(transport.pid(), None);
    assert_eq!(transport.status(), Some(ExitStatus::Exited(3)));
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn get_process_output_fires_with_stdout() {
    let out = wait(utils::get_process_output("echo", ["hello", "world"])).unwrap();
    assert_eq!(out, b"hello world\n");
}

#[test]
fn get_process_output_errbacks_on_stderr_output() {
    let failure = wait(utils::get_process_output(
        "sh",
        sh("echo out; echo oops >&2; exit 0"),
    ))
    .unwrap_err();
    let err = failure.downcast_ref::<OutputError>().unwrap();
    assert!(matches!(err, OutputError::Stderr { .. }), "{err:?}");
    assert_eq!(err.output().stdout, b"out\n");
    assert_eq!(err.to_string(), "`sh` wrote to stderr (exit code 0): oops");
}

#[test]
fn get_process_output_errbacks_on_failure_exit() {
    let failure = wait(utils::get_process_output("sh", sh("echo partial; exit 2"))).unwrap_err();
    let err = failure.downcast_ref::<OutputError>().unwrap();
    assert!(matches!(err, OutputError::Failed { .. }), "{err:?}");
    assert_eq!(err.output().stdout, b"partial\n");
    assert_eq!(err.to_string(), "`sh` failed: exit code 2");
}

#[test]
fn get_process_value_gives_the_status() {
    let status = wait(utils::get_process_value("sh", sh("exit 7"))).unwrap();
    assert_eq!(status, ExitStatus::Exited(7));
}

#[test]
fn stdin_is_written_and_closed() {
    let log = Rc::new(RefCell::new(Log::default()));
    let mut protocol = Recorder::new(&log);
    protocol.on_start = Some(Box::new(|t: &ProcessTransport| {
        t.write(b"hello ");
        t.write(b"world");
        t.close_stdin();
        // Dropped: stdin is closing.
        t.write(b"ignored");
    }));
    reactor::spawn_process(
        "cat",
        Vec::<String>::new(),
        ProcessOptions::default(),
        protocol,
    )
    .unwrap();
    run_bounded();
    let log = log.borrow();
    assert_eq!(log.stdout, b"hello world");
    assert_eq!(log.status, Some(ExitStatus::Exited(0)));
    assert!(log.events.iter().any(|e| e == "in lost"));
}

#[test]
fn a_megabyte_through_cat_is_buffered_and_comes_back_whole() {
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let log = Rc::new(RefCell::new(Log::default()));
    let mut protocol = Recorder::new(&log);
    let sent = payload.clone();
    let saw_buffering = Rc::new(Cell::new(false));
    let s = saw_buffering.clone();
    protocol.on_start = Some(Box::new(move |t: &ProcessTransport| {
        t.write(&sent);
        // A pipe holds far less than a megabyte: the rest waits in our buffer.
        s.set(t.stdin_buffered() > 0);
        t.close_stdin();
    }));
    reactor::spawn_process(
        "cat",
        Vec::<String>::new(),
        ProcessOptions::default(),
        protocol,
    )
    .unwrap();
    run_bounded();
    let log = log.borrow();
    assert!(saw_buffering.get());
    assert_eq!(log.stdout.len(), payload.len());
    assert!(log.stdout == payload);
    assert_eq!(log.status, Some(ExitStatus::Exited(0)));
}

#[test]
fn a_process_killed_by_a_signal_says_which() {
    let output = wait(utils::get_process_output_and_value("sh", sh("kill -9 $$"))).unwrap();
    assert_eq!(output.status, ExitStatus::Killed(Signal::KILL));
    assert_eq!(output.status.signal().map(Signal::number), Some(9));
    assert_eq!(output.status.code(), None);
    assert_eq!(output.status.to_string(), "killed by signal 9 (SIGKILL)");
}

#[test]
fn signal_terminates_and_later_signals_are_refused() {
    let log = Rc::new(RefCell::new(Log::default()));
    let mut protocol = Recorder::new(&log);
    protocol.on_start = Some(Box::new(|t: &ProcessTransport| {
        t.signal(Signal::TERM).unwrap();
    }));
    let transport =
        reactor::spawn_process("sleep", ["30"], ProcessOptions::default(), protocol).unwrap();
    let pid = transport.pid().unwrap();
    run_bounded();
    assert_eq!(log.borrow().status, Some(ExitStatus::Killed(Signal::TERM)));
    let err = transport.kill().unwrap_err();
    assert!(matches!(err, ProcessError::AlreadyExited { pid: p } if p == pid));
    assert_eq!(err.to_string(), format!("process {pid} has already exited"));
}

#[test]
fn lose_connection_stops_reading_and_the_child_gets_sigpipe() {
    let log = Rc::new(RefCell::new(Log::default()));
    let mut protocol = Recorder::new(&log);
    protocol.on_out = Some(Box::new(|t: &ProcessTransport, _data: &[u8]| {
        t.lose_connection();
    }));
    reactor::spawn_process(
        "yes",
        Vec::<String>::new(),
        ProcessOptions::default(),
        protocol,
    )
    .unwrap();
    run_bounded();
    let log = log.borrow();
    assert_eq!(log.status, Some(ExitStatus::Killed(Signal::from_raw(13))));
    for event in ["in lost", "out lost", "err lost"] {
        assert!(log.events.iter().any(|e| e == event), "{:?}", log.events);
    }
    assert!(log.events.last().unwrap().starts_with("ended"));
}

#[test]
fn a_missing_program_is_an_error() {
    let start = reactor::source_count();
    let log = Rc::new(RefCell::new(Log::default()));
    let err = reactor::spawn_process(
        "nosuchprog-twined",
        Vec::<String>::new(),
        ProcessOptions::default(),
        Recorder::new(&log),
    )
    .unwrap_err();
    assert!(matches!(err, ProcessError::Spawn { .. }));
    assert_eq!(
        err.to_string(),
        "could not start `nosuchprog-twined`: No such file or directory"
    );
    assert!(log.borrow().events.is_empty());

    let failure = wait(utils::get_process_output("nosuchprog-twined", ["x"])).unwrap_err();
    assert!(failure.check::<ProcessError>(), "{failure}");
    assert_eq!(
        failure.to_string(),
        "could not start `nosuchprog-twined`: No such file or directory"
    );
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn a_missing_working_directory_is_named_in_the_error() {
    let options = ProcessOptions {
        cwd: Some("/nonexistent-twined-dir".into()),
        ..Default::default()
    };
    let err = reactor::spawn_process(
        "pwd",
        Vec::<String>::new(),
        options,
        Recorder::new(&Rc::default()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not start `pwd` in `/nonexistent-twined-dir`: No such file or directory"
    );
}

#[test]
fn env_and_cwd_are_applied() {
    let options = ProcessOptions {
        env: Some(vec![("TWINED_VAR".into(), "forty-two".into())]),
        cwd: Some("/".into()),
    };
    let out = wait(utils::get_process_output_with(
        "/bin/sh",
        sh("echo \"$TWINED_VAR\"; pwd; echo \"${HOME:-no home}\""),
        options,
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "forty-two\n/\nno home\n");
}

#[test]
fn fifty_concurrent_processes_all_complete() {
    let start = reactor::source_count();
    let ds: Vec<Deferred<(usize, Vec<u8>)>> = (0..50)
        .map(|i| {
            utils::get_process_output("sh", sh(&format!("echo {i}")))
                .add_callback(move |out| (i, out))
        })
        .collect();
    let results = wait(gather_results(ds)).unwrap();
    assert_eq!(results.len(), 50);
    for (i, out) in results {
        assert_eq!(out, format!("{i}\n").into_bytes());
    }
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn a_child_that_stops_reading_stdin_breaks_the_pipe_cleanly() {
    let start = reactor::source_count();
    let log = Rc::new(RefCell::new(Log::default()));
    let mut protocol = Recorder::new(&log);
    protocol.on_start = Some(Box::new(|t: &ProcessTransport| {
        // `head` takes one byte and exits; the rest of the megabyte has
        // nowhere to go.
        t.write(&vec![b'x'; 1024 * 1024]);
    }));
    let transport =
        reactor::spawn_process("head", ["-c", "1"], ProcessOptions::default(), protocol).unwrap();
    run_bounded();
    let log = log.borrow();
    assert_eq!(log.stdout, b"x");
    assert_eq!(log.status, Some(ExitStatus::Exited(0)));
    assert!(
        log.events.iter().any(|e| e == "in lost"),
        "{:?}",
        log.events
    );
    assert_eq!(transport.stdin_buffered(), 0);
    // Writing now is dropped quietly.
    transport.write(b"late");
    assert_eq!(reactor::source_count(), start);
}
