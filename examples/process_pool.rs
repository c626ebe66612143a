//! `ProcessPoolExecutor` as child processes driven by the reactor:
//! `utils::get_process_output` for "run and give me stdout", and
//! `reactor::spawn_process` with a `ProcessProtocol` for streaming.
//!
//! ```python
//! d = utils.getProcessOutput("/bin/echo", ["hello"])
//! reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "..."])
//! ```
//!
//! Run with `cargo run --example process_pool`.

use twined::defer::{gather_results, Deferred, Failure};
use twined::reactor::{self, ExitStatus, ProcessOptions, ProcessProtocol, ProcessTransport};
use twined::utils;

/// Counts the lines a child writes, and reports how it ended.
struct LineCounter {
    lines: usize,
    done: Option<twined::defer::Trigger<usize>>,
}

impl ProcessProtocol for LineCounter {
    fn out_received(&mut self, data: &[u8]) {
        self.lines += data.iter().filter(|&&b| b == b'\n').count();
    }
    fn process_ended(&mut self, status: ExitStatus) {
        println!("child ended: {status}");
        if let Some(done) = self.done.take() {
            done.callback(self.lines);
        }
    }
}

fn main() {
    // A "pool" of three commands run side by side.
    let outputs: Vec<Deferred<Vec<u8>>> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|word| utils::get_process_output("echo", [*word]))
        .collect();
    let (counted, done) = Deferred::new();
    let proto = LineCounter {
        lines: 0,
        done: Some(done),
    };
    let spawned: Result<ProcessTransport, _> = reactor::spawn_process(
        "sh",
        ["-c", "for i in 1 2 3 4 5; do echo line $i; done"],
        ProcessOptions::default(),
        proto,
    );
    if let Err(e) = spawned {
        eprintln!("could not start sh: {e}");
        std::process::exit(1);
    }
    gather_results(outputs)
        .add_callback(|outs| {
            for out in outs {
                print!("echo said: {}", String::from_utf8_lossy(&out));
            }
        })
        .and_then(move |()| counted)
        .add_callback(|lines| println!("sh wrote {lines} lines"))
        .add_errback(|failure: Failure| eprintln!("failed: {failure}"))
        .add_both(|_| reactor::stop().expect("stop"));
    reactor::run().expect("run");
}
