//! The lanes of the event log: each serving thread's buffer of events, which only it and the
//! writer thread lock, and how an event goes into one.

use std::sync::{Arc, Mutex};

use super::format::lost_notice;
use super::Buffer;

/// The lanes, and what the writer is asked to do besides taking them.
pub(super) struct Lanes {
    /// The home lane first. The writer forgets a lane once no handle holds it and it has
    /// taken the last of it.
    pub(super) all: Vec<Arc<Lane>>,
    /// The writer is to open the file again once it has written what came before.
    pub(super) reopen: bool,
    /// Every lane is closed, and the writer is to write what they hold and stop.
    pub(super) closed: bool,
}

/// One serving thread's buffer: shared by its handles and the writer thread only.
pub(super) struct Lane {
    pub(super) pending: Mutex<Pending>,
}

/// What the writer has not taken yet from one lane.
pub(super) struct Pending {
    pub(super) buf: Vec<u8>,
    /// Events dropped on a full buffer and not yet reported in the log.
    pub(super) lost: u64,
    /// The writer has been woken for a buffer half full, and has not taken it yet.
    pub(super) nudged: bool,
    pub(super) closed: bool,
}

impl Lane {
    pub(super) fn new(closed: bool) -> Lane {
        Lane {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                lost: 0,
                nudged: false,
                closed,
            }),
        }
    }
}

/// Appends one event to a lane's `p`, or counts it lost if there is no room; nudges the
/// writer when `p` is half full.
pub(super) fn append(p: &mut Pending, buffer: &Buffer, write: impl FnOnce(&mut Vec<u8>)) {
    // The count of lost events goes in just before the next event there is room for.
    let start = p.buf.len();
    if p.lost > 0 {
        let lost = p.lost;
        lost_notice(&mut p.buf, lost);
    }
    write(&mut p.buf);
    p.buf.push(b'\n');
    if p.buf.len() > buffer.capacity {
        p.buf.truncate(start);
        p.lost += 1;
        buffer.dropped.inc();
        return;
    }
    p.lost = 0;
    if p.buf.len() > buffer.capacity / 2 && !p.nudged {
        p.nudged = true;
        buffer.wake.notify_one();
    }
}
