//! The sans-IO line splitter behind [`LineReceiver`](super::LineReceiver)
//! and [`LineOnlyReceiver`](super::LineOnlyReceiver): bytes in, lines (or raw
//! data) out, with the mode switches Twisted's `LineReceiver` allows from
//! inside its callbacks.
//!
//! Lines are handed out as slices of the input whenever possible: a chunk
//! that starts on a line boundary is split where it lies, and only its
//! unfinished tail is copied into the parser's buffer. The buffer never holds
//! more than `max_length + delimiter.len() - 1` bytes between calls.

use memchr::memmem::Finder;

/// Twisted's `LineReceiver.delimiter`.
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";

/// Twisted's `LineReceiver.MAX_LENGTH`: the longest line, in bytes, delimiter
/// excluded.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

/// Whether input is split into lines or handed over as it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Split into lines at the delimiter (the initial mode).
    Line,
    /// Hand every byte over as raw data.
    Raw,
}

/// What the parser found in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, delimiter removed.
    Line(&'a [u8]),
    /// Bytes received in raw mode.
    Raw(&'a [u8]),
    /// A line longer than the limit: everything from its first byte to the
    /// end of the input so far (Twisted's `lineLengthExceeded(line)`
    /// argument). These bytes are dropped from the parser.
    TooLong(&'a [u8]),
}

/// Which [`LineEvent`] to emit.
#[derive(Clone, Copy)]
enum Kind {
    Line,
    Raw,
    TooLong,
}

/// The settings a callback may change.
#[derive(Debug)]
struct Settings {
    mode: Mode,
    max_length: usize,
    finder: Finder<'static>,
    stopped: bool,
    /// Bytes to parse before the rest of the input (`set_line_mode(extra)`
    /// with bytes that could not be resumed from in place).
    extra: Option<Vec<u8>>,
    /// `clear_line_buffer` was called.
    cleared: bool,
    /// The delimiter changed: search what is buffered again.
    rescan: bool,
    /// `set_line_mode(extra)` with `extra` the tail of the current event:
    /// resume this many bytes before the end of the event.
    resume: Option<usize>,
}

impl Settings {
    fn delimiter(&self) -> &[u8] {
        self.finder.needle()
    }
}

/// Twisted's `LineReceiver` parsing as a push parser: [`feed`](Self::feed)
/// it bytes, get [`LineEvent`]s.
///
/// ```
/// use twined::protocol::basic::{LineEvent, LineParser};
///
/// let mut parser = LineParser::new(b"\n", 100);
/// let mut lines = Vec::new();
/// for chunk in [&b"hel"[..], b"lo\nwor", b"ld\nrest"] {
///     parser.feed(chunk, |event, _control| {
///         if let LineEvent::Line(line) = event {
///             lines.push(line.to_vec());
///         }
///     });
/// }
/// assert_eq!(lines, [b"hello".to_vec(), b"world".to_vec()]);
/// assert_eq!(parser.buffered(), b"rest");
/// ```
#[derive(Debug)]
pub struct LineParser {
    settings: Settings,
    /// Bytes of an unfinished line.
    buf: Vec<u8>,
    /// How many bytes at the start of `buf` are known to hold no delimiter
    /// start (so a line arriving byte by byte is searched once, not
    /// quadratically).
    scanned: usize,
}

/// What a callback of [`LineParser::feed`] may do to the parser: switch
/// modes, clear what is buffered, stop. Changes apply from the very next byte
/// of the input.
#[derive(Debug)]
pub struct LineControl<'a> {
    settings: &'a mut Settings,
    /// The bytes of the current event.
    current: &'a [u8],
    /// The input after the current event (and its delimiter).
    rest: &'a [u8],
}

impl LineParser {
    /// A parser splitting at `delimiter`, refusing lines longer than
    /// `max_length` bytes.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty (a programming error, not an input error).
    pub fn new(delimiter: &[u8], max_length: usize) -> LineParser {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        LineParser {
            settings: Settings {
                mode: Mode::Line,
                max_length,
                finder: Finder::new(delimiter).into_owned(),
                stopped: false,
                extra: None,
                cleared: false,
                rescan: false,
                resume: None,
            },
            buf: Vec::new(),
            scanned: 0,
        }
    }

    /// Parses `data` after what is buffered, calling `on_event` for each
    /// line, raw chunk or over-long line, in order. `on_event` gets a
    /// [`LineControl`] to switch modes or stop; the switch applies to the very
    /// next byte. Bytes of an unfinished line are kept for the next call.
    pub fn feed<F>(&mut self, data: &[u8], mut on_event: F)
    where
        F: FnMut(LineEvent<'_>, &mut LineControl<'_>),
    {
        if self.settings.stopped {
            return;
        }
        self.apply_outside_changes();
        if self.buf.is_empty() {
            let used = self.run(data, 0, &mut on_event);
            self.keep(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(data);
            let from = self
                .scanned
                .saturating_sub(self.settings.delimiter().len() - 1);
            let used = self.run(&buf, from, &mut on_event);
            buf.drain(..used);
            self.buf = buf;
            self.fix_scanned();
        }
        while let Some(extra) = self.settings.extra.take() {
            if self.settings.stopped {
                break;
            }
            // Everything before `extra` was consumed: it is the whole input.
            let used = self.run(&extra, 0, &mut on_event);
            self.keep(&extra[used..]);
        }
        if self.settings.stopped {
            self.buf = Vec::new();
        }
    }

    /// Replaces the buffer with `tail`, all of it searched.
    fn keep(&mut self, tail: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(tail);
        self.fix_scanned();
    }

    /// After a run, whatever stays buffered was searched to its end.
    fn fix_scanned(&mut self) {
        self.scanned = self.buf.len();
    }

    /// Applies what a [`control`](Self::control) used outside `feed` asked.
    fn apply_outside_changes(&mut self) {
        if std::mem::take(&mut self.settings.rescan) {
            self.scanned = 0;
        }
        if std::mem::take(&mut self.settings.cleared) {
            self.buf.clear();
            self.scanned = 0;
        }
        if let Some(mut extra) = self.settings.extra.take() {
            extra.extend_from_slice(&self.buf);
            self.buf = extra;
            self.scanned = 0;
        }
    }

    /// Parses `win` from its start, searching for the first delimiter from
    /// `search_from`; returns how many bytes were consumed.
    fn run<F>(&mut self, win: &[u8], mut search_from: usize, on_event: &mut F) -> usize
    where
        F: FnMut(LineEvent<'_>, &mut LineControl<'_>),
    {
        let mut pos = 0;
        while pos < win.len() {
            if self.settings.stopped {
                return win.len();
            }
            match self.settings.mode {
                Mode::Raw => {
                    pos = self.emit(win, pos, win.len(), win.len(), Kind::Raw, on_event);
                }
                Mode::Line => {
                    let dlen = self.settings.delimiter().len();
                    let max = self.settings.max_length;
                    let from = search_from.max(pos);
                    search_from = 0;
                    match self.settings.finder.find(&win[from..]) {
                        Some(i) if from + i - pos <= max => {
                            let end = from + i;
                            pos = self.emit(win, pos, end, end + dlen, Kind::Line, on_event);
                        }
                        Some(_) => {
                            pos =
                                self.emit(win, pos, win.len(), win.len(), Kind::TooLong, on_event);
                        }
                        // An unfinished line is too long once even a
                        // delimiter started at its end would leave more than
                        // `max` bytes before it.
                        None if win.len() - pos >= max.saturating_add(dlen) => {
                            pos =
                                self.emit(win, pos, win.len(), win.len(), Kind::TooLong, on_event);
                        }
                        None => return pos,
                    }
                }
            }
        }
        pos
    }

    /// Hands `win[start..end]` to the callback as `kind`; the input goes on
    /// at `next`. Returns where parsing resumes.
    fn emit<F>(
        &mut self,
        win: &[u8],
        start: usize,
        end: usize,
        next: usize,
        kind: Kind,
        on_event: &mut F,
    ) -> usize
    where
        F: FnMut(LineEvent<'_>, &mut LineControl<'_>),
    {
        let current = &win[start..end];
        let mut control = LineControl {
            settings: &mut self.settings,
            current,
            rest: &win[next..],
        };
        let event = match kind {
            Kind::Line => LineEvent::Line(current),
            Kind::Raw => LineEvent::Raw(current),
            Kind::TooLong => LineEvent::TooLong(current),
        };
        on_event(event, &mut control);
        let resume = self.settings.resume.take();
        if std::mem::take(&mut self.settings.cleared) {
            // `extra` given after the clear still counts.
            return match resume {
                Some(back) => end - back,
                None => win.len(),
            };
        }
        match resume {
            Some(back) => end - back,
            None if self.settings.extra.is_some() => {
                // `extra` is parsed before the rest: move the rest behind it.
                if let Some(extra) = self.settings.extra.as_mut() {
                    extra.extend_from_slice(&win[next..]);
                }
                win.len()
            }
            None => next,
        }
    }

    /// Bytes received and not yet delivered: an unfinished line.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The parser's controls outside [`feed`](Self::feed): a mode switch
    /// or `set_line_mode(extra)` applies to the next bytes fed.
    pub fn control(&mut self) -> LineControl<'_> {
        LineControl {
            settings: &mut self.settings,
            current: &[],
            rest: &self.buf,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// The line delimiter.
    pub fn delimiter(&self) -> &[u8] {
        self.settings.delimiter()
    }

    /// The longest line accepted, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.settings.max_length
    }

    /// Whether [`LineControl::stop`] was called: the parser ignores all input.
    pub fn is_stopped(&self) -> bool {
        self.settings.stopped
    }
}

impl LineControl<'_> {
    /// The same control for a shorter time.
    pub(crate) fn reborrow(&mut self) -> LineControl<'_> {
        LineControl {
            settings: &mut *self.settings,
            current: self.current,
            rest: self.rest,
        }
    }

    /// Delivers the following bytes as raw data (Twisted's `setRawMode`),
    /// from the byte after the current line on.
    pub fn set_raw_mode(&mut self) {
        self.settings.mode = Mode::Raw;
    }

    /// Splits the following bytes into lines again (Twisted's
    /// `setLineMode(extra)`). `extra` is data the current callback did not
    /// use, typically the tail of the raw data it was given: it is parsed
    /// for lines first, before any byte after it. Giving the tail of the
    /// current raw chunk costs no copy.
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.settings.mode = Mode::Line;
        if extra.is_empty() {
            return;
        }
        let (cur, ext) = (self.current.as_ptr() as usize, extra.as_ptr() as usize);
        let tail_of_current = ext >= cur
            && ext + extra.len() == cur + self.current.len()
            && self.rest.is_empty()
            && self.settings.extra.is_none()
            && self.settings.resume.is_none();
        if tail_of_current {
            self.settings.resume = Some(extra.len());
        } else {
            self.settings
                .extra
                .get_or_insert_with(Vec::new)
                .extend_from_slice(extra);
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// Drops every byte received after the current event and returns them
    /// (Twisted's `clearLineBuffer`).
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        self.settings.cleared = true;
        self.rest.to_vec()
    }

    /// Ignores all further input: no more events, nothing buffered. For a
    /// connection being closed (Twisted disregards the lines after the one
    /// that closed the connection).
    pub fn stop(&mut self) {
        self.settings.stopped = true;
    }

    /// The line delimiter.
    pub fn delimiter(&self) -> &[u8] {
        self.settings.delimiter()
    }

    /// Splits at `delimiter` from the next byte on (Twisted's `delimiter`
    /// attribute set on an instance).
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn set_delimiter(&mut self, delimiter: &[u8]) {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.settings.finder = Finder::new(delimiter).into_owned();
        self.settings.rescan = true;
    }

    /// The longest line accepted, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.settings.max_length
    }

    /// Changes the longest line accepted, from the next line on.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.settings.max_length = max_length;
    }
}
