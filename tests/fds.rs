//! Raw fd readers and writers: `add_reader`, `add_writer`, `remove_*`,
//! level-triggered semantics, re-entrancy, and clean-up.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use twined::reactor;

mod support;
use support::run_bounded;

fn pair() -> (Rc<UnixStream>, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    (Rc::new(ours), theirs)
}

/// Reads what is there now: `None` at end of file.
fn read_some(stream: &UnixStream, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; max];
    match (&*stream).read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Some(Vec::new()),
        Err(e) => panic!("read failed: {e}"),
    }
}

#[test]
fn reader_receives_data_from_the_other_end() {
    let start = reactor::source_count();
    let (ours, mut theirs) = pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (s, g) = (ours.clone(), got.clone());
    reactor::add_reader(&*ours, move || {
        let data = read_some(&s, 1024).unwrap();
        g.borrow_mut().extend_from_slice(&data);
        if g.borrow().len() == 5 {
            assert!(reactor::remove_reader(&*s));
            reactor::stop().unwrap();
        }
    })
    .unwrap();
    assert_eq!(reactor::source_count(), start + 1);
    assert_eq!(
        reactor::get_readers(),
        vec![std::os::unix::io::AsRawFd::as_raw_fd(&*ours)]
    );
    theirs.write_all(b"hello").unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(*got.borrow(), b"hello");
    assert_eq!(reactor::source_count(), start);
    assert!(reactor::get_readers().is_empty());
}

#[test]
fn reader_receives_several_bursts() {
    let start = reactor::source_count();
    let (ours, theirs) = pair();
    let theirs = Rc::new(RefCell::new(theirs));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (s, g) = (ours.clone(), got.clone());
    reactor::add_reader(&*ours, move || {
        let data = read_some(&s, 1024).unwrap();
        g.borrow_mut().extend_from_slice(&data);
        if g.borrow().len() == 30 {
            reactor::remove_reader(&*s);
            reactor::stop().unwrap();
        }
    })
    .unwrap();
    for i in 0..3u64 {
        let t = theirs.clone();
        reactor::call_later(Duration::from_millis(5 * i), move || {
            t.borrow_mut().write_all(&[b'a' + i as u8; 10]).unwrap();
        });
    }
    run_bounded(Duration::from_secs(10));
    let mut expected = Vec::new();
    for c in [b'a', b'b', b'c'] {
        expected.extend_from_slice(&[c; 10]);
    }
    assert_eq!(*got.borrow(), expected);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn reader_is_level_triggered_when_it_reads_only_part() {
    let start = reactor::source_count();
    let (ours, mut theirs) = pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let calls = Rc::new(Cell::new(0));
    let (s, g, c) = (ours.clone(), got.clone(), calls.clone());
    reactor::add_reader(&*ours, move || {
        c.set(c.get() + 1);
        // Ten bytes per call: the rest must be reported again without any
        // new data arriving.
        let data = read_some(&s, 10).unwrap();
        g.borrow_mut().extend_from_slice(&data);
        if g.borrow().len() == 1000 {
            reactor::remove_reader(&*s);
            reactor::stop().unwrap();
        }
    })
    .unwrap();
    let payload: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    theirs.write_all(&payload).unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(*got.borrow(), payload);
    assert!(calls.get() >= 100, "{} calls", calls.get());
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn writer_fires_while_writable_until_removed() {
    let start = reactor::source_count();
    let (ours, mut theirs) = pair();
    let calls = Rc::new(Cell::new(0));
    let (s, c) = (ours.clone(), calls.clone());
    reactor::add_writer(&*ours, move || {
        c.set(c.get() + 1);
        (&*s).write_all(b"x").unwrap();
        if c.get() == 5 {
            assert!(reactor::remove_writer(&*s));
            // Give a wrongly still-armed writer the chance to fire again.
            reactor::call_later(Duration::from_millis(20), || reactor::stop().unwrap());
        }
    })
    .unwrap();
    assert_eq!(reactor::get_writers().len(), 1);
    run_bounded(Duration::from_secs(10));
    assert_eq!(calls.get(), 5);
    let mut buf = [0; 16];
    assert_eq!(theirs.read(&mut buf).unwrap(), 5);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn removed_reader_is_not_called_again() {
    let start = reactor::source_count();
    let (ours, theirs) = pair();
    let theirs = Rc::new(RefCell::new(theirs));
    let calls = Rc::new(Cell::new(0));
    let (s, c, t) = (ours.clone(), calls.clone(), theirs.clone());
    reactor::add_reader(&*ours, move || {
        c.set(c.get() + 1);
        // Remove without reading: a level-triggered reader that stayed would
        // be called again at once.
        assert!(reactor::remove_reader(&*s));
        assert!(!reactor::remove_reader(&*s));
        t.borrow_mut().write_all(b"more").unwrap();
        reactor::call_later(Duration::from_millis(20), || reactor::stop().unwrap());
    })
    .unwrap();
    theirs.borrow_mut().write_all(b"first").unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(calls.get(), 1);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn reader_can_replace_itself() {
    let start = reactor::source_count();
    let (ours, theirs) = pair();
    let theirs = Rc::new(RefCell::new(theirs));
    let log = Rc::new(RefCell::new(Vec::new()));
    let (s, l, t) = (ours.clone(), log.clone(), theirs.clone());
    reactor::add_reader(&*ours, move || {
        let data = read_some(&s, 1024).unwrap();
        l.borrow_mut()
            .push(format!("first:{}", String::from_utf8_lossy(&data)));
        let (s2, l2) = (s.clone(), l.clone());
        reactor::add_reader(&*s, move || {
            let data = read_some(&s2, 1024).unwrap();
            l2.borrow_mut()
                .push(format!("second:{}", String::from_utf8_lossy(&data)));
            reactor::remove_reader(&*s2);
            reactor::stop().unwrap();
        })
        .unwrap();
        t.borrow_mut().write_all(b"b").unwrap();
    })
    .unwrap();
    theirs.borrow_mut().write_all(b"a").unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(*log.borrow(), ["first:a", "second:b"]);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn reader_added_from_inside_another_callback() {
    let start = reactor::source_count();
    let (a, _a_peer) = pair();
    let (b, b_peer) = pair();
    let b_peer = Rc::new(RefCell::new(b_peer));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (a2, b2, g, bp) = (a.clone(), b.clone(), got.clone(), b_peer.clone());
    // `a` is writable at once: its writer sets up a reader on `b`.
    reactor::add_writer(&*a, move || {
        reactor::remove_writer(&*a2);
        let (b3, g2) = (b2.clone(), g.clone());
        reactor::add_reader(&*b2, move || {
            let data = read_some(&b3, 1024).unwrap();
            g2.borrow_mut().extend_from_slice(&data);
            reactor::remove_reader(&*b3);
            reactor::stop().unwrap();
        })
        .unwrap();
        bp.borrow_mut().write_all(b"via b").unwrap();
    })
    .unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(*got.borrow(), b"via b");
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn reader_and_writer_on_one_fd_are_independent() {
    let start = reactor::source_count();
    let (ours, mut theirs) = pair();
    let events = Rc::new(RefCell::new(Vec::new()));
    let (s, e) = (ours.clone(), events.clone());
    reactor::add_writer(&*ours, move || {
        e.borrow_mut().push("write");
        reactor::remove_writer(&*s);
    })
    .unwrap();
    let (s, e) = (ours.clone(), events.clone());
    reactor::add_reader(&*ours, move || {
        let data = read_some(&s, 1024).unwrap();
        assert_eq!(data, b"ping");
        e.borrow_mut().push("read");
        reactor::remove_reader(&*s);
        reactor::stop().unwrap();
    })
    .unwrap();
    // One registration for both.
    assert_eq!(reactor::source_count(), start + 1);
    reactor::call_later(Duration::from_millis(5), move || {
        theirs.write_all(b"ping").unwrap();
    });
    run_bounded(Duration::from_secs(10));
    assert_eq!(*events.borrow(), ["write", "read"]);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn hang_up_calls_the_reader_which_reads_eof() {
    let start = reactor::source_count();
    let (ours, theirs) = pair();
    let saw_eof = Rc::new(Cell::new(false));
    let (s, eof) = (ours.clone(), saw_eof.clone());
    reactor::add_reader(&*ours, move || {
        if read_some(&s, 1024).is_none() {
            eof.set(true);
            reactor::remove_reader(&*s);
            reactor::stop().unwrap();
        }
    })
    .unwrap();
    drop(theirs);
    run_bounded(Duration::from_secs(10));
    assert!(saw_eof.get());
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn remove_all_removes_everything_and_says_what() {
    use std::os::unix::io::AsRawFd;
    let start = reactor::source_count();
    let (a, _pa) = pair();
    let (b, _pb) = pair();
    reactor::add_reader(&*a, || {}).unwrap();
    reactor::add_writer(&*a, || {}).unwrap();
    reactor::add_writer(&*b, || {}).unwrap();
    assert_eq!(reactor::source_count(), start + 2);
    let removed = reactor::remove_all();
    assert_eq!(removed.readers, vec![a.as_raw_fd()]);
    let mut writers = vec![a.as_raw_fd(), b.as_raw_fd()];
    writers.sort_unstable();
    assert_eq!(removed.writers, writers);
    assert_eq!(reactor::source_count(), start);
    assert!(reactor::get_readers().is_empty() && reactor::get_writers().is_empty());
    assert_eq!(reactor::remove_all(), reactor::RemovedFds::default());
}

#[test]
fn remove_all_from_inside_a_callback() {
    let start = reactor::source_count();
    let (a, _pa) = pair();
    let (b, _pb) = pair();
    let calls = Rc::new(Cell::new(0));
    for s in [&a, &b] {
        let c = calls.clone();
        reactor::add_writer(&**s, move || {
            c.set(c.get() + 1);
            let removed = reactor::remove_all();
            assert_eq!(removed.writers.len(), 2);
            reactor::call_later(Duration::from_millis(20), || reactor::stop().unwrap());
        })
        .unwrap();
    }
    run_bounded(Duration::from_secs(10));
    // Both were writable in the same poll; the first removed the second
    // before it ran.
    assert_eq!(calls.get(), 1);
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn a_panicking_callback_is_removed_and_the_loop_goes_on() {
    let start = reactor::source_count();
    let (ours, _theirs) = pair();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    reactor::add_writer(&*ours, move || {
        c.set(c.get() + 1);
        panic!("boom");
    })
    .unwrap();
    reactor::call_later(Duration::from_millis(20), || reactor::stop().unwrap());
    run_bounded(Duration::from_secs(10));
    assert_eq!(calls.get(), 1);
    assert!(reactor::get_writers().is_empty());
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn a_regular_file_is_refused_with_an_error() {
    let start = reactor::source_count();
    let file = std::fs::File::open("Cargo.toml").unwrap();
    let err = reactor::add_reader(&file, || {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(reactor::get_readers().is_empty());
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn adding_twice_replaces_and_keeps_one_registration() {
    let start = reactor::source_count();
    let (ours, _theirs) = pair();
    reactor::add_writer(&*ours, || {}).unwrap();
    reactor::add_writer(&*ours, || {}).unwrap();
    assert_eq!(reactor::get_writers().len(), 1);
    assert_eq!(reactor::source_count(), start + 1);
    assert!(reactor::remove_writer(&*ours));
    assert_eq!(reactor::source_count(), start);
}

#[test]
fn a_writer_on_a_hung_up_socket_is_called_and_its_write_fails() {
    let start = reactor::source_count();
    let (ours, theirs) = pair();
    drop(theirs);
    let error = Rc::new(RefCell::new(None));
    let (s, e) = (ours.clone(), error.clone());
    reactor::add_writer(&*ours, move || {
        if let Err(err) = (&*s).write(b"into the void") {
            *e.borrow_mut() = Some(err.kind());
            reactor::remove_writer(&*s);
            reactor::stop().unwrap();
        }
    })
    .unwrap();
    run_bounded(Duration::from_secs(10));
    assert_eq!(*error.borrow(), Some(ErrorKind::BrokenPipe));
    assert_eq!(reactor::source_count(), start);
}
