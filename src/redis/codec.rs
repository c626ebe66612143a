//! RESP2 on bytes: commands encoded and replies decoded by the
//! `redis-protocol` crate, with the bounds a client needs around it.
//!
//! Sans-IO: [`encode_command`] appends a command to a buffer, [`Decoder`]
//! takes bytes as they arrive and hands back complete replies. Neither knows
//! about sockets or the reactor.

use redis_protocol::resp2::{
    decode::decode,
    encode::encode_borrowed,
    types::{BorrowedFrame, OwnedFrame},
};

use super::error::RedisError;

/// Appends `args` to `out` as a RESP2 command (an array of bulk strings).
pub(crate) fn encode_command<A: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    args: &[A],
) -> Result<(), RedisError> {
    let frames: Vec<BorrowedFrame<'_>> = args
        .iter()
        .map(|a| BorrowedFrame::BulkString(a.as_ref()))
        .collect();
    let frame = BorrowedFrame::Array(&frames);
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    match encode_borrowed(&mut out[start..], &frame, false) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(RedisError::Protocol {
                message: format!("cannot encode the command: {e}"),
            })
        }
    }
}

/// The deepest nesting of arrays accepted in a reply. Redis' own replies
/// nest a few levels (`XREADGROUP`: 4); the limit keeps a hostile peer from
/// making the recursive decoder overflow the stack.
pub(crate) const MAX_DEPTH: usize = 32;

/// Turns a stream of bytes into replies, one at a time.
#[derive(Debug)]
pub(crate) struct Decoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already decoded, dropped on the next `feed`.
    consumed: usize,
    max_reply_size: usize,
}

impl Decoder {
    pub(crate) fn new(max_reply_size: usize) -> Decoder {
        Decoder {
            buffer: Vec::new(),
            consumed: 0,
            max_reply_size,
        }
    }

    /// Adds bytes that arrived. Fails when the reply being read would
    /// exceed the size limit.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(), RedisError> {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.buffer.len() + data.len() > self.max_reply_size.saturating_add(2) {
            return Err(RedisError::ReplyTooLarge {
                limit: self.max_reply_size,
            });
        }
        self.buffer.extend_from_slice(data);
        Ok(())
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed, an
    /// error (and nothing more from this connection) when the bytes are not
    /// RESP2. Error replies come back as [`OwnedFrame::Error`].
    pub(crate) fn next_frame(&mut self) -> Result<Option<OwnedFrame>, RedisError> {
        let rest = &self.buffer[self.consumed..];
        if rest.is_empty() {
            return Ok(None);
        }
        check_depth(rest)?;
        match decode(rest) {
            Ok(Some((frame, used))) => {
                self.consumed += used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(RedisError::Protocol {
                message: format!("malformed reply: {e}"),
            }),
        }
    }
}

/// Refuses a reply that nests arrays deeper than [`MAX_DEPTH`], before the
/// (recursive) codec sees it. It walks the first reply's element headers
/// only: the type byte, and the length of arrays and bulk strings (whose
/// contents it skips); anything it cannot read is left for the codec to
/// report. It stops at the end of the first reply or of the buffer.
fn check_depth(buf: &[u8]) -> Result<(), RedisError> {
    // For each open array, the elements still to come.
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0;
    loop {
        let Some(&kind) = buf.get(at) else {
            return Ok(());
        };
        let Some(line_len) = buf
            .get(at..)
            .and_then(|rest| rest.windows(2).position(|w| w == b"\r\n"))
        else {
            return Ok(());
        };
        // The header line is the type byte, then up to the CRLF.
        let length = std::str::from_utf8(&buf[at + 1..at + line_len])
            .ok()
            .and_then(|s| s.parse::<i64>().ok());
        at += line_len + 2;
        match (kind, length) {
            (b'*', Some(n)) if n > 0 => {
                if open.len() >= MAX_DEPTH {
                    return Err(RedisError::Protocol {
                        message: format!("reply nests arrays deeper than {MAX_DEPTH} levels"),
                    });
                }
                open.push(n.unsigned_abs());
                continue;
            }
            (b'$', Some(n)) if n >= 0 => {
                at = at
                    .saturating_add(n.unsigned_abs() as usize)
                    .saturating_add(2)
            }
            (b'*' | b'$', None) => return Ok(()),
            _ => {}
        }
        // One element is complete: close the arrays it completes.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(left) if *left > 1 => {
                    *left -= 1;
                    break;
                }
                Some(_) => {
                    open.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = b"x".to_vec();
        encode_command(&mut out, &["SET", "k", ""]).unwrap();
        assert_eq!(out, b"x*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn replies_split_at_every_position() {
        let wire: &[u8] = b"+OK\r\n:12\r\n$3\r\nf\r\n\r\n*2\r\n$-1\r\n-ERR no\r\n*-1\r\n";
        let want = vec![
            OwnedFrame::SimpleString(b"OK".to_vec()),
            OwnedFrame::Integer(12),
            OwnedFrame::BulkString(b"f\r\n".to_vec()),
            OwnedFrame::Array(vec![OwnedFrame::Null, OwnedFrame::Error("ERR no".into())]),
            OwnedFrame::Null,
        ];
        for split in 0..=wire.len() {
            let mut d = Decoder::new(1024);
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.feed(part).unwrap();
                while let Some(frame) = d.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, want, "split at {split}");
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for wire in [&b"?what\r\n"[..], b":notanumber\r\n", b"$-5\r\nxx\r\n"] {
            let mut d = Decoder::new(1024);
            d.feed(wire).unwrap();
            let err = d.next_frame().unwrap_err();
            assert!(
                matches!(err, RedisError::Protocol { .. }),
                "{wire:?}: {err}"
            );
        }
    }

    #[test]
    fn a_reply_past_the_limit_is_refused() {
        let mut d = Decoder::new(16);
        d.feed(b"$100\r\n").unwrap();
        let err = d.feed(&[b'a'; 20]).unwrap_err();
        assert!(matches!(err, RedisError::ReplyTooLarge { limit: 16 }));
    }

    #[test]
    fn consumed_replies_do_not_count_toward_the_limit() {
        let mut d = Decoder::new(8);
        for _ in 0..100 {
            d.feed(b"+OK\r\n").unwrap();
            assert!(d.next_frame().unwrap().is_some());
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_decoding() {
        let mut d = Decoder::new(1 << 20);
        d.feed(&b"*1\r\n".repeat(100_000)).unwrap();
        let err = d.next_frame().unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        let mut d = Decoder::new(1 << 20);
        d.feed(&b"*2\r\n:1\r\n".repeat(100_000)).unwrap();
        assert!(d.next_frame().unwrap_err().to_string().contains("deeper"));
        let mut d = Decoder::new(1024);
        d.feed(&b"*1\r\n".repeat(5)).unwrap();
        d.feed(b":1\r\n").unwrap();
        assert!(d.next_frame().unwrap().is_some());
    }
}
