//! The output side of a stream connection (TCP or Unix): the bytes written
//! and not yet taken by the kernel, and when they go out.
//!
//! Writes are coalesced the way Twisted's transports coalesce them: what a
//! protocol writes during one reactor iteration waits in the buffer and
//! goes out in one system call when the iteration's I/O is done (the
//! reactor's end-of-iteration flush), so a reply written in three pieces, or
//! replies to fifty connections, do not cost a send each in the middle of
//! reading. A write that would take the buffer past the high-water mark goes
//! out at once instead (with what waits, in one vectored call), so a large
//! body is not copied first. What the kernel refuses waits for the socket
//! to become writable.
//!
//! The buffer is compacted so a long-lived connection neither copies on
//! every send nor keeps the memory of one burst forever; its water marks
//! say when the protocol (the producer) is to pause and resume.

use std::io::{self, IoSlice, Write};

/// Sent bytes at the front that trigger a compaction while the rest waits.
const COMPACT_AT: usize = 64 * 1024;

/// The default high-water mark of every transport's write buffer: 64 KiB
/// (Twisted's `bufferSize`; the low mark is 0, as Twisted's).
pub(crate) const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// What the unsent bytes wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Nothing waits.
    Nothing,
    /// The reactor's end-of-iteration flush (queued once per wait).
    Iteration,
    /// A writable event: the kernel took less than it was given.
    Writable,
}

/// What a write asks of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wrote {
    /// Queue the connection for the reactor's end-of-iteration flush.
    pub(crate) queue_flush: bool,
    /// Tell the producer to pause: the buffer went past the high-water mark.
    pub(crate) pause: bool,
}

/// Unsent bytes are `bytes[sent..]`.
#[derive(Debug)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    sent: usize,
    waiting: Waiting,
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
            waiting: Waiting::Nothing,
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

    /// Takes `parts`, in order: kept for the end-of-iteration flush while
    /// the buffer stays within the high-water mark (or while the kernel is
    /// full), else written to `stream` at once after what waits, the rest
    /// kept. An error is the stream's: the connection is lost.
    pub(crate) fn write(&mut self, stream: &mut impl Write, parts: &[&[u8]]) -> io::Result<Wrote> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut wrote = Wrote {
            queue_flush: false,
            pause: false,
        };
        if total == 0 {
            return Ok(wrote);
        }
        if self.waiting == Waiting::Writable || self.len() + total <= self.high_water {
            self.push_unwritten(parts, 0);
            if self.waiting == Waiting::Nothing {
                self.waiting = Waiting::Iteration;
                wrote.queue_flush = true;
            }
            wrote.pause = self.pause_now();
            return Ok(wrote);
        }
        // Past the high-water mark: out now, in one call with what waits.
        let waiting = self.len();
        let written = {
            let mut slices = Vec::with_capacity(parts.len() + 1);
            if waiting > 0 {
                slices.push(IoSlice::new(self.unsent()));
            }
            slices.extend(parts.iter().map(|p| IoSlice::new(p)));
            write_once(stream, &slices)?
        };
        if written >= waiting {
            self.advance(waiting);
            self.push_unwritten(parts, written - waiting);
        } else {
            self.advance(written);
            self.push_unwritten(parts, 0);
        }
        self.settle();
        wrote.pause = self.pause_now();
        Ok(wrote)
    }

    /// Writes what waits until the kernel refuses more. An error is the
    /// stream's: the connection is lost.
    pub(crate) fn flush(&mut self, stream: &mut impl Write) -> io::Result<()> {
        while self.len() > 0 {
            let n = write_once(stream, &[IoSlice::new(self.unsent())])?;
            if n == 0 {
                break;
            }
            self.advance(n);
        }
        self.settle();
        Ok(())
    }

    /// Whether the bytes wait for the end-of-iteration flush.
    pub(crate) fn flush_due(&self) -> bool {
        self.waiting == Waiting::Iteration
    }

    /// Whether the bytes wait for a writable event.
    pub(crate) fn wants_writable(&self) -> bool {
        self.waiting == Waiting::Writable
    }

    /// After the kernel took what it would: what waits now waits for a
    /// writable event; the buffer is compacted.
    fn settle(&mut self) {
        self.waiting = if self.len() == 0 {
            Waiting::Nothing
        } else {
            Waiting::Writable
        };
        self.compact();
    }

    /// Whether the producer is to be told to pause now (the buffer grew past
    /// the high-water mark and it was not told yet).
    fn pause_now(&mut self) -> bool {
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
    fn unsent(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// The first `n` bytes of [`unsent`](Self::unsent) went out.
    fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.bytes.len());
    }

    /// Keeps what a write of `parts` left: everything after its first
    /// `written` bytes.
    fn push_unwritten(&mut self, parts: &[&[u8]], written: usize) {
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

    /// Frees what went out (all of it once the buffer is empty, else the
    /// front once it is large and at least half the buffer), and gives back
    /// the memory a burst grew.
    fn compact(&mut self) {
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
        self.waiting = Waiting::Nothing;
    }
}

/// One write of `slices`; how many bytes the kernel took (0 when it
/// refused, `EAGAIN`). Retried when a signal interrupts it.
fn write_once(stream: &mut impl Write, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        let result = match slices {
            [one] => stream.write(one),
            _ => stream.write_vectored(slices),
        };
        match result {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes, then refuses (`EAGAIN`).
    #[derive(Default)]
    struct Kernel {
        took: Vec<u8>,
        room: usize,
        calls: usize,
    }

    impl Write for Kernel {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.room);
                self.took.extend_from_slice(&buf[..take]);
                self.room -= take;
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_wait_for_the_flush_and_go_out_in_one_call() {
        let mut kernel = Kernel {
            room: 1 << 20,
            ..Kernel::default()
        };
        let mut b = WriteBuffer::default();
        let first = b.write(&mut kernel, &[b"HTTP/1.1 200 OK\r\n"]).unwrap();
        assert!(first.queue_flush, "the first write queues the flush");
        let second = b.write(&mut kernel, &[b"\r\n", b"body"]).unwrap();
        assert!(!second.queue_flush, "queued once");
        assert_eq!((kernel.calls, b.flush_due()), (0, true));
        b.flush(&mut kernel).unwrap();
        assert_eq!(kernel.calls, 1);
        assert_eq!(kernel.took, b"HTTP/1.1 200 OK\r\n\r\nbody");
        assert!(!b.flush_due() && !b.wants_writable() && b.len() == 0);
        // Empty writes ask nothing.
        let none = b.write(&mut kernel, &[b"", b""]).unwrap();
        assert!(!none.queue_flush && !none.pause);
    }

    #[test]
    fn a_write_past_the_high_water_mark_goes_out_at_once_after_what_waits() {
        let mut kernel = Kernel {
            room: 1 << 20,
            ..Kernel::default()
        };
        let mut b = WriteBuffer::default();
        b.write(&mut kernel, &[b"head"]).unwrap();
        let big = vec![b'x'; DEFAULT_HIGH_WATER];
        let wrote = b.write(&mut kernel, &[&big]).unwrap();
        assert_eq!(kernel.calls, 1, "one vectored call");
        assert_eq!(&kernel.took[..4], b"head");
        assert_eq!(kernel.took.len(), 4 + big.len());
        assert!(!wrote.pause && b.len() == 0 && !b.flush_due());
        // The queued flush finds nothing to do.
        b.flush(&mut kernel).unwrap();
        assert_eq!(kernel.calls, 1);
    }

    #[test]
    fn what_the_kernel_refuses_waits_for_writable_and_pauses_the_producer() {
        let mut kernel = Kernel {
            room: 10,
            ..Kernel::default()
        };
        let mut b = WriteBuffer::default();
        let big = vec![b'y'; DEFAULT_HIGH_WATER + 100];
        let wrote = b.write(&mut kernel, &[&big]).unwrap();
        assert_eq!(b.len(), big.len() - 10);
        assert!(wrote.pause && b.wants_writable() && !b.flush_due());
        // While the kernel is full, writes only queue behind: no system call.
        let more = b.write(&mut kernel, &[b"z"]).unwrap();
        assert!(!more.queue_flush && !more.pause, "paused once");
        assert_eq!(kernel.calls, 1);
        // Writable again: everything goes, in order; the producer resumes.
        kernel.room = usize::MAX;
        b.flush(&mut kernel).unwrap();
        assert_eq!(kernel.took.len(), big.len() + 1);
        assert_eq!(kernel.took.last(), Some(&b'z'));
        assert!(b.resume_now() && !b.wants_writable());
    }

    #[test]
    fn a_failing_socket_is_an_error_not_a_loop() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut b = WriteBuffer::default();
        b.write(&mut Broken, &[b"abc"]).unwrap();
        assert_eq!(
            b.flush(&mut Broken).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        // A socket that takes nothing without saying why is waited on.
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        b.flush(&mut Zero).unwrap();
        assert!(b.wants_writable());
    }

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
