//! Checks shared by the `basic_lines` and `basic_strings` fuzz targets and
//! by `tests/protocol_basic.rs`: the framing parsers of
//! `twined::protocol::basic` give the same frames however the input is
//! split, never buffer more than their bound, and never panic.
#![allow(dead_code)]

use std::ops::ControlFlow;

use twined::protocol::basic::{LineEvent, LineParser, StringEvent, StringFraming, StringParser};

/// One thing a parser reported, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Line(Vec<u8>),
    Raw(Vec<u8>),
    TooLong(Vec<u8>),
    String(Vec<u8>),
    LengthLimitExceeded(u64),
    Malformed(String),
}

/// Feeds `input` to a line parser in pieces cut at `cuts` (sorted offsets).
/// A line `raw <n>` switches to raw mode for the next `n` bytes, then back
/// to lines with the unused tail (Twisted's `LineTester`); raw chunks are
/// joined so that results compare across splits. Returns the frames and
/// what stays buffered.
pub fn split_lines(
    delimiter: &[u8],
    max: usize,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<Frame>, Vec<u8>) {
    let mut parser = LineParser::new(delimiter, max);
    let mut frames = Vec::new();
    let mut raw_left = 0usize;
    // Dropping the tail of an over-long line up to its delimiter.
    let mut skipping = false;
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[last..cut.max(last)];
        last = cut.max(last);
        parser.feed(piece, |event, control| match event {
            LineEvent::Line(_) if skipping => skipping = false,
            LineEvent::Line(line) => {
                frames.push(Frame::Line(line.to_vec()));
                if let Some(n) = line.strip_prefix(b"raw ") {
                    raw_left = std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if raw_left > 0 {
                        control.set_raw_mode();
                        frames.push(Frame::Raw(Vec::new()));
                    }
                }
            }
            LineEvent::Raw(data) => {
                let take = raw_left.min(data.len());
                raw_left -= take;
                if let Some(Frame::Raw(acc)) = frames.last_mut() {
                    acc.extend_from_slice(&data[..take]);
                }
                if raw_left == 0 {
                    control.set_line_mode(&data[take..]);
                }
            }
            LineEvent::TooLong(data) => {
                // Keep going after the long line, as Twisted's LineTester
                // does: skip to the end of the line, wherever it arrives.
                if !skipping {
                    frames.push(Frame::TooLong(Vec::new()));
                }
                let dlen = control.delimiter().len();
                let end = data.windows(dlen).position(|w| w == control.delimiter());
                match end {
                    Some(at) => {
                        skipping = false;
                        control.set_line_mode(&data[at + dlen..]);
                    }
                    None => skipping = true,
                }
            }
        });
        let bound = max + delimiter.len() - 1;
        assert!(
            parser.buffered().len() <= bound,
            "{} bytes buffered, bound {bound}",
            parser.buffered().len()
        );
    }
    (frames, parser.buffered().to_vec())
}

/// Feeds `input` to a string parser in pieces cut at `cuts`.
pub fn split_strings(
    framing: StringFraming,
    max: usize,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<Frame>, usize) {
    let mut parser = StringParser::new(framing, max);
    let mut frames = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[last..cut.max(last)];
        last = cut.max(last);
        parser.feed(piece, |event| {
            frames.push(match event {
                StringEvent::String(s) => Frame::String(s.to_vec()),
                StringEvent::LengthLimitExceeded { length } => Frame::LengthLimitExceeded(length),
                StringEvent::Malformed(e) => Frame::Malformed(e.to_string()),
            });
            ControlFlow::Continue(())
        });
        // A header, the longest payload and a comma.
        assert!(
            parser.buffered() <= max.saturating_add(24),
            "{} bytes buffered",
            parser.buffered()
        );
    }
    (frames, parser.buffered())
}

/// The cut points to try for fuzz input `data`: none, one derived from the
/// data, and every byte.
fn cut_sets(len: usize, seed: u8) -> Vec<Vec<usize>> {
    let mut sets = vec![Vec::new()];
    if len > 1 {
        sets.push(vec![usize::from(seed) % len]);
        sets.push((1..len).collect());
    }
    sets
}

/// Fuzz check for the line parser: the first byte picks the delimiter and
/// the limit, the rest is the input.
pub fn check_lines(data: &[u8]) {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let delimiter: &[u8] = match knob % 3 {
        0 => b"\r\n",
        1 => b"\n",
        _ => b"\r\n\r\n",
    };
    let max = usize::from(knob >> 2) + 1;
    let once = split_lines(delimiter, max, input, &[]);
    for cuts in cut_sets(input.len(), knob) {
        assert_eq!(
            once,
            split_lines(delimiter, max, input, &cuts),
            "cuts {cuts:?}"
        );
    }
}

/// Fuzz check for the string parser: the first byte picks the framing and
/// the limit, the rest is the input.
pub fn check_strings(data: &[u8]) {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let framing = match knob % 4 {
        0 => StringFraming::Int8,
        1 => StringFraming::Int16,
        2 => StringFraming::Int32,
        _ => StringFraming::Netstring,
    };
    let max = usize::from(knob >> 2) * 4;
    let once = split_strings(framing, max, input, &[]);
    for cuts in cut_sets(input.len(), knob) {
        assert_eq!(
            once,
            split_strings(framing, max, input, &cuts),
            "cuts {cuts:?}"
        );
    }
}
