//! The unsent output of a stream connection (TCP or Unix): the bytes the
//! kernel did not take yet, sent from the front and appended at the back,
//! compacted so a long-lived connection neither copies on every send nor
//! keeps the memory of one burst forever.

/// Sent bytes at the front that trigger a compaction while the rest waits.
const COMPACT_AT: usize = 64 * 1024;

/// Unsent bytes are `bytes[sent..]`.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    sent: usize,
}

impl WriteBuffer {
    /// Bytes waiting to be sent.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    /// The bytes waiting, oldest first.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// The first `n` bytes of [`unsent`](Self::unsent) went out.
    pub(crate) fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.bytes.len());
    }

    /// Keeps what a write of `parts` left: everything after its first
    /// `written` bytes.
    pub(crate) fn push_unwritten(&mut self, parts: &[&[u8]], written: usize) {
        let mut skip = written;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            self.bytes.extend_from_slice(&part[skip..]);
            skip = 0;
        }
    }

    /// After a flush: frees what went out (all of it once the buffer is
    /// empty, else the front once it is large and at least half the
    /// buffer), and gives back the memory a burst grew.
    pub(crate) fn compact(&mut self) {
        if self.len() == 0 {
            self.bytes.clear();
            self.sent = 0;
            if self.bytes.capacity() > 4 * COMPACT_AT {
                self.bytes.shrink_to(COMPACT_AT);
            }
        } else if self.sent >= COMPACT_AT && self.sent * 2 >= self.bytes.len() {
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Drops everything, memory included (the connection closed).
    pub(crate) fn discard(&mut self) {
        *self = WriteBuffer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_a_write_left_in_order() {
        let mut b = WriteBuffer::default();
        b.push_unwritten(&[b"abc", b"de", b"fgh"], 4);
        assert_eq!(b.unsent(), b"efgh");
        b.advance(3);
        assert_eq!(b.unsent(), b"h");
        b.compact();
        b.advance(1);
        b.compact();
        assert_eq!((b.len(), b.unsent()), (0, &b""[..]));
    }

    #[test]
    fn compaction_frees_a_large_sent_front_and_burst_memory() {
        let mut b = WriteBuffer::default();
        let big = vec![7u8; 8 * COMPACT_AT];
        b.push_unwritten(&[&big], 0);
        b.advance(5 * COMPACT_AT);
        b.compact();
        assert_eq!(b.len(), 3 * COMPACT_AT);
        assert_eq!(b.sent, 0);
        b.advance(b.len());
        b.compact();
        assert!(b.bytes.capacity() <= 4 * COMPACT_AT);
        // Advancing past the end is clamped, never a panic.
        b.advance(10);
        assert_eq!(b.len(), 0);
    }
}
