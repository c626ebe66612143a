//! Raw file descriptors watched by the reactor: Twisted's `addReader`,
//! `addWriter`, `removeReader`, `removeWriter`, `removeAll`, `getReaders` and
//! `getWriters`, for anything with a file descriptor ([`AsRawFd`]).
//!
//! Twisted calls `doRead()` on the object; here the reactor calls a closure.
//! Each watched fd has at most one reader and one writer callback, and one
//! registration with the poller whose interest is the union of the two.
//!
//! **Level-triggered, like Twisted.** mio is edge-triggered; this module
//! re-arms the registration after every dispatch, so a reader is called again
//! on the next iteration for as long as data is available, even if it read only
//! part of it, and a writer is called on every iteration while the fd is
//! writable (remove it when there is nothing left to write, as in Twisted).
//!
//! **Hang-ups and errors.** When the peer hangs up or the fd reports an error,
//! the reader is called (its `read` returns 0 bytes, or the error); when the
//! fd can no longer be written, the writer is called (its `write` fails). A callback that sees end-of-file must
//! remove itself (or the fd): otherwise, level-triggered, it is called again
//! on every iteration. Twisted would call `connectionLost` instead; a raw
//! callback has no such method.
//!
//! **Panics.** A callback that panics is logged and the fd's reader and writer
//! are both removed (Twisted disconnects a selectable whose `doRead` raises).
//!
//! Remove an fd before closing it. The callbacks live on the thread that
//! added them, with that thread's reactor.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;

use mio::unix::SourceFd;
use mio::Interest;

use super::sources::{Handler, Ready, SourceKey};
use super::{current_reactor, guard};
use crate::defer::report::report_error;

type Callback = Box<dyn FnMut()>;

/// One reader or writer: its callback is `None` while it runs.
struct Slot {
    id: u64,
    callback: Option<Callback>,
}

struct Watch {
    key: SourceKey,
    reader: Option<Slot>,
    writer: Option<Slot>,
}

impl Watch {
    fn interest(&self) -> Option<Interest> {
        match (self.reader.is_some(), self.writer.is_some()) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<Slot> {
        match kind {
            Kind::Reader => &mut self.reader,
            Kind::Writer => &mut self.writer,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Reader,
    Writer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Reader => "reader",
            Kind::Writer => "writer",
        }
    }
}

thread_local! {
    static WATCHES: RefCell<HashMap<RawFd, Watch>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` on this thread's watches; `None` while the thread is exiting.
fn with_watches<R>(f: impl FnOnce(&mut HashMap<RawFd, Watch>) -> R) -> Option<R> {
    WATCHES.try_with(|w| f(&mut w.borrow_mut())).ok()
}

fn next_id() -> u64 {
    NEXT_ID
        .try_with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        })
        .unwrap_or(u64::MAX)
}

fn thread_exiting() -> io::Error {
    io::Error::other("the thread is exiting: its reactor is gone")
}

/// The poller's handler for one watched fd.
struct FdHandler {
    fd: RawFd,
}

impl Handler for FdHandler {
    fn ready(&self, ready: Ready) {
        let fd = self.fd;
        if ready.readable || ready.read_closed || ready.error {
            dispatch(fd, Kind::Reader);
        }
        if ready.writable || ready.write_closed || ready.error {
            dispatch(fd, Kind::Writer);
        }
        rearm(fd);
    }
}

/// Calls `fd`'s reader or writer, if it has one, without holding any borrow.
fn dispatch(fd: RawFd, kind: Kind) {
    let taken = with_watches(|w| {
        let slot = w.get_mut(&fd)?.slot(kind).as_mut()?;
        Some((slot.id, slot.callback.take()?))
    })
    .flatten();
    let Some((id, mut callback)) = taken else {
        return;
    };
    let mut finished = false;
    guard(&format!("the {} of fd {fd}", kind.name()), || {
        callback();
        finished = true;
    });
    // Put the callback back unless it was replaced or removed meanwhile; a
    // replaced or removed one is dropped here, outside the borrow.
    let leftover = with_watches(|w| {
        let slot = w.get_mut(&fd).and_then(|watch| watch.slot(kind).as_mut());
        match slot {
            Some(slot) if slot.id == id && slot.callback.is_none() => {
                slot.callback = Some(callback);
                None
            }
            _ => Some(callback),
        }
    });
    drop(leftover);
    if !finished {
        report_error!("removing fd {fd} from the reactor after its callback panicked");
        remove(fd, Kind::Reader);
        remove(fd, Kind::Writer);
    }
}

/// Re-registers `fd` so that it reports again if it is still ready (mio is
/// edge-triggered; this is what makes readers level-triggered).
fn rearm(fd: RawFd) {
    let target = with_watches(|w| {
        w.get(&fd)
            .and_then(|watch| Some((watch.key, watch.interest()?)))
    });
    if let Some((key, interest)) = target.flatten() {
        if let Err(e) = current_reactor().reregister(&mut SourceFd(&fd), key, interest) {
            log::debug!("could not re-arm fd {fd}: {e}");
        }
    }
}

fn add(fd: RawFd, kind: Kind, callback: Callback) -> io::Result<()> {
    let slot = Slot {
        id: next_id(),
        callback: Some(callback),
    };
    // Replaced callbacks are dropped after the borrow ends: dropping one may
    // run user code that reaches for the watches.
    let mut garbage = Vec::new();
    let result = with_watches(|w| add_locked(w, fd, kind, slot, &mut garbage))
        .unwrap_or_else(|| Err(thread_exiting()));
    drop(garbage);
    result
}

fn add_locked(
    w: &mut HashMap<RawFd, Watch>,
    fd: RawFd,
    kind: Kind,
    slot: Slot,
    garbage: &mut Vec<Slot>,
) -> io::Result<()> {
    let reactor = current_reactor();
    let Some(watch) = w.get_mut(&fd) else {
        let interest = match kind {
            Kind::Reader => Interest::READABLE,
            Kind::Writer => Interest::WRITABLE,
        };
        let key = register(fd, interest)?;
        let mut watch = Watch {
            key,
            reader: None,
            writer: None,
        };
        *watch.slot(kind) = Some(slot);
        w.insert(fd, watch);
        return Ok(());
    };
    let previous = watch.slot(kind).replace(slot);
    let interest = watch.interest().unwrap_or(Interest::READABLE);
    match reactor.reregister(&mut SourceFd(&fd), watch.key, interest) {
        Ok(()) => {
            garbage.extend(previous);
            Ok(())
        }
        // The fd was closed (and maybe reopened) without being removed: the
        // poller forgot it. Register it afresh.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            garbage.extend(previous);
            let Some(mut watch) = w.remove(&fd) else {
                return Err(e);
            };
            reactor.deregister(&mut SourceFd(&fd), watch.key);
            match register(fd, interest) {
                Ok(key) => {
                    watch.key = key;
                    w.insert(fd, watch);
                    Ok(())
                }
                Err(e) => {
                    garbage.extend(watch.reader.take());
                    garbage.extend(watch.writer.take());
                    Err(e)
                }
            }
        }
        Err(e) => {
            // Undo: the previous callback stays.
            garbage.extend(std::mem::replace(watch.slot(kind), previous));
            Err(e)
        }
    }
}

fn register(fd: RawFd, interest: Interest) -> io::Result<SourceKey> {
    current_reactor()
        .register(&mut SourceFd(&fd), interest, Rc::new(FdHandler { fd }))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                io::Error::new(
                    e.kind(),
                    format!(
                        "fd {fd} is already registered with the reactor by something else \
                         (a transport?)"
                    ),
                )
            } else {
                e
            }
        })
}

/// Removes `fd`'s reader or writer; returns whether there was one.
fn remove(fd: RawFd, kind: Kind) -> bool {
    let reactor = current_reactor();
    let removed = with_watches(|w| {
        let watch = w.get_mut(&fd)?;
        let slot = watch.slot(kind).take()?;
        match watch.interest() {
            Some(interest) => {
                if let Err(e) = reactor.reregister(&mut SourceFd(&fd), watch.key, interest) {
                    log::debug!("could not update fd {fd}'s interest: {e}");
                }
            }
            None => {
                if let Some(watch) = w.remove(&fd) {
                    reactor.deregister(&mut SourceFd(&fd), watch.key);
                }
            }
        }
        Some(slot)
    })
    .flatten();
    // The callback is dropped outside the borrow (dropping it may run user code).
    removed.is_some()
}

/// Calls `callback` on the reactor thread whenever `fd` is readable (Twisted's
/// `addReader`), level-triggered: again on every iteration while data remains.
/// A hang-up or an error also calls it (a `read` then returns 0 or the error);
/// remove the reader then, or it is called again.
///
/// An fd has at most one reader: adding another replaces it, also from inside
/// the running reader. The fd must stay open until it is removed. An error if
/// the poller refuses the fd (a regular file, say) or the fd is already
/// registered by a transport.
///
/// ```
/// use std::cell::RefCell;
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use twined::reactor;
///
/// let (ours, mut theirs) = UnixStream::pair().unwrap();
/// ours.set_nonblocking(true).unwrap();
/// let ours = Rc::new(ours);
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let (reader, sink) = (ours.clone(), got.clone());
/// reactor::add_reader(&*ours, move || {
///     let mut buf = [0; 64];
///     match (&*reader).read(&mut buf) {
///         Ok(0) | Err(_) => {}
///         Ok(n) => {
///             sink.borrow_mut().extend_from_slice(&buf[..n]);
///             reactor::remove_reader(&*reader);
///             reactor::stop().unwrap();
///         }
///     }
/// })
/// .unwrap();
/// theirs.write_all(b"hello").unwrap();
/// reactor::run().unwrap();
/// assert_eq!(*got.borrow(), b"hello");
/// ```
pub fn add_reader(fd: &impl AsRawFd, callback: impl FnMut() + 'static) -> io::Result<()> {
    add(fd.as_raw_fd(), Kind::Reader, Box::new(callback))
}

/// Calls `callback` on the reactor thread whenever `fd` is writable (Twisted's
/// `addWriter`): on every iteration while it stays writable, so remove the
/// writer once there is nothing left to write. A hang-up or an error also calls
/// it (a `write` then fails). One writer per fd; adding another replaces it.
///
/// A non-blocking `connect` has completed when its socket's writer is called.
pub fn add_writer(fd: &impl AsRawFd, callback: impl FnMut() + 'static) -> io::Result<()> {
    add(fd.as_raw_fd(), Kind::Writer, Box::new(callback))
}

/// Stops calling `fd`'s reader (Twisted's `removeReader`); returns whether it
/// had one. Safe from inside any callback, including the reader itself.
pub fn remove_reader(fd: &impl AsRawFd) -> bool {
    remove(fd.as_raw_fd(), Kind::Reader)
}

/// Stops calling `fd`'s writer (Twisted's `removeWriter`); returns whether it
/// had one.
pub fn remove_writer(fd: &impl AsRawFd) -> bool {
    remove(fd.as_raw_fd(), Kind::Writer)
}

/// The fds whose callbacks [`remove_all`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedFds {
    /// Fds that had a reader, in ascending order.
    pub readers: Vec<RawFd>,
    /// Fds that had a writer, in ascending order.
    pub writers: Vec<RawFd>,
}

/// Removes every reader and writer added with [`add_reader`] and
/// [`add_writer`] on this thread (Twisted's `removeAll`), and says which.
///
/// Unlike Twisted's, it leaves the reactor's own transports (TCP connections,
/// listening ports, process pipes) alone: they are not readers here.
pub fn remove_all() -> RemovedFds {
    let reactor = current_reactor();
    let taken: Vec<(RawFd, Watch)> = with_watches(|w| w.drain().collect()).unwrap_or_default();
    let mut removed = RemovedFds::default();
    for (fd, watch) in &taken {
        reactor.deregister(&mut SourceFd(fd), watch.key);
        if watch.reader.is_some() {
            removed.readers.push(*fd);
        }
        if watch.writer.is_some() {
            removed.writers.push(*fd);
        }
    }
    drop(taken);
    removed.readers.sort_unstable();
    removed.writers.sort_unstable();
    removed
}

/// The fds that have a reader (Twisted's `getReaders`), ascending.
pub fn get_readers() -> Vec<RawFd> {
    listed(Kind::Reader)
}

/// The fds that have a writer (Twisted's `getWriters`), ascending.
pub fn get_writers() -> Vec<RawFd> {
    listed(Kind::Writer)
}

fn listed(kind: Kind) -> Vec<RawFd> {
    let mut fds = with_watches(|w| {
        w.iter()
            .filter(|(_, watch)| match kind {
                Kind::Reader => watch.reader.is_some(),
                Kind::Writer => watch.writer.is_some(),
            })
            .map(|(fd, _)| *fd)
            .collect::<Vec<_>>()
    })
    .unwrap_or_default();
    fds.sort_unstable();
    fds
}
