//! The JSON lines' writer: one buffer, flushed when it is large, on a timer
//! and at the end, that counts a result only once its whole line has reached
//! the output. A write or flush error is fatal: the writer breaks, and
//! the error says why and how many lines were lost. With `-j N` the
//! workers share one `Output` behind a mutex and push whole lines.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;

use serde::Serialize;

/// Buffered bytes that trigger a flush.
const FLUSH_AT: usize = 64 * 1024;

/// Results whose lines have been written.
#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
}

/// Where the lines go.
pub struct Output {
    sink: File,
    /// How the output is named in messages.
    name: String,
    buf: Vec<u8>,
    /// Each buffered line: where it ends in `buf`, and whether it reports a
    /// failure.
    lines: VecDeque<(usize, bool)>,
    written: Tally,
    broken: Option<String>,
}

impl Output {
    /// Opens `path` (`-` is standard output), truncating a file.
    pub fn open(path: &str) -> io::Result<Output> {
        let (sink, name) = if path == "-" {
            // The descriptor itself: no second buffer between a line and
            // the error that loses it.
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            (File::from(fd), "standard output".to_string())
        } else {
            (File::create(path)?, path.to_string())
        };
        Ok(Output::to(sink, name))
    }

    /// Opens the file at `path` to append (`--resume`), created if missing,
    /// cut to its first `keep` bytes first (a torn last line goes).
    pub fn append(path: &str, keep: u64) -> io::Result<Output> {
        let sink = OpenOptions::new().create(true).append(true).open(path)?;
        sink.set_len(keep)?;
        Ok(Output::to(sink, path.to_string()))
    }

    fn to(sink: File, name: String) -> Output {
        Output {
            sink,
            name,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            lines: VecDeque::new(),
            written: Tally::default(),
            broken: None,
        }
    }

    /// Adds the line of `record` (`failed`: it reports a failure); flushes
    /// when the buffer is large.
    #[allow(dead_code)]
    pub fn push(&mut self, record: &impl Serialize, failed: bool) -> Result<(), String> {
        match serde_json::to_vec(record) {
            Ok(line) => self.push_line(&line, failed),
            Err(e) => Err(self.fail(io::Error::other(e), false)),
        }
    }

    /// Adds one JSON line (without its newline), whole: lines from many
    /// workers never interleave. Flushes when the buffer is large.
    pub fn push_line(&mut self, line: &[u8], failed: bool) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.lines.push_back((self.buf.len(), failed));
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered line.
    pub fn flush(&mut self) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        // Bytes written, and where the first line not fully written starts.
        let (mut at, mut line_start) = (0, 0);
        while at < self.buf.len() {
            match self.sink.write(&self.buf[at..]) {
                Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into(), at > line_start)),
                Ok(n) => {
                    at += n;
                    while let Some(&(end, failed)) = self.lines.front() {
                        if end > at {
                            break;
                        }
                        self.lines.pop_front();
                        line_start = end;
                        match failed {
                            false => self.written.ok += 1,
                            true => self.written.failed += 1,
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e, at > line_start)),
            }
        }
        self.buf.clear();
        if let Err(e) = self.sink.flush() {
            return Err(self.fail(e, false));
        }
        Ok(())
    }

    /// Breaks the writer after `error`; `cut`: a line was partly written.
    fn fail(&mut self, error: io::Error, cut: bool) -> String {
        let lost = self.lines.len();
        let partial = if cut { " (the last one cut short)" } else { "" };
        let why = format!(
            "cannot write to {}: {error}; {lost} result line(s) lost{partial}",
            self.name
        );
        self.buf.clear();
        self.lines.clear();
        self.broken = Some(why.clone());
        why
    }

    /// The results whose lines were written.
    pub fn written(&self) -> Tally {
        self.written
    }
}
