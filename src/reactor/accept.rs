//! The accept loop every listening stream socket shares (TCP and Unix):
//! accept until the kernel has nothing more or a fairness cap is hit (the
//! rest is accepted from the loop, since an edge-triggered socket gets no
//! new event for them), and back off on `EMFILE`/`ENFILE` instead of
//! spinning while the pending connections wait in the kernel's queue.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::defer::report::report_error;
use crate::reactor::stream::Factory;
use crate::reactor::{current_reactor, guard};

/// Connections accepted per readiness event before yielding to others.
const ACCEPTS_PER_EVENT: usize = 128;

/// How long to wait before accepting again when out of file descriptors.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// A listening port the loop drives.
pub(crate) trait Accept: 'static {
    /// Accepts one connection and serves it; `None` once the port is closed.
    fn accept_one(&self) -> Option<io::Result<()>>;
    /// The port, for messages.
    fn describe(&self) -> String;
}

/// Accepts what is waiting on `port` (see the module docs).
pub(crate) fn accept_all<A: Accept>(port: &Rc<A>) {
    for _ in 0..ACCEPTS_PER_EVENT {
        match port.accept_one() {
            None => return,
            Some(Ok(())) => {}
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Err(e)) if matches!(e.raw_os_error(), Some(23) | Some(24)) => {
                report_error!("accept on {} failed: {e}; retrying", port.describe());
                accept_later(port, EMFILE_BACKOFF);
                return;
            }
            // ECONNABORTED and friends concern one connection only.
            Some(Err(e)) => log::debug!("accept on {} failed: {e}", port.describe()),
        }
    }
    accept_later(port, Duration::ZERO);
}

fn accept_later<A: Accept>(port: &Rc<A>, delay: Duration) {
    let port = port.clone();
    let reactor = current_reactor();
    if delay.is_zero() {
        reactor.call_soon(Box::new(move || accept_all(&port)));
    } else {
        drop(
            reactor
                .timers
                .call_later(delay, Box::new(move || accept_all(&port))),
        );
    }
}

/// Runs the `stop_factory` of a port just closed: now, or on the next turn
/// when the port was closed from its factory's own `build_protocol` (the
/// factory is borrowed until then).
pub(crate) fn stop_factory<P: 'static>(port: Rc<P>, factory: fn(&P) -> &RefCell<Box<dyn Factory>>) {
    let busy = factory(&port).try_borrow_mut().is_err();
    let stop = move || {
        guard("a factory's stop_factory", || {
            factory(&port).borrow_mut().stop_factory()
        })
    };
    if busy {
        current_reactor().call_soon(Box::new(stop));
    } else {
        stop();
    }
}
