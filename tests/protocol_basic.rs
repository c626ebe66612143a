//! `twined::protocol::basic`: the sans-IO line and string parsers on byte
//! slices (Twisted's `twisted.protocols.test.test_basic`, ported and named
//! test by test), every sample split at every byte, and the receivers over
//! loopback TCP, failure paths included.

#[path = "../fuzz/fuzz_targets/basic_common.rs"]
mod basic_common;
mod support;

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use basic_common::{split_lines, split_strings, Frame};
use proptest::prelude::*;
use support::run_bounded;
use twined::defer::Failure;
use twined::protocol::basic::{
    FramingError, Int16StringReceiver, Int32StringReceiver, Int8StringReceiver, LineConnection,
    LineEvent, LineHandler, LineOnlyConnection, LineOnlyHandler, LineOnlyReceiver, LineParser,
    LineReceiver, NetstringError, NetstringReceiver, StringConnection, StringEvent, StringFraming,
    StringHandler, StringParser, StringTooLong, DEFAULT_MAX_LINE_LENGTH,
};
use twined::protocol::{ConnectionDone, Protocol, Transport};
use twined::reactor;

// ---------------------------------------------------------------------------
// Helpers on the sans-IO parsers.

/// Every frame of `input` through a line parser, in one piece; checks that
/// every two-piece split and byte-by-byte feeding agree.
fn every_line_split(delimiter: &[u8], max: usize, input: &[u8]) -> (Vec<Frame>, Vec<u8>) {
    let once = split_lines(delimiter, max, input, &[]);
    for cut in 1..input.len() {
        assert_eq!(
            once,
            split_lines(delimiter, max, input, &[cut]),
            "split at {cut}"
        );
    }
    let all: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        once,
        split_lines(delimiter, max, input, &all),
        "byte by byte"
    );
    once
}

/// The same for a string parser.
fn every_string_split(framing: StringFraming, max: usize, input: &[u8]) -> Vec<Frame> {
    let once = split_strings(framing, max, input, &[]);
    for cut in 1..input.len() {
        assert_eq!(
            once,
            split_strings(framing, max, input, &[cut]),
            "split at {cut}"
        );
    }
    let all: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        once,
        split_strings(framing, max, input, &all),
        "byte by byte"
    );
    once.0
}

fn lines(frames: &[&[u8]]) -> Vec<Frame> {
    frames.iter().map(|l| Frame::Line(l.to_vec())).collect()
}

fn strings(frames: &[&[u8]]) -> Vec<Frame> {
    frames.iter().map(|l| Frame::String(l.to_vec())).collect()
}

/// Twisted's `LineTester`: `len N` announces N raw bytes after an empty
/// line; an over-long line skips `MAX_LENGTH + 1` bytes and goes on.
#[derive(Default)]
struct LineTester {
    received: Vec<Vec<u8>>,
    length: usize,
    stopped: bool,
}

impl LineTester {
    fn feed(&mut self, parser: &mut LineParser, data: &[u8]) {
        parser.feed(data, |event, control| match event {
            LineEvent::Line(line) => {
                self.received.push(line.to_vec());
                if line.is_empty() {
                    control.set_raw_mode();
                } else if line == b"stop" {
                    control.stop();
                    self.stopped = true;
                } else if let Some(n) = line.strip_prefix(b"len ") {
                    self.length = std::str::from_utf8(n).unwrap().parse().unwrap();
                }
            }
            LineEvent::Raw(data) => {
                let take = self.length.min(data.len());
                self.length -= take;
                self.received
                    .last_mut()
                    .unwrap()
                    .extend_from_slice(&data[..take]);
                if self.length == 0 {
                    control.set_line_mode(&data[take..]);
                }
            }
            LineEvent::TooLong(data) => {
                let max = control.max_length();
                if data.len() > max + 1 {
                    control.set_line_mode(&data[max + 1..]);
                }
            }
        });
    }
}

/// Feeds `input` in `packet_size` pieces.
fn packets(input: &[u8], packet_size: usize) -> impl Iterator<Item = &[u8]> {
    input.chunks(packet_size)
}

// ---------------------------------------------------------------------------
// LineParser: ports of Twisted's LineReceiverTests.

const LINE_TESTER_BUFFER: &[u8] = b"len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\nfoo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\nlen 1\n\na";

/// LineReceiverTests.test_buffer: raw mode switched on and off mid-buffer,
/// an over-long line skipped, for packet sizes 1 to 9.
#[test]
fn line_receiver_buffer() {
    let output: Vec<&[u8]> = vec![
        b"len 10",
        b"0123456789",
        b"len 5",
        b"1234\n",
        b"len 20",
        b"foo 123",
        b"0123456789\n012345678",
        b"len 0",
        b"foo 5",
        b"",
        b"67890",
        b"len 1",
        b"a",
    ];
    for packet_size in 1..10 {
        let mut parser = LineParser::new(b"\n", 64);
        let mut tester = LineTester::default();
        for p in packets(LINE_TESTER_BUFFER, packet_size) {
            tester.feed(&mut parser, p);
        }
        assert_eq!(tester.received, output, "packet size {packet_size}");
    }
}

/// LineReceiverTests.test_stopProducing: nothing after the line that
/// stopped the receiver is delivered.
#[test]
fn line_receiver_stop() {
    for packet_size in 1..10 {
        let mut parser = LineParser::new(b"\n", 64);
        let mut tester = LineTester::default();
        for p in packets(b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n", packet_size) {
            tester.feed(&mut parser, p);
        }
        assert_eq!(
            tester.received,
            [&b"twiddle1"[..], b"twiddle2", b"stop"],
            "packet size {packet_size}"
        );
        assert!(parser.is_stopped());
        assert!(parser.buffered().is_empty());
    }
}

/// LineReceiverTests.test_rawMode (setRawMode in lineReceived applies to
/// the very next byte of the same chunk; setLineMode(extra) re-parses the
/// tail), at every split.
#[test]
fn raw_mode_switches_mid_buffer() {
    let (frames, rest) = every_line_split(b"\n", 64, b"a\nraw 5\n12345b\nraw 2\nxyc\nd");
    assert_eq!(
        frames,
        [
            Frame::Line(b"a".to_vec()),
            Frame::Line(b"raw 5".to_vec()),
            Frame::Raw(b"12345".to_vec()),
            Frame::Line(b"b".to_vec()),
            Frame::Line(b"raw 2".to_vec()),
            Frame::Raw(b"xy".to_vec()),
            Frame::Line(b"c".to_vec()),
        ]
    );
    assert_eq!(rest, b"d");
}

/// LineReceiverTests.test_clearLineBuffer.
#[test]
fn clear_line_buffer() {
    let mut parser = LineParser::new(b"\r\n", 100);
    let mut seen = Vec::new();
    parser.feed(b"foo\r\nbar\r\nbaz", |event, control| {
        if let LineEvent::Line(line) = event {
            seen.push((line.to_vec(), control.clear_line_buffer()));
        }
    });
    assert_eq!(seen, [(b"foo".to_vec(), b"bar\r\nbaz".to_vec())]);
    assert!(parser.buffered().is_empty());
    seen.clear();
    parser.feed(b"quux\r\n", |event, control| {
        if let LineEvent::Line(line) = event {
            seen.push((line.to_vec(), control.clear_line_buffer()));
        }
    });
    assert_eq!(seen, [(b"quux".to_vec(), Vec::new())]);
}

/// LineReceiverTests.test_stackRecursion: switching modes on every byte of
/// a large chunk runs in constant stack (and linear time: the tail given
/// back to set_line_mode is not copied).
#[test]
fn mode_flipping_does_not_recurse() {
    let n = 100_000;
    let input = b"x\nx".repeat(n);
    let mut parser = LineParser::new(b"\n", 64);
    let mut joined = Vec::new();
    parser.feed(&input, |event, control| match event {
        LineEvent::Line(line) => {
            joined.extend_from_slice(line);
            control.set_raw_mode();
        }
        LineEvent::Raw(data) => control.set_line_mode(&data[1..]),
        LineEvent::TooLong(_) => panic!("no line is too long"),
    });
    assert_eq!(joined, vec![b'x'; n]);
}

fn too_long_events(parser: &mut LineParser, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut lines, mut long) = (Vec::new(), Vec::new());
    for piece in pieces {
        parser.feed(piece, |event, _| match event {
            LineEvent::Line(l) => lines.push(l.to_vec()),
            LineEvent::TooLong(d) => long.push(d.to_vec()),
            LineEvent::Raw(_) => unreachable!(),
        });
    }
    (lines, long)
}

/// LineReceiverTests.test_maximumLineLength: a complete line one byte over
/// the limit.
#[test]
fn maximum_line_length() {
    let mut parser = LineParser::new(b"\r\n", DEFAULT_MAX_LINE_LENGTH);
    let input = [vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1], b"\r\nr".to_vec()].concat();
    let (lines, long) = too_long_events(&mut parser, &[&input]);
    assert!(lines.is_empty());
    assert_eq!(long, [input]);
}

/// LineReceiverTests.test_maximumLineLengthPartialDelimiter: a line of
/// exactly the limit whose delimiter arrives in two pieces is fine.
#[test]
fn maximum_line_length_partial_delimiter() {
    for delimiter in [&b"\n"[..], b"\r\n", b"\r\n\r\n"] {
        let mut parser = LineParser::new(delimiter, 4);
        let (split_at, _) = delimiter.split_at(delimiter.len() - 1);
        let (lines, long) = too_long_events(
            &mut parser,
            &[
                b"xxxx",
                split_at,
                &[&delimiter[delimiter.len() - 1..], b"xxx"].concat(),
            ],
        );
        assert_eq!(lines, [b"xxxx".to_vec()]);
        assert!(long.is_empty());
    }
}

/// LineReceiverTests.test_notQuiteMaximumLineLengthUnfinished and
/// test_maximumLineLengthRemaining: an unfinished line is too long only
/// once no delimiter could still end it within the limit.
#[test]
fn unfinished_line_limit() {
    let max = DEFAULT_MAX_LINE_LENGTH;
    let mut parser = LineParser::new(b"\r\n", max);
    let (_, long) = too_long_events(&mut parser, &[&[vec![b'x'; max], b"\r".to_vec()].concat()]);
    assert!(long.is_empty());
    assert_eq!(parser.buffered().len(), max + 1);

    let mut parser = LineParser::new(b"\r\n", max);
    let (_, long) = too_long_events(&mut parser, &[&vec![b'x'; max + 2]]);
    assert_eq!(long.len(), 1);
    assert!(parser.buffered().is_empty());
}

/// LineReceiverLineLengthExceededTests: what `line_length_exceeded` gets.
#[test]
fn line_length_exceeded_gets_the_rest() {
    let excessive = vec![b'x'; 6 * 2 + 2];
    // test_longUnendedLine
    let (_, long) = too_long_events(&mut LineParser::new(b"\r\n", 6), &[&excessive]);
    assert_eq!(long, std::slice::from_ref(&excessive));
    // test_longLineAfterShortLine
    let input = [b"x\r\n".to_vec(), excessive.clone()].concat();
    let (lines, long) = too_long_events(&mut LineParser::new(b"\r\n", 6), &[&input]);
    assert_eq!(
        (lines, long),
        (vec![b"x".to_vec()], vec![excessive.clone()])
    );
    // test_longLineWithDelimiter
    let input = [excessive.clone(), b"\r\n".to_vec(), excessive.clone()].concat();
    let (_, long) = too_long_events(&mut LineParser::new(b"\r\n", 6), &[&input]);
    assert_eq!(long, [input]);
    // test_multipleLongLines
    let input = [excessive.clone(), b"\r\n".to_vec()].concat().repeat(2);
    let (_, long) = too_long_events(&mut LineParser::new(b"\r\n", 6), &[&input]);
    assert_eq!(long, [input]);
}

/// LineOnlyReceiverTests.test_buffer: byte by byte.
#[test]
fn line_only_buffer() {
    let buffer = b"foo\n    bleakness\n    desolation\n    plastic forks\n    ";
    let (frames, rest) = every_line_split(b"\n", 64, buffer);
    assert_eq!(
        frames,
        lines(&[
            b"foo",
            b"    bleakness",
            b"    desolation",
            b"    plastic forks"
        ])
    );
    assert_eq!(rest, b"    ");
}

/// Lines split at every byte boundary, for each delimiter, with empty lines
/// and delimiters whose bytes also occur alone.
#[test]
fn lines_at_every_split() {
    let (frames, rest) = every_line_split(b"\r\n", 100, b"a\r\n\r\nb\rc\nd\r\n\r\r\n");
    assert_eq!(frames, lines(&[b"a", b"", b"b\rc\nd", b"\r"]));
    assert!(rest.is_empty());
    let (frames, rest) = every_line_split(b"\r\n\r\n", 100, b"head\r\nx\r\n\r\nbody\r\n\r\r\n\r\n");
    assert_eq!(frames, lines(&[b"head\r\nx", b"body\r\n\r"]));
    assert!(rest.is_empty());
    let (frames, _) = every_line_split(b"\n", 3, b"ok\ntoolong\nok\n");
    assert_eq!(
        frames,
        [
            Frame::Line(b"ok".to_vec()),
            Frame::TooLong(Vec::new()),
            Frame::Line(b"ok".to_vec())
        ]
    );
}

/// The delimiter and limit can change from inside a callback, from the
/// next byte on.
#[test]
fn delimiter_changes_mid_buffer() {
    let mut parser = LineParser::new(b"\n", 100);
    let mut seen = Vec::new();
    parser.feed(b"one\ntwo;three;", |event, control| {
        if let LineEvent::Line(line) = event {
            seen.push(line.to_vec());
            control.set_delimiter(b";");
        }
    });
    assert_eq!(seen, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
}

proptest! {
    /// Any lines, any chunking: the same lines come out.
    #[test]
    fn lines_survive_any_chunking(
        input in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'z')], 0..20),
            0..20),
        cuts in proptest::collection::vec(0usize..400, 0..10),
    ) {
        let mut bytes = Vec::new();
        for line in &input {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(b"\r\n");
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let (frames, rest) = split_lines(b"\r\n", 64, &bytes, &cuts);
        // A line of only '\r's before "\r\n" is split at the first "\r\n".
        let expected: Vec<Frame> = {
            let (f, _) = split_lines(b"\r\n", 64, &bytes, &[]);
            f
        };
        prop_assert_eq!(&frames, &expected);
        prop_assert!(rest.is_empty());
        let joined: Vec<u8> = frames.iter().flat_map(|f| match f {
            Frame::Line(l) => [l.as_slice(), b"\r\n"].concat(),
            other => panic!("unexpected {other:?}"),
        }).collect();
        prop_assert_eq!(joined, bytes);
    }
}

// ---------------------------------------------------------------------------
// StringParser: ports of Twisted's NetstringReceiverTests and IntN tests.

fn netstring(s: &[u8]) -> Vec<u8> {
    [
        format!("{}:", s.len()).into_bytes(),
        s.to_vec(),
        b",".to_vec(),
    ]
    .concat()
}

fn malformed(e: NetstringError) -> Frame {
    Frame::Malformed(e.to_string())
}

/// NetstringReceiverTests.test_buffer (and every split).
#[test]
fn netstring_buffer() {
    let sent: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        b"world".to_vec(),
        b"how".to_vec(),
        b"are".to_vec(),
        b"you123".to_vec(),
        b":today".to_vec(),
        vec![b'a'; 515],
    ];
    let wire: Vec<u8> = sent.iter().flat_map(|s| netstring(s)).collect();
    let expected: Vec<Frame> = sent.iter().map(|s| Frame::String(s.clone())).collect();
    assert_eq!(
        every_string_split(StringFraming::Netstring, 699, &wire),
        expected
    );
}

/// NetstringReceiverTests: test_receiveEmptyNetstring, test_receiveOneCharacter,
/// test_receiveTwoCharacters, test_receiveNestedNetstring,
/// test_receiveNetstringPortions_1/2/3, test_receiveTwoNetstrings.
#[test]
fn netstring_receives() {
    let ns = StringFraming::Netstring;
    assert_eq!(every_string_split(ns, 50, b"0:,"), strings(&[b""]));
    assert_eq!(every_string_split(ns, 50, b"1:a,"), strings(&[b"a"]));
    assert_eq!(every_string_split(ns, 50, b"2:ab,"), strings(&[b"ab"]));
    assert_eq!(every_string_split(ns, 50, b"4:1:a,,"), strings(&[b"1:a,"]));
    assert_eq!(
        every_string_split(ns, 50, b"10:0123456789,"),
        strings(&[b"0123456789"])
    );
    assert_eq!(
        every_string_split(ns, 50, b"1:a,1:b,"),
        strings(&[b"a", b"b"])
    );
    let (frames, buffered) = split_strings(ns, 50, b"1:a,1", &[]);
    assert_eq!((frames, buffered), (strings(&[b"a"]), 1));
}

/// NetstringReceiverTests: test_moreDataThanSpecified(BorderCase),
/// test_missingNumber, test_missingColon, test_missingNumberAndColon,
/// test_onlyData, and a leading zero.
#[test]
fn netstring_malformed() {
    let ns = StringFraming::Netstring;
    let cases: [(&[u8], NetstringError); 7] = [
        (b"2:aaa,", NetstringError::MissingComma { found: b'a' }),
        (b"0:a,", NetstringError::MissingComma { found: b'a' }),
        (b":aaa,", NetstringError::BadLength { found: b':' }),
        (b"3aaa,", NetstringError::BadLength { found: b'a' }),
        (b"aaa,", NetstringError::BadLength { found: b'a' }),
        (b"aaa", NetstringError::BadLength { found: b'a' }),
        (b"007:abcdefg,", NetstringError::LeadingZero),
    ];
    for (input, error) in cases {
        assert_eq!(
            every_string_split(ns, 50, input),
            [malformed(error)],
            "{input:?}"
        );
    }
}

/// NetstringReceiverTests.test_illegal (fed byte by byte, with
/// MAX_LENGTH 50), test_maxReceiveLimit and test_consumeLengthBorderCase1-3.
#[test]
fn netstring_illegal_and_limits() {
    let ns = StringFraming::Netstring;
    assert_eq!(
        every_string_split(ns, 50, b"9999999999999999999999"),
        [Frame::LengthLimitExceeded(99)]
    );
    assert_eq!(
        every_string_split(ns, 50, b"abc"),
        [malformed(NetstringError::BadLength { found: b'a' })]
    );
    assert_eq!(
        every_string_split(ns, 50, b"4:abcde"),
        [malformed(NetstringError::MissingComma { found: b'e' })]
    );
    let over = [b"51:".to_vec(), vec![b'a'; 51], b"b,".to_vec()].concat();
    assert_eq!(
        every_string_split(ns, 50, &over),
        [Frame::LengthLimitExceeded(51)]
    );
    let ok = [b"12:".to_vec(), vec![b'a'; 12], b",".to_vec()].concat();
    assert_eq!(
        every_string_split(ns, 12, &ok),
        [Frame::String(vec![b'a'; 12])]
    );
    assert_eq!(
        every_string_split(ns, 11, &ok),
        [Frame::LengthLimitExceeded(12)]
    );
    assert_eq!(
        every_string_split(ns, 11, b"1000:"),
        [Frame::LengthLimitExceeded(100)]
    );
    // A length past u64 saturates instead of wrapping.
    let digits = vec![b'9'; 40];
    assert_eq!(
        split_strings(ns, usize::MAX, &digits, &[]).0,
        Vec::<Frame>::new()
    );
}

fn prefixed(framing: StringFraming, s: &[u8]) -> Vec<u8> {
    let len = s.len();
    let mut out = match framing {
        StringFraming::Int8 => vec![len as u8],
        StringFraming::Int16 => (len as u16).to_be_bytes().to_vec(),
        StringFraming::Int32 => (len as u32).to_be_bytes().to_vec(),
        StringFraming::Netstring => unreachable!(),
    };
    out.extend_from_slice(s);
    out
}

const INT_FRAMINGS: [StringFraming; 3] = [
    StringFraming::Int8,
    StringFraming::Int16,
    StringFraming::Int32,
];

/// Int32Tests / Int16Tests / Int8Tests: test_receive (byte by byte),
/// test_partial, test_data, test_lengthLimitExceeded,
/// test_longStringNotDelivered.
#[test]
fn int_prefixed_receive() {
    for framing in INT_FRAMINGS {
        let wire = [prefixed(framing, b"a"), prefixed(framing, &[b'b'; 16])].concat();
        assert_eq!(
            every_string_split(framing, 50, &wire),
            strings(&[b"a", &[b'b'; 16]]),
            "{framing:?}"
        );
        assert_eq!(
            every_string_split(framing, 50, &prefixed(framing, b"ubar")),
            strings(&[b"ubar"])
        );
        let hello = prefixed(framing, b"hello");
        for partial in [&hello[..hello.len() - 1], b"", &[8]] {
            let (frames, _) = split_strings(framing, 50, partial, &[]);
            assert!(frames.is_empty(), "{framing:?} {partial:?}");
        }
        let long = prefixed(framing, &[b'x'; 11]);
        assert_eq!(
            every_string_split(framing, 10, &long[..long.len() - 11]),
            [Frame::LengthLimitExceeded(11)]
        );
        assert_eq!(
            every_string_split(framing, 10, &long),
            [Frame::LengthLimitExceeded(11)]
        );
    }
}

/// test_illegal for the int receivers (MAX_LENGTH 50), and the "negative"
/// prefixes of a signed reading: all ones is the largest length, refused.
#[test]
fn int_prefixed_illegal() {
    assert_eq!(
        every_string_split(StringFraming::Int32, 50, b"\x10\x00\x00\x00aaaaaa"),
        [Frame::LengthLimitExceeded(0x1000_0000)]
    );
    assert_eq!(
        every_string_split(StringFraming::Int16, 50, b"\x10\x00aaaaaa"),
        [Frame::LengthLimitExceeded(0x1000)]
    );
    assert_eq!(
        every_string_split(StringFraming::Int8, 50, b"\x00\x00aaaaaa"),
        [
            Frame::String(Vec::new()),
            Frame::String(Vec::new()),
            Frame::LengthLimitExceeded(u64::from(b'a'))
        ]
    );
    assert_eq!(
        every_string_split(StringFraming::Int32, 99_999, b"\xff\xff\xff\xffxyz"),
        [Frame::LengthLimitExceeded(u64::from(u32::MAX))]
    );
}

/// After a limit or a malformed frame the parser stops: a stream that lost
/// its framing is never read as frames again.
#[test]
fn string_parser_stops_after_an_error() {
    let mut parser = StringParser::new(StringFraming::Netstring, 50);
    let mut events = 0;
    parser.feed(b"x1:a,", |_| {
        events += 1;
        ControlFlow::Continue(())
    });
    parser.feed(b"1:a,", |_| {
        events += 1;
        ControlFlow::Continue(())
    });
    assert_eq!(events, 1);
    assert!(parser.is_stopped());
    let mut parser = StringParser::new(StringFraming::Int8, 50);
    let mut seen = Vec::new();
    parser.feed(b"\x01a\x01b", |e| {
        if let StringEvent::String(s) = e {
            seen.push(s.to_vec());
        }
        ControlFlow::Break(())
    });
    assert_eq!(seen, [b"a".to_vec()]);
}

// ---------------------------------------------------------------------------
// The fuzz targets' seeds.

fn each_seed(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        check(&std::fs::read(entry.unwrap().path()).unwrap());
        seen += 1;
    }
    assert!(seen >= 5, "{target}: only {seen} seeds");
}

#[test]
fn basic_lines_seeds() {
    each_seed("basic_lines", basic_common::check_lines);
}

#[test]
fn basic_strings_seeds() {
    each_seed("basic_strings", basic_common::check_strings);
}

// ---------------------------------------------------------------------------
// The receivers over loopback TCP.

type Log = Rc<RefCell<Vec<String>>>;
type Reason = Rc<RefCell<Option<Failure>>>;

/// A raw peer: writes `send` (then closes when `close`), records what it
/// reads, stops the reactor when its connection is gone.
struct RawPeer {
    send: Vec<u8>,
    close: bool,
    /// Close once this many bytes were read.
    until: Option<usize>,
    transport: Option<Transport>,
    got: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for RawPeer {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&self.send);
        if self.close {
            transport.lose_connection();
        }
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self
            .until
            .is_some_and(|until| self.got.borrow().len() >= until)
        {
            if let Some(t) = &self.transport {
                t.lose_connection();
            }
        }
    }
    fn connection_lost(&mut self, _reason: Failure) {
        let _ = reactor::stop();
    }
}

/// Connects a [`RawPeer`] to `port`, runs the reactor until it is
/// disconnected; returns what it read.
fn raw_exchange(port: u16, send: &[u8], close: bool) -> Vec<u8> {
    raw_exchange_until(port, send, close, None)
}

/// [`raw_exchange`], closing once `until` bytes were read.
fn raw_exchange_until(port: u16, send: &[u8], close: bool, until: Option<usize>) -> Vec<u8> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let peer = RawPeer {
        send: send.to_vec(),
        close,
        until,
        transport: None,
        got: got.clone(),
    };
    let _d = reactor::connect_protocol("127.0.0.1", port, peer);
    run_bounded(Duration::from_secs(10));
    let out = got.borrow().clone();
    out
}

/// Records lines and the close reason; answers lines with `echo: ...`;
/// `quit` closes; `raw N` reads N raw bytes.
struct Chat {
    log: Log,
    reason: Reason,
    raw_left: usize,
    greet: bool,
}

impl Chat {
    fn new(log: &Log, reason: &Reason, greet: bool) -> Chat {
        Chat {
            log: log.clone(),
            reason: reason.clone(),
            raw_left: 0,
            greet,
        }
    }
}

impl LineHandler for Chat {
    const DELIMITER: &'static [u8] = b"\n";
    const MAX_LENGTH: usize = 16;

    fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
        if self.greet {
            conn.send_line(b"hello");
        }
    }
    fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>) {
        self.log
            .borrow_mut()
            .push(String::from_utf8_lossy(line).into_owned());
        if line == b"quit" {
            conn.lose_connection();
        } else if let Some(n) = line.strip_prefix(b"raw ") {
            self.raw_left = std::str::from_utf8(n).unwrap().parse().unwrap();
            conn.set_raw_mode();
        } else {
            conn.send_line(&[b"echo: ", line].concat());
        }
    }
    fn raw_data_received(&mut self, data: &[u8], conn: &mut LineConnection<'_>) {
        let take = self.raw_left.min(data.len());
        self.raw_left -= take;
        self.log
            .borrow_mut()
            .push(format!("raw {}", String::from_utf8_lossy(&data[..take])));
        if self.raw_left == 0 {
            conn.set_line_mode(&data[take..]);
        }
    }
    fn connection_lost(&mut self, reason: Failure) {
        *self.reason.borrow_mut() = Some(reason);
    }
}

/// A [`Chat`] server; `greet` sends "hello" first (not to a peer that
/// closes at once: a write to it may reset the connection before the
/// server reads).
fn chat_server(greet: bool) -> (reactor::Port, Log, Reason) {
    let log = Log::default();
    let reason = Reason::default();
    let (l, r) = (log.clone(), reason.clone());
    let port = reactor::listen_tcp("127.0.0.1:0", move |_| {
        LineReceiver::new(Chat::new(&l, &r, greet))
    })
    .unwrap();
    (port, log, reason)
}

fn port_of(port: &reactor::Port) -> u16 {
    port.address().port()
}

/// Runs the reactor (bounded) until the server side saw its connection
/// closed.
fn until_closed(reason: &Reason) {
    fn poll(reason: Reason) {
        if reason.borrow().is_some() {
            let _ = reactor::stop();
        } else {
            reactor::call_later(Duration::from_millis(2), move || poll(reason));
        }
    }
    let r = reason.clone();
    reactor::call_when_running(move || poll(r));
    run_bounded(Duration::from_secs(10));
}

/// A line echo over loopback with a raw section in the middle; `quit`
/// closes and the lines after it in the same chunk are not delivered
/// (Twisted checks `transport.disconnecting`).
#[test]
fn tcp_line_echo_with_raw_mode() {
    let (port, log, reason) = chat_server(true);
    let got = raw_exchange(
        port_of(&port),
        b"one\ntwo\nraw 4\nab\ncthree\nquit\nignored\n",
        false,
    );
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "hello\necho: one\necho: two\necho: three\n"
    );
    assert_eq!(
        *log.borrow(),
        ["one", "two", "raw 4", "raw ab\nc", "three", "quit"]
    );
    assert!(reason.borrow().as_ref().unwrap().check::<ConnectionDone>());
    port.stop_listening();
}

/// An over-long line closes the connection with `LineTooLong`.
#[test]
fn tcp_line_too_long() {
    let (port, log, reason) = chat_server(true);
    let got = raw_exchange(
        port_of(&port),
        &[b"ok\n".to_vec(), vec![b'x'; 1000]].concat(),
        false,
    );
    assert_eq!(got, b"hello\necho: ok\n");
    assert_eq!(*log.borrow(), ["ok"]);
    let reason = reason.borrow_mut().take().unwrap();
    assert_eq!(
        reason.downcast_ref::<FramingError>(),
        Some(&FramingError::LineTooLong { limit: 16 })
    );
    assert_eq!(
        reason.to_string(),
        "line too long: no delimiter within 16 bytes"
    );
    port.stop_listening();
}

/// A peer closing in the middle of a line: the handler learns how many
/// bytes were left undelivered.
#[test]
fn tcp_peer_closes_mid_line() {
    let (port, log, reason) = chat_server(false);
    raw_exchange(port_of(&port), b"one\npart", true);
    // The client stops the reactor when its side closes; let the server
    // see its own end.
    until_closed(&reason);
    assert_eq!(*log.borrow(), ["one"]);
    assert_eq!(
        reason
            .borrow()
            .as_ref()
            .unwrap()
            .downcast_ref::<FramingError>(),
        Some(&FramingError::Truncated { buffered: 4 })
    );
    port.stop_listening();
}

/// Records strings and the close reason; echoes strings.
struct StringEcho {
    log: Log,
    reason: Reason,
}

impl StringHandler for StringEcho {
    const MAX_LENGTH: usize = 1000;

    fn string_received(&mut self, string: &[u8], conn: &mut StringConnection<'_>) {
        self.log
            .borrow_mut()
            .push(String::from_utf8_lossy(string).into_owned());
        conn.send_string(string).unwrap();
    }
    fn connection_lost(&mut self, reason: Failure) {
        *self.reason.borrow_mut() = Some(reason);
    }
}

/// Serves a string echo with `make`, sends `input` from a raw peer; returns
/// what came back, the strings seen and the server's close reason.
fn string_exchange<P: Protocol>(
    make: impl Fn(StringEcho) -> P + 'static,
    input: &[u8],
    close: bool,
    until: Option<usize>,
) -> (Vec<u8>, Vec<String>, Option<Failure>) {
    let log = Log::default();
    let reason = Reason::default();
    let (l, r) = (log.clone(), reason.clone());
    let port = reactor::listen_tcp("127.0.0.1:0", move |_| {
        make(StringEcho {
            log: l.clone(),
            reason: r.clone(),
        })
    })
    .unwrap();
    let got = raw_exchange_until(port_of(&port), input, close, until);
    until_closed(&reason);
    port.stop_listening();
    let seen = log.borrow().clone();
    let reason = reason.borrow_mut().take();
    (got, seen, reason)
}

fn framing_error(reason: &Option<Failure>) -> FramingError {
    reason
        .as_ref()
        .expect("the server connection was closed")
        .downcast_ref::<FramingError>()
        .unwrap_or_else(|| panic!("not a FramingError: {reason:?}"))
        .clone()
}

/// Netstrings echoed over loopback; a missing comma closes the connection
/// with a typed reason after the good strings were answered.
#[test]
fn tcp_netstring_echo_and_missing_comma() {
    let (got, seen, reason) =
        string_exchange(NetstringReceiver::new, b"5:hello,0:,3:abcX", false, None);
    assert_eq!(got, b"5:hello,0:,");
    assert_eq!(seen, ["hello", ""]);
    assert_eq!(
        framing_error(&reason),
        FramingError::Netstring(NetstringError::MissingComma { found: b'X' })
    );
}

/// A netstring with a bad length closes the connection.
#[test]
fn tcp_netstring_bad_length() {
    let (got, _, reason) = string_exchange(NetstringReceiver::new, b"-1:x,", false, None);
    assert!(got.is_empty());
    assert_eq!(
        framing_error(&reason),
        FramingError::Netstring(NetstringError::BadLength { found: b'-' })
    );
    assert_eq!(
        reason.unwrap().to_string(),
        "malformed netstring: expected a decimal length ended by ':', found byte '-'"
    );
}

/// Int32 strings echoed; a huge ("negative") prefix closes the connection
/// through the default `length_limit_exceeded`.
#[test]
fn tcp_int32_echo_and_huge_prefix() {
    let input = [b"\x00\x00\x00\x02hi".as_slice(), b"\xff\xff\xff\xfe"].concat();
    let (got, seen, reason) = string_exchange(Int32StringReceiver::new, &input, false, None);
    assert_eq!(got, b"\x00\x00\x00\x02hi");
    assert_eq!(seen, ["hi"]);
    assert_eq!(
        framing_error(&reason),
        FramingError::LengthLimitExceeded {
            length: 0xffff_fffe,
            limit: 1000
        }
    );
}

/// Int16 and Int8 round trips; a peer closing mid-string is reported.
#[test]
fn tcp_int16_int8_and_truncation() {
    let (got, seen, _) = string_exchange(Int16StringReceiver::new, b"\x00\x03abc", false, Some(5));
    assert_eq!(
        (got, seen),
        (b"\x00\x03abc".to_vec(), vec!["abc".to_string()])
    );
    let (got, seen, reason) =
        string_exchange(Int8StringReceiver::new, b"\x01z\x05ab", false, Some(2));
    assert_eq!((got, seen), (b"\x01z".to_vec(), vec!["z".to_string()]));
    assert_eq!(
        framing_error(&reason),
        FramingError::Truncated { buffered: 3 }
    );
}

/// Int8Tests.test_tooLongSend / Int16Tests.test_tooLongSend: a string too
/// long for the prefix is refused with a typed error, nothing is sent.
#[test]
fn tcp_send_string_too_long() {
    struct Big(Rc<RefCell<Option<Result<(), StringTooLong>>>>);
    impl StringHandler for Big {
        fn connection_made(&mut self, conn: &mut StringConnection<'_>) {
            *self.0.borrow_mut() = Some(conn.send_string(&[b'b'; 256]));
            conn.lose_connection();
        }
        fn string_received(&mut self, _: &[u8], _: &mut StringConnection<'_>) {}
    }
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let port = reactor::listen_tcp("127.0.0.1:0", move |_| {
        Int8StringReceiver::new(Big(r.clone()))
    })
    .unwrap();
    let got = raw_exchange(port_of(&port), b"", false);
    assert!(got.is_empty());
    assert_eq!(
        result.borrow_mut().take(),
        Some(Err(StringTooLong {
            length: 256,
            max: 255
        }))
    );
    port.stop_listening();
}

/// A `LineOnlyReceiver` client and a `LineReceiver` server talking to each
/// other with `connect_protocol`.
#[test]
fn tcp_line_only_client() {
    struct Client(Log);
    impl LineOnlyHandler for Client {
        const DELIMITER: &'static [u8] = b"\n";
        fn connection_made(&mut self, conn: &mut LineOnlyConnection<'_>) {
            conn.send_line(b"first");
            conn.send_line(b"quit");
        }
        fn line_received(&mut self, line: &[u8], _: &mut LineOnlyConnection<'_>) {
            self.0
                .borrow_mut()
                .push(String::from_utf8_lossy(line).into_owned());
        }
        fn connection_lost(&mut self, _: Failure) {
            let _ = reactor::stop();
        }
    }
    let (port, log, _) = chat_server(true);
    let client_log = Log::default();
    let _d = reactor::connect_protocol(
        "127.0.0.1",
        port_of(&port),
        LineOnlyReceiver::new(Client(client_log.clone())),
    );
    run_bounded(Duration::from_secs(10));
    assert_eq!(*client_log.borrow(), ["hello", "echo: first"]);
    assert_eq!(*log.borrow(), ["first", "quit"]);
    port.stop_listening();
}
