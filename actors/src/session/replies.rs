//! Replies in arrival order, whatever order they are ready in.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Waker};

/// What a line gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// These bytes.
    Send(Vec<u8>),
    /// No reply: the connection closes here, once the replies before it have left.
    Close(String),
}

/// How many commands await their replies, as the reply queue counts them, shared with the
/// session's input, which reads no line while there are `limit` of them.
#[derive(Debug)]
pub(crate) struct Awaited {
    count: Cell<usize>,
    limit: usize,
    /// The input, waiting for the count to fall.
    waker: RefCell<Option<Waker>>,
}

impl Awaited {
    /// No command awaited yet; reading waits at `limit`.
    pub(crate) fn new(limit: usize) -> Self {
        Awaited {
            count: Cell::new(0),
            limit,
            waker: RefCell::new(None),
        }
    }

    fn set(&self, count: usize) {
        self.count.set(count);
        if count < self.limit {
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// Whether another command may be read now; if not, `cx` is woken once one may.
    pub(crate) fn has_room(&self, cx: &mut Context<'_>) -> bool {
        if self.count.get() < self.limit {
            return true;
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        false
    }
}

/// One slot per line awaiting its reply; replies leave from the front as it fills.
#[derive(Debug)]
pub(crate) struct ReplyQueue {
    /// Sequence number of the front slot.
    front: u64,
    slots: VecDeque<Option<Reply>>,
    /// The number of slots, as the input sees it.
    awaited: Rc<Awaited>,
}

impl ReplyQueue {
    /// An empty queue that keeps `awaited` up to date.
    pub(crate) fn new(awaited: Rc<Awaited>) -> Self {
        ReplyQueue {
            front: 0,
            slots: VecDeque::new(),
            awaited,
        }
    }

    /// Takes the next slot; its reply will leave after every earlier one.
    pub(crate) fn reserve(&mut self) -> u64 {
        self.slots.push_back(None);
        self.awaited.set(self.slots.len());
        self.front + self.slots.len() as u64 - 1
    }

    /// Fills slot `seq`; the replies it lets leave come from [`ReplyQueue::pop_ready`].
    pub(crate) fn fill(&mut self, seq: u64, reply: Reply) {
        if let Some(slot) = seq
            .checked_sub(self.front)
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        {
            *slot = Some(reply);
        }
    }

    /// The front reply, if it is ready to leave.
    pub(crate) fn pop_ready(&mut self) -> Option<Reply> {
        if !matches!(self.slots.front(), Some(Some(_))) {
            return None;
        }
        let reply = self.slots.pop_front().flatten();
        self.front += 1;
        self.awaited.set(self.slots.len());
        reply
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `seq`, then takes every reply ready to leave.
    fn fill(q: &mut ReplyQueue, seq: u64, reply: Reply) -> Vec<Reply> {
        q.fill(seq, reply);
        std::iter::from_fn(|| q.pop_ready()).collect()
    }

    #[test]
    fn replies_leave_in_arrival_order() {
        let mut q = ReplyQueue::new(Rc::new(Awaited::new(16)));
        let a = q.reserve();
        let b = q.reserve();
        let c = q.reserve();
        let send = |text: &str| Reply::Send(text.as_bytes().to_vec());
        assert!(fill(&mut q, c, send("c")).is_empty());
        assert!(fill(&mut q, b, Reply::Close("why".into())).is_empty());
        assert_eq!(
            fill(&mut q, a, send("a")),
            vec![send("a"), Reply::Close("why".into()), send("c")]
        );
        assert!(q.is_empty());
        let d = q.reserve();
        assert_eq!(fill(&mut q, d, send("d")), vec![send("d")]);
    }
}
