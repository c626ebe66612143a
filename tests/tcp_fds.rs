//! 1,000 concurrent TCP connections opened and closed leave the process's
//! open file descriptors where they were. Alone in its own test binary, so
//! no other test opens or closes descriptors meanwhile.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::Failure;
use twined::protocol::{Protocol, Transport};
use twined::reactor;

fn stop() {
    let _ = reactor::stop();
}

/// Writes on connect, closes on data; calls `lost` at the end.
struct Conn {
    transport: Option<Transport>,
    greet: bool,
    made: Option<Box<dyn FnOnce()>>,
    lost: Option<Box<dyn FnOnce()>>,
}

impl Protocol for Conn {
    fn connection_made(&mut self, transport: Transport) {
        if self.greet {
            transport.write(b"bye");
        }
        if let Some(f) = self.made.take() {
            f();
        }
        self.transport = Some(transport);
    }
    fn data_received(&mut self, _data: &[u8]) {
        if let Some(t) = &self.transport {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, _reason: Failure) {
        if let Some(f) = self.lost.take() {
            f();
        }
    }
}

#[test]
fn a_thousand_connections_open_and_close_without_leaking_fds() {
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }
    // Create the reactor's own fds (poll, waker) before counting.
    reactor::call_later(Duration::ZERO, stop);
    reactor::run().unwrap();
    let before = open_fds();

    let port = reactor::listen_tcp("127.0.0.1:0", |_peer: SocketAddr| Conn {
        transport: None,
        greet: false,
        made: None,
        lost: None,
    })
    .unwrap();
    let n = 1000;
    let closed = Rc::new(Cell::new(0));
    let open_now = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    for _ in 0..n {
        let closed = closed.clone();
        let (o1, o2, pk) = (open_now.clone(), open_now.clone(), peak.clone());
        let proto = Conn {
            transport: None,
            greet: true,
            made: Some(Box::new(move || {
                o1.set(o1.get() + 1);
                pk.set(pk.get().max(o1.get()));
            })),
            lost: Some(Box::new(move || {
                o2.set(o2.get() - 1);
                closed.set(closed.get() + 1);
                if closed.get() == n {
                    stop();
                }
            })),
        };
        reactor::connect_protocol("127.0.0.1", port.address().port(), proto)
            .add_errback(|f| panic!("connect failed: {f}"));
    }
    let watchdog = reactor::call_later(Duration::from_secs(60), || {
        eprintln!("timed out: not every connection closed within 60 s");
        std::process::exit(2)
    });
    reactor::run().unwrap();
    let _ = watchdog.cancel();
    port.stop_listening();
    // Let the server side's connection_lost calls run.
    reactor::call_later(Duration::from_millis(20), stop);
    reactor::run().unwrap();
    assert_eq!(closed.get(), n);
    assert!(peak.get() > 1, "connections should overlap");
    assert_eq!(open_fds(), before, "file descriptors leaked");
}
