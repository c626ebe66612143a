//! `Transport::when_closed` over TCP: the Deferred fires with the close
//! reason after the protocol's `connection_lost`, for a clean close, an abort
//! and a peer that goes away, and at once once closed. (Twisted's endpoint
//! examples keep such a Deferred on the protocol; `connectProtocol` users
//! had nothing for it.)

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use support::wait;
use twined::defer::Failure;
use twined::protocol::{ConnectionAborted, ConnectionDone, ConnectionLost, Protocol, Transport};
use twined::reactor;

/// Records the order of events.
#[derive(Clone, Default)]
struct Order(Rc<RefCell<Vec<&'static str>>>);

struct Client(Order);

impl Protocol for Client {
    fn data_received(&mut self, _: &[u8]) {}
    fn connection_lost(&mut self, _reason: Failure) {
        self.0 .0.borrow_mut().push("connection_lost");
    }
}

/// A server that closes (cleanly or with a reset) as soon as it gets a byte.
struct Closer {
    transport: Option<Transport>,
    abort: bool,
}

impl Protocol for Closer {
    fn connection_made(&mut self, t: Transport) {
        self.transport = Some(t);
    }
    fn data_received(&mut self, _: &[u8]) {
        if let Some(t) = &self.transport {
            if self.abort {
                t.abort_connection();
            } else {
                t.lose_connection();
            }
        }
    }
}

fn closed_by(abort: bool, client_closes: Option<bool>) -> (Failure, Order) {
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| Closer {
        transport: None,
        abort,
    })
    .unwrap();
    let order = Order::default();
    let o = order.clone();
    let d = reactor::connect_protocol("127.0.0.1", port.address().port(), Client(order.clone()))
        .add_callback(move |t: Transport| {
            let closed = t.when_closed().add_callback(move |reason: Failure| {
                o.0.borrow_mut().push("when_closed");
                reason
            });
            match client_closes {
                Some(true) => t.abort_connection(),
                Some(false) => t.lose_connection(),
                None => t.write(b"close, please"),
            }
            closed
        });
    let reason = wait(d).unwrap();
    port.stop_listening();
    (reason, order)
}

#[test]
fn fires_with_connection_done_after_a_clean_local_close() {
    let (reason, order) = closed_by(false, Some(false));
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    assert_eq!(*order.0.borrow(), ["connection_lost", "when_closed"]);
}

#[test]
fn fires_with_connection_aborted_after_a_local_abort() {
    let (reason, _) = closed_by(false, Some(true));
    assert!(reason.check::<ConnectionAborted>(), "{reason}");
}

#[test]
fn fires_when_the_peer_closes() {
    let (reason, _) = closed_by(false, None);
    assert!(reason.check::<ConnectionDone>(), "{reason}");
}

#[test]
fn fires_with_connection_lost_when_the_peer_resets() {
    let (reason, _) = closed_by(true, None);
    assert!(reason.check::<ConnectionLost>(), "{reason}");
}

#[test]
fn fires_at_once_on_a_closed_connection_and_for_every_waiter() {
    let port = reactor::listen_tcp("127.0.0.1:0", move |_: SocketAddr| Closer {
        transport: None,
        abort: false,
    })
    .unwrap();
    let order = Order::default();
    let t = wait(reactor::connect_protocol(
        "127.0.0.1",
        port.address().port(),
        Client(order),
    ))
    .unwrap();
    let first = t.when_closed();
    let second = t.when_closed();
    t.lose_connection();
    wait(first).unwrap();
    assert!(second.result().unwrap().unwrap().check::<ConnectionDone>());
    let late = t.when_closed();
    assert!(late.result().unwrap().unwrap().check::<ConnectionDone>());
    port.stop_listening();
}
