//! The URL list, read as it is needed: the command-line URLs, then the input
//! file or stdin, then the demo site's URLs, `--repeat` times over.
//!
//! [`Lines`] reads in batches on twined's thread pool (a read from a pipe may
//! block; the reactor must not), and a batch read from a pipe ends as soon as
//! the next line is not already buffered, so a URL written to a pipe is
//! fetched at once. [`Feed`] hands the lines to the workers on the reactor
//! thread and keeps at most about two batches in memory, whatever the length
//! of the input. Lines are bytes: a line that is not UTF-8, or longer than
//! [`MAX_LINE`], becomes an [`Entry::Invalid`] and the crawl goes on. With
//! `--repeat`, a file is read again from its start; stdin (or a pipe) is
//! copied to an unlinked temporary file on the first pass and read from there.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use twined::defer::{succeed, Deferred, Failure, Trigger};
use twined::threads::defer_to_thread;

use crate::demo;

/// Longest input line accepted, in bytes (64 KiB); a longer one is an
/// [`Entry::Invalid`].
pub const MAX_LINE: usize = 64 * 1024;
/// Lines read per trip to the thread pool.
const BATCH: usize = 1024;
/// How much of an invalid line is shown.
const SHOWN: usize = 200;

/// One line of the URL list.
pub enum Entry {
    /// A URL to fetch (not yet parsed).
    Url(String),
    /// A line that cannot be a URL: shown printable, and why.
    Invalid { shown: String, reason: &'static str },
}

/// The URL file or stdin.
pub enum Input {
    /// A regular file: rewound for the next pass.
    File(BufReader<File>),
    /// Stdin or a pipe, copied to `spool` on the first pass when the list is
    /// read again.
    Stream {
        reader: BufReader<Box<dyn Read + Send>>,
        spool: Option<BufWriter<File>>,
    },
}

impl Input {
    /// Opens `path` (`-` is stdin); `repeat` passes will be made.
    pub fn open(path: &str, repeat: usize) -> io::Result<Input> {
        let stream: Box<dyn Read + Send> = if path == "-" {
            Box::new(io::stdin())
        } else {
            let file = File::open(path)?;
            if file.metadata()?.is_file() {
                return Ok(Input::File(BufReader::new(file)));
            }
            Box::new(file)
        };
        let spool = if repeat > 1 {
            Some(BufWriter::new(spool_file()?))
        } else {
            None
        };
        Ok(Input::Stream {
            reader: BufReader::new(stream),
            spool,
        })
    }

    /// Whether the next line is (at least partly) in memory, so reading it
    /// cannot wait on the writer of a pipe.
    fn buffered(&self) -> bool {
        match self {
            Input::File(_) => true,
            Input::Stream { reader, .. } => !reader.buffer().is_empty(),
        }
    }

    /// The next line into `line` (at most [`MAX_LINE`] bytes kept): `None` at
    /// the end, else whether the line was longer.
    fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
        let (reader, mut spool): (&mut dyn BufRead, _) = match self {
            Input::File(r) => (r, None),
            Input::Stream { reader, spool } => (reader, spool.as_mut()),
        };
        line.clear();
        let (taken, _) = read_capped_line(reader, line, MAX_LINE, |chunk| match spool.as_mut() {
            Some(spool) => spool.write_all(chunk),
            None => Ok(()),
        })?;
        // The newline counts for nothing.
        Ok((taken > 0).then_some(taken > MAX_LINE as u64 + 1))
    }

    /// Back to the first line, for the next pass.
    fn rewind(&mut self) -> io::Result<()> {
        match self {
            Input::File(reader) => {
                reader.seek(SeekFrom::Start(0))?;
            }
            Input::Stream { spool, .. } => {
                let spool = spool.take().ok_or_else(|| {
                    io::Error::other("the input cannot be read again without a spool file")
                })?;
                let mut file = spool.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.seek(SeekFrom::Start(0))?;
                *self = Input::File(BufReader::new(file));
            }
        }
        Ok(())
    }
}

/// An unlinked temporary file, readable and writable by this process only.
fn spool_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("twined-crawl-{}-{stamp}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Where a pass is.
#[derive(Clone, Copy)]
enum Segment {
    Args(usize),
    Input,
    Demo(usize),
}

/// A batch read on the thread pool.
struct Batch {
    entries: Vec<Entry>,
    end: End,
}

/// How a batch ended.
enum End {
    More,
    Exhausted,
    Failed(io::Error),
}

/// The whole URL list, read on the thread pool.
pub struct Lines {
    args: Vec<String>,
    input: Option<Input>,
    demo: Option<(String, usize)>,
    repeat: usize,
    pass: usize,
    at: Segment,
    /// Whether this pass has produced an entry (a list without one is not
    /// read again).
    pass_had_lines: bool,
    line: Vec<u8>,
}

impl Lines {
    /// The list: `args`, then `input`, then `demo` (base URL, count), made
    /// `repeat` times.
    pub fn new(
        args: Vec<String>,
        input: Option<Input>,
        demo: Option<(String, usize)>,
        repeat: usize,
    ) -> Lines {
        Lines {
            args,
            input,
            demo,
            repeat,
            pass: 0,
            at: Segment::Args(0),
            pass_had_lines: false,
            line: Vec::new(),
        }
    }

    /// The number of entries, when it is known without reading the input.
    pub fn known_len(&self) -> Option<u64> {
        if self.input.is_some() {
            return None;
        }
        let per_pass = self.args.len() + self.demo.as_ref().map_or(0, |d| d.1);
        Some(per_pass as u64 * self.repeat as u64)
    }

    /// Up to `max` entries; a read from a pipe stops early rather than wait.
    fn next_batch(&mut self, max: usize) -> (Vec<Entry>, End) {
        let mut entries = Vec::new();
        loop {
            if entries.len() >= max {
                return (entries, End::More);
            }
            if self.pass >= self.repeat {
                return (entries, End::Exhausted);
            }
            match self.at {
                Segment::Args(i) => match self.args.get(i) {
                    Some(url) => {
                        entries.push(Entry::Url(url.clone()));
                        self.pass_had_lines = true;
                        self.at = Segment::Args(i + 1);
                    }
                    None => self.at = Segment::Input,
                },
                Segment::Input => {
                    let Some(input) = self.input.as_mut() else {
                        self.at = Segment::Demo(0);
                        continue;
                    };
                    if !entries.is_empty() && !input.buffered() {
                        return (entries, End::More);
                    }
                    match input.read_line(&mut self.line) {
                        Ok(Some(overlong)) => {
                            if let Some(entry) = entry(&self.line, overlong) {
                                self.pass_had_lines = true;
                                entries.push(entry);
                            }
                        }
                        Ok(None) => self.at = Segment::Demo(0),
                        Err(e) => return (entries, End::Failed(e)),
                    }
                }
                Segment::Demo(i) => match &self.demo {
                    Some((base, n)) if i < *n => {
                        entries.push(Entry::Url(demo::url(base, i)));
                        self.pass_had_lines = true;
                        self.at = Segment::Demo(i + 1);
                    }
                    _ => {
                        self.pass += 1;
                        self.at = Segment::Args(0);
                        if !std::mem::take(&mut self.pass_had_lines) {
                            self.pass = self.repeat;
                        } else if self.pass < self.repeat {
                            if let Some(Err(e)) = self.input.as_mut().map(Input::rewind) {
                                return (entries, End::Failed(e));
                            }
                        }
                    }
                },
            }
        }
    }
}

/// The entry for one input line, or `None` for a blank line or a comment.
fn entry(line: &[u8], overlong: bool) -> Option<Entry> {
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return None;
    }
    if overlong {
        let mut shown = printable(&line[..line.len().min(SHOWN)]);
        shown.push_str("...");
        return Some(Entry::Invalid {
            shown,
            reason: "the line is longer than 65536 bytes",
        });
    }
    match std::str::from_utf8(line) {
        Ok(url) => Some(Entry::Url(url.to_string())),
        Err(_) => Some(Entry::Invalid {
            shown: printable(line),
            reason: "the line is not valid UTF-8",
        }),
    }
}

/// `bytes` as text: valid UTF-8 as it is, any other byte as `\xNN`.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The URL list shared by every worker thread: each worker's [`Feed`] takes
/// a batch at a time under the lock, so every line goes to exactly one
/// worker.
pub struct SharedLines {
    state: Mutex<LinesState>,
}

struct LinesState {
    lines: Lines,
    /// Every line has been handed out, or reading failed.
    ended: bool,
    /// Why reading failed, if it did.
    error: Option<String>,
}

impl SharedLines {
    pub fn new(lines: Lines) -> Arc<SharedLines> {
        Arc::new(SharedLines {
            state: Mutex::new(LinesState {
                lines,
                ended: false,
                error: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinesState> {
        // A panic while reading leaves the list as it was: go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch (on the thread pool: it may block on a pipe).
    fn next_batch(&self, max: usize) -> Batch {
        let mut state = self.lock();
        if state.ended {
            return Batch {
                entries: Vec::new(),
                end: End::Exhausted,
            };
        }
        let (entries, end) = state.lines.next_batch(max);
        match &end {
            End::More => {}
            End::Exhausted => state.ended = true,
            End::Failed(e) => {
                state.ended = true;
                state.error = Some(e.to_string());
            }
        }
        Batch { entries, end }
    }

    /// Why reading the input failed, if it did.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }
}

/// Where the reading side is.
enum Reader {
    /// Waiting for the next request.
    Idle,
    /// A batch is being read on the thread pool.
    Reading,
    /// Every line has been handed out or buffered.
    Ended,
    /// Reading failed; no more lines.
    Failed,
}

/// Hands out the URL list to one thread's workers, one entry at a time,
/// reading ahead at most one batch.
pub struct Feed {
    lines: Arc<SharedLines>,
    reader: RefCell<Reader>,
    ready: RefCell<VecDeque<Entry>>,
    waiting: RefCell<VecDeque<Trigger<Option<Entry>>>>,
}

impl Feed {
    pub fn new(lines: Arc<SharedLines>) -> Rc<Feed> {
        Rc::new(Feed {
            lines,
            reader: RefCell::new(Reader::Idle),
            ready: RefCell::new(VecDeque::new()),
            waiting: RefCell::new(VecDeque::new()),
        })
    }

    /// The next entry, or `None` when the list is done (or reading failed:
    /// see [`SharedLines::error`]).
    pub fn next(self: &Rc<Self>) -> Deferred<Option<Entry>> {
        let entry = self.ready.borrow_mut().pop_front();
        if let Some(entry) = entry {
            self.refill();
            return succeed(Some(entry));
        }
        if matches!(*self.reader.borrow(), Reader::Ended | Reader::Failed) {
            return succeed(None);
        }
        let (d, trigger) = Deferred::new();
        self.waiting.borrow_mut().push_back(trigger);
        self.refill();
        d
    }

    /// Starts reading the next batch, unless one is being read or enough are
    /// buffered.
    fn refill(self: &Rc<Self>) {
        if self.ready.borrow().len() >= BATCH {
            return;
        }
        {
            let mut reader = self.reader.borrow_mut();
            if !matches!(*reader, Reader::Idle) {
                return;
            }
            *reader = Reader::Reading;
        }
        let feed = self.clone();
        let lines = self.lines.clone();
        defer_to_thread(move || lines.next_batch(BATCH))
            .add_both(move |result| feed.arrived(result));
    }

    fn arrived(self: &Rc<Self>, result: Result<Batch, Failure>) {
        let next = match result {
            Ok(Batch { entries, end }) => {
                self.ready.borrow_mut().extend(entries);
                match end {
                    End::More => Reader::Idle,
                    End::Exhausted => Reader::Ended,
                    End::Failed(_) => Reader::Failed,
                }
            }
            Err(failure) => {
                let mut state = self.lines.lock();
                state.ended = true;
                state.error.get_or_insert(failure.to_string());
                Reader::Failed
            }
        };
        let more = matches!(next, Reader::Idle);
        *self.reader.borrow_mut() = next;
        // Hand the lines to the workers waiting for one, in order; at the
        // end, tell the rest there is no more. No borrow is held while a
        // worker runs (it may ask for its next line at once).
        loop {
            let entry = self.ready.borrow_mut().pop_front();
            if entry.is_none() && more {
                break;
            }
            let waiter = self.waiting.borrow_mut().pop_front();
            match waiter {
                Some(waiter) => waiter.callback(entry),
                None => {
                    if let Some(entry) = entry {
                        self.ready.borrow_mut().push_front(entry);
                    }
                    break;
                }
            }
        }
        self.refill();
    }
}

/// Reads one line from `reader` into `line`, keeping at most `cap + 1` of
/// its bytes (newline included) and handing every byte taken to `each`
/// too: the bytes taken, and whether the line ended with a newline
/// (`(0, false)` at the end of the input).
pub fn read_capped_line(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    cap: usize,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(u64, bool)> {
    let mut taken = 0u64;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((taken, false));
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (cap + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        each(chunk)?;
        let n = chunk.len();
        reader.consume(n);
        taken += n as u64;
        if found {
            return Ok((taken, true));
        }
    }
}
