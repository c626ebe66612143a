//! I/O sources registered with the reactor's `mio::Poll`.
//!
//! Each source lives in a `slab::Slab` slot. Its `mio::Token` carries the slot
//! index in the low 32 bits and a per-slot generation in the high bits, bumped
//! every time the slot is freed, so an event still queued for a closed socket
//! never reaches the socket that reused its slot.

use std::io;
use std::rc::Rc;

use mio::event::Source;
use mio::{Interest, Registry, Token};
use slab::Slab;

/// Readiness of one source, from one `mio` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    pub readable: bool,
    pub writable: bool,
    pub error: bool,
    pub read_closed: bool,
    pub write_closed: bool,
}

impl Ready {
    pub(crate) fn from_event(event: &mio::event::Event) -> Ready {
        Ready {
            readable: event.is_readable(),
            writable: event.is_writable(),
            error: event.is_error(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
        }
    }
}

/// Something that reacts to readiness events: a TCP transport, a listening
/// port, a raw fd watch, a process pipe.
pub(crate) trait Handler {
    /// Called on the reactor thread with no reactor borrow held; it may
    /// register, deregister, schedule, stop the reactor, anything.
    fn ready(&self, ready: Ready);
}

/// The key of a registered source (what its token decodes to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SourceKey {
    index: usize,
    generation: u32,
}

impl SourceKey {
    pub(crate) fn token(self) -> Token {
        Token((self.generation as usize) << 32 | self.index)
    }

    pub(crate) fn from_token(token: Token) -> SourceKey {
        SourceKey {
            index: token.0 & 0xffff_ffff,
            generation: (token.0 >> 32) as u32,
        }
    }
}

struct Slot {
    generation: u32,
    handler: Rc<dyn Handler>,
}

/// The slab of registered sources.
#[derive(Default)]
pub(crate) struct Sources {
    slots: Slab<Slot>,
    /// The generation the next occupant of each index gets.
    generations: Vec<u32>,
}

/// Tokens at the top of the range are reserved for the reactor's own sources.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
pub(crate) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

impl Sources {
    pub(crate) fn insert(&mut self, handler: Rc<dyn Handler>) -> SourceKey {
        let entry = self.slots.vacant_entry();
        let index = entry.key();
        if self.generations.len() <= index {
            self.generations.resize(index + 1, 0);
        }
        let generation = self.generations[index];
        entry.insert(Slot {
            generation,
            handler,
        });
        SourceKey { index, generation }
    }

    /// Frees the slot; later events with the old token are ignored.
    pub(crate) fn remove(&mut self, key: SourceKey) -> Option<Rc<dyn Handler>> {
        let live = self
            .slots
            .get(key.index)
            .is_some_and(|s| s.generation == key.generation);
        if !live {
            return None;
        }
        let slot = self.slots.remove(key.index);
        if let Some(generation) = self.generations.get_mut(key.index) {
            *generation = generation.wrapping_add(1);
        }
        Some(slot.handler)
    }

    /// Gives the live source `key` a new handler; returns the old one (to
    /// be dropped outside the borrow), or `None` if `key` is stale.
    pub(crate) fn replace(
        &mut self,
        key: SourceKey,
        handler: Rc<dyn Handler>,
    ) -> Option<Rc<dyn Handler>> {
        self.slots
            .get_mut(key.index)
            .filter(|slot| slot.generation == key.generation)
            .map(|slot| std::mem::replace(&mut slot.handler, handler))
    }

    /// The handler for `token`, if it is still the one the token was made for.
    pub(crate) fn get(&self, token: Token) -> Option<Rc<dyn Handler>> {
        let key = SourceKey::from_token(token);
        self.slots
            .get(key.index)
            .filter(|slot| slot.generation == key.generation)
            .map(|slot| slot.handler.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// Registers `source` for `interest` with a fresh slot for `handler`.
pub(crate) fn register(
    registry: &Registry,
    sources: &mut Sources,
    source: &mut (impl Source + ?Sized),
    interest: Interest,
    handler: Rc<dyn Handler>,
) -> io::Result<SourceKey> {
    let key = sources.insert(handler);
    if let Err(e) = registry.register(source, key.token(), interest) {
        sources.remove(key);
        return Err(e);
    }
    Ok(key)
}
