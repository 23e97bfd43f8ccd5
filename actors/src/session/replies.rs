//! Replies in arrival order, whatever order they are ready in.

use std::collections::VecDeque;

/// What a line gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// These bytes.
    Send(Vec<u8>),
    /// No reply: the connection closes here, once the replies before it have left.
    Close(String),
}

/// One slot per line awaiting its reply; replies leave from the front as it fills.
#[derive(Debug, Default)]
pub(crate) struct ReplyQueue {
    /// Sequence number of the front slot.
    front: u64,
    slots: VecDeque<Option<Reply>>,
}

impl ReplyQueue {
    /// Takes the next slot; its reply will leave after every earlier one.
    pub(crate) fn reserve(&mut self) -> u64 {
        self.slots.push_back(None);
        self.front + self.slots.len() as u64 - 1
    }

    /// Fills slot `seq` and returns the replies now ready to leave, in order.
    pub(crate) fn fill(&mut self, seq: u64, reply: Reply) -> Vec<Reply> {
        if let Some(slot) = seq
            .checked_sub(self.front)
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        {
            *slot = Some(reply);
        }
        let mut ready = Vec::new();
        while let Some(Some(_)) = self.slots.front() {
            if let Some(Some(reply)) = self.slots.pop_front() {
                ready.push(reply);
            }
            self.front += 1;
        }
        ready
    }

    /// Replies still awaited.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_arrival_order() {
        let mut q = ReplyQueue::default();
        let a = q.reserve();
        let b = q.reserve();
        let c = q.reserve();
        let send = |text: &str| Reply::Send(text.as_bytes().to_vec());
        assert!(q.fill(c, send("c")).is_empty());
        assert!(q.fill(b, Reply::Close("why".into())).is_empty());
        assert_eq!(
            q.fill(a, send("a")),
            vec![send("a"), Reply::Close("why".into()), send("c")]
        );
        assert!(q.is_empty());
        let d = q.reserve();
        assert_eq!(q.fill(d, send("d")), vec![send("d")]);
    }
}
