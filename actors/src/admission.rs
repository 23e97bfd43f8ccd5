//! Which connections a server takes: a cap on the client connections open at once.
//!
//! Each admitted connection holds a [`Ticket`] for as long as it is open; dropping the
//! ticket gives its place back, so the count cannot drift from the connections held.

use std::cell::Cell;
use std::rc::Rc;

/// Counts open client connections against the cap.
#[derive(Debug)]
pub(crate) struct Admission {
    open: Rc<Cell<usize>>,
    max: usize,
}

/// One admitted connection's place.
#[derive(Debug)]
pub(crate) struct Ticket(Rc<Cell<usize>>);

impl Admission {
    /// At most `max` connections open at once.
    pub(crate) fn new(max: usize) -> Self {
        Admission {
            open: Rc::new(Cell::new(0)),
            max,
        }
    }

    /// A place for one more connection, if there is room.
    pub(crate) fn admit(&self) -> Option<Ticket> {
        let open = self.open.get();
        if open >= self.max {
            return None;
        }
        self.open.set(open + 1);
        Some(Ticket(Rc::clone(&self.open)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_give_their_place_back_when_dropped() {
        let admission = Admission::new(2);
        let a = admission.admit().expect("room for one");
        let b = admission.admit().expect("room for two");
        assert!(admission.admit().is_none());
        drop(a);
        let c = admission.admit().expect("a place came back");
        assert!(admission.admit().is_none());
        drop((b, c));
        assert!(admission.admit().is_some());
    }
}
