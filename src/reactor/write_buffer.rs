//! The unsent output of a stream connection (TCP or Unix): the bytes the
//! kernel did not take yet, sent from the front and appended at the back,
//! compacted so a long-lived connection neither copies on every send nor
//! keeps the memory of one burst forever; and its water marks, which say
//! when the protocol (the producer) is to pause and resume.

/// Sent bytes at the front that trigger a compaction while the rest waits.
const COMPACT_AT: usize = 64 * 1024;

/// The default high-water mark of every transport's write buffer: 64 KiB
/// (Twisted's `bufferSize`; the low mark is 0, as Twisted's).
pub(crate) const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// Unsent bytes are `bytes[sent..]`.
#[derive(Debug)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    sent: usize,
    high_water: usize,
    low_water: usize,
    /// The producer was told to pause.
    producer_paused: bool,
}

impl Default for WriteBuffer {
    fn default() -> WriteBuffer {
        WriteBuffer {
            bytes: Vec::new(),
            sent: 0,
            high_water: DEFAULT_HIGH_WATER,
            low_water: 0,
            producer_paused: false,
        }
    }
}

impl WriteBuffer {
    /// Sets the water marks: the producer pauses above `high` and resumes
    /// at or below `low` (at most `high`).
    pub(crate) fn set_limits(&mut self, high: usize, low: usize) {
        self.high_water = high;
        self.low_water = low.min(high);
    }

    /// Whether the producer is to be told to pause now (the buffer grew past
    /// the high-water mark and it was not told yet).
    pub(crate) fn pause_now(&mut self) -> bool {
        let pause = !self.producer_paused && self.len() > self.high_water;
        self.producer_paused |= pause;
        pause
    }

    /// Whether the paused producer is to be told to resume now (the buffer
    /// drained to the low-water mark).
    pub(crate) fn resume_now(&mut self) -> bool {
        let resume = self.producer_paused && self.len() <= self.low_water;
        self.producer_paused &= !resume;
        resume
    }

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

    /// Drops the bytes, memory included (the connection closed).
    pub(crate) fn discard(&mut self) {
        self.bytes = Vec::new();
        self.sent = 0;
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
    fn water_marks_pause_once_and_resume_once() {
        let mut b = WriteBuffer::default();
        b.set_limits(4, 9);
        b.push_unwritten(&[b"12345"], 0);
        assert!(b.pause_now());
        assert!(!b.pause_now(), "told once");
        b.advance(1);
        assert!(b.resume_now(), "the low mark is capped at the high one");
        assert!(!b.resume_now());
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
